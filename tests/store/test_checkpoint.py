"""SQLite's WAL checkpoints moved off the committing connection, on a real database file."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import text

from mspclaw.store.db import WalCheckpointer, make_engine, migrate, sqlite_url


def autocheckpoint(engine: object) -> int:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return int(conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar())


def test_commits_leave_checkpoints_to_the_thread_which_copies_the_log_into_the_database(tmp_path: Path) -> None:
    engine = make_engine(sqlite_url(tmp_path))
    migrate(engine)
    assert autocheckpoint(engine) == 1000  # SQLite's default: the committing connection checkpoints
    checkpointer = WalCheckpointer(engine, interval_s=0.05)
    checkpointer.start()
    try:
        assert autocheckpoint(engine) == 0
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE filler (id INTEGER PRIMARY KEY, pad TEXT)")
        for i in range(300):
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO filler (pad) VALUES (:pad)"), {"pad": "x" * 2000 + str(i)})
        deadline = time.monotonic() + 10
        while (checkpointer.last is None or checkpointer.last[2] == 0) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert checkpointer.last is not None and checkpointer.last[2] > 0, "nothing was checkpointed"
        assert checkpointer.last[0] == 0  # a PASSIVE checkpoint never reports busy by waiting
    finally:
        checkpointer.stop()
    assert autocheckpoint(engine) == 1000  # stopped: new connections checkpoint by themselves again
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM filler").scalar() == 300


def test_it_does_nothing_for_an_in_memory_or_server_database() -> None:
    memory = WalCheckpointer(make_engine("sqlite://"))
    memory.start()
    assert memory._thread is None
    memory.stop()
    server = WalCheckpointer(make_engine("postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    server.start()
    assert server._thread is None
