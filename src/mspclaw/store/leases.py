"""Named ownership leases between replicas, with fencing tokens.

A lease says which replica (its ``holder``) owns a named piece of background work, a PSA poller or a
timer loop, until ``expires_at``. One row per name in ``ownership_leases``:

* :meth:`Leases.acquire` is one statement, ``INSERT ... ON CONFLICT (name) DO UPDATE ... WHERE`` the
  lease is free (released or expired) or already the caller's, ``RETURNING token``: on PostgreSQL the
  conflicting row is locked and the condition checked on its newest version, on SQLite the statement
  runs in a ``BEGIN IMMEDIATE`` transaction; either way, of two replicas racing for a free lease exactly
  one gets a token and the other ``None``.
* The **fencing token** goes up by one each time the lease changes hands (taken over after expiry,
  or taken again after a release: the row is kept, with no holder). A holder renewing, or acquiring
  again what it still holds, keeps its token.
* :meth:`Leases.renew` extends the lease only for its holder with its token, and only before it
  expired: a holder that missed its renewals must acquire again (and gets a new token if someone
  else held it meanwhile).
* :meth:`Leases.guard` is the fence: inside a transaction, it locks the lease's row (``FOR UPDATE``
  on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already holds the write lock) and raises
  :class:`LeaseLost` unless the caller's token is the current one and unexpired. A write in the same
  transaction after the guard therefore cannot land once another replica has taken the lease over,
  however late a paused or partitioned old holder wakes up::

      with leases.fenced("poller:halo", token) as conn:
          conn.execute(update(PSACursor).where(...).values(value=newest))

Expiry is judged by the injected ``clock`` of whoever runs the statement; replicas' clocks must agree
to well under a lease's time to live (NTP does). The fence does not depend on clocks for safety
beyond that: a token is current or it is not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Final, cast

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, Table, and_, case, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from mspclaw.errors import Conflict, StoreError
from mspclaw.observability.metrics import LEASE_TAKEOVERS, lease_kind
from mspclaw.store.database import Database
from mspclaw.store.tables import OwnershipLease, utcnow

_LEASES = cast("Table", OwnershipLease.__table__)
_BEFORE = _LEASES.alias("before")
MAX_NAME: Final = 200
MAX_HOLDER: Final = 100
MAX_TTL_S: Final = 86_400.0


class LeaseLost(Conflict):
    """A fenced write by a holder whose lease was taken over, released or expired: nothing was written."""

    code = "lease_lost"


class Lease(BaseModel):
    """Who holds a lease now, with which fencing token, until when."""

    model_config = ConfigDict(frozen=True)

    name: str
    holder: str
    token: int
    expires_at: datetime


def _check_name(name: str) -> None:
    if not name or len(name) > MAX_NAME:
        raise ValueError(f"a lease name must have 1 to {MAX_NAME} characters, not {len(name)}: {name[:80]!r}")


def _check_holder(holder: str) -> None:
    if not holder or len(holder) > MAX_HOLDER:
        raise ValueError(f"a lease holder must have 1 to {MAX_HOLDER} characters, not {len(holder)}: {holder[:80]!r}")


def _check_ttl(ttl_s: float) -> None:
    if not 0 < ttl_s <= MAX_TTL_S:
        raise ValueError(f"a lease's time to live must be over 0 and at most {MAX_TTL_S:g} seconds, not {ttl_s}")


class Leases:
    """Acquire, renew, release and check named leases in the database."""

    def __init__(self, db: Database, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._db = db
        self._clock = clock
        self._insert = postgresql.insert if db.dialect == "postgresql" else sqlite.insert

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the leases' clock must return aware datetimes")
        return now.astimezone(UTC)

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot {action}: {exc}") from exc

    def acquire(self, name: str, holder: str, ttl_s: float) -> int | None:
        """Take the lease ``name`` for ``ttl_s`` seconds: its fencing token, or ``None`` while another holds it.

        A free lease (never taken, released or expired) is taken with a token one higher than the
        last; a lease ``holder`` still holds is extended and keeps its token.
        """
        _check_name(name)
        _check_holder(holder)
        _check_ttl(ttl_s)
        now = self._now()
        until = now + timedelta(seconds=ttl_s)
        c = _LEASES.c
        still_mine = and_(c.holder == holder, c.expires_at > now)
        insert = self._insert(_LEASES).values(name=name, holder=holder, token=1, expires_at=until, updated_at=now)
        stmt = insert.on_conflict_do_update(
            index_elements=[c.name],
            set_={"holder": holder, "token": case((still_mine, c.token), else_=c.token + 1), "expires_at": until,
                  "updated_at": now},
            where=or_(c.holder.is_(None), c.expires_at <= now, c.holder == holder),
        ).returning(c.token, select(_BEFORE.c.holder).where(_BEFORE.c.name == name).scalar_subquery())
        # the subquery reads the holder before this statement on PostgreSQL (its snapshot), the new one on
        # SQLite (a single server: no other replica can hold its leases), so only PostgreSQL counts takeovers
        with self._errors(f"acquire the lease {name!r}"), self._db.transaction(immediate=True) as conn:
            row = conn.execute(stmt).first()
        token: int | None = row[0] if row is not None else None
        if row is not None and row[1] is not None and row[1] != holder:  # another replica's, expired
            LEASE_TAKEOVERS.labels(lease_kind(name)).inc()
        return token

    def renew(self, name: str, holder: str, token: int, ttl_s: float) -> bool:
        """Extend the lease to ``now + ttl_s``; ``False`` (and no change) unless ``holder`` holds it with
        ``token`` and it has not expired yet."""
        _check_ttl(ttl_s)
        now = self._now()
        c = _LEASES.c
        stmt = update(_LEASES).where(c.name == name, c.holder == holder, c.token == token, c.expires_at > now).values(
            expires_at=now + timedelta(seconds=ttl_s), updated_at=now)
        with self._errors(f"renew the lease {name!r}"), self._db.transaction(immediate=True) as conn:
            return conn.execute(stmt).rowcount == 1

    def release(self, name: str, holder: str, token: int) -> bool:
        """Give the lease up at once (another replica may take it now); ``False`` if ``holder`` did not hold
        it with ``token``. The row stays, so the next holder's token is higher."""
        now = self._now()
        c = _LEASES.c
        stmt = update(_LEASES).where(c.name == name, c.holder == holder, c.token == token).values(
            holder=None, expires_at=now, updated_at=now)
        with self._errors(f"release the lease {name!r}"), self._db.transaction(immediate=True) as conn:
            return conn.execute(stmt).rowcount == 1

    def current(self, name: str) -> Lease | None:
        """Who holds ``name`` now; ``None`` when nobody does (never taken, released or expired)."""
        c = _LEASES.c
        stmt = select(c.name, c.holder, c.token, c.expires_at).where(
            c.name == name, c.holder.is_not(None), c.expires_at > self._now())
        with self._errors(f"read the lease {name!r}"), self._db.engine.connect() as conn:
            row = conn.execute(stmt).first()
        return Lease.model_validate(dict(row._mapping)) if row is not None else None

    def guard(self, conn: Connection, name: str, token: int) -> None:
        """The fence: lock the lease's row in ``conn``'s transaction and raise :class:`LeaseLost` unless
        ``token`` is its current, unexpired token. Writes after it in the same transaction are safe
        from a takeover: the new holder's acquire waits for this transaction's row lock (PostgreSQL)
        or write lock (SQLite, ``immediate=True``)."""
        c = _LEASES.c
        row = conn.execute(select(c.holder, c.token, c.expires_at).where(c.name == name).with_for_update()).first()
        now = self._now()
        if row is None or row.holder is None or row.token != token or row.expires_at <= now:
            state = ("never taken" if row is None else "released" if row.holder is None
                     else f"taken over (token {row.token})" if row.token != token else "expired")
            raise LeaseLost(f"the lease {name!r} with token {token} is no longer held ({state}); nothing was written. "
                            "The replica that holds it now does this work")

    @contextmanager
    def fenced(self, name: str, token: int) -> Iterator[Connection]:
        """A transaction that first passes :meth:`guard`: committed when the body returns, rolled back if
        it raises. :class:`LeaseLost` before the body runs when ``token`` is not current."""
        with self._errors(f"write under the lease {name!r}"), self._db.transaction(immediate=True) as conn:
            self.guard(conn, name, token)
            yield conn

    def holders(self) -> list[Lease]:
        """Every lease held now, by name (for operators: who runs which poller and timer)."""
        c = _LEASES.c
        stmt = select(c.name, c.holder, c.token, c.expires_at).where(
            c.holder.is_not(None), c.expires_at > self._now()).order_by(c.name)
        with self._errors("read the leases"), self._db.engine.connect() as conn:
            rows: list[Any] = list(conn.execute(stmt))
        return [Lease.model_validate(dict(row._mapping)) for row in rows]
