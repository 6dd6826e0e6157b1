"""Escalations (structured hand-offs) and the notifications that carry them and approval requests."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, cast

from sqlalchemy import CursorResult, select, update

from mspclaw.errors import NotFound
from mspclaw.store.database import Database
from mspclaw.store.tables import EscalationRow, NotificationRow, new_id, utcnow

Scope = Collection[str] | None


class EscalationStore:
    def __init__(self, db: Database) -> None:
        self._sessions = db.sessions

    def add(self, *, ticket_id: str, session_id: str, client_id: str, kind: str, reason: str,
            body: dict[str, Any], assigned_to: str | None) -> EscalationRow:
        row = EscalationRow(id=new_id("es"), ticket_id=ticket_id, session_id=session_id, client_id=client_id,
                            kind=kind, reason=reason, body=body, assigned_to=assigned_to)
        with self._sessions.begin() as db:
            db.add(row)
        return row

    def escalations(self, scope: Scope, *, ticket_id: str | None = None, limit: int = 100,
                    states: Collection[str] | None = None, held_by: str | None = None) -> list[EscalationRow]:
        """Newest first; ``states`` and ``held_by`` (a technician's e-mail) narrow the list."""
        stmt = select(EscalationRow).order_by(EscalationRow.created_at.desc()).limit(limit)
        if scope is not None:
            stmt = stmt.where(EscalationRow.client_id.in_(list(scope)))
        if ticket_id is not None:
            stmt = stmt.where(EscalationRow.ticket_id == ticket_id)
        if states is not None:
            stmt = stmt.where(EscalationRow.state.in_(list(states)))
        if held_by is not None:
            stmt = stmt.where(EscalationRow.held_by == held_by)
        with self._sessions() as db:
            return list(db.scalars(stmt))

    def get(self, escalation_id: str, scope: Scope) -> EscalationRow:
        stmt = select(EscalationRow).where(EscalationRow.id == escalation_id)
        if scope is not None:
            stmt = stmt.where(EscalationRow.client_id.in_(list(scope)))
        with self._sessions() as db:
            row = db.scalars(stmt).first()
        if row is None:
            raise NotFound(f"no escalation {escalation_id!r}")
        return row

    def change(self, escalation_id: str, *, version: int, values: dict[str, Any]) -> EscalationRow | None:
        """Apply ``values`` only if the escalation is still at ``version`` (nobody changed it since it was read),
        bumping the version: the changed row, or ``None`` when another change came first."""
        with self._sessions.begin() as db:
            result = cast("CursorResult[Any]", db.execute(
                update(EscalationRow).where(EscalationRow.id == escalation_id, EscalationRow.version == version)
                .values(**values, version=version + 1)))
            if result.rowcount != 1:
                return None
            return db.get(EscalationRow, escalation_id)

    # -- notifications --------------------------------------------------------------------------
    def add_notification(self, *, client_id: str | None, channel: str, channel_kind: str, subject: str,
                         ref_id: str, recipient: str | None, payload: dict[str, Any]) -> NotificationRow:
        row = NotificationRow(id=new_id("nt"), client_id=client_id, channel=channel, channel_kind=channel_kind,
                              subject=subject, ref_id=ref_id, recipient=recipient, payload=payload)
        with self._sessions.begin() as db:
            db.add(row)
        return row

    def attempt(self, notification_id: str, *, ok: bool, error: str | None, final: bool) -> None:
        values: dict[str, Any] = {"attempts": NotificationRow.attempts + 1, "last_error": error}
        if ok:
            values |= {"status": "sent", "sent_at": utcnow()}
        elif final:
            values["status"] = "failed"
        with self._sessions.begin() as db:
            db.execute(update(NotificationRow).where(NotificationRow.id == notification_id).values(**values))

    def pending_notifications(self) -> list[NotificationRow]:
        with self._sessions() as db:
            return list(db.scalars(select(NotificationRow).where(NotificationRow.status == "pending")
                                   .order_by(NotificationRow.created_at)))

    def notifications(self, scope: Scope, *, ref_id: str | None = None, limit: int = 100) -> list[NotificationRow]:
        stmt = select(NotificationRow).order_by(NotificationRow.created_at.desc()).limit(limit)
        if scope is not None:
            stmt = stmt.where(NotificationRow.client_id.in_(list(scope)))
        if ref_id is not None:
            stmt = stmt.where(NotificationRow.ref_id == ref_id)
        with self._sessions() as db:
            return list(db.scalars(stmt))
