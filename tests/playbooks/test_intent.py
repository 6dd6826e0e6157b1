"""What a ticket asks for: a fault or a request gets a playbook's attention, a how-to question or a bare
topic does not (``mspclaw.playbooks.intent``), in every supported language."""

from __future__ import annotations

import pytest

from mspclaw.playbooks.intent import Intent
from mspclaw.playbooks.loader import load_dir
from mspclaw.playbooks.matcher import Matcher
from mspclaw.playbooks.schema import Playbook


@pytest.fixture(scope="module")
def library() -> list[Playbook]:
    return load_dir()


@pytest.fixture(scope="module")
def library_matcher(library: list[Playbook]) -> Matcher:
    return Matcher(library)


def _read(matcher: Matcher, subject: str, body: str = "") -> str:
    tokens, _, lang = matcher.tokens(subject, body)
    return matcher.intent_for(lang).read(tokens).kind


@pytest.mark.parametrize(("subject", "body", "kind"), [
    ("Outlook keeps crashing", "", "fault"),
    ("printer", "it says offline and nothing prints", "fault"),
    ("please reset my password", "", "request"),
    ("new starter on Monday", "set up an account for Jane", "request"),
    ("How do I set up a mail rule?", "I want to move newsletters into a folder, there is no problem here", "question"),
    ("Outlook conversation archiving", "Archiving conversations in Outlook 2013 with the built-in options", "nothing"),
    ("Drucker druckt nicht", "Hallo, seit heute morgen", "fault"),
    ("Wie kann ich eine Signatur anlegen?", "In Outlook", "question"),
    ("L'imprimante ne marche pas", "", "fault"),
    ("Comment puis je ajouter une signature ?", "dans Outlook", "question"),
    ("La impresora no imprime", "", "fault"),
    ("¿Cómo puedo cambiar la firma?", "en Outlook", "question"),
    ("Printer werkt niet", "", "fault"),
    ("Hoe kan ik een handtekening toevoegen?", "in Outlook", "question"),
    ("graag toegang tot de map Financiën", "", "request"),
    ("Outlook stopped sending mail", "", "fault"),
])
def test_what_a_ticket_asks_for(library_matcher: Matcher, subject: str, body: str, kind: str) -> None:
    assert _read(library_matcher, subject, body) == kind


def test_a_question_in_the_subject_is_not_undone_by_problem_words_in_the_body(library_matcher: Matcher) -> None:
    assert _read(library_matcher, "How can I print a batch of files with custom settings?",
                 "The problem is that each file opens a dialog") == "question"
    # the subject itself says something is wrong: a fault, whatever the phrasing
    assert _read(library_matcher, "How do I fix Outlook crashing on start?", "") == "fault"


def test_the_matcher_gives_no_playbook_to_a_question_and_says_why(library_matcher: Matcher) -> None:
    result = library_matcher.match("How can I print a batch of files with custom printer settings?", "", "windows")
    assert result.playbook is None
    assert "how-to question" in result.explanation
    assert result.triage_reason is None  # abstention, not a must-not verdict: a model may still answer it
    fault = library_matcher.match("Printer not printing", "jobs sit in the queue", "windows")
    assert fault.playbook is not None and fault.category == "printer"


def test_a_bare_topic_gets_no_playbook(library_matcher: Matcher) -> None:
    result = library_matcher.match("Conversation archiving with Outlook 2013",
                                   "Archiving whole conversations in Outlook 2013 with the built-in options", "windows")
    assert result.playbook is None
    assert "no fault and no request" in result.explanation


def test_a_terse_ticket_naming_a_product_is_read_as_a_problem_with_it(library_matcher: Matcher) -> None:
    assert _read(library_matcher, "outlook", "outlook") == "terse"
    assert library_matcher.match("outlook", "outlook", "windows").category == "email"


def test_custom_lists_replace_the_shipped_ones(library: list[Playbook]) -> None:
    strict = Matcher(library, intent=Intent(faults=("kaputt",), requests=(), questions=()))
    longer = strict.match("printer not printing", "since this morning, nothing comes out of it", "windows")
    assert longer.playbook is None
    assert strict.match("printer kaputt", "", "windows").category == "printer"


def test_a_long_ticket_that_only_names_the_product_gets_no_playbook(library_matcher: Matcher) -> None:
    """Context triggers (``firefox``, ``browser``) alone do not choose a playbook for a ticket that had room to
    name a symptom; a fault word right after one ("the VPN doesn't connect") is a symptom."""
    long_ = library_matcher.match(
        "Firefox start page", "When Firefox starts it opens in English, and I would like the browser to open in "
        "German for the whole family from now on please", "windows")
    assert long_.playbook is None and "only on words that name what it is about" in long_.explanation
    fault = library_matcher.match(
        "vpn and slow laptop", "The VPN doesn't connect since this morning, and my laptop is a bit slow too, but "
        "mostly the VPN.", "windows")
    assert fault.category == "vpn"
    short = library_matcher.match("Internet Explorer not working", "", "windows")
    assert short.category == "browser"


def test_context_must_name_a_trigger_of_the_playbook() -> None:
    from pydantic import ValidationError

    from mspclaw.playbooks.schema import Triggers

    with pytest.raises(ValidationError, match="context: 'chrome' is neither a keyword nor a phrase"):
        Triggers(keywords=["cache"], context=["chrome"])
