"""Engine creation and migrations. SQLite (WAL, busy timeout) by default, PostgreSQL by URL.

Stores do not take an engine: wiring wraps it in a :class:`~mspclaw.store.database.Database`."""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import SQLAlchemyError

from mspclaw.errors import StoreError

MIGRATIONS = Path(__file__).parent / "migrations"

log = logging.getLogger(__name__)


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'mspclaw.db'}"


def make_engine(url: str) -> Engine:
    """Create an engine; on SQLite turn on WAL, a busy timeout and foreign keys."""
    kwargs: dict[str, Any] = {"future": True}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(url, **kwargs)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise StoreError(f"cannot use database URL {_redact(url)}: {exc}") from exc
    if url.startswith("sqlite"):

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

    return engine


def _redact(url: str) -> str:
    """Hide a password in a database URL before it goes into a message."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in creds else url
    return url


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


MIGRATION_LOCK = 0x6D7370636C6177  # PostgreSQL advisory lock key held while migrating ("mspclaw")


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent).

    On PostgreSQL the migration runs under a transaction-scoped advisory lock: replicas starting
    together wait for the first one, then find the schema current, instead of racing on its DDL.
    """
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            cfg = alembic_config(engine)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except SQLAlchemyError as exc:
        raise StoreError(f"database migration failed on {_redact(str(engine.url))}: {exc}") from exc


class WalCheckpointer:
    """Checkpoints a SQLite database's write-ahead log from a thread of its own.

    By default SQLite checkpoints inside the commit that takes the WAL past 1,000 pages: that
    commit copies the pages into the database file and syncs it. In the server that commit runs on
    the event loop (SQLite's writes are made inline, see ``pipeline/offload.py``), so every ticket
    of the process stalled for the copy and the sync. Started, this turns automatic checkpoints off
    on the engine's connections and runs a ``PASSIVE`` checkpoint (which never waits for readers or
    writers) every ``interval_s`` on a connection of its own, off the loop, as SQLite's
    documentation suggests for such applications. Other processes on the same database (the CLI)
    keep SQLite's default. Stopped, it checkpoints once more; SQLite also checkpoints when the last
    connection closes. Does nothing on other databases.
    """

    def __init__(self, engine: Engine, *, interval_s: float = 0.5) -> None:
        self.engine = engine
        self.interval_s = interval_s
        self.runs = 0
        """Checkpoints done so far (for tests and diagnostics)."""
        self.last: tuple[int, int, int] | None = None
        """The last checkpoint's (busy, WAL frames, frames checkpointed), as SQLite reports them."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._path = engine.url.database if engine.dialect.name == "sqlite" else None

    @staticmethod
    def _no_autocheckpoint(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute("PRAGMA wal_autocheckpoint=0")

    def start(self) -> None:
        if not self._path or self._path == ":memory:" or self._thread is not None:
            return
        event.listen(self.engine, "connect", self._no_autocheckpoint)
        self.engine.dispose()  # pooled connections reconnect with the pragma
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="wal-checkpoint", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        event.remove(self.engine, "connect", self._no_autocheckpoint)
        self.engine.dispose()  # connections made from now on checkpoint by themselves again

    def _loop(self) -> None:
        assert self._path is not None
        conn = sqlite3.connect(self._path, timeout=30, check_same_thread=False)
        try:
            while True:
                stopping = self._stop.wait(self.interval_s)
                try:
                    row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    self.last = (int(row[0]), int(row[1]), int(row[2]))
                    self.runs += 1
                except sqlite3.Error as exc:  # the next round tries again; commits never wait for this
                    log.warning("WAL checkpoint of %s failed: %s", self._path, exc)
                if stopping:
                    return
        finally:
            conn.close()
