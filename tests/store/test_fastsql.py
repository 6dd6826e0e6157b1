"""FastSQL on SQLite and PostgreSQL: rows it writes read back the same through the ORM and Core,
its transactions commit or roll back as a ``Connection``'s do, driver errors come out as the
SQLAlchemy exceptions the stores already translate, and its statements pass the engine's events."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Engine, Table, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError, StatementError

from mspclaw.store.database import Database
from mspclaw.store.db import make_engine, migrate, sqlite_url
from mspclaw.store.fastsql import FastSQL
from mspclaw.store.registry import Registry
from mspclaw.store.tables import Client, Session, Ticket, ToolCallRow, utcnow
from mspclaw.store.tickets import TicketStore

_CALLS = cast("Table", ToolCallRow.__table__)
_CLIENTS = cast("Table", Client.__table__)
_INSERT_CALL = insert(_CALLS)
_CALL = select(_CALLS).where(_CALLS.c.call_id == bindparam("call_id"))
_FINISH = update(_CALLS).where(_CALLS.c.call_id == bindparam("p_id")).values(
    status="ok", output=bindparam("p_output"), finished_at=bindparam("p_at"))


def a_session(engine: Engine) -> tuple[str, str]:
    db = Database(engine)
    client = Registry(db).add_client("Acme", {"local": "7"})
    _, session = TicketStore(db).open_ticket(client_id=client.id, subject="s", body="", requester="",
                                             device_id=None)
    return client.id, session.id


def call_values(client_id: str, session_id: str, call_id: str, **changes: Any) -> dict[str, Any]:
    return {"call_id": call_id, "session_id": session_id, "client_id": client_id, "agent_id": "ag_1",
            "tool": "disk_usage", "args": {"path": "/", "nested": {"list": [1, 2.5, None, "é"]}},
            "approval_id": None, "status": "pending", "output": None, "error_code": None, "error_message": None,
            "duration_ms": None, "created_at": datetime(2026, 11, 24, 3, 4, 5, 678901, tzinfo=UTC),
            "finished_at": None, **changes}


def test_a_row_written_by_fastsql_reads_back_the_same_through_the_orm(engine: Engine) -> None:
    client_id, session_id = a_session(engine)
    fast = FastSQL(engine)
    # an aware time in another zone is stored as UTC, as UTCDateTime stores it
    created = datetime(2026, 11, 24, 5, 4, 5, 678901, tzinfo=timezone(timedelta(hours=2)))
    with fast.transaction() as tx:
        tx.execute(fast.prepare(_INSERT_CALL), call_values(client_id, session_id, "c1", created_at=created))
    with Database(engine).sessions() as db:
        row = db.get(ToolCallRow, "c1")
        assert row is not None
        assert row.args == {"path": "/", "nested": {"list": [1, 2.5, None, "é"]}}
        assert row.created_at == created and row.created_at.tzinfo is not None
        assert row.output is None and row.finished_at is None and row.duration_ms is None
    # and back through FastSQL's own read: the same values, through the same result processors
    found = FastSQL(engine).transaction
    with found() as tx:
        mapped = tx.mapping(fast.prepare(_CALL), {"call_id": "c1"})
    assert mapped is not None
    assert mapped["created_at"] == created and mapped["created_at"].utcoffset() == timedelta(0)
    assert mapped["args"] == row.args and mapped["output"] is None


def test_none_in_a_json_column_is_stored_as_sqlalchemy_stores_it(engine: Engine) -> None:
    """The generic JSON type stores Python ``None`` as JSON ``null``: both paths must write the same thing."""
    client_id, session_id = a_session(engine)
    fast = FastSQL(engine)
    with fast.transaction() as tx:
        tx.execute(fast.prepare(_INSERT_CALL), call_values(client_id, session_id, "fast"))
    with engine.begin() as conn:
        conn.execute(_INSERT_CALL, call_values(client_id, session_id, "core"))
    with engine.connect() as conn:
        raw: dict[str, str] = dict(conn.exec_driver_sql(
            "SELECT call_id, CAST(output AS TEXT) FROM tool_calls ORDER BY call_id").all())
    assert raw["fast"] == raw["core"]


def test_an_update_counts_its_rows_and_stores_json_and_times(engine: Engine) -> None:
    client_id, session_id = a_session(engine)
    fast = FastSQL(engine)
    fast.run(fast.prepare(_INSERT_CALL), call_values(client_id, session_id, "c1"))
    at = utcnow()
    finish = fast.prepare(_FINISH)
    assert fast.run(finish, {"p_id": "c1", "p_output": {"free_bytes": 2**40, "ok": True}, "p_at": at}) == 1
    assert fast.run(finish, {"p_id": "nope", "p_output": {}, "p_at": at}) == 0
    with Database(engine).sessions() as db:
        row = db.get(ToolCallRow, "c1")
    assert row is not None and row.status == "ok"
    assert row.output == {"free_bytes": 2**40, "ok": True} and row.finished_at == at


def test_a_transaction_that_raises_is_rolled_back(engine: Engine) -> None:
    client_id, session_id = a_session(engine)
    fast = FastSQL(engine)
    with pytest.raises(RuntimeError), fast.transaction() as tx:
        tx.execute(fast.prepare(_INSERT_CALL), call_values(client_id, session_id, "c1"))
        raise RuntimeError("the body failed")
    assert fast.read(fast.prepare(_CALL), {"call_id": "c1"}) == []


def test_a_duplicate_key_is_sqlalchemys_integrity_error_and_nothing_of_the_transaction_stays(engine: Engine) -> None:
    client_id, session_id = a_session(engine)
    fast = FastSQL(engine)
    stmt = fast.prepare(_INSERT_CALL)
    fast.run(stmt, call_values(client_id, session_id, "c1"))
    with pytest.raises(IntegrityError), fast.transaction() as tx:
        tx.execute(stmt, call_values(client_id, session_id, "c2"))
        tx.execute(stmt, call_values(client_id, session_id, "c1"))
    assert fast.read(fast.prepare(_CALL), {"call_id": "c2"}) == []
    # the pool's connection is usable afterwards
    fast.run(stmt, call_values(client_id, session_id, "c3"))
    assert len(fast.read(fast.prepare(_CALL), {"call_id": "c3"})) == 1


def test_a_foreign_key_violation_is_an_integrity_error(engine: Engine) -> None:
    fast = FastSQL(engine)
    with pytest.raises(IntegrityError):
        fast.run(fast.prepare(_INSERT_CALL), call_values("cl_missing", "ss_missing", "c1"))


def test_a_bad_parameter_is_a_statement_error_before_anything_is_sent(engine: Engine) -> None:
    client_id, session_id = a_session(engine)
    fast = FastSQL(engine)
    naive = datetime(2026, 11, 24, 3, 4, 5)  # the point of the test
    with pytest.raises(StatementError, match="naive datetime"):
        fast.run(fast.prepare(_INSERT_CALL), call_values(client_id, session_id, "c1", created_at=naive))
    values = call_values(client_id, session_id, "c1")
    del values["tool"]
    with pytest.raises(StatementError, match="tool"):
        fast.run(fast.prepare(_INSERT_CALL), values)


def test_statements_it_cannot_run_are_refused_when_prepared(engine: Engine) -> None:
    fast = FastSQL(engine)
    tickets = cast("Table", Ticket.__table__)
    with pytest.raises(ValueError, match="updated_at"):  # onupdate=utcnow would have to run in Python
        fast.prepare(update(tickets).where(tickets.c.id == bindparam("p_id")).values(status=bindparam("p_s")))
    with pytest.raises(ValueError, match="expanding"):
        fast.prepare(select(_CALLS).where(_CALLS.c.call_id.in_(bindparam("ids", expanding=True))))
    with pytest.raises(ValueError, match="computed per execution"):
        fast.prepare(select(_CALLS).where(_CALLS.c.created_at < bindparam("now", callable_=utcnow)))


def test_an_immediate_transaction_holds_sqlites_write_lock_from_its_first_read(tmp_path: Path) -> None:
    """A writer that starts while an immediate transaction is open waits for its commit (SQLite only:
    PostgreSQL's claim locks its row with ``FOR UPDATE``)."""
    engine, second = make_engine(sqlite_url(tmp_path)), make_engine(sqlite_url(tmp_path))
    migrate(engine)
    client_id, session_id = a_session(engine)
    fast, other = FastSQL(engine), FastSQL(second)
    order: list[str] = []

    def write() -> None:
        other.run(other.prepare(_INSERT_CALL), call_values(client_id, session_id, "c2"))
        order.append("other")

    with fast.transaction(immediate=True) as tx:
        tx.all(fast.prepare(_CALL), {"call_id": "c1"})  # a read only, yet the lock is held
        writer = threading.Thread(target=write)
        writer.start()
        time.sleep(0.3)
        order.append("first")
        tx.execute(fast.prepare(_INSERT_CALL), call_values(client_id, session_id, "c1"))
    writer.join(10)
    engine.dispose()
    second.dispose()
    assert order == ["first", "other"]


def test_a_session_and_ticket_written_by_the_store_read_back_through_the_orm(engine: Engine) -> None:
    db = Database(engine)
    sessions = db.sessions
    client = Registry(db).add_client("Acme")
    store = TicketStore(db)
    ticket, session = store.open_ticket(client_id=client.id, subject="disk full", body="", requester="a@b.c",
                                        device_id=None, psa="local", external_id="42")
    store.close_session(session.id, ticket.id, outcome="resolved", note="n", reply="r", reason="done")
    with sessions() as orm:
        stored = orm.get(Ticket, ticket.id)
        run = orm.get(Session, session.id)
    assert stored is not None and run is not None
    assert stored.status == "resolved" and stored.created_at == ticket.created_at
    assert stored.updated_at >= stored.created_at and stored.updated_at.tzinfo is not None
    assert (run.status, run.outcome, run.note, run.reply, run.reason) == ("resolved", "resolved", "n", "r", "done")
    found = store.find_external("local", "42")
    assert found is not None and found.id == ticket.id and found.created_at == ticket.created_at
    assert store.ticket(ticket.id).status == "resolved"


def test_statements_of_a_transaction_stay_together_on_a_sqlite_connection_in_autocommit_mode(tmp_path: Path) -> None:
    """pysqlite in autocommit mode commits each statement by itself; a FastSQL transaction must not."""
    engine = make_engine(sqlite_url(tmp_path))
    migrate(engine)
    client_id, session_id = a_session(engine)
    fast = FastSQL(engine)
    stmt = fast.prepare(_INSERT_CALL)
    fairy = engine.raw_connection()
    fairy.driver_connection.isolation_level = None  # type: ignore[union-attr]
    fairy.close()
    with pytest.raises(IntegrityError), fast.transaction() as tx:
        tx.execute(stmt, call_values(client_id, session_id, "c1"))
        tx.execute(stmt, call_values(client_id, session_id, "c1"))
    assert fast.read(fast.prepare(_CALL), {"call_id": "c1"}) == []
    engine.dispose()


def test_single_statements_leave_every_pooled_connection_ready_for_a_transaction(engine: Engine) -> None:
    """On PostgreSQL ``run``/``read`` use autocommit mode; no connection may go back to the pool in it,
    after a success or an error, or a later multi-statement transaction would commit piecemeal."""
    client_id, session_id = a_session(engine)
    fast = FastSQL(engine)
    stmt = fast.prepare(_INSERT_CALL)
    assert fast.run(stmt, call_values(client_id, session_id, "c1")) == 1
    with pytest.raises(IntegrityError):
        fast.run(stmt, call_values(client_id, session_id, "c1"))
    assert fast.mapping(fast.prepare(_CALL), {"call_id": "c1"}) is not None
    pooled = [engine.raw_connection() for _ in range(engine.pool.checkedin())]  # type: ignore[attr-defined]
    try:
        for fairy in pooled:
            driver: Any = fairy.driver_connection
            if engine.dialect.name == "sqlite":
                assert driver.isolation_level is not None
            else:
                assert driver.autocommit is False
    finally:
        for fairy in pooled:
            fairy.close()
    with pytest.raises(IntegrityError), fast.transaction() as tx:
        tx.execute(stmt, call_values(client_id, session_id, "c2"))
        tx.execute(stmt, call_values(client_id, session_id, "c1"))
    assert fast.mapping(fast.prepare(_CALL), {"call_id": "c2"}) is None
