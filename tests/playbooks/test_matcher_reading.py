"""The words of phrases, negatives, triage and intent terms are read exactly as a ticket's words are.

Before, a word written in any multi-word term became "known as itself" and stopped being read as the
other-language trigger it inflects: adding the phrase "neu installiert" made German ``installiert`` no
longer score as ``install``. These tests add such terms to the shipped library and check that nothing
else about how a ticket is read changes, and that the added term still matches.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from mspclaw.playbooks.intent import FAULTS, QUESTIONS, REQUESTS, Intent
from mspclaw.playbooks.loader import load_dir
from mspclaw.playbooks.matcher import Matcher
from mspclaw.playbooks.schema import Playbook
from mspclaw.playbooks.triage import RULES, Rule, Triage

TICKETS = [
    ("Teams", "Bitte Teams auf meinem Rechner installieren, es ist noch nicht installiert."),
    ("Software", "Ich brauche Acrobat, bitte installieren, danke."),
    ("Drucker", "Mein Drucker druckt nicht mehr, die Aufträge hängen."),
    ("kein wlan", "Mein Laptop findet das WLAN nicht mehr, andere Geräte gehen."),
    ("Kennwort", "Mein Kennwort ist abgelaufen und ich komme nicht mehr rein."),
    ("Netzlaufwerk", "Seit heute fehlt mein Netzlaufwerk S: im Explorer."),
]


@pytest.fixture(scope="module")
def library() -> list[Playbook]:
    return load_dir()


@pytest.fixture(scope="module")
def plain(library: list[Playbook]) -> Matcher:
    return Matcher(library)


def _with_phrase(books: Sequence[Playbook], book_id: str, phrase: str, negative: bool = False) -> list[Playbook]:
    out = []
    for book in books:
        if book.id == book_id:
            field = "negative" if negative else "phrases"
            triggers = book.triggers.model_copy(update={field: [*getattr(book.triggers, field), phrase]})
            book = book.model_copy(update={"triggers": triggers})
        out.append(book)
    return out


def _readings(matcher: Matcher) -> list[tuple[list[str], str | None]]:
    out = []
    for subject, body in TICKETS:
        tokens, _, _ = matcher.tokens(subject, body)
        out.append((tokens, matcher.match(subject, body, "windows").category))
    return out


def test_installiert_reads_as_the_install_trigger(plain: Matcher) -> None:
    tokens, _, lang = plain.tokens("Teams", "Bitte Teams installieren, es ist nicht installiert.")
    assert lang == "de"
    assert tokens[-1] == "install"


@pytest.mark.parametrize(("book_id", "phrase", "negative"), [
    ("onboarding", "neu installiert", False),
    ("slow_computer", "rechner neu installiert", False),
    ("printer", "drucker mehrere gerate", False),
    ("wifi", "andere gerate gehen nicht", True),
    ("password_reset", "kennworter gesperrt", False),
])
def test_a_term_added_to_a_playbook_changes_no_other_reading(library: list[Playbook], plain: Matcher,
                                                             book_id: str, phrase: str, negative: bool) -> None:
    changed = Matcher(_with_phrase(library, book_id, phrase, negative))
    if negative:  # a negative rules its playbook out where it occurs: compare the words read only
        assert [t for t, _ in _readings(changed)] == [t for t, _ in _readings(plain)]
    else:
        assert _readings(changed) == _readings(plain)


def test_a_term_added_to_the_triage_or_intent_lists_changes_no_other_reading(plain: Matcher) -> None:
    triage = Triage((*RULES, Rule("a test rule", ("windows neu installiert", "alle gerate betroffen"))))
    intent = Intent((*FAULTS, "ist nicht mehr installiert"), REQUESTS, QUESTIONS)
    assert _readings(Matcher(plain.books, triage=triage, intent=intent)) == _readings(plain)


def test_an_added_phrase_matches_the_ticket_words_it_is_written_with_and_their_inflections(
        library: list[Playbook]) -> None:
    books = _with_phrase(library, "software_install", "neu installiert")
    matcher = Matcher(books)
    for body in ("Excel wurde neu installiert, jetzt fehlt das Add-in",
                 "Die neu installierten Programme starten nicht"):
        result = matcher.match("Excel", body, "windows")
        assert '"neu installiert"' in result.explanation, result.explanation
    # the phrase's words are keyed per language as a ticket's are: in English "installiert" is itself
    assert '"neu installiert"' not in matcher.match("Excel", "I need a new install of Excel", "windows").explanation


def test_a_triage_term_matches_an_inflection_of_its_words(plain: Matcher) -> None:
    triage = Triage((Rule("a test rule", ("drucker kaputt",)),))
    matcher = Matcher(plain.books, triage=triage)
    assert matcher.match("Druckers", "Die Drucker kaputt, alle beide", "windows").triage_reason == "a test rule"
    assert matcher.match("Printer", "the printer is broken", "windows").triage_reason is None


def test_a_word_snowball_overstems_onto_a_longer_trigger_is_read_as_written(plain: Matcher) -> None:
    """German ``mehr`` (more) and ``mehrere`` (several) share a Snowball stem; a written ``mehr`` stays ``mehr``."""
    tokens, _, lang = plain.tokens("kein wlan", "das WLAN geht nicht mehr")
    assert lang == "de"
    assert "mehr" in tokens
    assert plain.match("kein wlan", "mein Laptop findet das WLAN nicht mehr, andere Geräte gehen",
                       "macos").category == "wifi"


def test_a_ticket_word_snowball_overstems_onto_a_longer_trigger_is_read_as_written(plain: Matcher) -> None:
    """Dutch ``meer`` (more) is no ``meerdere`` (several), whether or not a term writes it."""
    tokens, _, lang = plain.tokens("printer", "de printer op de gang werkt niet meer sinds gisteren")
    assert lang == "nl"
    assert "meer" in tokens
    tokens, _, _ = plain.tokens("printers", "meerdere printers op de gang werken niet sinds gisteren")
    assert "meer" not in tokens
