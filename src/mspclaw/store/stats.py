"""Outcome statistics per playbook, client and model, from tickets, sessions, feedback and usage.

Each ticket counts once, by its latest session:

* ``escalated``: the run handed it to a technician;
* resolved tickets by what the end user said: ``confirmed`` (yes), ``partial``, ``failed`` (no),
  ``unconfirmed`` (no answer yet, or none in time: never counted as success);
* ``median_ttr_s``: median seconds from the ticket's arrival to its resolution;
* ``tokens`` and ``cost_usd``: what the session's model spent.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Collection
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select

from mspclaw.store.database import Database
from mspclaw.store.tables import Client, FeedbackRow, Session, SessionUsage, Ticket

Scope = Collection[str] | None
DIMENSIONS = ("playbook", "client", "model")


@dataclass(frozen=True)
class TicketOutcome:
    ticket_id: str
    client: str
    playbook: str
    model: str
    created_at: datetime
    result: str
    """escalated, confirmed, partial, failed, unconfirmed or open."""
    ttr_s: float | None
    tokens: int
    cost_usd: float


@dataclass
class StatsRow:
    key: str
    tickets: int = 0
    confirmed: int = 0
    partial: int = 0
    failed: int = 0
    unconfirmed: int = 0
    escalated: int = 0
    open: int = 0
    median_ttr_s: float | None = None
    tokens: int = 0
    cost_usd: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _result(session: Session | None, feedback: FeedbackRow | None) -> str:
    if feedback is not None:
        return "unconfirmed" if feedback.status == "pending" else feedback.status
    if session is None or session.outcome is None:
        return "open"
    return "escalated" if session.outcome != "resolved" else "unconfirmed"


class UsageLog:
    """What a session's model spent: the totals of the run, set when the reasoning loop ends."""

    def __init__(self, db: Database) -> None:
        self._sessions = db.sessions

    def record(self, session_id: str, *, model: str, input_tokens: int, output_tokens: int, cost_usd: float) -> None:
        """Set a session's totals (the engine's own count of the whole run: idempotent on resume)."""
        with self._sessions.begin() as db:
            row = db.get(SessionUsage, session_id, with_for_update=True)
            if row is None:
                db.add(SessionUsage(session_id=session_id, model=model, input_tokens=input_tokens,
                                    output_tokens=output_tokens, cost_usd=cost_usd))
            else:
                row.model, row.input_tokens, row.output_tokens, row.cost_usd = (
                    model, input_tokens, output_tokens, cost_usd)


class StatsQuery:
    def __init__(self, db: Database) -> None:
        self._sessions = db.sessions

    def outcomes(self, scope: Scope, *, since: datetime | None = None) -> list[TicketOutcome]:
        stmt = (select(Ticket, Client.name, Session, FeedbackRow, SessionUsage)
                .join(Client, Client.id == Ticket.client_id)
                .outerjoin(Session, Session.ticket_id == Ticket.id)
                .outerjoin(FeedbackRow, FeedbackRow.ticket_id == Ticket.id)
                .outerjoin(SessionUsage, SessionUsage.session_id == Session.id)
                .order_by(Ticket.created_at, Session.created_at))
        if scope is not None:
            stmt = stmt.where(Ticket.client_id.in_(list(scope)))
        if since is not None:
            stmt = stmt.where(Ticket.created_at >= since)
        latest: dict[str, TicketOutcome] = {}
        with self._sessions() as db:
            for ticket, client_name, session, feedback, usage in db.execute(stmt).all():
                result = _result(session, feedback)
                ttr = None
                if feedback is not None:
                    ttr = max(0.0, (feedback.resolved_at - ticket.created_at).total_seconds())
                latest[ticket.id] = TicketOutcome(
                    ticket.id, client_name, (session.playbook if session else None) or "(none)",
                    (usage.model if usage else None) or (session.model if session else "playbook"),
                    ticket.created_at, result, ttr,
                    (usage.input_tokens + usage.output_tokens) if usage else 0, usage.cost_usd if usage else 0.0)
        return list(latest.values())

    def by(self, dimension: str, scope: Scope, *, since: datetime | None = None) -> list[StatsRow]:
        if dimension not in DIMENSIONS:
            raise ValueError(f"group by one of {', '.join(DIMENSIONS)}")
        return aggregate(self.outcomes(scope, since=since), dimension)


def aggregate(outcomes: list[TicketOutcome], dimension: str | None) -> list[StatsRow]:
    """One row per value of ``dimension`` (playbook, client, model); ``None``: one ``total`` row."""
    rows: dict[str, StatsRow] = {}
    ttrs: dict[str, list[float]] = defaultdict(list)
    for o in outcomes:
        key = str(getattr(o, dimension)) if dimension else "total"
        row = rows.setdefault(key, StatsRow(key))
        row.tickets += 1
        setattr(row, o.result, getattr(row, o.result) + 1)
        row.tokens += o.tokens
        row.cost_usd += o.cost_usd
        if o.ttr_s is not None:
            ttrs[key].append(o.ttr_s)
    for key, values in ttrs.items():
        rows[key].median_ttr_s = statistics.median(values)
    if dimension is None and not rows:
        return [StatsRow("total")]
    return sorted(rows.values(), key=lambda r: (-r.tickets, r.key))


def daily_rates(outcomes: list[TicketOutcome]) -> list[tuple[date, int, float, float]]:
    """Per day: tickets, share resolved (any answer but 'no'), share confirmed by the user."""
    days: dict[date, list[TicketOutcome]] = defaultdict(list)
    for o in outcomes:
        days[o.created_at.date()].append(o)
    series = []
    for day in sorted(days):
        items = days[day]
        resolved = sum(o.result in ("confirmed", "partial", "unconfirmed") for o in items)
        confirmed = sum(o.result == "confirmed" for o in items)
        series.append((day, len(items), resolved / len(items), confirmed / len(items)))
    return series
