"""One way to the database: the engine, its ORM sessions and its hot statements, built once by wiring.

Every store takes a :class:`Database` in its constructor, and nothing else of the database:

* :attr:`Database.sessions`: the ORM sessionmaker, for reads that build rows into objects and for
  writes that are not on every ticket's path;
* :attr:`Database.fast`: the statements every ticket runs, prepared once (:mod:`.fastsql`);
* :meth:`Database.transaction`: a transaction for Core statements that are not on that path
  (``BEGIN IMMEDIATE`` on SQLite, an advisory lock on PostgreSQL, when asked).

Everything goes through a SQLAlchemy ``Connection``, so SQL echo, the engine's events
(``before_cursor_execute``, tracing instrumentation) and SQLAlchemy's translation of driver errors
(:class:`~sqlalchemy.exc.IntegrityError`, a dropped connection invalidated in the pool) apply to
every statement, the audit log's included.

With :mod:`.loop_guard` on (the tests, ``MSPCLAW_LOOP_GUARD=1``), a statement run on an event loop's
thread raises instead of blocking the loop.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, exc, orm
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from mspclaw.errors import StoreError
from mspclaw.store import loop_guard
from mspclaw.store.db import make_engine, migrate
from mspclaw.store.fastsql import FastSQL

POOL_SIZE = min(32, (os.cpu_count() or 1) + 4) + 4
"""Connections a pool of a server process keeps open to a database server (PostgreSQL). Every thread that
runs store calls holds one at a time: the default executor's ``min(32, CPUs + 4)`` (``run_store``), the
event loop, the audit writer, the job wake-up listener; a pool smaller than that opens a fresh
connection (a new PostgreSQL backend process) for each call beyond it and closes it on return.
:meth:`Database.open` keeps two such pools on PostgreSQL (transactions, and single statements in
autocommit mode); each opens a connection only when that many are in use at once, and a thread holds
one connection of either at a time. Replicas times twice (this plus :data:`MAX_OVERFLOW`) is the most
a burst could open; keep it under the server's ``max_connections``."""
MAX_OVERFLOW = 8
"""Connections beyond :data:`POOL_SIZE` under a burst; closed as they are returned."""
PREPARE_THRESHOLD = 1
"""psycopg prepares a statement on the server at its second execution on a connection (psycopg's default:
the sixth). The hot statements are a few dozen, run over every pooled connection: by psycopg's
default, several thousand executions of a burst would each be parsed and planned again first."""
PING_AFTER_IDLE_S = 10.0
"""A pooled connection idle for this long is pinged (``SELECT 1``) when taken, and replaced if dead
(a database restart, a failover, an idle timeout); one in steady use is not (see :func:`server_engine`)."""



def _close_on_checkin(dbapi_connection: Any, _record: Any) -> None:
    """A connection returned to a disposed pool is closed at once."""
    if dbapi_connection is not None:
        dbapi_connection.close()


def dispose_engine(engine: Engine) -> None:
    """Close the engine's pooled connections, and each connection still checked out (a worker thread
    finishing a call its cancelled caller no longer waits for) when it comes back, instead of letting
    it go back to a pool nobody uses and stay open until the garbage collector finds it."""
    event.listen(engine.pool, "checkin", _close_on_checkin)
    engine.dispose()


def _dispose_too(other: Engine, _disposed: Engine) -> None:
    """``engine_disposed``: the engine's partner (its autocommit engine) goes with it."""
    dispose_engine(other)


def _lost_too(other: Engine, context: ExceptionContext) -> None:
    """``handle_error``: a connection of one engine found lost (a database restart, a failover, a dropped
    network) means the other's pooled connections to the same server are lost too: they are closed now,
    as SQLAlchemy does for the engine that saw it, so the next statement on either opens a fresh one."""
    if context.is_disconnect:
        other.pool.dispose()


class Database:
    """The engine, the ORM sessionmaker and the dialect's name of one database."""

    def __init__(self, engine: Engine, *, autocommit: Engine | None = None) -> None:
        """``autocommit``: a second engine on the same database whose connections stay in autocommit mode
        (:func:`server_engine` with ``autocommit=True``), for the fast path's single statements
        (:class:`~.fastsql.FastSQL`); :meth:`open` builds one on PostgreSQL. Without it those statements
        switch a connection of ``engine`` into autocommit mode and back, which costs more CPU than the
        statement's own SQLAlchemy overhead (figures: ``docs/benchmarks.md``, Pipeline)."""
        self.engine = engine
        self.autocommit = autocommit
        self.dialect: str = engine.dialect.name
        """``"sqlite"`` or ``"postgresql"``."""
        self.sessions: sessionmaker[orm.Session] = sessionmaker(engine, expire_on_commit=False)
        self.fast = FastSQL(engine, autocommit=autocommit)
        """The hot statements, prepared once for this engine."""
        if autocommit is not None:  # whoever disposes of the engine (``dispose``, a test) disposes of both
            event.listen(engine, "engine_disposed", functools.partial(_dispose_too, autocommit))
            event.listen(engine, "handle_error", functools.partial(_lost_too, autocommit))
            event.listen(autocommit, "handle_error", functools.partial(_lost_too, engine))
        if loop_guard.enabled():
            loop_guard.install(engine)
            if autocommit is not None:
                loop_guard.install(autocommit)

    @classmethod
    def open(cls, url: str, *, migrated: bool = True) -> Database:
        """The database at ``url`` (:func:`server_engine`; on PostgreSQL with a second one in autocommit mode for
        single statements), migrated to the newest schema unless ``migrated=False``."""
        engine = server_engine(url)
        db = cls(engine, autocommit=None if engine.dialect.name == "sqlite" else server_engine(url, autocommit=True))
        if migrated:
            migrate(db.engine)
        return db

    @property
    def engines(self) -> tuple[Engine, ...]:
        """Every engine the database's statements run on (:attr:`engine`, then :attr:`autocommit` if any): a
        hook that must see every statement (``before_cursor_execute``) listens on each."""
        return (self.engine,) if self.autocommit is None else (self.engine, self.autocommit)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def commits_wait_for_server(self) -> bool:
        """Whether a commit waits for a database server's round trip and WAL flush (PostgreSQL),
        rather than a local file write (SQLite)."""
        return not self.is_sqlite

    def dispose(self) -> None:
        """Close the pools' connections (at exit, or after a fork): :func:`dispose_engine` (the autocommit
        engine's with the engine's)."""
        dispose_engine(self.engine)

    # --- transactions ----------------------------------------------------------------------------

    @contextmanager
    def transaction(self, *, immediate: bool = False, pg_advisory_key: int | None = None) -> Iterator[Connection]:
        """One transaction on a pooled connection: committed when the body returns, rolled back if it raises.

        The body may ``conn.commit()`` itself (work after its last statement then runs outside the
        transaction). ``immediate``: on SQLite, ``BEGIN IMMEDIATE`` first, so nothing read changes
        before the commit. ``pg_advisory_key``: on PostgreSQL, ``pg_advisory_xact_lock(key)`` first.
        The same transaction as :meth:`.FastSQL.transaction`, for Core statements."""
        with self.fast.transaction(immediate=immediate, pg_advisory_key=pg_advisory_key) as tx:
            yield tx.connection


def server_engine(url: str, *, ping_after_idle_s: float = PING_AFTER_IDLE_S, autocommit: bool = False) -> Engine:
    """The engine of a process that works tickets: SQLite as :func:`~mspclaw.store.db.make_engine` builds it;
    PostgreSQL with a pool of :data:`POOL_SIZE` (the threads that hold a connection) and a liveness
    check only on connections idle for ``ping_after_idle_s`` (default :data:`PING_AFTER_IDLE_S`).

    ``pool_pre_ping`` pings on every checkout: a ``SELECT 1`` round trip before each store call, a
    large share of a ticket's round trips (figures: ``docs/benchmarks.md``). A connection
    that was in use a moment ago is alive or its failure is SQLAlchemy's to handle: a statement on a
    dropped connection raises, and the pool then discards every connection made before the drop.
    What the ping protects is the connection that sat idle across a restart or an idle timeout;
    this pings those, with SQLAlchemy's documented "pessimistic" checkout hook: a dead one raises
    ``DisconnectionError`` and the pool takes another. psycopg prepares each statement at its second
    execution on a connection (:data:`PREPARE_THRESHOLD`). ``autocommit``: every connection of the engine
    in autocommit mode (``isolation_level="AUTOCOMMIT"``), for statements that are transactions by
    themselves; never for a transaction of several statements."""
    if url.startswith("sqlite"):
        return make_engine(url)
    try:
        engine = create_engine(url, pool_size=POOL_SIZE, max_overflow=MAX_OVERFLOW, pool_pre_ping=False,
                               **({"isolation_level": "AUTOCOMMIT"} if autocommit else {}),
                               connect_args={"prepare_threshold": PREPARE_THRESHOLD}
                               if make_url(url).get_driver_name() == "psycopg" else {})
    except (exc.SQLAlchemyError, ImportError, ValueError) as error:
        raise StoreError(f"cannot use database URL {_shown(url)}: {error}; give a URL such as "
                         "postgresql+psycopg://user@host:5432/db (MSPCLAW_DATABASE_URL)") from error
    event.listen(engine, "checkin", _note_idle)
    event.listen(engine, "checkout", functools.partial(_ping_if_idle, ping_after_idle_s))
    return engine


def _shown(url: str) -> str:
    """``url`` without its password, for a message."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except exc.ArgumentError:
        return "(not a database URL)"


def _note_idle(_dbapi: Any, record: ConnectionPoolEntry) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(after_s: float, dbapi: Any, record: ConnectionPoolEntry, _proxy: PoolProxiedConnection) -> None:
    """On checkout: ``SELECT 1`` in autocommit mode (no transaction left open) on a connection idle for
    ``after_s``; a driver error there means a dead connection, which the pool replaces."""
    idle_since = record.info.get("idle_since")
    idle_for = time.monotonic() - idle_since if idle_since is not None else 0.0
    if idle_since is None or idle_for < after_s:
        return  # new, or in use a moment ago
    try:
        autocommit = dbapi.autocommit
        dbapi.autocommit = True
        try:
            cursor = dbapi.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
        finally:
            if not dbapi.closed:
                dbapi.autocommit = autocommit
    except Exception as error:  # the driver's own error class, whichever driver: replace the connection
        raise exc.DisconnectionError(f"a pooled connection idle for {idle_for:.0f} s is dead: {error}") from error
