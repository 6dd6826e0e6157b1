"""A tool call's row, its result and the step that reports it as one write, on SQLite and PostgreSQL
(real servers: a SQLite file, the PostgreSQL at ``TEST_POSTGRES_URL`` on loopback): what is stored,
that it is all or nothing, that a row left pending by an earlier version gets its result, and that on
PostgreSQL it is one statement with no transaction around it (one round trip)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from tests.store.ticket_writes import Statements, opened

from mspclaw.store.runs import RunStore
from mspclaw.store.tables import Session, SessionEvent, Step, ToolCallRow
from mspclaw.store.tickets import MAX_CALLS_PER_WRITE, FinishedCall

SENT = datetime(2026, 12, 6, 15, 0, tzinfo=UTC)


def finished(call_id: str, session: Session, *, ok: bool = True, output: dict[str, Any] | None = None,
             error: tuple[str, str] | None = None) -> FinishedCall:
    return FinishedCall(call_id=call_id, session_id=session.id, client_id=session.client_id, agent_id="ag_1",
                        tool="disk_usage", args={"path": "C:\\", "password": "hunter2"}, approval_id=None, ok=ok,
                        output=output, error_code=error[0] if error else None,
                        error_message=error[1] if error else None, duration_ms=12, created_at=SENT)


def test_a_call_its_result_and_its_step_are_one_write(engine: Engine) -> None:
    db, store, session = opened(engine)
    call = finished(f"call_{session.id}_1", session, output={"free_gb": 3, "note": "password=hunter2"})
    with Statements(engine) as seen:
        step, announced = store.add_step_and_event(session.id, title="look", tool="disk_usage", args={}, ok=True,
                                                   observation={"output": {"free_gb": 3}}, event="step",
                                                   data={"index": 1}, calls=[call])
    assert (step.index, announced.seq) == (1, 2)
    row = RunStore(db).call(call.call_id)
    assert row is not None
    assert (row.status, row.agent_id, row.tool, row.duration_ms, row.session_id) == (
        "ok", "ag_1", "disk_usage", 12, session.id)
    assert row.output is not None and row.output["free_gb"] == 3
    assert "hunter2" not in str(row.output) and "hunter2" not in str(row.args)  # redacted like every write
    assert row.created_at == SENT and row.finished_at is not None
    assert [s.title for s in store.steps(session.id)] == ["look"]
    if db.dialect == "postgresql":
        assert len(seen.sql) == 1 and seen.sql[0].startswith("WITH "), seen.sql
        assert seen.commits == 0
    else:
        assert seen.commits == 1


def test_a_failed_call_is_stored_with_its_error(engine: Engine) -> None:
    _, store, session = opened(engine)
    call = finished("call_x_1", session, ok=False, error=("tool_timeout", "no answer in 30 s"))
    second = finished("call_x_2", session)
    store.add_step_and_event(session.id, title="look", tool="disk_usage", args={}, ok=False, observation={},
                             event="step", data={}, calls=[call, second])
    stored = {c.call_id: c for c in store.calls(session.id)}
    assert (stored["call_x_1"].status, stored["call_x_1"].error_code, stored["call_x_1"].error_message) == (
        "error", "tool_timeout", "no answer in 30 s")
    assert stored["call_x_2"].status == "ok"


def test_the_call_rows_fall_with_their_step(engine: Engine) -> None:
    """The step's INSERT fails (a session that does not exist): the call's row is not stored either."""
    _, store, session = opened(engine)
    call = finished("call_y_1", session)
    with pytest.raises(IntegrityError):
        store.add_step_and_event("ss_missing", title="t", tool=None, args={}, ok=None, observation={},
                                 event="step", data={}, calls=[call])
    with engine.connect() as conn:
        assert conn.execute(select(ToolCallRow.__table__)).all() == []
        assert conn.execute(select(Step.__table__)).all() == []
        assert [e.event for e in conn.execute(select(SessionEvent.__table__))] == ["started"]


def test_a_row_left_pending_gets_its_result(engine: Engine) -> None:
    """A call recorded as pending before its dispatch (the earlier way, or a restart mid-call), sent again:
    its row keeps what it was sent with and takes the result."""
    db, store, session = opened(engine)
    store.record_call(call_id="call_z_1", session_id=session.id, client_id=session.client_id, agent_id="ag_old",
                      tool="disk_usage", args={}, approval_id=None)
    store.save_calls([finished("call_z_1", session, output={"free_gb": 9})])
    row = RunStore(db).call("call_z_1")
    assert row is not None
    assert (row.status, row.agent_id, row.output) == ("ok", "ag_old", {"free_gb": 9})


def test_save_calls_stores_several_in_one_transaction(engine: Engine) -> None:
    _, store, session = opened(engine)
    with Statements(engine) as seen:
        store.save_calls([finished("call_w_1", session), finished("call_w_2", session, ok=False,
                                                                   error=("failed", "boom"))])
    assert sorted(c.call_id for c in store.calls(session.id)) == ["call_w_1", "call_w_2"]
    assert seen.commits == 1


def test_too_many_calls_for_one_step_are_refused(engine: Engine) -> None:
    _, store, session = opened(engine)
    calls = [finished(f"call_v_{n}", session) for n in range(MAX_CALLS_PER_WRITE + 1)]
    with pytest.raises(ValueError, match="at most"):
        store.add_step_and_event(session.id, title="t", tool=None, args={}, ok=None, observation={},
                                 event="step", data={}, calls=calls)
    assert store.calls(session.id) == []
