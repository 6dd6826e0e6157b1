"""Matching costs a bounded amount whatever a ticket holds: huge words, huge tickets, many languages.

A ticket is untrusted text (anyone who can e-mail a help desk writes one) and the matcher runs on
the server; a 50,000-letter word once took seconds and gigabytes. The bounds are structural
(characters read, words read, letters a typo is looked for in); the wall-clock limits below are
generous, an order of magnitude above what a match takes, so they only fail on a real regression.
"""

from __future__ import annotations

import random
import string
import time

import pytest

from mspclaw.playbooks.cleaning import MAX_BODY, MAX_SUBJECT, clean_body
from mspclaw.playbooks.loader import load_dir
from mspclaw.playbooks.matcher import MAX_TOKENS, Matcher
from mspclaw.playbooks.tokens import MAX_WORD, words

MEGABYTE = 1_000_000
WALL_LIMIT_S = 0.5


def _random_words(count: int, seed: int, lengths: tuple[int, ...] = (5, 9, 14, 20, 30)) -> str:
    rng = random.Random(seed)
    return " ".join("".join(rng.choice(string.ascii_lowercase) for _ in range(rng.choice(lengths)))
                    for _ in range(count))


TICKETS = {
    "one 1 MB word": ("x" * MEGABYTE, "y" * MEGABYTE),
    "one 1 MB word of typo-like letters": ("pasword" * (MEGABYTE // 7), "printr" * (MEGABYTE // 6)),
    "1 MB of distinct words": (_random_words(2_000, 1), _random_words(110_000, 2)),
    "1 MB of German words": ("Drucker " * 1000, "der die das und nicht " + _random_words(110_000, 3)),
    "1 MB of accented letters": ("é" * MEGABYTE, "Störung überhitzt " * 60_000),
    "1 MB of quoted lines": ("re: " * 1000, "> quoted\n" * (MEGABYTE // 9)),
    "1 MB of one long line of phrases": ("", "not printing " * (MEGABYTE // 13)),
}


@pytest.mark.parametrize("name", list(TICKETS))
def test_a_megabyte_ticket_matches_in_bounded_work_and_time(name: str) -> None:
    subject, body = TICKETS[name]
    matcher = Matcher(load_dir())
    tokens, subject_len, _ = matcher.tokens(subject, body)
    assert len(tokens) <= MAX_TOKENS + 1  # the subject/body break counts one
    assert subject_len <= MAX_TOKENS
    assert all(len(t) <= MAX_WORD for t in tokens)
    matcher.warm()  # what each language's first ticket builds once (a cost of the rules): this ticket's own work
    started = time.perf_counter()
    found = matcher.match(subject, body, "windows")
    assert time.perf_counter() - started < WALL_LIMIT_S, name
    assert found.explanation


def test_text_beyond_the_bounds_is_never_read() -> None:
    matcher = Matcher(load_dir())
    hidden = "x " * MAX_BODY + "printer not printing, print queue stuck"
    assert matcher.match("hello", hidden, "windows").playbook is None
    assert matcher.match("p" * MAX_SUBJECT + " printer", "", "windows").playbook is None
    assert len(clean_body("a" * (10 * MAX_BODY))) == MAX_BODY


def test_words_longer_than_anyone_types_are_dropped() -> None:
    assert words("printer " + "a" * (MAX_WORD + 1) + " queue") == ["printer", "queue"]

