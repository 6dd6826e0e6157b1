"""Ticket shapes that are no fault of the user's own PC, found in real forum questions; and their near misses.

Each pattern is a structure, not a sentence: a feature request or a "why not add"; two questions in one
ticket; a relation's device ("my mother's laptop", "le portable de ma mère"); a developer's or an
administrator's set-up (about:config, group policy, DNS records); a network between machines (static IP,
"cannot see each other"); a battery that charges slowly, a CPU clock, a printer's toner, streaks or jam; a
vendor's own outage; a complaint about an update's new look; a personal account's recovery key; a how-to
about a setting that says "not" only to describe the wanted setting. And the browser, not the connection,
when the user says other browsers work.
Every example here is invented for this test (no line of ``tests/data``), against the shipped library.
The held-out figures per real corpus are printed by ``bench/triage_sources.py``.
"""

from __future__ import annotations

import pytest

from mspclaw.playbooks.loader import load_dir
from mspclaw.playbooks.matcher import Matcher


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return Matcher(load_dir())


NOT_FOR_A_PLAYBOOK = [
    ("feature request", "Feature request: dark theme for the print dialog", "Outlook should offer it."),
    ("feature request", "suggestion", "It would be great if Chrome could group my tabs by colour again."),
    ("why not add", "VPN", "Why not add a VPN switch to the toolbar like the other browsers do?"),
    ("Vorschlag", "Verbesserungsvorschlag Outlook", "Es wäre toll, wenn Outlook die Ordner sortieren könnte."),
    ("pourquoi ne pas", "navigateur", "Pourquoi ne pas intégrer un traducteur dans le navigateur ?"),
    ("sugerencia", "Sugerencia", "Sería genial que el correo tuviera modo oscuro."),
    ("two questions", "printer and mail", "First the printer prints blank pages. Second question: Outlook "
                                          "does not show my calendar."),
    ("zwei Fragen", "Drucker", "Ich habe zwei Fragen: der Drucker druckt nicht und das WLAN bricht ab."),
    ("deux problèmes", "imprimante", "J'ai deux problèmes : l'imprimante et la messagerie ne marchent pas."),
    ("someone else's", "wifi", "my mother's laptop won't connect to the wifi"),
    ("someone else's", "slow", "My colleague's PC is very slow since Monday"),
    ("someone else's", "Drucker", "Der Laptop meiner Frau druckt nicht mehr"),
    ("someone else's", "lent", "L'ordinateur de mon père est très lent"),
    ("someone else's", "traag", "De laptop van mijn moeder is erg traag"),
    ("developer", "outlook add-in", "Our javascript add-in throws an error in Outlook on the web"),
    ("administrator", "Chrome", "The group policy that sets the Chrome homepage does not apply"),
    ("administrator", "about:config", "Which about:config key stops Firefox from updating? It does not work"),
    ("administrator", "mail not arriving", "Mail to our new domain bounces, I think the MX record is wrong"),
    ("home network", "wifi", "two laptops on the same wifi cannot see each other"),
    ("home network", "wifi", "set a static IP on the laptop, now the wifi has no internet"),
    ("network set-up", "remote desktop", "we need a firewall rule so I can reach my desk PC from home"),
    ("hardware", "battery", "laptop battery takes 6 hours to charge"),
    ("hardware", "Akku", "Der Akku entlädt sich in einer Stunde"),
    ("hardware", "slow", "The CPU clock speed stays low and the PC is slow"),
    ("vendor outage", "Teams", "Microsoft Teams is down, their status page shows an incident"),
    ("printer hardware", "printer", "the printer leaves grey streaks on every page"),
    ("printer hardware", "Drucker", "Der Drucker hat schon wieder Papierstau in Fach 2"),
    ("printer hardware", "imprimante", "La cartouche de l'imprimante est vide"),
    ("audio device", "mic", "my microphone is not working on calls"),
    ("update complaint", "Outlook", "Since the latest update Outlook has a new look and I hate the new menu"),
    ("personal account", "password", "I lost the recovery key for my personal account and forgot the password"),
]


@pytest.mark.parametrize(("kind", "subject", "body"), NOT_FOR_A_PLAYBOOK,
                         ids=[f"{k}-{s}" for k, s, _ in NOT_FOR_A_PLAYBOOK])
def test_these_shapes_get_no_playbook(matcher: Matcher, kind: str, subject: str, body: str) -> None:
    found = matcher.match(subject, body, "windows")
    assert found.playbook is None, (kind, found.explanation)
    assert found.triage_reason, (kind, found.explanation)


QUESTIONS = [
    ("How can I set up Outlook to send mail but not download new mail?", ""),
    ("How do I make Edge not open the news feed on start?", ""),
    ("Where is the VPN icon?", ""),
    ("Wie stelle ich ein, dass Outlook keine Vorschau zeigt?", ""),
]


@pytest.mark.parametrize(("subject", "body"), QUESTIONS, ids=[s[:30] for s, _ in QUESTIONS])
def test_a_how_to_about_a_setting_is_a_question(matcher: Matcher, subject: str, body: str) -> None:
    found = matcher.match(subject, body, "windows")
    assert found.playbook is None and "how-to question" in found.explanation, found.explanation


STILL_MATCHED = [
    # a fault in the subject beside a how-to: a fix is wanted
    ("email", "How do I fix Outlook crashing on start?", "It crashes every morning."),
    # a slow PC whose fan is loud is a slow PC, not a broken fan
    ("slow_computer", "PC slow", "my PC is very slow and the fan is loud"),
    # "suggestions" tried, "second" in passing and a word that contains a relation are no pattern
    ("printer", "printer offline", "I tried the suggestions from the intranet but the printer is still offline"),
    ("wifi", "wifi drops", "the wifi drops every second minute on my laptop"),
    ("password_reset", "password", "I forgot my password, please reset it"),
    # my own laptop, not a relation's
    ("wifi", "wifi", "my laptop won't connect to the wifi"),
    # the browser, not the connection, when other browsers work; the connection when none does
    ("browser", "Chrome", "Chrome keeps saying no internet connection, other browsers load every page fine"),
    ("no_internet", "no internet", "no internet on my laptop, no website loads in any browser"),
    # an update that broke something is a fault, whatever it did to the look
    ("email", "Outlook", "After the latest update Outlook has a new look and crashes on start"),
    # an MFA re-registration is no registry question
    ("mfa_reset", "MFA", "please reset my MFA so I can register my new phone"),
]


@pytest.mark.parametrize(("category", "subject", "body"), STILL_MATCHED, ids=[f"{c}-{s}" for c, s, _ in STILL_MATCHED])
def test_near_misses_still_find_their_playbook(matcher: Matcher, category: str, subject: str, body: str) -> None:
    found = matcher.match(subject, body, "windows")
    assert found.category == category, found.explanation
