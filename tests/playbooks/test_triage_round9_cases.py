"""Round 9 of triage: invented tickets for each rule changed, and the ordinary tickets each must leave alone.

The rules, not sentences: output that comes out unreadable, a service said to be unavailable, disk space run out or
"only 2 GB left", a storage bar gone red, say something is wrong; "ajouter", "pouvez-vous", "hinzufügen", "toevoegen",
"kunnen jullie" ask for work. A form's "Name:" field is no Dutch "namens" (on behalf of). An Office application that
cannot verify its subscription, or says it has expired, shows an activation fault (the install playbook), while a
subscription bought, renewed or cancelled stays a purchase. A VPN token lost or expired is the MFA playbook's. A
product with its own accounts (Knack, Trello...) keeps its passwords; a Mozilla account's codes are not the
company's MFA. Every ticket here is written for this file; none is copied from any corpus.
"""

from __future__ import annotations

import pytest
from tests.playbooks.triage_expect import expect_not_triaged, expect_nothing, expect_playbook, expect_triaged

from mspclaw.playbooks.intent import Intent
from mspclaw.playbooks.loader import load_dir
from mspclaw.playbooks.matcher import Matcher
from mspclaw.playbooks.tokens import stems


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return Matcher(load_dir())


PURCHASE = "a purchase, licence or billing question"
BUSINESS_APP = "a business application problem, not the user's PC"
OUTSIDE_CODE = "a website's or an outside service's own verification code, not the company's MFA"

# tickets of more than a few words (a terse one is read as a problem with what it names whatever it says): the fault
# or request word is what makes them actionable
PLAYBOOKS = [
    # (category, subject, body)
    # unreadable output, in five languages
    ("printer", "printer output", "Since Monday the printer on the second floor prints gibberish on every page we"
                                  " send to it"),
    ("printer", "printer output", "Since Monday the printer on the second floor prints garbage on every page we send"
                                  " to it"),
    ("printer", "printer output", "Since Monday the printer on the second floor prints random characters on every"
                                  " page we send"),
    ("printer", "Drucker", "Seit Montag druckt der Drucker im zweiten Stock auf jeder Seite nur Zeichensalat aus"),
    ("printer", "imprimante", "Depuis lundi l'imprimante du deuxième étage sort des caractères bizarres sur chaque"
                              " page"),
    ("printer", "impresora", "Desde el lunes la impresora del segundo piso saca caracteres raros en cada página"),
    ("printer", "printer", "Sinds maandag geeft de printer op de tweede verdieping vreemde tekens op elke pagina"),
    ("printer", "imprimante", "Depuis lundi l'imprimante du deuxième étage imprime des pages illisibles sur chaque"
                              " document"),
    ("printer", "printer output", "Since Monday the printer on the second floor prints unreadable pages for every"
                                  " document we send"),
    # a share said to be unavailable
    ("shared_drive_access", "shared drive", "Since this morning the shared drive for the finance team shows as"
                                            " unavailable in Explorer"),
    # space run out, a little left, a red storage bar, in five languages
    ("disk_full", "laptop storage", "My laptop ran out of space this morning when I copied the project folder to it"),
    ("disk_full", "laptop storage", "The laptop is out of disk space after the last sync of the project folder to"
                                    " it"),
    ("disk_full", "C drive", "Windows says only 2 GB left on the C drive of my laptop after copying the videos"),
    ("disk_full", "C drive", "The storage bar for the C drive on my laptop is red in This PC since the weekend"),
    ("disk_full", "espace disque", "Bonjour, espace disque insuffisant sur mon ordinateur portable depuis la mise à"
                                   " jour de Windows hier"),
    ("disk_full", "disco", "Hola, mi ordenador portátil se quedó sin espacio en el disco C después de la"
                           " actualización"),
    ("disk_full", "Festplatte", "Zu wenig Speicherplatz auf meinem Laptop seit dem Kopieren der Videos gestern"
                                " Abend"),
    ("disk_full", "schijf", "Onvoldoende schijfruimte op de laptop van mijn collega sinds het kopiëren van de video's"
                            " gisteren"),
    # work asked for, in five languages
    ("printer", "imprimante", "Bonjour, pouvez-vous ajouter l'imprimante du deuxième étage sur mon ordinateur"
                              " portable merci"),
    ("printer", "printer", "Hallo, kunnen jullie de printer van de tweede verdieping op mijn laptop zetten"),
    ("printer", "printer", "Hallo, de printer van de tweede verdieping aan de laptop van Jan toevoegen, dank u"),
    ("printer", "Drucker", "Hallo, den Drucker im zweiten Stock zu meinem Laptop hinzufügen, danke schön"),
    ("printer", "impresora", "Hola, agregar la impresora del segundo piso a mi portátil, gracias de antemano"),
    # a form's "Name:" field
    ("printer", "printer", "Name: John Smith\nPrinter is offline"),
    ("printer", "Drucker", "Name: John Smith\nAbteilung: Buchhaltung\nDer Drucker druckt nicht"),
    # an Office application's subscription message, in five languages
    ("software_install", "We couldn't verify your subscription", "Word shows a banner: We couldn't verify your"
                                                                  " subscription"),
    ("software_install", "Excel says your subscription has expired", ""),
    ("software_install", "Excel", "Excel shows a yellow bar: Your subscription has expired. It has been working until"
                                  " yesterday"),
    ("software_install", "Word", "Wir konnten Ihr Abonnement nicht überprüfen, steht in Word"),
    ("software_install", "Word", "Word indique que votre abonnement a expiré"),
    ("software_install", "Word", "Word dice que su suscripción ha caducado"),
    ("software_install", "Word", "Word zegt: uw abonnement is verlopen"),
    # a computer account made for someone
    ("onboarding", "computer account", "Could you please make Jane Doe a computer account, she starts in the lab next"
                                       " month"),
    # a VPN token lost or expired, in five languages
    ("mfa_reset", "need a new VPN token, the old one expired", ""),
    ("mfa_reset", "lost my VPN token", ""),
    ("mfa_reset", "neues VPN-Token benötigt, das alte ist abgelaufen", ""),
    ("mfa_reset", "j'ai perdu mon jeton VPN", ""),
    ("mfa_reset", "perdí mi token VPN", ""),
]


@pytest.mark.parametrize(("category", "subject", "body"), PLAYBOOKS, ids=[c[1] + "-" + c[2][:12] for c in PLAYBOOKS])
def test_playbook(matcher: Matcher, category: str, subject: str, body: str) -> None:
    expect_playbook(matcher, category, subject, body)


MUST_NOT = [
    # (reason the triage layer gives, subject, body)
    # a subscription bought, renewed or cancelled, an Office message beside it or not
    (PURCHASE, "renew our Microsoft 365 subscription", ""),
    (PURCHASE, "can you renew the subscription for Adobe", ""),
    (PURCHASE, "Excel says your subscription has expired, can you renew the subscription", ""),
    (PURCHASE, "cancel the Zoom subscription", ""),
    (PURCHASE, "Abonnement für Adobe kündigen", ""),
    (PURCHASE, "need to buy an Adobe subscription", ""),
    # a product with its own accounts
    (BUSINESS_APP, "Unable to sign into Knack. Says email/password incorrect.", ""),
    (BUSINESS_APP, "Trello password reset", ""),
    # a Mozilla account's own code
    (OUTSIDE_CODE, "sign in", "Mozilla keeps asking me for a one time code every time I switch machines"),
]


@pytest.mark.parametrize(("reason", "subject", "body"), MUST_NOT, ids=[c[1] + "-" + c[2][:12] for c in MUST_NOT])
def test_must_not_automate(matcher: Matcher, reason: str, subject: str, body: str) -> None:
    expect_triaged(matcher, subject, body, reason, exact=True)


LEFT_ALONE = [
    # the VPN itself failing, a token not named
    ("vpn", "VPN not connecting", "GlobalProtect says connection failed after I enter my password"),
    ("vpn", "VPN keeps disconnecting", ""),
    # activation without the word subscription
    ("software_install", "Office activation failed", ""),
    # a computer account locked is the lock's
    ("account_locked", "my computer account is locked", ""),
    # the company's own codes
    ("mfa_reset", "not getting MFA code", "I am not getting the text code to sign in to Office 365"),
    ("mfa_reset", "VPN-token kwijt", ""),
]


@pytest.mark.parametrize(("category", "subject", "body"), LEFT_ALONE, ids=[c[1] + "-" + c[2][:12] for c in LEFT_ALONE])
def test_left_alone(matcher: Matcher, category: str, subject: str, body: str) -> None:
    expect_playbook(matcher, category, subject, body)


@pytest.mark.parametrize(("subject", "body"), [
    # Dutch "namens" with what is sent: a question about a mail feature still
    ("Outlook", "Hoe kan ik in Outlook mails versturen namens mijn leidinggevende?"),
    ("e-mail namens collega", "Ik wil een e-mail verzenden namens een collega, hoe stel ik dat in?"),
])
def test_sending_on_behalf_is_still_a_feature_question(matcher: Matcher, subject: str, body: str) -> None:
    expect_triaged(matcher, subject, body, "a question about using an application's features, not a fault",
                   exact=True)


def test_a_name_field_is_no_feature_question(matcher: Matcher) -> None:
    # no language told by the function words: every language's reading, German's too
    expect_not_triaged(matcher, "Outlook", "Name: Maria Lopez\nOutlook ist langsam")


def test_red_alone_is_no_fault(matcher: Matcher) -> None:
    # Spanish "red" is a network: a how-to about it stays a question
    expect_nothing(matcher, "Como puedo conectar mi portatil a la red de la oficina cuando trabajo desde casa", "")
    # a colour in a how-to about a setting
    intent = Intent()
    assert not intent.read(stems("How can I make the calendar colour red instead of blue for my meetings")).actionable
    assert intent.read(stems("The storage bar for the C drive on my laptop is red since the weekend")).actionable


def test_a_new_account_with_share_permissions_is_no_share_request(matcher: Matcher) -> None:
    # the account comes first: not the share playbook (the matcher abstains between the two)
    decision = matcher.match("new account: Jane Doe", "Could you please make Jane Doe a computer account. She will"
                             " need read permissions to the projects share.", "windows")
    assert decision.category != "shared_drive_access", decision.explanation


def test_a_question_about_space_left_is_no_fault() -> None:
    intent = Intent()
    assert not intent.read(stems("How can I see how much space is left on the drive of my laptop")).actionable
    assert intent.read(stems("Windows says only 2 GB left on the drive of my laptop after the update")).actionable
