"""One write per tool call, through the session's tool port on a real store (a SQLite file, and a schema
of its own on the PostgreSQL at ``TEST_POSTGRES_URL`` on loopback): the call is audited before it is
sent, and its row, with its result, is stored with the step that reports it, not before the call; on
PostgreSQL that write is one statement. The agent is enrolled and not connected, so the hub's own
answer (the agent is offline) is the call's result."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from tests.private_schema import postgres_schema

from mspclaw.errors import ToolError
from mspclaw.pipeline.durable import CallLedger
from mspclaw.pipeline.handover import Handover, Recipient
from mspclaw.pipeline.session_ports import QuietSessions, RunContext, SessionTools
from mspclaw.settings import Settings
from mspclaw.wiring import Services, build

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """``None`` (SQLite in the data directory), or a migrated schema of its own on the test PostgreSQL."""
    if request.param == "sqlite":
        yield None
        return
    yield from postgres_schema("calls")


@pytest.fixture
async def services(tmp_path: Path, database_url: str | None) -> AsyncIterator[Services]:
    svc = build(Settings(data_dir=tmp_path / "data", api_key="k" * 20, database_url=database_url))
    yield svc
    svc.close()


async def test_a_calls_row_is_written_once_with_its_step(services: Services) -> None:
    client = services.registry.add_client("Acme Dental")
    issued = services.registry.issue_code(client.id, ttl=timedelta(hours=1))
    agent = services.registry.enroll(issued.code, hostname="pc-7", os="linux", os_version="", agent_version="",
                                     tools=["disk_usage"]).agent
    ticket, session = services.store.open_ticket(client_id=client.id, subject="disk full", body="",
                                                 requester="tom@acme.example", device_id=None, started=True)
    ledger = CallLedger(session.id, fresh=True)
    ctx = RunContext(ticket, session, None, agent.id, ledger,
                     Recipient(client_id=client.id, device_agent_id=None, device_name=None, psa=None,
                               external_id=None), QuietSessions())
    tools = SessionTools(ctx, dispatcher=services.hub.for_client(client.id), store=services.store,
                         runs=services.tickets.runs, audit=services.audit, handover=Handover(services.hub),
                         learning=services.staff.learning, tool_timeout_s=1.0, reconnect_grace_s=0.0)
    call_id = ledger.next()
    with pytest.raises(ToolError) as failed:
        await tools("disk_usage", {}, reason="how full is it")
    assert services.store.calls(session.id) == []  # no row before its step: the audit trail has the call
    assert [r.kind for r in services.audit.query(kind="tool_call")] == ["tool_call"]

    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        statements.append(statement)

    engine = services.engine
    for watched in services.db.engines:  # on PostgreSQL, single statements run on an autocommit engine of their own
        event.listen(watched, "before_cursor_execute", seen)
    try:
        await tools.save_step(services.events, title="look", tool="disk_usage", args={}, ok=False,
                              observation={"error": failed.value.message}, data={"index": 1})
        assert statements == []  # a diagnostic step is written behind: nothing yet
        await tools.flush()
    finally:
        for watched in services.db.engines:
            event.remove(watched, "before_cursor_execute", seen)
    (row,) = services.store.calls(session.id)
    assert (row.call_id, row.status, row.error_code, row.agent_id) == (call_id, "error", failed.value.code, agent.id)
    assert row.finished_at is not None
    assert [s.title for s in services.store.steps(session.id)] == ["look"]
    announced = services.events.history(session.id)[-1]
    assert announced.seq == 2 and announced.event == "step"
    assert [r.data["ok"] for r in services.audit.query(kind="tool_result")] == [False]
    writes = [s for s in statements if "tool_calls" in s or "steps" in s]
    if engine.dialect.name == "postgresql":
        assert len(writes) == 1, writes  # the call's row, its step and the step's event: one statement
    else:
        assert len(writes) == 2, writes  # one transaction: the row, then the step
