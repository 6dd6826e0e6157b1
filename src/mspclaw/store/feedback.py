"""Resolution feedback rows: asked once per resolved ticket, answered once, or expired."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Table, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from mspclaw.errors import Conflict, NotFound
from mspclaw.store.database import Database
from mspclaw.store.tables import FeedbackRow, new_id, utcnow
from mspclaw.store.tickets import TicketStore

Scope = Collection[str] | None
ANSWER_STATUS = {"yes": "confirmed", "no": "failed", "partial": "partial"}


REQUEST_INSERT = insert(cast("Table", FeedbackRow.__table__))
"""Built once: one per resolved ticket."""


_ASKED = select(FeedbackRow.id).where(FeedbackRow.ticket_id == bindparam("ticket_id"))


class FeedbackStore:
    def __init__(self, db: Database) -> None:
        self._sessions = db.sessions
        self._fast = db.fast
        self._insert = self._fast.prepare(REQUEST_INSERT)
        self._asked = self._fast.prepare(_ASKED)

    def open(self, *, ticket_id: str, session_id: str, client_id: str, resolved_at: datetime,
             deadline: datetime, channel: str) -> FeedbackRow:
        values = self._values(ticket_id, session_id, client_id, resolved_at, deadline, channel)
        try:
            self._fast.run(self._insert, values)
        except IntegrityError as exc:
            raise Conflict(f"ticket {ticket_id} was already asked for feedback") from exc
        return FeedbackRow(**values)

    def open_announced(self, tickets: TicketStore, *, ticket_id: str, session_id: str, client_id: str,
                       resolved_at: datetime, deadline: datetime, channel: str, event: str,
                       data: dict[str, Any]) -> tuple[FeedbackRow, int]:
        """:meth:`open`, and the session's ``event`` that announces it, stored together (both or neither;
        one statement on PostgreSQL); returns the row and the event's number."""
        values = self._values(ticket_id, session_id, client_id, resolved_at, deadline, channel)
        try:
            added = tickets.add_event_with_row(session_id, event, data, REQUEST_INSERT, values)
        except IntegrityError as exc:
            if self._fast.read(self._asked, {"ticket_id": ticket_id}):  # the one request per ticket, not another key
                raise Conflict(f"ticket {ticket_id} was already asked for feedback") from exc
            raise
        return FeedbackRow(**values), added.seq

    @staticmethod
    def _values(ticket_id: str, session_id: str, client_id: str, resolved_at: datetime, deadline: datetime,
                channel: str) -> dict[str, Any]:
        return {"id": new_id("fb"), "ticket_id": ticket_id, "session_id": session_id, "client_id": client_id,
                "status": "pending", "channel": channel, "comment": "", "resolved_at": resolved_at,
                "deadline": deadline, "answered_by": None, "answered_at": None}

    def for_ticket(self, ticket_id: str, scope: Scope = None) -> FeedbackRow:
        stmt = select(FeedbackRow).where(FeedbackRow.ticket_id == ticket_id)
        if scope is not None:
            stmt = stmt.where(FeedbackRow.client_id.in_(list(scope)))
        with self._sessions() as db:
            row = db.scalars(stmt).first()
        if row is None:
            raise NotFound(f"ticket {ticket_id!r} has no feedback request (it is not resolved, or not yours)")
        return row

    def answer(self, ticket_id: str, answer: str, *, by: str, comment: str, scope: Scope) -> FeedbackRow:
        """Record the answer once; a second answer, or one after the deadline, is a :class:`Conflict`."""
        status = ANSWER_STATUS.get(answer)
        if status is None:
            raise Conflict(f"answer must be yes, no or partial, not {answer!r}")
        current = self.for_ticket(ticket_id, scope)
        now = utcnow()
        with self._sessions.begin() as db:
            result = cast("CursorResult[Any]", db.execute(
                update(FeedbackRow).where(FeedbackRow.id == current.id, FeedbackRow.status == "pending",
                                          FeedbackRow.deadline > now)
                .values(status=status, answered_by=by, answered_at=now, comment=comment[:2000])))
        if result.rowcount != 1:
            latest = self.for_ticket(ticket_id)
            if latest.status == "pending":
                raise Conflict("the time to answer has passed; the ticket counts as unconfirmed")
            raise Conflict(f"this ticket's feedback is already {latest.status}")
        return self.for_ticket(ticket_id)

    def expire_due(self) -> list[FeedbackRow]:
        """Mark every pending request past its deadline unconfirmed; returns them."""
        now = utcnow()
        with self._sessions.begin() as db:
            due = list(db.scalars(select(FeedbackRow).where(FeedbackRow.status == "pending",
                                                            FeedbackRow.deadline <= now)))
            for row in due:
                db.execute(update(FeedbackRow).where(FeedbackRow.id == row.id, FeedbackRow.status == "pending")
                           .values(status="unconfirmed"))
        return due

    def pending(self) -> list[FeedbackRow]:
        with self._sessions() as db:
            return list(db.scalars(select(FeedbackRow).where(FeedbackRow.status == "pending")
                                   .order_by(FeedbackRow.resolved_at)))

    def next_deadline(self) -> datetime | None:
        with self._sessions() as db:
            return db.scalars(select(FeedbackRow.deadline).where(FeedbackRow.status == "pending")
                              .order_by(FeedbackRow.deadline).limit(1)).first()
