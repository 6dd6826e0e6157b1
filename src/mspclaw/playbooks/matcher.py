"""Pick the playbook for a ticket: keyword and phrase scores over subject and body, by OS.

Thin for now (the issue "Playbook library" brings stemming, typo tolerance and a measured
corpus). Negative keywords rule a playbook out, so a phishing report or a hardware fault is
not sent to an automated fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mspclaw.playbooks.schema import Playbook

THRESHOLD = 2.0
_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class Match:
    playbook: Playbook | None
    score: float
    explanation: str


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _has_word(words: set[str], keyword: str) -> bool:
    key = keyword.lower()
    return key in words or any(w.startswith(key) and len(w) - len(key) <= 3 for w in words)


def score(book: Playbook, text: str) -> tuple[float, list[str]]:
    words = set(_words(text))
    flat = " ".join(_words(text))
    why: list[str] = []
    for neg in book.triggers.negative:
        if (" " in neg and " ".join(_words(neg)) in flat) or (" " not in neg and _has_word(words, neg)):
            return 0.0, [f"ruled out by '{neg}'"]
    total = 0.0
    for kw in book.triggers.keywords:
        if _has_word(words, kw):
            weight = book.triggers.weights.get(kw, 1.0)
            total += weight
            why.append(f"'{kw}' +{weight:g}")
    for phrase in book.triggers.phrases:
        if " ".join(_words(phrase)) in flat:
            weight = 2 * book.triggers.weights.get(phrase, 1.0)
            total += weight
            why.append(f"\"{phrase}\" +{weight:g}")
    return total, why


def match(books: list[Playbook], subject: str, body: str, os: str | None) -> Match:
    text = f"{subject}\n{body}"
    best: tuple[float, Playbook, list[str]] | None = None
    for book in books:
        if os is not None and os not in book.os:
            continue
        value, why = score(book, text)
        if best is None or value > best[0]:
            best = (value, book, why)
    if best is None or best[0] < THRESHOLD:
        top = f" (best: {best[1].id} at {best[0]:g})" if best else ""
        return Match(None, best[0] if best else 0.0, f"no playbook scored {THRESHOLD:g} or more{top}")
    value, book, why = best
    return Match(book, value, f"{book.id} scored {value:g}: " + ", ".join(why))
