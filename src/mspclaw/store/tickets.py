"""Tickets, their sessions, step records, session events, tool calls and approvals.

Every read that a caller can reach takes the set of client ids it may see, so scoping is
part of the query, not a check after it.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import CursorResult, Select, func, orm, select, update
from sqlalchemy.orm import sessionmaker

from mspclaw.errors import Conflict, NotFound
from mspclaw.store.tables import (
    ApprovalRow,
    Session,
    SessionEvent,
    Step,
    Ticket,
    ToolCallRow,
    new_id,
    utcnow,
)

Scope = Collection[str] | None
"""Client ids the caller may see; ``None`` means every client (the admin key)."""


S = TypeVar("S", bound=Select[Any])


def _scoped(stmt: S, column: Any, scope: Scope) -> S:
    return stmt if scope is None else stmt.where(column.in_(list(scope)))


class TicketStore:
    def __init__(self, sessions: sessionmaker[orm.Session]) -> None:
        self._sessions = sessions

    # -- tickets and sessions -------------------------------------------------------------------
    def open_ticket(self, *, client_id: str, subject: str, body: str, requester: str,
                    device_id: str | None, psa: str | None = None,
                    external_id: str | None = None) -> tuple[Ticket, Session]:
        ticket = Ticket(id=new_id("tk"), client_id=client_id, subject=subject, body=body, requester=requester,
                        device_id=device_id, psa=psa, external_id=external_id, status="in_progress")
        session = Session(id=new_id("ss"), ticket_id=ticket.id, client_id=client_id)
        with self._sessions.begin() as db:
            db.add(ticket)
            db.flush()
            db.add(session)
        return ticket, session

    def ticket(self, ticket_id: str, scope: Scope = None) -> Ticket:
        with self._sessions() as db:
            stmt = _scoped(select(Ticket).where(Ticket.id == ticket_id), Ticket.client_id, scope)
            found = db.scalars(stmt).first()
        if found is None:
            raise NotFound(f"no ticket {ticket_id!r}")
        return found

    def tickets(self, scope: Scope = None, limit: int = 100) -> list[Ticket]:
        with self._sessions() as db:
            stmt = _scoped(select(Ticket), Ticket.client_id, scope).order_by(Ticket.created_at.desc()).limit(limit)
            return list(db.scalars(stmt))

    def find_external(self, psa: str, external_id: str) -> Ticket | None:
        with self._sessions() as db:
            return db.scalars(select(Ticket).where(Ticket.psa == psa, Ticket.external_id == external_id)).first()

    def session_for(self, ticket_id: str) -> Session:
        with self._sessions() as db:
            found = db.scalars(
                select(Session).where(Session.ticket_id == ticket_id).order_by(Session.created_at.desc())
            ).first()
        if found is None:
            raise NotFound(f"ticket {ticket_id!r} has no session")
        return found

    def session(self, session_id: str, scope: Scope = None) -> Session:
        with self._sessions() as db:
            stmt = _scoped(select(Session).where(Session.id == session_id), Session.client_id, scope)
            found = db.scalars(stmt).first()
        if found is None:
            raise NotFound(f"no session {session_id!r}")
        return found

    def update_session(self, session_id: str, **values: Any) -> None:
        with self._sessions.begin() as db:
            db.execute(update(Session).where(Session.id == session_id).values(updated_at=utcnow(), **values))

    def set_ticket_status(self, ticket_id: str, status: str) -> None:
        with self._sessions.begin() as db:
            db.execute(update(Ticket).where(Ticket.id == ticket_id).values(status=status, updated_at=utcnow()))

    def unfinished_sessions(self) -> list[Session]:
        with self._sessions() as db:
            return list(db.scalars(select(Session).where(Session.status.in_(["running", "awaiting_approval"]))))

    # -- steps and events -----------------------------------------------------------------------
    def add_step(self, session_id: str, *, title: str, tool: str | None, args: dict[str, Any],
                 ok: bool | None, observation: dict[str, Any]) -> Step:
        with self._sessions.begin() as db:
            index = db.scalar(select(func.count()).select_from(Step).where(Step.session_id == session_id)) or 0
            step = Step(session_id=session_id, index=index + 1, title=title, tool=tool, args=args, ok=ok,
                        observation=observation)
            db.add(step)
        return step

    def steps(self, session_id: str) -> list[Step]:
        with self._sessions() as db:
            return list(db.scalars(select(Step).where(Step.session_id == session_id).order_by(Step.index)))

    def add_event(self, session_id: str, event: str, data: dict[str, Any]) -> SessionEvent:
        with self._sessions.begin() as db:
            seq = db.scalar(select(func.max(SessionEvent.seq)).where(SessionEvent.session_id == session_id)) or 0
            row = SessionEvent(session_id=session_id, seq=seq + 1, event=event, data=data)
            db.add(row)
        return row

    def events(self, session_id: str, after_seq: int = 0) -> list[SessionEvent]:
        with self._sessions() as db:
            stmt = (select(SessionEvent).where(SessionEvent.session_id == session_id, SessionEvent.seq > after_seq)
                    .order_by(SessionEvent.seq))
            return list(db.scalars(stmt))

    # -- tool calls -----------------------------------------------------------------------------
    def record_call(self, *, call_id: str, session_id: str | None, client_id: str, agent_id: str, tool: str,
                    args: dict[str, Any], approval_id: str | None) -> None:
        with self._sessions.begin() as db:
            db.add(ToolCallRow(call_id=call_id, session_id=session_id, client_id=client_id, agent_id=agent_id,
                               tool=tool, args=args, approval_id=approval_id))

    def finish_call(self, call_id: str, *, ok: bool, output: dict[str, Any] | None, error_code: str | None,
                    error_message: str | None, duration_ms: int | None) -> None:
        with self._sessions.begin() as db:
            db.execute(update(ToolCallRow).where(ToolCallRow.call_id == call_id).values(
                status="ok" if ok else "error", output=output, error_code=error_code,
                error_message=error_message, duration_ms=duration_ms, finished_at=utcnow()))

    def calls(self, session_id: str) -> list[ToolCallRow]:
        with self._sessions() as db:
            stmt = select(ToolCallRow).where(ToolCallRow.session_id == session_id).order_by(ToolCallRow.created_at)
            return list(db.scalars(stmt))

    # -- approvals ------------------------------------------------------------------------------
    def request_approval(self, *, session_id: str, client_id: str, tool: str, args: dict[str, Any],
                         target: str, reason: str, deadline: datetime) -> ApprovalRow:
        row = ApprovalRow(id=new_id("ap"), session_id=session_id, client_id=client_id, tool=tool, args=args,
                          target=target, reason=reason, deadline=deadline)
        with self._sessions.begin() as db:
            db.add(row)
        return row

    def approval(self, approval_id: str, scope: Scope = None) -> ApprovalRow:
        with self._sessions() as db:
            stmt = _scoped(select(ApprovalRow).where(ApprovalRow.id == approval_id), ApprovalRow.client_id, scope)
            found = db.scalars(stmt).first()
        if found is None:
            raise NotFound(f"no approval {approval_id!r}")
        return found

    def approvals(self, scope: Scope = None, status: str | None = "pending") -> list[ApprovalRow]:
        stmt = _scoped(select(ApprovalRow), ApprovalRow.client_id, scope).order_by(ApprovalRow.created_at)
        if status is not None:
            stmt = stmt.where(ApprovalRow.status == status)
        with self._sessions() as db:
            return list(db.scalars(stmt))

    def decide(self, approval_id: str, *, status: str, approver: str, reason: str = "") -> ApprovalRow:
        """Record a decision once: a second decision, or one after expiry, is a :class:`Conflict`."""
        now = utcnow()
        with self._sessions.begin() as db:
            result = cast("CursorResult[Any]", db.execute(
                update(ApprovalRow)
                .where(ApprovalRow.id == approval_id, ApprovalRow.status == "pending")
                .values(status=status, approver=approver, decision_reason=reason, decided_at=now)
            ))
            if result.rowcount != 1:
                current = db.get(ApprovalRow, approval_id)
                if current is None:
                    raise NotFound(f"no approval {approval_id!r}")
                raise Conflict(f"approval {approval_id} is already {current.status}"
                               + (f" by {current.approver}" if current.approver else ""))
            row = db.get(ApprovalRow, approval_id)
            assert row is not None
        return row
