"""Tickets as real end users send them: with a mail's furniture left in, without a subject, with a misspelt word.

The changes, not sentences (``/work/measure/noise.py`` made noisy copies of every labelled ticket and found where
decisions moved): a legal disclaimer or a print-saving footer ("IMPORTANT: The information in this message ...",
"Please consider the environment before printing", "Der Inhalt dieser E-Mail ist vertraulich") ends the user's
text, and above it its paragraph is dropped, so its "unauthorised" and "printing" neither veto nor score; a greeting
line ("Hi all", "hello team,", "Hallo IT-Team,") is no count of people and no Microsoft Teams; a forwarded mail's
"Subject:" line that repeats the subject is read once; a ticket without a subject reads its short first sentence as
one; a ticket that says no fault or request as written is read with a misspelt fault or request word as that word
("impossble", "Bifte"); a ticket no must-not rule stops as written is checked again with a likely slip of a rule's
word read as that word ("malwware"), which can only add a veto. Every ticket here is written for this file; none is
copied from any corpus.
"""

from __future__ import annotations

import time

import pytest
from tests.playbooks.triage_expect import expect_playbook, expect_triaged

from mspclaw.playbooks.cleaning import clean_body, drop_greeting, first_sentence
from mspclaw.playbooks.loader import load_dir
from mspclaw.playbooks.matcher import Matcher, _slip


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return Matcher(load_dir())


EN_DISCLAIMER = ("IMPORTANT: The information in this message is intended solely for the addressee.\n"
                 "Access to this message by anyone else is unauthorised. If you are not the intended recipient,\n"
                 "any disclosure, copying or distribution is prohibited and may be unlawful.")
DE_DISCLAIMER = ("Der Inhalt dieser E-Mail ist vertraulich und ausschließlich für den bezeichneten Adressaten "
                 "bestimmt.\nBitte denken Sie an die Umwelt, bevor Sie diese E-Mail ausdrucken.")
ENVIRONMENT = "Please consider the environment before printing this email."
FORWARDED = ("-----Original Message-----\nFrom: Dana Whitfield <dana.whitfield@example.com>\n"
             "Sent: Tuesday, May 6, 2025 8:05 AM\nTo: Service Desk <servicedesk@example.net>\nSubject: {subject}\n\n")

PLAYBOOK = [
    # (category, subject, body)
    # a disclaimer under the user's words: its "unauthorised" is no security report, its "printing" no print job
    ("printer", "Print jobs stuck",
     f"Everything I send to the printer sits in the queue as 'printing'.\n\n{EN_DISCLAIMER}"),
    ("account_locked", "Locked out",
     f"My account is locked after too many attempts, please unlock it.\n\n{ENVIRONMENT}"),
    # a disclaimer some mail systems put above the text: its paragraph is not the ticket
    ("printer", "printer", "IMPORTANT: The information in this message is intended solely for the addressee.\n"
                           "Access to it by anyone else is unauthorised.\n\nprinter offline again"),
    # greetings: "all" counts no people, "team" is no Teams
    ("disk_full", "Disk nearly full", "Hi all\nmy laptop is running out of space, please help me free up space."),
    ("slow_computer", "laptop lagging", "hello team,\n\nmy laptop is lagging badly whenever excel is open"),
    # no subject: the first sentence says what is wrong, as a subject would
    ("printer", "", "Printer says paused. I do not know how to get it going again."),
    ("disk_full", "", "Disc is full on my PC. Could someone clean it up for me?"),
    # no fault or request as written, but a misspelt one
    ("vpn", "VPN", "impossble de me connecter au VPN depuis la maison ce matin"),
]

GUARDS = [
    # (category, subject, body): decided so before the change, and still
    ("password_reset", "Passwort vergessen",
     f"Ich habe mein Passwort vergessen und komme nicht mehr rein. Bitte zurücksetzen.\n\n{DE_DISCLAIMER}"),
    ("email", "FW: Outlook keeps asking for my password",
     FORWARDED.format(subject="Outlook keeps asking for my password") + "since this morning, every few minutes"),
    ("printer", "", "The printer next to reception shows offline on my laptop and nothing comes out at all."),
    # short common words are no slip of a rule's word ("thing" is no "hinge")
    ("printer", "printer", "the printer thing on my desk shows offline again, nothing prints"),
]

TRIAGED = [
    # (subject, body, reason): a disclaimer or a greeting dropped never hides what makes a ticket a technician's
    ("Suspicious email", f"I got a mail asking me to confirm my password on a strange site, I did not click.\n\n"
                         f"{EN_DISCLAIMER}", "a security report"),
    ("Printers", "Hi all,\n\nall printers on the second floor are down, nobody can print.", "an outage"),
    ("", "Internet is down for the whole office. Nobody can work since 9am.", "an outage"),
    # a must-not rule's word misspelt says what the word says (these two were automated before)
    ("laptop", "My antivirus says there is malwware on my laptop and it is very slow now", "a security report"),
    ("Firefox", "Firefox says the installer is flaggedd as malwware, cannot install it", "a security report"),
]


@pytest.mark.parametrize(("label", "subject", "body"), PLAYBOOK)
def test_noisy_ticket_gets_its_playbook(matcher: Matcher, label: str, subject: str, body: str) -> None:
    expect_playbook(matcher, label, subject, body)


@pytest.mark.parametrize(("label", "subject", "body"), GUARDS)
def test_clean_enough_ticket_keeps_its_playbook(matcher: Matcher, label: str, subject: str, body: str) -> None:
    expect_playbook(matcher, label, subject, body)


@pytest.mark.parametrize(("subject", "body", "reason"), TRIAGED)
def test_noisy_ticket_still_goes_to_a_technician(matcher: Matcher, subject: str, body: str, reason: str) -> None:
    expect_triaged(matcher, subject, body, reason)


def test_a_greeting_word_starting_the_users_sentence_stays() -> None:
    # the greeting opening a body goes; a line that opens with a greeting word but is the user's sentence stays
    assert drop_greeting(clean_body("Hi all,\n\nall printers are down")).strip() == "all printers are down"
    assert drop_greeting("Hallo zusammen, der Drucker druckt nicht") == "der Drucker druckt nicht"
    assert drop_greeting("Hi I have a problem, my printer jams") == "Hi I have a problem, my printer jams"
    assert drop_greeting("Hidden files, where are they") == "Hidden files, where are they"


def test_a_label_alone_is_no_disclaimer() -> None:
    # "Important:" opens a disclaimer only with a disclaimer's words after it
    kept = "Important: my printer is offline since this morning"
    assert clean_body(kept) == kept
    assert clean_body(f"printer offline since this morning\n\n{ENVIRONMENT}") == "printer offline since this morning\n"


def test_first_sentence_is_short_or_nothing() -> None:
    assert first_sentence("Printer says paused. Nothing prints.") == ("Printer says paused.", " Nothing prints.")
    long = "When I open the shared folder from home over the VPN it takes a very long time. Why?"
    assert first_sentence(long) == ("", long)
    assert first_sentence("") == ("", "")


def test_a_misspelt_word_is_no_fault_when_one_is_said(matcher: Matcher) -> None:
    # the guess is only made for a ticket that says no fault and no request as written
    decision = matcher.match("Outlook", "I looked through the Outlook options for the reading pane font size "
                                        "and the ribbon layout, where are they kept these days")
    assert decision.category is None, decision.explanation


def test_greeting_and_first_sentence_stay_linear_on_hostile_input() -> None:
    hostile = " " * 20_000 + "hi" + " all" * 5_000 + "\n" + "word " * 20_000
    started = time.perf_counter()
    for _ in range(10):
        drop_greeting(hostile)
        first_sentence(hostile)
        first_sentence("." * 20_000)
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize(("word", "term", "slip"), [
    ("outtage", "outage", True),  # a letter doubled
    ("malwware", "malware", True),
    ("javascipt", "javascript", True),  # a letter left out
    ("phisihng", "phishing", True),  # two letters swapped
    ("estaba", "estafa", False),  # b and f are no neighbouring keys, and six letters are too few
    ("suggest", "suggesti", False),  # the last letter: another inflection
    ("trafico", "grafico", False),  # the first letter: another word
])
def test_slip_of_a_rules_word(word: str, term: str, slip: bool) -> None:
    assert _slip(word, term) is slip
