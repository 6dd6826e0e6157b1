"""``clean`` skips the steps a text does not need: the same line as every step run in full."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from mspclaw.pipeline.tool_summaries import _clean_in_full, clean

PIECES = [" ", "  ", "\t", "\n", "\r\n", "\x00", "\x1f", "\x7f", "\x85", "\x9f", "\xa0", "\u1680", "\u2003", "\u200b",
          "\u200f", "\u2028", "\u202a", "\u202e", "\u2066", "\u2069", "\u3000", "\xad", "]", "(", "] (", "](", "]\n(",
          "<", "<https:", "<HTTP:", "<mailto:", "<ftp:", "[x](https://e.example)", "a", "Z", "é", "…", "0", "‹"]

texts = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=4)), max_size=30).map("".join)


@settings(max_examples=1000, deadline=None)
@given(texts, st.sampled_from([1, 5, 20, 120, 400]))
@example("  leading and trailing  ", 120)
@example("[click](https://evil.example) <https://evil.example>", 120)
@example("a\u200bb\u202ec\u2066d", 120)
@example("x" * 600, 120)
def test_clean_equals_every_step_run_in_full(text: str, limit: int) -> None:
    assert clean(text, limit) == _clean_in_full(text, limit)


def test_clean_takes_any_value() -> None:
    assert clean(42) == _clean_in_full(42) == "42"
    assert clean(None) == "None"
    assert clean(["a", "b"]) == _clean_in_full(["a", "b"])
