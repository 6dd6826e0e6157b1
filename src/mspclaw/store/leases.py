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
from datetime import datetime, timedelta
from typing import Any, Final, cast

from pydantic import BaseModel, ConfigDict
from sqlalchemy import BigInteger, Connection, String, Table, and_, bindparam, case, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from mspclaw.errors import Conflict, StoreError
from mspclaw.observability.metrics import LEASE_TAKEOVERS, lease_kind
from mspclaw.store.clock import aware_now
from mspclaw.store.database import Database
from mspclaw.store.tables import OwnershipLease, UTCDateTime, utcnow

_LEASES = cast("Table", OwnershipLease.__table__)
_BEFORE = _LEASES.alias("before")
MAX_NAME: Final = 200
MAX_HOLDER: Final = 100
MAX_TTL_S: Final = 86_400.0

# Built once and prepared once per database (FastSQL): building them per call, SQLAlchemy's coercions
# included, cost more CPU than running them (docs/benchmarks.md, Pipeline).
_c = _LEASES.c
_NAME, _HOLDER = bindparam("p_name", type_=String()), bindparam("p_holder", type_=String())
_TOKEN = bindparam("p_token", type_=BigInteger())
_NOW, _UNTIL = bindparam("p_now", type_=UTCDateTime()), bindparam("p_until", type_=UTCDateTime())


def _acquire(insert: Callable[[Table], Any]) -> Any:
    """``INSERT ... ON CONFLICT (name) DO UPDATE ... WHERE`` free or the caller's ``RETURNING`` the token and the
    holder before (for :meth:`Leases.acquire`), for one dialect's ``insert``."""
    still_mine = and_(_c.holder == _HOLDER, _c.expires_at > _NOW)
    return insert(_LEASES).values(name=_NAME, holder=_HOLDER, token=1, expires_at=_UNTIL, updated_at=_NOW) \
        .on_conflict_do_update(
            index_elements=[_c.name],
            set_={"holder": _HOLDER, "token": case((still_mine, _c.token), else_=_c.token + 1), "expires_at": _UNTIL,
                  "updated_at": _NOW},
            where=or_(_c.holder.is_(None), _c.expires_at <= _NOW, _c.holder == _HOLDER),
        ).returning(_c.token, select(_BEFORE.c.holder).where(_BEFORE.c.name == _NAME).scalar_subquery())


_ACQUIRE = {"postgresql": _acquire(postgresql.insert), "sqlite": _acquire(sqlite.insert)}
_RENEW = update(_LEASES).where(_c.name == _NAME, _c.holder == _HOLDER, _c.token == _TOKEN, _c.expires_at > _NOW) \
    .values(expires_at=_UNTIL, updated_at=_NOW)
_RELEASE = update(_LEASES).where(_c.name == _NAME, _c.holder == _HOLDER, _c.token == _TOKEN) \
    .values(holder=None, expires_at=_NOW, updated_at=_NOW)
_HELD_NOW = and_(_c.holder.is_not(None), _c.expires_at > _NOW)
_CURRENT = select(_c.name, _c.holder, _c.token, _c.expires_at).where(_c.name == _NAME, _HELD_NOW)
_HOLDERS = select(_c.name, _c.holder, _c.token, _c.expires_at).where(_HELD_NOW).order_by(_c.name)
_GUARD = select(_c.holder, _c.token, _c.expires_at).where(_c.name == _NAME).with_for_update()


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
        self._fast = fast = db.fast
        self._acquire = fast.prepare(_ACQUIRE["postgresql" if db.dialect == "postgresql" else "sqlite"])
        self._renew, self._release = fast.prepare(_RENEW), fast.prepare(_RELEASE)
        self._current, self._holders = fast.prepare(_CURRENT), fast.prepare(_HOLDERS)

    def _now(self) -> datetime:
        return aware_now(self._clock, "the leases' clock")

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
        # one statement by itself (autocommit on PostgreSQL, BEGIN IMMEDIATE on SQLite); the subquery reads
        # the holder before this statement on PostgreSQL (its snapshot), the new one on SQLite (a single
        # server: no other replica can hold its leases), so only PostgreSQL counts takeovers
        with self._errors(f"acquire the lease {name!r}"):
            rows = self._fast.read(self._acquire, {"p_name": name, "p_holder": holder, "p_until": until, "p_now": now},
                                   immediate=True)
        row = rows[0] if rows else None
        token: int | None = row[0] if row is not None else None
        if row is not None and row[1] is not None and row[1] != holder:  # another replica's, expired
            LEASE_TAKEOVERS.labels(lease_kind(name)).inc()
        return token

    def renew(self, name: str, holder: str, token: int, ttl_s: float) -> bool:
        """Extend the lease to ``now + ttl_s``; ``False`` (and no change) unless ``holder`` holds it with
        ``token`` and it has not expired yet."""
        _check_ttl(ttl_s)
        now = self._now()
        with self._errors(f"renew the lease {name!r}"):
            return self._fast.run(self._renew, {"p_name": name, "p_holder": holder, "p_token": token, "p_now": now,
                                                "p_until": now + timedelta(seconds=ttl_s)}, immediate=True) == 1

    def release(self, name: str, holder: str, token: int) -> bool:
        """Give the lease up at once (another replica may take it now); ``False`` if ``holder`` did not hold
        it with ``token``. The row stays, so the next holder's token is higher."""
        with self._errors(f"release the lease {name!r}"):
            return self._fast.run(self._release, {"p_name": name, "p_holder": holder, "p_token": token,
                                                  "p_now": self._now()}, immediate=True) == 1

    def current(self, name: str) -> Lease | None:
        """Who holds ``name`` now; ``None`` when nobody does (never taken, released or expired)."""
        with self._errors(f"read the lease {name!r}"):
            row = self._fast.mapping(self._current, {"p_name": name, "p_now": self._now()})
        return Lease.model_validate(row) if row is not None else None

    def guard(self, conn: Connection, name: str, token: int) -> None:
        """The fence: lock the lease's row in ``conn``'s transaction and raise :class:`LeaseLost` unless
        ``token`` is its current, unexpired token. Writes after it in the same transaction are safe
        from a takeover: the new holder's acquire waits for this transaction's row lock (PostgreSQL)
        or write lock (SQLite, ``immediate=True``)."""
        row = conn.execute(_GUARD, {"p_name": name}).first()
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
        with self._errors("read the leases"):
            rows = self._fast.read(self._holders, {"p_now": self._now()})
        return [Lease.model_validate(dict(zip(self._holders.columns, row, strict=True))) for row in rows]
