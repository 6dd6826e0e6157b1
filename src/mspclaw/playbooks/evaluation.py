"""How well the matcher does on labelled tickets: accuracy, false automation, confusion, calibration.

The input is what an MSP exports from its PSA (``docs/playbooks.md``): one JSON object a line,
``{"subject", "body", "os", "label"}``, where ``label`` is a playbook category or ``none`` /
``not_automatable`` / null for a ticket no playbook may take. A *false automation* is a ticket of
the second kind that got a playbook: the error that matters most, since a playbook then runs on a
user's PC for an outage, an alert or a security incident.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mspclaw.playbooks.matcher import Matcher

NOT_AUTOMATABLE = frozenset({"none", "not_automatable", "not-automatable", "null", ""})
OS_NAMES = frozenset({"linux", "macos", "windows"})


class LabelledFileError(ValueError):
    """A line of a labelled file is not a ticket; the message names the file and line."""


@dataclass(frozen=True)
class Labelled:
    subject: str
    body: str
    os: str | None
    label: str | None
    source: str = ""


@dataclass(frozen=True)
class Outcome:
    ticket: Labelled
    got: str | None
    score: float
    runner_up_score: float
    confidence: float
    explanation: str

    @property
    def right(self) -> bool:
        return self.got == self.ticket.label


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return sum(o.right for o in self.outcomes) / len(self.outcomes) if self.outcomes else 0.0

    @property
    def must_not(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.ticket.label is None]

    @property
    def false_automations(self) -> list[Outcome]:
        return [o for o in self.must_not if o.got is not None]

    @property
    def automated(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.got is not None]

    @property
    def precision(self) -> float:
        """Of the tickets given a playbook, the share given the right one."""
        done = self.automated
        return sum(o.right for o in done) / len(done) if done else 0.0

    def confusion(self) -> Counter[tuple[str, str]]:
        return Counter((o.ticket.label or "none", o.got or "none") for o in self.outcomes)

    def worst(self, count: int) -> list[Outcome]:
        """Wrong decisions, false automations first, then the most confident."""
        wrong = [o for o in self.outcomes if not o.right]
        return sorted(wrong, key=lambda o: (o.ticket.label is not None or o.got is None, -o.confidence))[:count]

    def calibration(self, bins: int = 5) -> list[tuple[float, float, int, float]]:
        """(low, high, tickets, share right) per confidence band, over tickets given a playbook."""
        rows = []
        for band in range(bins):
            low, high = band / bins, (band + 1) / bins
            inside = [o for o in self.automated
                      if low <= o.confidence < high or (band == bins - 1 and o.confidence == 1)]
            rows.append((low, high, len(inside), sum(o.right for o in inside) / len(inside) if inside else 0.0))
        return rows


def read_labelled(path: Path) -> list[Labelled]:
    """The tickets of a JSON-lines file; :class:`LabelledFileError` names the first bad line."""
    rows: list[Labelled] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LabelledFileError(f"{path}:{number}: not JSON: {exc.msg}") from exc
        if not isinstance(row, dict) or not isinstance(row.get("subject", ""), str) \
                or not isinstance(row.get("body", ""), str):
            raise LabelledFileError(f"{path}:{number}: need an object with string 'subject' and 'body'")
        os_name = row.get("os")
        if os_name is not None and os_name not in OS_NAMES:
            raise LabelledFileError(f"{path}:{number}: os: {os_name!r} is not one of linux, macos, windows")
        label = row.get("label", row.get("category"))
        if label is not None and not isinstance(label, str):
            raise LabelledFileError(f"{path}:{number}: label: must be a category, 'none' or null")
        if isinstance(label, str) and label.strip().lower() in NOT_AUTOMATABLE:
            label = None
        rows.append(Labelled(row.get("subject", ""), row.get("body", ""), os_name, label, path.name))
    return rows


def evaluate(matcher: Matcher, tickets: Iterable[Labelled]) -> Report:
    report = Report()
    for ticket in tickets:
        found = matcher.match(ticket.subject, ticket.body, ticket.os)
        report.outcomes.append(Outcome(ticket, found.category, found.score, found.runner_up_score,
                                       found.confidence, found.explanation))
    return report


def fit_calibration(outcomes: Sequence[Outcome], rounds: int = 3_000, rate: float = 0.1
                    ) -> tuple[float, float, float]:
    """Logistic regression of "the best playbook is right" on (1, log points, runner-up share).

    Fitted on the tickets whose best playbook reached the score threshold, with the matcher's
    abstention turned off (``Matcher(books, min_confidence=0)``), so every decision is seen.
    """
    data = [((1.0, math.log(o.score), o.runner_up_score / o.score), 1.0 if o.right else 0.0)
            for o in outcomes if o.got is not None and o.score > 0]
    weights = [0.0, 1.0, 0.0]
    for _ in range(rounds):
        grad = [0.0, 0.0, 0.0]
        for x, y in data:
            z = sum(w * v for w, v in zip(weights, x, strict=True))
            p = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))
            for i, v in enumerate(x):
                grad[i] += (p - y) * v
        weights = [w - rate * g / max(1, len(data)) for w, g in zip(weights, grad, strict=True)]
    return weights[0], weights[1], weights[2]
