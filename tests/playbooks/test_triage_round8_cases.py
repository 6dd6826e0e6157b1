"""Round 8 of triage: invented tickets for each rule changed, and the ordinary tickets each must leave alone.

The rules, not sentences: a body's first line that reads as a title (a machine name, the subject again) is a segment
of its own, so no phrase or near pair joins its last word to the next line's first. A password, sign-in or lock-out
of a line-of-business application (named by what it is for, "the timesheet application", "logiciel de paie", or a
product with its own accounts) is the application's, unless the writer says it signs in with the directory account.
An Office application that does not work or open goes to the crash playbook. A desk phone's password or PIN is
the phone system's; a casing coming apart is hardware. A shop's, a bank's or a consumer
service's own verification code is not the company's MFA. Every ticket here is written for this file; none is copied
from any corpus.
"""

from __future__ import annotations

import pytest
from tests.playbooks.triage_expect import expect_not_triaged, expect_nothing, expect_playbook, expect_triaged

from mspclaw.playbooks.loader import load_dir
from mspclaw.playbooks.matcher import Matcher
from mspclaw.playbooks.tokens import stem, stems
from mspclaw.playbooks.triage import BREAK, Rule, Triage


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return Matcher(load_dir())


BUSINESS_APP = "a business application problem, not the user's PC"
OUTSIDE_CODE = "a website's or an outside service's own verification code, not the company's MFA"
HARDWARE = "a hardware failure"
OUTAGE = "an outage affecting many users or a whole site"
DESK_PHONE = "a desk phone or the phone system, which a playbook on a PC does not reach"

MUST_NOT = [
    # (reason the triage layer gives, subject, body)
    # a line-of-business application's own password or lock-out, in five languages
    (BUSINESS_APP, "password reset for Concur", "Hi, I cannot log into Concur to file my expenses, please reset my"
                                                " password."),
    (BUSINESS_APP, "reset my ADP password", ""),
    (BUSINESS_APP, "Xero", "I've been locked out of Xero after too many attempts this morning"),
    (BUSINESS_APP, "timesheet", "I forgot my password to the timesheet application, please reset it"),
    (BUSINESS_APP, "need password reset for the ordering system", ""),
    (BUSINESS_APP, "Passwort für das Zeiterfassungssystem zurücksetzen", ""),
    (BUSINESS_APP, "Kennwort vergessen", "Ich habe mein Kennwort für die Buchhaltungssoftware vergessen, bitte"
                                         " zurücksetzen"),
    (BUSINESS_APP, "réinitialiser le mot de passe du logiciel de paie", ""),
    (BUSINESS_APP, "mot de passe oublié pour le portail RH", ""),
    (BUSINESS_APP, "olvidé mi contraseña del sistema de nómina", ""),
    (BUSINESS_APP, "wachtwoord vergeten voor het planningssysteem", ""),
    (BUSINESS_APP, "cannot access the scheduling software", "I get an error when I open the scheduling software,"
                                                            " it says access denied"),
    # a shop's, a bank's or a consumer service's own verification code, in five languages
    (OUTSIDE_CODE, "LinkedIn two-factor code not arriving", ""),
    (OUTSIDE_CODE, "verification code", "The verification code from the bank is not coming, I cannot pay the"
                                        " invoice"),
    (OUTSIDE_CODE, "Zwei-Faktor-Code von Amazon kommt nicht an", ""),
    (OUTSIDE_CODE, "code de vérification", "Je ne reçois pas le code de vérification d'Amazon"),
    (OUTSIDE_CODE, "no recibo el código de verificación de Amazon", ""),
    (OUTSIDE_CODE, "verificatiecode van bol.com komt niet binnen", ""),
    # a PC that does not switch on, a casing coming apart
    (HARDWARE, "laptop not turning on", ""),
    (HARDWARE, "laptop", "My laptop has started freezing. The rubber finish on the lid is peeling off."),
    # a desk phone's own password or PIN
    (DESK_PHONE, "logged out of office phone", "I am logged out of my office phone and I don't remember my password."
                                               " How do I reset it?"),
    (DESK_PHONE, "Tischtelefon", "Ich habe die PIN für mein Tischtelefon vergessen"),
    # French "suspect" after the mail it qualifies; a licence asked for with the verb last
    ("a security report", "courriel suspect", ""),
    ("a security report", "pièce jointe", "J'ai reçu un mail suspect avec une pièce jointe, je ne l'ai pas ouverte"),
    ("a purchase, licence or billing question", "Lizenz für Visio benötigt", ""),
    ("a purchase, licence or billing question", "licentie voor Visio nodig", ""),
    # a licence and its installation asked for together: the licence first
    ("a purchase, licence or billing question", "Visio", "I am in need of a Visio license and install, my old"
                                                         " license stayed with my previous team"),
    # not one device of a kind works: every one of them
    (OUTAGE, "ninguna impresora funciona en la oficina", ""),
    (OUTAGE, "imprimantes", "Depuis ce matin aucune imprimante ne fonctionne au deuxième étage"),
    (OUTAGE, "keiner der Drucker druckt", ""),
    (OUTAGE, "geen enkele printer werkt", ""),
    (OUTAGE, "printers", "none of the printers work since the power cut"),
]


@pytest.mark.parametrize(("reason", "subject", "body"), MUST_NOT, ids=[c[1] + "-" + c[2][:12] for c in MUST_NOT])
def test_must_not_automate(matcher: Matcher, reason: str, subject: str, body: str) -> None:
    expect_triaged(matcher, subject, body, reason, exact=True)


PLAYBOOKS = [
    # (category, subject, body)
    # an Office application that does not work or open, in five languages
    ("app_crash", "Microsoft Word not working correctly", ""),
    ("app_crash", "Excel not working", ""),
    ("app_crash", "unable to open excel", ""),
    ("app_crash", "Word funktioniert nicht", ""),
    ("app_crash", "Excel", "Depuis ce matin Excel ne fonctionne pas sur mon poste"),
    ("app_crash", "Word no funciona", ""),
    ("app_crash", "Word werkt niet", ""),
    ("onboarding", "new joiner setup", ""),
    # a title line (a machine's name) apart from the sentence after it: no monitoring alert, no server outage
    ("app_crash", "Excel error", "DESKTOP-7Q2M4K1\nWarning about links appears every time I open the budget"
                                 " workbook and then Excel closes."),
    ("email", "Outlook keeps crashing", "LAPTOP-22\nFailed to open my mailbox, Outlook crashes right after the"
                                        " splash screen."),
    ("printer", "Printer offline", "Print server room\nDown the hall the printer shows offline since this morning"
                                   " and my PC cannot print."),
    # French "aucun ... ne" says something is wrong, as "ne ... pas" does
    ("printer", "imprimante", "L'imprimante est en ligne mais aucun document ne s'imprime depuis mon poste"),
    ("printer", "je ne vois aucune imprimante", "Sur mon poste aucune imprimante n'apparaît"),
    # no printer the writer's own PC sees is that PC's ("ninguna" here is no "ninguno", nobody)
    ("printer", "no me aparece ninguna impresora", "En mi ordenador no veo ninguna impresora para imprimir"),
    # an application that signs in with the directory account: the directory's password
    ("password_reset", "reset my password for the ERP, I log in with my windows account", ""),
]


@pytest.mark.parametrize(("category", "subject", "body"), PLAYBOOKS, ids=[c[1] + "-" + c[2][:12] for c in PLAYBOOKS])
def test_playbook(matcher: Matcher, category: str, subject: str, body: str) -> None:
    expect_playbook(matcher, category, subject, body)


LEFT_ALONE = [
    # the directory's own password, whatever it is called
    ("password_reset", "forgot my windows password", ""),
    ("password_reset", "reset my domain password", ""),
    ("password_reset", "reset my Office 365 password", ""),
    ("password_reset", "password reset", "please reset my password"),
    ("password_reset", "reset password for user jdoe", ""),
    ("password_reset", "Passwort zurücksetzen", ""),
    ("email", "outlook keeps asking for password", ""),
    # an application named as what something is needed for, or what a new hire will use
    ("vpn", "FortiClient", "FortiClient stuck at 98% and then disconnects. Need the VPN for the ordering system."),
    ("onboarding", "Set up accounts for new hire", "Please set up accounts for our new hire. She'll need outlook and"
                                                   " the timesheet software."),
    # the company's own codes
    ("mfa_reset", "not getting MFA code", "I am not getting the text code to sign in to Office 365"),
    ("mfa_reset", "2FA code not arriving", "I am not receiving the sms code for my work login"),
    ("mfa_reset", "new phone", "new phone, authenticator app empty"),
    # German "über" is no Uber, "Otto" a colleague, not the shop
    ("mfa_reset", "Bestätigungscode über SMS kommt nicht", "für die Anmeldung bei Office 365"),
    ("mfa_reset", "Otto bekommt keinen Bestätigungscode", "Otto kann sich nicht bei Microsoft 365 anmelden"),
    # a work phone that receives the company's codes
    ("mfa_reset", "phone", "I'm not getting the code on my work phone for the Office 365 sign in"),
    # a password that is not an Office application's
    ("password_reset", "my password is not working", ""),
    ("email", "outlook not working", ""),
    # service-desk lines: where an MSP wants them
    ("account_locked", "account locked in ad", ""),
    ("email", "outlook not syncing", ""),
    ("vpn", "vpn issue", ""),
    ("printer", "drucker druckt nicht", ""),
    # a body with no subject: its title line is the subject, the sentences after it the body
    ("email", "", "Outlook not syncing\nHi, since this morning no new mail arrives in my inbox."),
]


@pytest.mark.parametrize(("category", "subject", "body"), LEFT_ALONE,
                         ids=[c[1] + "-" + c[2][:12] for c in LEFT_ALONE])
def test_left_alone(matcher: Matcher, category: str, subject: str, body: str) -> None:
    expect_playbook(matcher, category, subject, body)


def test_suspect_as_a_verb_is_no_security_report(matcher: Matcher) -> None:
    expect_not_triaged(matcher, "I suspect the mail client", "Outlook crashes since the update, I suspect an add-in")


def test_an_expired_licence_is_left_to_the_install_playbook(matcher: Matcher) -> None:
    expect_playbook(matcher, "software_install", "Lizenz abgelaufen, bitte Office neu aktivieren", "")


def test_an_installation_with_a_licence_in_hand_is_left_to_the_install_playbook(matcher: Matcher) -> None:
    expect_playbook(matcher, "software_install", "need to install Visio, I already have a license", "")


@pytest.mark.parametrize(("reason", "subject", "body"), [
    (BUSINESS_APP, "unable to login to erp", ""),
    (BUSINESS_APP, "unable to access hr portal", ""),
    ("a machine-generated monitoring alert", "job Job_2231 failed in job_scheduler at 03:14", ""),
])
def test_service_desk_lines_triaged(matcher: Matcher, reason: str, subject: str, body: str) -> None:
    expect_triaged(matcher, subject, body, reason, exact=True)


@pytest.mark.parametrize("subject", ["ticket update", "status of my ticket"])
def test_service_desk_lines_without_a_playbook(matcher: Matcher, subject: str) -> None:
    expect_nothing(matcher, subject, "")


def test_a_website_code_is_no_mfa_reset(matcher: Matcher) -> None:
    decision = matcher.match("verification code", "The website of my insurance does not send the verification code",
                             "windows")
    assert decision.category != "mfa_reset", decision.explanation


def test_body_title_is_a_segment_of_its_own(matcher: Matcher) -> None:
    tokens, subject_len, _ = matcher.tokens("Excel error", "DESKTOP-7Q2M4K1\nWarning about links")
    assert tokens[:subject_len] == ["excel", "error"]
    assert tokens[subject_len:subject_len + 3] == [BREAK, stem("hostname"), BREAK]
    # no subject: the title is the subject
    tokens, subject_len, _ = matcher.tokens("", "Outlook not syncing\nHi, since this morning")
    assert subject_len == 3 and tokens[subject_len] == BREAK and tokens.count(BREAK) == 1
    # a first line that runs on ("Hi team,", "I get this error:") is no title
    tokens, _, _ = matcher.tokens("Excel", "I get this error:\nfile is corrupt")
    assert tokens.count(BREAK) == 1
    # nor is a sentence broken in two, its second half in lower case
    tokens, _, _ = matcher.tokens("Outlook", "Since yesterday my Outlook does not\nsync any emails")
    assert tokens.count(BREAK) == 1


def test_near_pairs_stay_in_one_segment() -> None:
    triage = Triage((Rule("an outage", ("server",), near=("down",), window=3),))
    assert triage.check([*stems("printer"), BREAK, *stems("print server down the hall")]) is not None
    assert triage.check([*stems("printer"), BREAK, *stems("print server"), BREAK, *stems("down the hall")]) is None
