"""The two statements over many session leases at once (``session:<id>`` rows of ``ownership_leases``).

One lease per running session (``pipeline/session_ownership.py``) would cost one renewal per session
every few seconds; :meth:`SessionLeaseStore.renew_all` renews every lease a replica holds in one
``UPDATE ... WHERE holder = me AND name IN (...) RETURNING name`` instead, and tells which were not
renewed (expired, or taken over). :meth:`SessionLeaseStore.orphans` finds the unfinished sessions
that no replica holds: never leased, released, or expired. Acquiring, releasing and fencing one
lease is :class:`~mspclaw.store.leases.Leases`'.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta
from typing import Final, cast

from sqlalchemy import Table, and_, delete, func, literal, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from mspclaw.errors import StoreError
from mspclaw.store.database import Database
from mspclaw.store.leases import MAX_HOLDER, MAX_TTL_S
from mspclaw.store.tables import OwnershipLease, Session, utcnow

_LEASES = cast("Table", OwnershipLease.__table__)
SESSION_PREFIX: Final = "session:"
UNFINISHED: Final = ("running", "awaiting_approval", "awaiting_answer")
CHUNK: Final = 500
"""Lease names per renewal statement (bound parameters stay well under every driver's limit)."""
MAX_ORPHANS: Final = 1000


def session_lease(session_id: str) -> str:
    """The name of a session's lease."""
    return SESSION_PREFIX + session_id


class SessionLeaseStore:
    def __init__(self, db: Database, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._db = db
        self._clock = clock

    @property
    def commits_wait_for_server(self) -> bool:
        return self._db.commits_wait_for_server

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the session leases' clock must return aware datetimes")
        return now.astimezone(UTC)

    def renew_all(self, names: Collection[str], holder: str, ttl_s: float) -> set[str]:
        """Extend to ``now + ttl_s`` every lease of ``names`` that ``holder`` holds and that has not expired:
        the names renewed. One statement per :data:`CHUNK` names; a name missing from the answer was
        lost (expired, or taken over by another replica) and must not be driven any further here."""
        if not holder or len(holder) > MAX_HOLDER:
            raise ValueError(f"a lease holder must have 1 to {MAX_HOLDER} characters, not {len(holder)}")
        if not 0 < ttl_s <= MAX_TTL_S:
            raise ValueError(f"a lease's time to live must be over 0 and at most {MAX_TTL_S:g} seconds, not {ttl_s}")
        wanted = sorted(set(names))
        if not wanted:
            return set()
        now = self._now()
        c = _LEASES.c
        renewed: set[str] = set()
        try:
            with self._db.transaction(immediate=True) as conn:
                for start in range(0, len(wanted), CHUNK):
                    stmt = (update(_LEASES)
                            .where(c.name.in_(wanted[start:start + CHUNK]), c.holder == holder, c.expires_at > now)
                            .values(expires_at=now + timedelta(seconds=ttl_s), updated_at=now)
                            .returning(c.name))
                    renewed.update(conn.execute(stmt).scalars())
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot renew {len(wanted)} session leases: {exc}") from exc
        return renewed

    def forget(self, name: str, holder: str, token: int) -> bool:
        """Delete the lease of a session whose run has finished (it is never resumed again), if ``holder``
        still holds it with ``token``: the table keeps only the leases of sessions not finished."""
        c = _LEASES.c
        stmt = delete(_LEASES).where(c.name == name, c.holder == holder, c.token == token)
        try:
            with self._db.transaction(immediate=True) as conn:
                return conn.execute(stmt).rowcount == 1
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot delete the lease {name!r}: {exc}") from exc

    def orphans(self, *, older_than_s: float, limit: int = 100, leased_only: bool = False) -> list[str]:
        """Unfinished sessions no replica holds, oldest first: their lease released or expired, or (not with
        ``leased_only``) never taken by a session opened more than ``older_than_s`` ago (a session just
        opened is about to be leased by the replica that opened it).

        ``leased_only`` reads only the lease rows (the sessions of replicas that stopped or died), not
        every session's status."""
        if not 0 < limit <= MAX_ORPHANS:
            raise ValueError(f"ask for 1 to {MAX_ORPHANS} orphaned sessions at a time, not {limit}")
        now = self._now()
        c = _LEASES.c
        free = or_(c.holder.is_(None), c.expires_at <= now)
        if leased_only:
            stmt = (select(Session.id)
                    .select_from(_LEASES)
                    .join(Session, Session.id == func.substr(c.name, len(SESSION_PREFIX) + 1))
                    .where(c.name.like(SESSION_PREFIX + "%"), free, Session.status.in_(UNFINISHED)))
        else:
            never_taken = and_(c.name.is_(None), Session.created_at < now - timedelta(seconds=older_than_s))
            stmt = (select(Session.id)
                    .select_from(Session)
                    .outerjoin(_LEASES, c.name == literal(SESSION_PREFIX) + Session.id)
                    .where(Session.status.in_(UNFINISHED), or_(never_taken, and_(c.name.is_not(None), free))))
        stmt = stmt.order_by(Session.created_at, Session.id).limit(limit)
        try:
            with self._db.engine.connect() as conn:
                return list(conn.execute(stmt).scalars())
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read the unfinished sessions: {exc}") from exc
