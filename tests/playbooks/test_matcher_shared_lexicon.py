"""Matchers of the same trigger texts share one lexicon (the per-language readings of every trigger, triage and intent
term: most of a build), built once per process; every server start and registry reload builds a matcher for the
same library. A shared lexicon reads and matches exactly as one built fresh, and playbooks whose triggers differ
in any way (a phrase, a negative, a keyword, their order) never get another list's."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from mspclaw.playbooks.intent import Intent
from mspclaw.playbooks.loader import load_dir
from mspclaw.playbooks.matcher import Matcher
from mspclaw.playbooks.schema import Playbook
from mspclaw.playbooks.triage import Triage

DATA = Path(__file__).resolve().parent.parent / "data"
LANGS = (None, "en", "de", "fr", "es", "nl")


def _tickets() -> list[tuple[str, str, str | None]]:
    """Every 7th ticket of each labelled corpus (every language, must-not tickets, real ones), and a few whose
    words are the edited triggers below."""
    out: list[tuple[str, str, str | None]] = [
        ("Excel", "Excel wurde neu installiert, jetzt fehlt das Add-in", "windows"),
        ("Netzwerkdruckertreiber", "Der Netzwerkdruckertreiber ist kaputt", "windows"),
        ("account locked", "My account locked after password change, please reset password", "windows"),
        ("kein wlan", "Mein Laptop findet das WLAN nicht mehr, andere Geräte gehen.", "macos"),
    ]
    for path in sorted(DATA.glob("tickets*.jsonl")):
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        out += [(r.get("subject", ""), r.get("body", ""), r.get("os")) for r in rows[::7]]
    return out


TICKETS = _tickets()


def _fresh(books: Sequence[Playbook]) -> Matcher:
    """A matcher built whole: triage and intent lists passed in are never shared."""
    return Matcher(books, triage=Triage(), intent=Intent())


def _decisions(matcher: Matcher) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    for subject, body, os_name in TICKETS:
        found = matcher.match(subject, body, os_name)
        out.append((matcher.tokens(subject, body), found.playbook.id if found.playbook else None, found.score,
                    found.explanation, found.runner_up, found.runner_up_score, found.confidence, found.language,
                    found.triage_reason))
    return out


def _edited(books: Sequence[Playbook], book_id: str, field: str, change: str) -> list[Playbook]:
    out = []
    for book in books:
        if book.id == book_id:
            listed = list(getattr(book.triggers, field))
            values = [w for w in listed if w != change] if change in listed else [*listed, change]
            book = book.model_copy(update={"triggers": book.triggers.model_copy(update={field: values})})
        out.append(book)
    return out


@pytest.fixture(scope="module")
def library() -> list[Playbook]:
    return load_dir()


def test_matchers_of_the_same_library_share_its_readings(library: list[Playbook]) -> None:
    first = Matcher(library)
    again = Matcher(load_dir())  # another list of other objects, the same texts
    assert again.triage is first.triage and again.intent is first.intent
    assert all(again.triage_for(lang) is first.triage_for(lang) for lang in LANGS)
    assert all(again.intent_for(lang) is first.intent_for(lang) for lang in LANGS)
    # lists of the caller's own are read with them, never shared
    own = Matcher(library, triage=Triage())
    assert all(own.triage_for(lang) is not first.triage_for(lang) for lang in LANGS)


def test_a_shared_lexicon_reads_and_matches_as_one_built_whole(library: list[Playbook]) -> None:
    Matcher(library)
    assert _decisions(Matcher(list(library))) == _decisions(_fresh(library))


@pytest.mark.parametrize(("book_id", "field", "change"), [
    ("software_install", "phrases", "neu installiert"),  # a phrase added
    ("wifi", "negative", "andere gerate gehen"),  # a negative phrase added
    ("password_reset", "negative", "account locked"),  # one removed
    ("printer", "keywords", "druckertreiber"),  # a keyword added: a new anchor and compound head
])
def test_playbooks_whose_triggers_differ_get_their_own_reading(library: list[Playbook], book_id: str, field: str,
                                                               change: str) -> None:
    Matcher(library)
    books = _edited(library, book_id, field, change)
    assert _decisions(Matcher(books)) == _decisions(_fresh(books))


def test_playbooks_in_another_order_get_their_own_reading(library: list[Playbook]) -> None:
    """A negative phrase rules out books by their place in the list: the same texts in another order are another
    lexicon."""
    Matcher(library)
    books = list(reversed(library))
    assert _decisions(Matcher(books)) == _decisions(_fresh(books))
