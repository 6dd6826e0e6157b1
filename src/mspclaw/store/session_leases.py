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
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, cast

from sqlalchemy import BigInteger, Integer, String, Table, and_, bindparam, delete, func, literal, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from mspclaw.errors import StoreError
from mspclaw.store.clock import aware_now
from mspclaw.store.database import Database
from mspclaw.store.leases import MAX_HOLDER, MAX_TTL_S
from mspclaw.store.tables import OwnershipLease, Session, UTCDateTime, utcnow

_LEASES = cast("Table", OwnershipLease.__table__)
SESSION_PREFIX: Final = "session:"
UNFINISHED: Final = ("running", "awaiting_approval", "awaiting_answer")
CHUNK: Final = 500
"""Lease names per renewal statement (bound parameters stay well under every driver's limit)."""
MAX_ORPHANS: Final = 1000

# Built once (the delete prepared once per database with FastSQL): see store/leases.py.
_c = _LEASES.c
_NAME, _HOLDER = bindparam("p_name", type_=String()), bindparam("p_holder", type_=String())
_NOW = bindparam("p_now", type_=UTCDateTime())
FORGET: Final = delete(_LEASES).where(_c.name == _NAME, _c.holder == _HOLDER, _c.token == bindparam(
    "p_token", type_=BigInteger()))
"""The delete of a finished session's lease (``p_name``, ``p_holder``, ``p_token``: :meth:`HeldLease.params`);
:meth:`SessionLeaseStore.forget` runs it alone, ``TicketStore.close_session`` with the session's end."""
_RENEW_ALL = (update(_LEASES)
              .where(_c.name.in_(bindparam("p_names", expanding=True)), _c.holder == _HOLDER, _c.expires_at > _NOW)
              .values(expires_at=bindparam("p_until", type_=UTCDateTime()), updated_at=_NOW)
              .returning(_c.name))
_FREE = or_(_c.holder.is_(None), _c.expires_at <= _NOW)
_ORPHANS_LEASED = (select(Session.id)
                   .select_from(_LEASES)
                   .join(Session, Session.id == func.substr(_c.name, len(SESSION_PREFIX) + 1))
                   .where(_c.name.like(SESSION_PREFIX + "%"), _FREE, Session.status.in_(UNFINISHED))
                   .order_by(Session.created_at, Session.id).limit(bindparam("p_limit", type_=Integer())))
_NEVER_TAKEN = and_(_c.name.is_(None), Session.created_at < bindparam("p_opened_before", type_=UTCDateTime()))
_ORPHANS_ALL = (select(Session.id)
                .select_from(Session)
                .outerjoin(_LEASES, _c.name == literal(SESSION_PREFIX) + Session.id)
                .where(Session.status.in_(UNFINISHED), or_(_NEVER_TAKEN, and_(_c.name.is_not(None), _FREE)))
                .order_by(Session.created_at, Session.id).limit(bindparam("p_limit", type_=Integer())))


def session_lease(session_id: str) -> str:
    """The name of a session's lease."""
    return SESSION_PREFIX + session_id


NEW_SESSION_TOKEN: Final = 1
"""The fencing token of a lease taken with its session's first write (a new name: never held before)."""


@dataclass(frozen=True)
class NewSessionLease:
    """The lease a new session is opened under: ``holder`` takes it for ``ttl_s`` seconds in the same write that
    stores the ticket and its session (:meth:`~mspclaw.store.tickets.TicketStore.open_ticket`), with the token
    :data:`NEW_SESSION_TOKEN`. Nobody can hold it before: the session's id is new."""

    holder: str
    ttl_s: float

    def __post_init__(self) -> None:
        if not self.holder or len(self.holder) > MAX_HOLDER:
            raise ValueError(f"a lease holder must have 1 to {MAX_HOLDER} characters, not {len(self.holder)}")
        if not 0 < self.ttl_s <= MAX_TTL_S:
            raise ValueError(f"a lease's time to live must be over 0 and at most {MAX_TTL_S:g} seconds, "
                             f"not {self.ttl_s}")

    def row(self, session_id: str, now: datetime) -> dict[str, Any]:
        """Its ``ownership_leases`` row, taken at ``now``."""
        return {"name": session_lease(session_id), "holder": self.holder, "token": NEW_SESSION_TOKEN,
                "expires_at": now + timedelta(seconds=self.ttl_s), "updated_at": now}


@dataclass(frozen=True)
class HeldLease:
    """A session's lease as its holder holds it: deleted with the session's end (``TicketStore.close_session``),
    if ``holder`` still holds it with ``token`` (a lease taken over since is left to its new holder)."""

    name: str
    holder: str
    token: int

    def params(self) -> dict[str, Any]:
        """The parameters of :data:`FORGET`."""
        return {"p_name": self.name, "p_holder": self.holder, "p_token": self.token}


class SessionLeaseStore:
    def __init__(self, db: Database, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._db = db
        self._clock = clock
        self._forget = db.fast.prepare(FORGET)

    @property
    def commits_wait_for_server(self) -> bool:
        return self._db.commits_wait_for_server

    def _now(self) -> datetime:
        return aware_now(self._clock, "the session leases' clock")

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
        until = now + timedelta(seconds=ttl_s)
        renewed: set[str] = set()
        try:
            with self._db.transaction(immediate=True) as conn:
                for start in range(0, len(wanted), CHUNK):
                    renewed.update(conn.execute(_RENEW_ALL, {"p_names": wanted[start:start + CHUNK], "p_holder": holder,
                                                             "p_now": now, "p_until": until}).scalars())
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot renew {len(wanted)} session leases: {exc}") from exc
        return renewed

    def forget(self, name: str, holder: str, token: int) -> bool:
        """Delete the lease of a session whose run has finished (it is never resumed again), if ``holder``
        still holds it with ``token``: the table keeps only the leases of sessions not finished."""
        try:  # one statement by itself: autocommit on PostgreSQL, BEGIN IMMEDIATE on SQLite
            return self._db.fast.run(self._forget, HeldLease(name, holder, token).params(), immediate=True) == 1
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
        params: dict[str, object] = {"p_now": now, "p_limit": limit}
        if not leased_only:
            params["p_opened_before"] = now - timedelta(seconds=older_than_s)
        try:
            with self._db.engine.connect() as conn:
                return list(conn.execute(_ORPHANS_LEASED if leased_only else _ORPHANS_ALL, params).scalars())
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read the unfinished sessions: {exc}") from exc
