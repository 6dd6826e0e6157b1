"""The matcher's fast paths give what the plain loops they replace give."""

from __future__ import annotations

import random
import unicodedata

from mspclaw.playbooks.language import fold
from mspclaw.playbooks.matcher import BITS, _Fields
from mspclaw.playbooks.triage import Terms


def _plain(terms: list[tuple[tuple[str, ...], str]], tokens: list[str]) -> list[tuple[int, str]]:
    return [(pos, value) for pos in range(len(tokens)) for seq, value in terms
            if tuple(tokens[pos:pos + len(seq)]) == seq]


def test_terms_find_what_a_loop_over_every_term_finds_in_the_given_order() -> None:
    terms = [(("not",), "not"), (("not", "work"), "not work"), (("purchase",), "purchase"),
             (("purchase", "order"), "purchase order"), (("not", "work", "at", "all"), "not work at all"),
             (("i", "delete"), "i delete"), (("not", "print"), "not print"), (("order",), "order")]
    index = Terms(terms)
    rng = random.Random(3)
    vocabulary = ["not", "work", "at", "all", "purchase", "order", "i", "delete", "print", "the", "|"]
    for _ in range(300):
        tokens = [rng.choice(vocabulary) for _ in range(rng.randint(0, 12))]
        assert index.scan(tokens) == _plain(terms, tokens)
        for pos in range(len(tokens)):
            assert list(index.at(tokens, pos)) == [v for p, v in _plain(terms, tokens) if p == pos]
    assert index.starts == {"not", "purchase", "i", "order"}


_FOLD = {ord(a): b for a, b in (("ß", "ss"), ("æ", "ae"), ("œ", "oe"), ("ø", "o"), ("ł", "l"), ("đ", "d"))}


def _plain_fold(text: str) -> str:
    lowered = text.lower().translate(_FOLD)
    return "".join(c for c in unicodedata.normalize("NFKD", lowered) if not unicodedata.combining(c))


def test_fold_drops_every_mark_with_few_and_with_many_kinds_of_mark() -> None:
    many = "".join(f"a{chr(mark)}" for mark in range(0x300, 0x320))  # more kinds than are removed one by one
    for text in ("Störung à l'écran, niño, Ærger", "plain ascii", "K\u212a \u017f İ", many, many * 3 + "ß"):
        assert fold(text) == _plain_fold(text)
    assert fold(many) == "a" * 0x20


def _plain_top_two(values: list[int], floor: int) -> tuple[int, int, int, int]:
    ranked = sorted(((-v, i) for i, v in enumerate(values) if v >= floor))[:2] + [(0, 0)] * 2
    return -ranked[0][0], ranked[0][1], -ranked[1][0], ranked[1][1]


def test_top_two_is_the_best_two_fields_at_the_floor_or_above_ties_to_the_lower_index() -> None:
    rng = random.Random(5)
    for count in (1, 2, 16, 300):
        fields = _Fields(count)
        for _ in range(40):
            values = [rng.choice((0, 0, 8, 20, 21, rng.randint(0, 400))) for _ in range(count)]
            total = sum(v << (BITS * i) for i, v in enumerate(values))
            upper = max(values) + rng.randint(0, 50)
            for floor in (8, 20):
                assert fields.top_two(total, upper, floor) == _plain_top_two(values, floor)
