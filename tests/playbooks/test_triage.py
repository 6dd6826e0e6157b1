"""The must-not-automate layer: what no playbook may take, in five languages, and what it must let through.

Phrasings here are not in ``tests/data``; each case is one a technician would recognise.
"""

from __future__ import annotations

import pytest

from mspclaw.playbooks.loader import load_dir
from mspclaw.playbooks.matcher import Matcher
from mspclaw.playbooks.tokens import stems
from mspclaw.playbooks.triage import RULES, Rule, Triage


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return Matcher(load_dir())


MUST_NOT = [
    ("outage", "no internet in the whole building", "wifi and cable both dead for all staff since 9"),
    ("outage", "printing down", "none of us can print today, the print server seems gone"),
    ("outage", "Internet Störung", "Bei allen Kollegen im Büro geht kein Internet, niemand kann arbeiten."),
    ("outage", "panne", "Tout le monde au bureau est sans connexion internet depuis ce matin."),
    ("outage", "caída", "Nadie puede conectarse a internet en la oficina."),
    ("outage", "storing", "Alle gebruikers op de tweede verdieping hebben geen netwerk."),
    ("outage", "VPN concentrator", "the vpn firewall at HQ is down, remote staff cannot connect"),
    ("alert", "[PRTG] Down: SRV-APP02 Ping", "Sensor Ping on SRV-APP02 is Down (100% packet loss)."),
    ("alert", "Disk space warning", "Monitoring: volume E: on host FS01 has 3% free space left. Threshold 5%."),
    ("alert", "cron job failed", "The nightly cron job on linux01 failed with exit code 2."),
    ("alert", "Speicherplatz Warnung", "Automatisch generiert: Server DC02 Laufwerk C: Schwellenwert überschritten."),
    ("hardware", "PC dead", "my pc wont boot, fans spin but no display at all"),
    ("hardware", "hot laptop", "laptop overheating when charging, too hot to touch"),
    ("hardware", "usb", "both USB ports on the left stopped working and are loose"),
    ("hardware", "Bildschirm", "Der Bildschirm meines Laptops ist gebrochen."),
    ("hardware", "portátil", "Mi portátil no enciende desde esta mañana."),
    ("hardware", "scherm", "Het scherm van mijn laptop is kapot gegaan."),
    ("security", "strange mail", "Mail pretending to be our CEO asking for an urgent bank transfer, phishing?"),
    ("security", "leaver", "A terminated employee called and wants access to his old OneDrive."),
    ("security", "sign-ins", "My account shows an unusual sign in from another country."),
    ("security", "mail frauduleux", "J'ai reçu un mail frauduleux avec une pièce jointe bizarre."),
    ("security", "strange emails", "someone is sending emails from my account to all my contacts"),
    ("security", "Spam", "Es werden Mails in meinem Namen verschickt, die ich nicht geschrieben habe."),
    ("personal", "yahoo", "forgot the password of my yahoo mail, can you reset it"),
    ("outage", "branch", "the IPsec tunnel to the warehouse is down since this morning"),
    ("business", "SAP slow", "SAP transactions take minutes for me, the rest of the PC is fast"),
    ("business", "Datev", "DATEV meldet einen Datenbankfehler beim Start"),
    ("restore", "need a file back", "I accidentally deleted the client list spreadsheet yesterday"),
    ("restore", "Version", "Kannst du die Datei von letzter Woche wiederherstellen?"),
    ("purchase", "laptop for new staff", "we need to buy two laptops for the new starters"),
    ("purchase", "Angebot", "Bitte ein Angebot für drei Microsoft 365 Lizenzen."),
]


@pytest.mark.parametrize(("kind", "subject", "body"), MUST_NOT, ids=[f"{k}-{s}" for k, s, _ in MUST_NOT])
def test_must_not_automate_tickets_get_no_playbook_and_say_why(matcher: Matcher, kind: str, subject: str,
                                                                body: str) -> None:
    found = matcher.match(subject, body, "windows")
    assert found.playbook is None, (kind, found.explanation)
    assert found.explanation.startswith("looks like ") and "not for automation" in found.explanation


LET_THROUGH = [
    ("no_internet", "no internet", "my pc has no internet, everyone else in the office is fine"),
    ("vpn", "vpn down since router restart", "my vpn tunnel is down since the router restart at home"),
    ("offboarding", "leaver", "Anna was terminated today, please disable her account and revoke access"),
    ("password_reset", "password", "forgot my password, please reset it"),
    ("printer", "printer", "printer not printing, documents stuck in the queue"),
    ("email", "outlook", "outlook ne s'ouvre plus, bloqué sur chargement du profil"),
    ("mfa_reset", "authenticator", "I deleted the authenticator app by accident and can't get codes"),
    ("software_install", "Office unlicensed", "Word says Unlicensed Product, activation failed"),
    ("app_crash", "Excel", "Excel keeps crashing since the update, I already reinstalled it"),
    ("printer", "printer", "please add the printer on the 2nd floor to my laptop, it is not in the list"),
    ("email", "Outlook", "Any help would be great: Outlook stopped receiving mail this morning"),
]


@pytest.mark.parametrize(("category", "subject", "body"), LET_THROUGH, ids=[c for c, _, _ in LET_THROUGH])
def test_one_users_problem_is_not_mistaken_for_a_must_not_ticket(matcher: Matcher, category: str, subject: str,
                                                                  body: str) -> None:
    assert matcher.match(subject, body, "windows").category == category


def test_naming_a_consumer_service_is_no_veto_without_its_password_or_sign_in_codes(matcher: Matcher) -> None:
    assert matcher.match("yahoo mail", "yahoo mail will not load in Chrome, other sites are fine",
                         "windows").triage_reason is None
    assert matcher.match("yahoo", "forgot my yahoo password", "windows").triage_reason is not None


def test_signatures_and_banners_do_not_veto(matcher: Matcher) -> None:
    body = ("printer not printing, jobs stuck\n\nKind regards\nJo\nIT Server Team | Phishing awareness champion\n"
            "CAUTION: This email originated from outside of the organization. Do not click links.")
    assert matcher.match("printer", body, "windows").category == "printer"


def test_a_near_rule_needs_its_words_close_and_in_order() -> None:
    triage = Triage([Rule("a test", ("router",), near=("down",), window=2, ordered=True)])
    assert triage.check(stems("the router is down")) is not None
    assert triage.check(stems("down since the router restart")) is None
    assert triage.check(stems("router was restarted by someone and now the vpn is down")) is None


def test_every_rule_has_a_reason_and_terms() -> None:
    assert all(rule.reason and rule.terms for rule in RULES)
    assert {rule.reason for rule in RULES} >= {"a security report", "a hardware failure",
                                               "a machine-generated monitoring alert",
                                               "an outage affecting many users or a whole site",
                                               "a purchase, licence or billing question"}
