"""Round 12 of triage: forum questions about an application's features that a playbook would have taken for a fault,
and the ordinary tickets each change must leave alone.

The changes, not sentences: mail, contacts, calendars, bookmarks or passwords imported or exported between programs
or computers are a migration a person does; an add-on or extension being installed is the browser's own store, not an
application the install playbook deploys; the last session's tabs brought back and a page's paper size are settings;
a page's translation is a feature in every language (not only English "translate"); another operating system than
Windows or Ubuntu installed, Windows installed with the verb after it (German, Dutch) or first (French, Spanish), a
drive formatted and a file system named are an installation job; two-step sign-in being turned on is set up, not a
lost factor to reset; the writer saying they have a question ("my question is", "tengo una duda"), looking for
something ("I can't find the cookie settings", "kan ik niet meer vinden") or asking how in more German, French,
Spanish and Dutch words asks for an answer; and Spanish "los" (the) is no longer read as English "losing", a fault
word in every Spanish ticket. Every ticket here is written for this file; none is copied from any corpus.
"""

from __future__ import annotations

import pytest
from tests.playbooks.triage_expect import expect_nothing, expect_playbook, expect_triaged

from mspclaw.playbooks.loader import load_dir
from mspclaw.playbooks.matcher import Matcher

FEATURES = "a question about using an application's features"
INSTALL_JOB = "an operating-system installation or disk migration job"
TWO_STEP = "two-step sign-in being turned on"


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return Matcher(load_dir())


TRIAGED = [
    # (reason, subject, body)
    # data moved between programs or computers, in five languages
    (FEATURES, "email import failure", "Moving six mail accounts to a new provider, the mbox import into Thunderbird "
               "stops halfway with an error."),
    (FEATURES, "Exporting my emails to the new laptop", "The export of my emails from Thunderbird does not work, "
               "the new laptop shows an empty inbox."),
    (FEATURES, "Kontakte exportieren", "Ich möchte meine Kontakte aus Thunderbird exportieren, aber es klappt nicht."),
    (FEATURES, "Exporter mes courriels", "Je n'arrive pas à exporter mes courriels de Thunderbird vers mon nouvel "
               "ordinateur, erreur à chaque fois."),
    (FEATURES, "Importar correos", "No puedo importar mis correos antiguos a Thunderbird, sale un error."),
    (FEATURES, "Contactpersonen importeren", "Het importeren van mijn contactpersonen in Thunderbird mislukt steeds."),
    # an add-on or extension being installed
    (FEATURES, "Unable to install the LastPass extension", "When I try to install the LastPass extension in Chrome "
               "the download fails every time."),
    (FEATURES, "Error al instalar extensiones", "Al instalar extensiones en Firefox sale un error de descarga."),
    (FEATURES, "Erweiterung geht nicht", "Ich kann die Erweiterung nicht installieren, Firefox zeigt einen Fehler."),
    (FEATURES, "Extensie lukt niet", "Ik kan de extensie niet installeren in Firefox, er komt een foutmelding."),
    # the last session's tabs, a page's paper size, a page's translation
    (FEATURES, "Chrome no longer brings back my tabs", "When I start Chrome it does not restore the previous session "
               "any more, all my tabs are gone."),
    (FEATURES, "Firefox öffnet die Tabs nicht mehr", "Beim Start stellt Firefox die vorherige Sitzung nicht wieder "
               "her, alle Tabs fehlen."),
    (FEATURES, "Pages print in the wrong size", "Since the update every page from the browser prints in letter size, "
               "not in A4 format."),
    (FEATURES, "Vertaling werkt niet", "De vertaling van websites in Firefox werkt niet meer."),
    (FEATURES, "La traduction ne marche plus", "La traduction des pages dans Firefox ne fonctionne plus."),
    (FEATURES, "Traducción no funciona", "La traducción de páginas en Firefox no funciona desde ayer."),
    # an operating system installed, a drive formatted, a file system named
    (INSTALL_JOB, "Windows 11 installieren", "Geht das auf meinem alten Laptop oder fehlt mir etwas?"),
    (INSTALL_JOB, "Installer Windows sur mon portable", "Je voudrais installer Windows sur le portable, ça bloque."),
    (INSTALL_JOB, "Quiero instalar Windows en el portátil", "Me da un error al instalar Windows, ¿qué hago?"),
    (INSTALL_JOB, "Installing Fedora next to Windows", "The installer fails when I try to install Fedora on the "
                  "second disk."),
    (INSTALL_JOB, "Cannot format the USB stick", "Windows shows an error when I format the USB stick for the "
                  "presentation."),
    (INSTALL_JOB, "Drive shows as RAW", "My external disk was NTFS and now Windows says it needs to be formatted, "
                  "the files are not there."),
    # two-step sign-in being turned on
    (TWO_STEP, "Can't enable two-step verification", "When I try to enable two-step verification on my account the "
               "code is rejected."),
    (TWO_STEP, "Zwei-Faktor geht nicht", "Ich möchte die Zwei-Faktor-Anmeldung aktivieren, aber der Code wird "
               "abgelehnt."),
]

QUESTIONS = [
    # (subject, body): asked, not broken; the intent layer reads a how-to question, no rule fires, no playbook
    ("Sincronización de correos", "Tengo una duda: uso dos cuentas de correo en Outlook, los adjuntos de los correos "
     "se guardan en el disco o en la web?"),
    ("Outlook archive folder", "My question is whether the archive folder in Outlook is not kept on the server but "
     "on my laptop."),
    ("Mails in Outlook en webmail", "Mijn vraag: worden mijn mails niet dubbel bewaard als ik Outlook en de webmail "
     "gebruik?"),
    ("Cookies in Firefox", "I can't find the cookie settings in Firefox any more since the update, where are they?"),
    ("Cookies dans Firefox", "Je ne trouve plus les paramètres des cookies dans Firefox."),
    ("Cookies in Firefox", "De instellingen voor cookies kan ik niet meer vinden in Firefox."),
    ("Firefox homepage", "Hoe zet ik mijn homepage in Firefox terug naar Google?"),
    ("Firefox Startseite", "Wie bekomme ich meine alte Startseite in Firefox zurück? Die neue Seite gefällt mir "
     "nicht."),
    ("Firefox página de inicio", "¿Cómo se puede volver a poner Google como página de inicio en Firefox? No es la "
     "página que quiero."),
]

LEFT_ALONE = [
    # guards, not new cases: ordinary tickets each change must leave to their own playbooks
    ("software_install", "instal firefox", "can u instal firefox on my computer pls"),
    ("wifi", "sin wifi", "mi portátil no encuentra la red wifi de la oficina"),
    ("email", "Cannot send email", "Thunderbird shows an SMTP error every time I send an email."),
    ("printer", "Printer not printing", "I send the document to the printer and nothing comes out."),
    ("software_install", "Please install Zoom", "Please install Zoom on my laptop, I need it for a call."),
    ("app_crash", "Excel keeps crashing", "Excel crashes every time I import a CSV file."),
    ("mfa_reset", "New phone, authenticator", "I got a new phone and the authenticator codes no longer work, "
     "please reset my MFA."),
    ("disk_full", "C drive full", "My C drive is full, only 200 MB left and I can't save files."),
]


@pytest.mark.parametrize(("reason", "subject", "body"), TRIAGED)
def test_triaged(matcher: Matcher, reason: str, subject: str, body: str) -> None:
    expect_triaged(matcher, subject, body, reason)


@pytest.mark.parametrize(("subject", "body"), QUESTIONS)
def test_questions_get_no_playbook(matcher: Matcher, subject: str, body: str) -> None:
    expect_nothing(matcher, subject, body)
    explanation = matcher.match(subject, body, "windows").explanation
    assert explanation.startswith("a how-to question"), explanation


@pytest.mark.parametrize(("label", "subject", "body"), LEFT_ALONE)
def test_left_alone(matcher: Matcher, label: str, subject: str, body: str) -> None:
    expect_playbook(matcher, label, subject, body)


def test_spanish_article_is_no_fault(matcher: Matcher) -> None:
    """Spanish "los" (the) is read like English "losing" by the light stemmer: it is no fault word."""
    ask = matcher.intent_for("es").read(matcher.tokens("Pregunta", "Quiero saber dónde se guardan los adjuntos de "
                                                                    "los correos en mi portátil.")[0])
    assert ask.kind != "fault", ask
