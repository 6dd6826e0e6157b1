"""What the triage case files (``test_triage_round*_cases.py``) expect of the library's matcher, said once.

Each case file lists invented tickets per rule; these check one ticket's decision and show the matcher's
own explanation when it differs.
"""

from __future__ import annotations

from mspclaw.playbooks.matcher import Matcher


def expect_playbook(matcher: Matcher, label: str, subject: str, body: str) -> None:
    """The ticket gets the playbook ``label``."""
    decision = matcher.match(subject, body, "windows")
    assert decision.category == label, decision.explanation


def expect_triaged(matcher: Matcher, subject: str, body: str, reason: str = "", *, exact: bool = False) -> None:
    """No playbook: the must-not-automate layer rules it out, with a reason starting with ``reason`` (equal to it
    with ``exact``)."""
    decision = matcher.match(subject, body, "windows")
    assert decision.category is None, decision.explanation
    got = decision.triage_reason
    assert got is not None and (got == reason if exact else got.startswith(reason)), decision.explanation


def expect_not_triaged(matcher: Matcher, subject: str, body: str) -> None:
    """The must-not-automate layer leaves the ticket alone (a playbook may or may not fit)."""
    decision = matcher.match(subject, body, "windows")
    assert decision.triage_reason is None, decision.explanation


def expect_nothing(matcher: Matcher, subject: str, body: str) -> None:
    """No playbook fits and no rule fires: a question, or a request no playbook is for."""
    decision = matcher.match(subject, body, "windows")
    assert decision.category is None, decision.explanation
    assert decision.triage_reason is None, decision.explanation
