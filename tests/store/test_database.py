"""The Database on SQLite and PostgreSQL: its Core transactions commit or roll back as a whole and
take SQLite's write lock when asked to, its fast path and Core write the same rows, and every
statement (the stores', the fast path's, the audit log's) passes the engine's events and SQL echo."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Engine, Table, bindparam, event, insert, select
from sqlalchemy.exc import IntegrityError
from tests.store.test_fastsql import a_session, call_values

from mspclaw.store.audit import AuditLog
from mspclaw.store.database import Database
from mspclaw.store.db import make_engine, migrate, sqlite_url
from mspclaw.store.tables import ToolCallRow
from mspclaw.store.tickets import TicketStore

_CALLS = cast("Table", ToolCallRow.__table__)
_INSERT_CALL = insert(_CALLS)
_CALL = select(_CALLS).where(_CALLS.c.call_id == bindparam("call_id"))


def test_a_core_transaction_commits_as_a_whole_or_not_at_all(engine: Engine) -> None:
    db = Database(engine)
    client_id, session_id = a_session(db.engine)
    with pytest.raises(IntegrityError), db.transaction() as conn:
        conn.execute(_INSERT_CALL, call_values(client_id, session_id, "c1"))
        conn.execute(_INSERT_CALL, call_values(client_id, session_id, "c1"))
    with db.transaction() as conn:
        assert conn.execute(_CALL, {"call_id": "c1"}).first() is None
        conn.execute(_INSERT_CALL, call_values(client_id, session_id, "c2"))
    with db.sessions() as orm:
        row = orm.get(ToolCallRow, "c2")
    assert row is not None and row.args == {"path": "/", "nested": {"list": [1, 2.5, None, "é"]}}


def test_the_fast_path_and_core_store_the_same_row(engine: Engine) -> None:
    db = Database(engine)
    client_id, session_id = a_session(db.engine)
    db.fast.run(db.fast.prepare(_INSERT_CALL), call_values(client_id, session_id, "fast"))
    with db.transaction() as conn:
        conn.execute(_INSERT_CALL, call_values(client_id, session_id, "core"))
    with engine.connect() as conn:
        raw = {call_id: rest for call_id, *rest in conn.exec_driver_sql(
            "SELECT call_id, CAST(args AS TEXT), CAST(output AS TEXT), CAST(created_at AS TEXT) FROM tool_calls").all()}
    assert raw["fast"] == raw["core"]


def test_an_immediate_core_transaction_holds_sqlites_write_lock_from_its_first_read(tmp_path: Path) -> None:
    engine, second = make_engine(sqlite_url(tmp_path)), make_engine(sqlite_url(tmp_path))
    migrate(engine)
    db, other = Database(engine), Database(second)
    client_id, session_id = a_session(db.engine)
    order: list[str] = []

    def write() -> None:
        with other.transaction() as conn:
            conn.execute(_INSERT_CALL, call_values(client_id, session_id, "c2"))
        order.append("other")

    with db.transaction(immediate=True) as conn:
        conn.execute(_CALL, {"call_id": "c1"}).all()  # a read only, yet the lock is held
        writer = threading.Thread(target=write)
        writer.start()
        time.sleep(0.3)
        order.append("first")
        conn.execute(_INSERT_CALL, call_values(client_id, session_id, "c1"))
    writer.join(10)
    engine.dispose()
    second.dispose()
    assert order == ["first", "other"]


def test_event_hooks_see_the_stores_statements_and_the_audit_insert(engine: Engine, tmp_path: Path) -> None:
    """What SQL echo and tracing instrumentation rely on: every statement passes the engine's
    ``before_cursor_execute`` hook: the fast path's per-ticket writes, a Core transaction's, and the
    audit log's batch (its chain's head and its insert)."""
    seen: list[str] = []

    def hook(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", hook)
    try:
        db = Database(engine)
        client_id, session_id = a_session(db.engine)  # TicketStore.open_ticket: the fast path
        TicketStore(db).add_event(session_id, "step", {"n": 1})
        with db.transaction() as conn:
            conn.execute(_INSERT_CALL, call_values(client_id, session_id, "c1"))
        AuditLog(db, tmp_path / "audit").append("seen", data={"n": 1})
    finally:
        event.remove(engine, "before_cursor_execute", hook)
    # on PostgreSQL the ticket, its session and its first event are one statement (WITH ... INSERT)
    assert any(s.startswith("INSERT INTO tickets") or "AS (INSERT INTO tickets" in s for s in seen), seen
    assert any(s.startswith("INSERT INTO session_events") for s in seen), seen
    assert any(s.startswith("INSERT INTO tool_calls") for s in seen), seen
    assert any(s.startswith("INSERT INTO audit_events") for s in seen), seen
    assert any("FROM audit_events" in s for s in seen), "the audit log reads its chain's head through the engine too"


def test_sql_echo_logs_the_fast_paths_statements(engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    db = Database(engine)
    _, session_id = a_session(db.engine)
    engine.echo = True
    try:
        with caplog.at_level("INFO", logger="sqlalchemy.engine"):
            TicketStore(db).add_event(session_id, "step", {"n": 1})
    finally:
        engine.echo = False
    assert any("INSERT INTO session_events" in record.getMessage() for record in caplog.records)


def test_a_connection_checked_out_when_the_pool_is_disposed_is_closed_when_it_comes_back(engine: Engine) -> None:
    """A worker thread still finishing a call when the server disposes its Database gives its connection back
    later: it is closed then, not left open in a pool nobody uses until the collector finds it."""
    db = Database(engine)
    conn = db.engine.connect()
    raw = conn.connection.dbapi_connection
    assert raw is not None
    db.dispose()
    conn.close()  # back to the pool that was disposed
    with pytest.raises(Exception, match=r"(?i)closed"):
        raw.cursor().execute("SELECT 1")
