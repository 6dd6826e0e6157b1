"""Reading the audit trail newest first, one page at a time, for a person looking through it (the console).

:meth:`AuditLog.query <mspclaw.store.audit.log.AuditLog.query>` reads forward from a ``seq`` (an export,
``GET /api/audit``); a person wants the newest events first and an "older" link: :func:`newest_first` pages
backwards with a ``before`` cursor and filters by actor and a time range too. Read only; the same scope rule as
``query``: ``client_ids=None`` is every client and the events of no client, a collection only those clients.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, func, select
from sqlalchemy.exc import SQLAlchemyError

from mspclaw.errors import StoreError
from mspclaw.store.audit.chain import AuditRecord
from mspclaw.store.database import Database
from mspclaw.store.tables import AuditEvent

_EVENTS = cast("Table", AuditEvent.__table__)
MAX_PAGE = 500
MAX_KINDS = 200


@dataclass(frozen=True)
class AuditFilter:
    """What a page of the trail is narrowed to (every field optional)."""

    client_ids: Collection[str] | None = None
    session_id: str | None = None
    kind: str | None = None
    actor: str | None = None
    since: datetime | None = None
    """Aware; events at or after it."""
    until: datetime | None = None
    """Aware; events before it."""


def newest_first(db: Database, where: AuditFilter, *, before: int | None = None, limit: int = 50
                 ) -> list[AuditRecord]:
    """Up to ``limit`` events matching ``where`` with ``seq`` below ``before`` (``None``: from the newest),
    newest first. The next page is ``before=<the last one's seq>``."""
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be 1 to {MAX_PAGE}, not {limit}")
    if isinstance(where.client_ids, str):
        raise TypeError("client_ids is a collection of ids, not one id")
    if where.client_ids is not None and not where.client_ids:
        return []
    for moment in (where.since, where.until):
        if moment is not None and moment.tzinfo is None:
            raise ValueError("since and until must be aware datetimes")
    stmt = select(_EVENTS).order_by(_EVENTS.c.seq.desc()).limit(limit)
    if before is not None:
        stmt = stmt.where(_EVENTS.c.seq < before)
    if where.client_ids is not None:
        stmt = stmt.where(_EVENTS.c.client_id.in_(list(where.client_ids)))
    if where.session_id is not None:
        stmt = stmt.where(_EVENTS.c.session_id == where.session_id)
    if where.kind is not None:
        stmt = stmt.where(_EVENTS.c.kind == where.kind)
    if where.actor is not None:
        stmt = stmt.where(_EVENTS.c.actor == where.actor)
    if where.since is not None:
        stmt = stmt.where(_EVENTS.c.ts >= where.since)
    if where.until is not None:
        stmt = stmt.where(_EVENTS.c.ts < where.until)
    try:
        with db.engine.connect() as conn:
            return [_record(row._mapping) for row in conn.execute(stmt)]
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the audit trail: {exc}") from exc


def event(db: Database, seq: int) -> AuditRecord | None:
    """The event of ``seq``, if there is one."""
    try:
        with db.engine.connect() as conn:
            row = conn.execute(select(_EVENTS).where(_EVENTS.c.seq == seq)).first()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the audit trail: {exc}") from exc
    return None if row is None else _record(row._mapping)


def last_seq(db: Database) -> int:
    """The newest event's ``seq`` (0: the trail is empty)."""
    try:
        with db.engine.connect() as conn:
            return int(conn.execute(select(func.coalesce(func.max(_EVENTS.c.seq), 0))).scalar_one())
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the audit trail: {exc}") from exc


def kinds(db: Database) -> list[str]:
    """The event kinds the trail holds (at most :data:`MAX_KINDS`), sorted: the choices of a filter."""
    try:
        with db.engine.connect() as conn:
            rows = conn.execute(select(_EVENTS.c.kind).distinct().order_by(_EVENTS.c.kind).limit(MAX_KINDS))
            return [str(k) for (k,) in rows]
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the audit trail: {exc}") from exc


def _record(row: Any) -> AuditRecord:
    return AuditRecord(seq=row["seq"], ts=row["ts"].astimezone(UTC), kind=row["kind"], actor=row["actor"],
                       client_id=row["client_id"], session_id=row["session_id"], data=row["data"],
                       prev_hash=row["prev_hash"], hash=row["hash"])
