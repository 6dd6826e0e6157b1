"""Scope, hardware, security and alert tickets no playbook may take; the everyday faults it must still take.

What these check is the structure, not one sentence: a place after "whole"/"ganze"/"tout le" and a
group after "all"/"alle"/"several" make an outage; a site's lost line is the site's; a word that means
"does not load" in one language and "does not charge" in another is hardware only next to a battery;
a word of the vocabulary is never read as a typo of another trigger; sign-offs, contact lines and quoted
earlier mails are cut before scoring. No case here is in ``tests/data``; the real held-out figures are in
``test_matcher_real.py``.
"""

from __future__ import annotations

import time

import pytest

from mspclaw.playbooks.cleaning import HOST_MARK, MAX_BODY, clean_body, mark_hosts
from mspclaw.playbooks.loader import load_dir
from mspclaw.playbooks.matcher import Matcher


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return Matcher(load_dir())


MUST_NOT = [
    ("whole place", "Internet weg", "Im ganzen Büro geht seit 8 Uhr kein Internet."),
    ("whole place", "network", "the entire 2nd floor lost its network connection"),
    ("whole place", "réseau", "Plus de réseau dans tout le bâtiment depuis ce matin."),
    ("whole place", "red", "Sin red en toda la oficina de Valencia."),
    ("whole place", "netwerk", "Het hele kantoor heeft geen netwerk meer."),
    ("site line", "no internet at the clinic", "our clinic in Leeds has no internet since 10"),
    ("site line", "Filiale offline", "Die Filiale in Graz ist seit heute früh offline."),
    ("site line", "agence", "L'agence de Lyon est en panne, plus d'internet."),
    ("group", "printers", "all printers on the ground floor show offline"),
    ("group", "Drucker", "Alle Drucker im Lager drucken nicht mehr."),
    ("group", "postes", "Tous les postes de l'accueil sont bloqués."),
    ("group", "several machines", "several machines in accounting freeze every afternoon"),
    ("group", "mehrere", "Mehrere Benutzer können Outlook nicht öffnen."),
    ("group", "nobody", "outlook not working for anyone in the sales team"),
    ("group", "install for everybody", "please install the new Teams for all users"),
    ("group", "MFA", "please reset MFA for all accounts in the sales department"),
    ("group", "rollout", "roll out the new signature organisation-wide"),
    ("phones", "phone system", "the phone system is down, no calls coming in"),
    ("phones", "Telefonanlage", "Telefonanlage gestört, wir sind nicht erreichbar"),
    ("alert", "[FIRING:2] NodeFilesystemAlmostOutOfSpace", "Filesystem on /var has less than 5% space left"),
    ("alert", "[Warning] Low disk space on C: (LAPTOP-8HJ3K2)", "Free space 4.2 GB"),
    ("alert", "Windows Update failed on WS-PC01", "Patch KB5034441 failed to install with 0x80070643"),
    ("alert", "Monitor: Service 'Spooler' stopped on PC-22", "Windows service Spooler is not running"),
    ("alert", "Ping failed", "Host 10.0.0.5 not responding to ping"),
    ("alert", "Certificate expiry notice", "The certificate for vpn.example.com expires in 14 days"),
    ("outage", "Microsoft 365 service incident", "Exchange Online: users may be unable to access email"),
    ("hardware", "Akku", "Laptop lädt nicht mehr, Akku bleibt bei 0%"),
    ("hardware", "fan", "the laptop fan is making a loud grinding noise"),
    ("security", "infected", "pop up says my computer is infected and to call this number"),
    ("security", "Norton", "Die Startseite wurde vom Virenscanner als gefährlich eingestuft"),
    ("security", "leaver", "The leaver asked us to forward his mail to his private address"),
    ("restore", "old version", "can you get back the previous version of the budget spreadsheet"),
]


@pytest.mark.parametrize(("kind", "subject", "body"), MUST_NOT, ids=[f"{k}-{s}" for k, s, _ in MUST_NOT])
def test_scope_hardware_security_and_alerts_get_no_playbook(matcher: Matcher, kind: str, subject: str,
                                                            body: str) -> None:
    found = matcher.match(subject, body, "windows")
    assert found.playbook is None and found.triage_reason, (kind, found.explanation)
    assert "not for automation" in found.explanation


LET_THROUGH = [
    # a page that does not load is no battery that does not charge
    ("browser", "página", "Firefox no carga la página del banco, dice que la conexión no es segura"),
    ("browser", "Webseite", "Webseite lädt nicht im Edge: Gesicherte Verbindung fehlgeschlagen"),
    # one user's own things, not a group's
    ("printer", "printer", "only I can't print, all my colleagues can"),
    ("email", "Thunderbird", "Thunderbird stopped sending for all of my accounts, SMTP error"),
    # German "startet" is a word of the vocabulary, not a typo of the onboarding trigger "starter"
    ("email", "Outlook startet nicht", "Outlook lässt sich nicht öffnen"),
]


@pytest.mark.parametrize(("category", "subject", "body"), LET_THROUGH, ids=[s for _, s, _ in LET_THROUGH])
def test_one_users_fault_is_still_matched(matcher: Matcher, category: str, subject: str, body: str) -> None:
    found = matcher.match(subject, body, "windows")
    assert found.category == category, found.explanation


EVERYDAY = [
    # Outlook freezing, in every language, goes to the mail playbook
    ("email", "outlook froze", "outlook is frozen and wont close"),
    ("email", "Outlook", "Outlook friert immer wieder ein und reagiert nicht mehr"),
    ("email", "Outlook", "Outlook plante au démarrage"),
    ("email", "Outlook", "Outlook se congela cuando abro un correo"),
    ("email", "Outlook", "Outlook loopt steeds vast"),
    ("email", "outlook", "outlook keeps locking up when I search"),
    ("email", "Kennwortabfrage", "Outlook fragt dauernd nach dem Kennwort"),
    ("email", "keine Mails", "ich bekomme seit heute keine Mails mehr"),
    # lost or expired tokens
    ("mfa_reset", "Token", "Token verloren"),
    ("mfa_reset", "token", "my soft token has expired"),
    ("mfa_reset", "duo", "duo push not arriving on my phone"),
    # printer drivers and printing in other words
    ("printer", "driver", "need to install the driver for the new printer"),
    ("printer", "Druckertreiber", "Druckertreiber lässt sich nicht installieren"),
    ("printer", "printing issue", "printing issue on my laptop"),
    ("printer", "Drucker", "Drucker im EG druckt nur leere Seiten"),
    ("printer", "imprimante", "mon imprimante est hors ligne"),
    ("printer", "impresora", "la impresora aparece fuera de línea"),
    # Office licence and activation errors
    ("software_install", "Office Lizenz", "Office zeigt Lizenzfehler, Produktaktivierung fehlgeschlagen"),
    ("software_install", "Office license", "Office license expired message in Word"),
    # a browser, not the connection
    ("browser", "IE", "Internet Explorer keeps crashing on the intranet"),
    ("browser", "Zertifikat", "Chrome zeigt Zertifikatsfehler bei einer Seite"),
    # German everyday words
    ("slow_computer", "PC lahm", "Mein PC ist seit dem Update sehr lahm"),
    ("slow_computer", "Rechner", "Rechner hängt sich ständig auf"),
    ("slow_computer", "PC", "PC friert ständig ein"),
    ("password_reset", "Anmeldung", "Kann mich nicht am PC anmelden, Passwort falsch"),
    ("disk_full", "Speicher", "Laufwerk C ist voll"),
    ("printer", "printerdriver", "printerdriver installeren lukt niet"),
    ("browser", "internet options", "need to reset internet options in IE"),
    ("disk_full", "Speicherplatz", "Nicht genügend Speicherplatz auf Laufwerk C"),
    ("wifi", "WLAN", "WLAN Verbindung bricht dauernd ab"),
]


@pytest.mark.parametrize(("category", "subject", "body"), EVERYDAY, ids=[f"{c}-{b[:24]}" for c, _, b in EVERYDAY])
def test_everyday_faults_find_their_playbook(matcher: Matcher, category: str, subject: str, body: str) -> None:
    found = matcher.match(subject, body, "windows")
    assert found.category == category, found.explanation


def test_reinstalling_an_application_is_no_operating_system_installation(matcher: Matcher) -> None:
    found = matcher.match("Firefox", "Firefox stürzt ständig ab, eine Neuinstallation hat nicht geholfen.", "windows")
    assert found.triage_reason is None, found.explanation
    assert matcher.match("Windows", "Bitte Windows neu installieren, der Laptop ist kaputt", "windows").playbook is None


def test_machine_names_are_read_as_one_word() -> None:
    marked = mark_hosts("Low disk space on LAPTOP-8HJ3K2 and srv-fs01")
    assert marked == f"Low disk space on {HOST_MARK} and {HOST_MARK}"
    # product names, versions and a printer's address are no machine names
    for text in ("Windows 10 on my laptop", "Office365 activation", "printer at 192.168.1.50 offline",
                 "PC is slow", "ts is down"):
        assert mark_hosts(text) == text


def test_a_users_own_machine_name_with_a_fault_is_still_theirs(matcher: Matcher) -> None:
    found = matcher.match("wifi", "my laptop LAPTOP-8HJ3K2 wont connect to the wifi", "windows")
    assert found.category == "wifi", found.explanation


def test_sign_offs_contact_lines_and_quoted_mails_are_cut() -> None:
    body = ("Hallo zusammen,\n\nmein Outlook startet seit heute nicht mehr.\n\n"
            "Mit freundlichen Grüßen / Best regards\n\nHans Müller\nServer & Netzwerk Team\n"
            "Von: IT Support\nGesendet: Montag\nBetreff: AW: VPN\n\nDer Drucker ist ausgefallen")
    assert clean_body(body).strip() == "Hallo zusammen,\n\nmein Outlook startet seit heute nicht mehr."
    signed = "Hi team,\nmy laptop wont connect to wifi\n\nJohn Smith\nSenior Server Engineer\nM: +1 555 0100\n"
    assert clean_body(signed).strip() == "Hi team,\nmy laptop wont connect to wifi"
    footer = ("Hallo,\nder Drucker druckt nicht.\n\nHans Meier\nIT-Server Service GmbH\n"
              "Geschäftsführer: Max Muster\nAmtsgericht Berlin HRB 1234\nDiese E-Mail enthält vertrauliche Daten")
    assert clean_body(footer).strip() == "Hallo,\nder Drucker druckt nicht."
    # a line that starts with thanks but goes on about the problem is kept
    kept = "Hi, need help.\nThanks for looking. The wifi still drops every hour and nothing helps."
    assert clean_body(kept) == kept
    # a reply header with nothing above it is the ticket itself
    assert "printer is offline" in clean_body("From: Jo\nSent: Monday\nThe printer is offline again.")


def test_mail_headers_of_a_quoted_thread_do_not_veto(matcher: Matcher) -> None:
    body = ("Outlook keeps freezing.\n\nThanks,\nSam\n\nFrom: Service Desk\nSent: Monday\n"
            "Subject: site-wide outage\nAll users: the internet is down at the whole site.")
    assert matcher.match("RE: outlook", body, "windows").category == "email"


def test_cleaning_stays_linear_on_hostile_input() -> None:
    hostile = ("Thanks " * 3000 + "\n") * 20 + ("M: 1\n" * 5000) + ("From: x\n" * 5000)
    started = time.perf_counter()
    cleaned = clean_body(hostile * 10)
    marked = mark_hosts("pc" * (MAX_BODY // 2) + " " + "srv-" * (MAX_BODY // 4) + " " + "pc1 " * (MAX_BODY // 4))
    assert time.perf_counter() - started < 0.5
    assert len(cleaned) <= MAX_BODY and marked.count(HOST_MARK) == MAX_BODY // 4
