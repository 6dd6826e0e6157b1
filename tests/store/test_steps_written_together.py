"""Several steps of a run in one write (``TicketStore.add_steps``), on SQLite and PostgreSQL (real servers: a
SQLite file, the PostgreSQL at ``TEST_POSTGRES_URL`` on loopback): each step with its event, numbered after the
session's last in order, the rows of the calls they report, redacted, all or nothing, and on PostgreSQL one
statement with no transaction around it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from tests.store.test_tool_call_step_writes import finished
from tests.store.ticket_writes import Statements, opened

from mspclaw.store.runs import RunStore
from mspclaw.store.tables import SessionEvent, Step, ToolCallRow
from mspclaw.store.tickets import MAX_CALLS_PER_WRITE, MAX_STEPS_PER_WRITE, StepWrite

T0 = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


def step(n: int, *calls: object, tool: str | None = "disk_usage") -> StepWrite:
    return StepWrite(title=f"step {n}", tool=tool, args={"n": n, "password": "hunter2"}, ok=True,
                     observation={"output": {"n": n}}, data={"index": n, "token": "Bearer abcdefghijklmnop1234"},
                     created_at=T0 + timedelta(seconds=n), calls=tuple(calls))  # type: ignore[arg-type]


def test_steps_are_stored_in_order_after_the_sessions_last_in_one_write(engine: Engine) -> None:
    db, store, session = opened(engine)
    store.add_step_and_event(session.id, title="first", tool=None, args={}, ok=None, observation={}, event="step",
                             data={})
    one, two = finished(f"call_{session.id}_1", session), finished(f"call_{session.id}_2", session)
    with Statements(engine) as seen:
        seqs = store.add_steps(session.id, [step(1, one), step(2), step(3, two)])
    assert seqs == [3, 4, 5]  # "started" is 1, the first step's event 2
    steps = store.steps(session.id)
    assert [(s.index, s.title) for s in steps] == [(1, "first"), (2, "step 1"), (3, "step 2"), (4, "step 3")]
    assert [s.created_at for s in steps[1:]] == [T0 + timedelta(seconds=n) for n in (1, 2, 3)]  # each its own time
    events = store.events(session.id)
    assert [(e.seq, e.event) for e in events] == [(1, "started"), (2, "step"), (3, "step"), (4, "step"), (5, "step")]
    assert [e.data["index"] for e in events[2:]] == [1, 2, 3]
    assert {c.call_id for c in store.calls(session.id)} == {one.call_id, two.call_id}
    stored = RunStore(db).call(one.call_id)
    assert stored is not None and stored.status == "ok"
    text = str([(s.args, s.observation) for s in steps]) + str([e.data for e in events]) + str(stored.args)
    assert "hunter2" not in text and "abcdefghijklmnop1234" not in text  # redacted like every write
    if db.dialect == "postgresql":
        assert len(seen.sql) == 1 and seen.sql[0].startswith("WITH "), seen.sql
        assert seen.commits == 0
    else:
        assert seen.commits == 1


def test_the_steps_fall_together(engine: Engine) -> None:
    """A write for a session that does not exist: no step, no event and no call row of it is stored."""
    _, store, session = opened(engine)
    with pytest.raises(IntegrityError):
        store.add_steps("ss_missing", [step(1, finished("call_z_1", session)), step(2)])
    with engine.connect() as conn:
        assert conn.execute(select(ToolCallRow.__table__)).all() == []
        assert conn.execute(select(Step.__table__)).all() == []
        assert [e.event for e in conn.execute(select(SessionEvent.__table__))] == ["started"]


def test_a_write_is_bounded(engine: Engine) -> None:
    _, store, session = opened(engine)
    assert store.add_steps(session.id, []) == []
    with pytest.raises(ValueError, match="at most"):
        store.add_steps(session.id, [step(n) for n in range(MAX_STEPS_PER_WRITE + 1)])
    calls = [finished(f"call_w_{n}", session) for n in range(MAX_CALLS_PER_WRITE + 1)]
    with pytest.raises(ValueError, match="at most"):
        store.add_steps(session.id, [step(1, *calls)])
    assert len(store.add_steps(session.id, [step(n) for n in range(MAX_STEPS_PER_WRITE)])) == MAX_STEPS_PER_WRITE
