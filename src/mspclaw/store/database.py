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
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, orm
from sqlalchemy.orm import sessionmaker

from mspclaw.store.db import make_engine, migrate
from mspclaw.store.fastsql import FastSQL


class Database:
    """The engine, the ORM sessionmaker and the dialect's name of one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect: str = engine.dialect.name
        """``"sqlite"`` or ``"postgresql"``."""
        self.sessions: sessionmaker[orm.Session] = sessionmaker(engine, expire_on_commit=False)
        self.fast = FastSQL(engine)
        """The hot statements, prepared once for this engine."""

    @classmethod
    def open(cls, url: str, *, migrated: bool = True) -> Database:
        """The database at ``url``, migrated to the newest schema unless ``migrated=False``."""
        db = cls(make_engine(url))
        if migrated:
            migrate(db.engine)
        return db

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def commits_wait_for_server(self) -> bool:
        """Whether a commit waits for a database server's round trip and WAL flush (PostgreSQL),
        rather than a local file write (SQLite)."""
        return not self.is_sqlite

    def dispose(self) -> None:
        """Close the pool's connections (at exit, or after a fork)."""
        self.engine.dispose()

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
