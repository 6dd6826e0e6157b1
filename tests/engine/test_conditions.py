"""Playbook conditions: evaluate what they should, refuse code, explain missing data."""

from __future__ import annotations

import pytest

from mspclaw.engine.conditions import evaluate, parse
from mspclaw.errors import ConditionError

OUT = {"after": {"filesystems": [{"percent_used": 40.0}, {"percent_used": 95.5}]},
       "preview": {"files": 3}, "info": {"load_average": [0.5, 1, 1], "cpu": {"count": 2}}}


@pytest.mark.parametrize(("expr", "expected"), [
    ("preview.files > 0", True),
    ("preview.files > 3", False),
    ("max(pluck(after.filesystems, 'percent_used')) < 90", False),
    ("min(pluck(after.filesystems, 'percent_used')) < 90", True),
    ("info.load_average[0] < 2 * info.cpu.count and not preview.files == 0", True),
    ("preview.files in [1, 2, 3]", True),
    ("0 < preview.files <= 2", False),
    ("len(after.filesystems) == 2 or false", True),
])
def test_evaluates(expr: str, expected: bool) -> None:
    assert evaluate(expr, OUT) is expected


@pytest.mark.parametrize("expr", [
    "__import__('os').system('id')",
    "preview.__class__",
    "(lambda: 1)()",
    "[x for x in after]",
    "open('/etc/passwd')",
])
def test_refuses_anything_but_data(expr: str) -> None:
    with pytest.raises(ConditionError):
        evaluate(expr, OUT)


def test_missing_step_or_field_is_named() -> None:
    with pytest.raises(ConditionError, match="'clean'"):
        evaluate("clean.deleted > 0", OUT)
    with pytest.raises(ConditionError, match="'nope'"):
        evaluate("preview.nope", OUT)


def test_syntax_error_fails_at_parse() -> None:
    with pytest.raises(ConditionError, match="invalid condition"):
        parse("preview.files >")
