"""Retention: delete finished work past its time, keep the audit trail whole.

Three clocks, each off at 0 days (settings ``retention_*_days``; ``mspclaw prune`` applies them):

* **jobs**: jobs that are done, dead or cancelled, by ``finished_at``;
* **steps**: the step records of finished sessions, by the session's ``updated_at`` (the session
  itself, its outcome and note stay);
* **sessions**: finished sessions with everything recorded under them (events, steps, tool calls,
  approvals, questions, model turns, usage, escalations, feedback, notifications about them), by
  ``updated_at``. Tickets stay.

A session that is running or waits for an approval or an answer is never touched, whatever its
age. The audit trail (``audit_events`` and the day files) is never touched either: its events
name sessions by id as text, so the chain still verifies after any pruning. Deletes run in
batches of :data:`BATCH` sessions or jobs, one transaction each, so a large first prune never holds
the database's write lock for long.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import Table, delete, select
from sqlalchemy.exc import SQLAlchemyError

from mspclaw.errors import StoreError
from mspclaw.store.audit import AuditLog
from mspclaw.store.database import Database
from mspclaw.store.tables import (
    ApprovalRow,
    EscalationRow,
    FeedbackRow,
    JobRow,
    ModelTurn,
    NotificationRow,
    QuestionRow,
    Session,
    SessionEvent,
    SessionUsage,
    Step,
    ToolCallRow,
)

log = logging.getLogger(__name__)

BATCH = 500
OPEN_SESSIONS = ("running", "awaiting_approval", "awaiting_answer")
FINISHED_JOBS = ("done", "dead", "cancelled")

_SESSIONS = cast("Table", Session.__table__)
_STEPS = cast("Table", Step.__table__)
_JOBS = cast("Table", JobRow.__table__)
_NOTIFICATIONS = cast("Table", NotificationRow.__table__)
_ESCALATIONS = cast("Table", EscalationRow.__table__)
_APPROVALS = cast("Table", ApprovalRow.__table__)
_UNDER_SESSION: tuple[Table, ...] = tuple(cast("Table", t.__table__) for t in (
    SessionEvent, Step, ToolCallRow, ModelTurn, QuestionRow, SessionUsage, FeedbackRow))
"""Rows that name a session in their ``session_id`` (approvals and escalations go after their notifications)."""


@dataclass(frozen=True)
class Retention:
    jobs_days: int = 0
    sessions_days: int = 0
    steps_days: int = 0

    @property
    def enabled(self) -> bool:
        return bool(self.jobs_days or self.sessions_days or self.steps_days)


@dataclass
class PruneReport:
    jobs: int = 0
    sessions: int = 0
    steps: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    """Rows deleted per table (the sessions' dependants included)."""

    def count(self, table: str, n: int) -> None:
        if n:
            self.rows[table] = self.rows.get(table, 0) + n


class Pruner:
    """Applies a :class:`Retention` to one database."""

    def __init__(self, db: Database, retention: Retention, *,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._db, self.retention, self._clock = db, retention, clock

    def prune(self) -> PruneReport:
        report = PruneReport()
        now = self._clock()
        try:
            if self.retention.jobs_days:
                self._jobs(now - timedelta(days=self.retention.jobs_days), report)
            if self.retention.sessions_days:
                self._sessions(now - timedelta(days=self.retention.sessions_days), report)
            if self.retention.steps_days:
                self._steps(now - timedelta(days=self.retention.steps_days), report)
        except SQLAlchemyError as exc:
            raise StoreError(f"pruning old records failed: {exc}") from exc
        return report

    async def run(self, audit: AuditLog, *, interval_s: float = 3600.0) -> None:
        """Prune every ``interval_s`` until cancelled (a server's background task), off the event loop;
        each prune that deleted something is recorded in the audit trail (``records_pruned``)."""
        while True:
            if self.retention.enabled:
                try:
                    report = await asyncio.to_thread(self.prune)
                except StoreError as exc:  # the next round tries again
                    log.warning("%s", exc.message)
                else:
                    if report.rows:
                        await audit.record("records_pruned", data=self.audit_data(report))
            await asyncio.sleep(interval_s)

    def audit_data(self, report: PruneReport) -> dict[str, object]:
        """What a ``records_pruned`` audit event says: rows per table and the retention applied."""
        return {"rows": report.rows, "jobs_days": self.retention.jobs_days,
                "sessions_days": self.retention.sessions_days, "steps_days": self.retention.steps_days}

    def _finished_sessions(self, before: datetime) -> list[str]:
        with self._db.engine.connect() as conn:
            return list(conn.execute(select(_SESSIONS.c.id).where(
                _SESSIONS.c.status.not_in(OPEN_SESSIONS), _SESSIONS.c.updated_at < before).limit(BATCH)).scalars())

    def _jobs(self, before: datetime, report: PruneReport) -> None:
        while True:
            with self._db.transaction(immediate=True) as conn:
                ids = list(conn.execute(select(_JOBS.c.id).where(
                    _JOBS.c.status.in_(FINISHED_JOBS), _JOBS.c.finished_at < before).limit(BATCH)).scalars())
                if ids:
                    conn.execute(delete(_JOBS).where(_JOBS.c.id.in_(ids)))
            report.jobs += len(ids)
            report.count("jobs", len(ids))
            if len(ids) < BATCH:
                return

    def _sessions(self, before: datetime, report: PruneReport) -> None:
        while ids := self._finished_sessions(before):
            with self._db.transaction(immediate=True) as conn:
                ids = list(conn.execute(select(_SESSIONS.c.id).where(  # again, inside the transaction
                    _SESSIONS.c.id.in_(ids), _SESSIONS.c.status.not_in(OPEN_SESSIONS))).scalars())
                approvals = select(_APPROVALS.c.id).where(_APPROVALS.c.session_id.in_(ids))
                escalations = select(_ESCALATIONS.c.id).where(_ESCALATIONS.c.session_id.in_(ids))
                report.count("notifications", conn.execute(delete(_NOTIFICATIONS).where(
                    _NOTIFICATIONS.c.ref_id.in_(approvals) | _NOTIFICATIONS.c.ref_id.in_(escalations))).rowcount)
                for table in (*_UNDER_SESSION, _APPROVALS, _ESCALATIONS):
                    report.count(table.name, conn.execute(delete(table).where(table.c.session_id.in_(ids))).rowcount)
                deleted = conn.execute(delete(_SESSIONS).where(_SESSIONS.c.id.in_(ids))).rowcount
            report.sessions += deleted
            report.count("sessions", deleted)
            if deleted < BATCH:  # the last batch, or one that a concurrent change emptied
                return

    def _steps(self, before: datetime, report: PruneReport) -> None:
        finished = select(_SESSIONS.c.id).where(_SESSIONS.c.status.not_in(OPEN_SESSIONS),
                                                _SESSIONS.c.updated_at < before)
        with self._db.transaction(immediate=True) as conn:
            deleted = conn.execute(delete(_STEPS).where(_STEPS.c.session_id.in_(finished))).rowcount
        report.steps += deleted
        report.count("steps", deleted)
