"""DurableTools on a real SQLite store: a replayed session gets its stored results back without
dispatch; a session just opened dispatches every call without looking for stored ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from mspclaw.errors import ToolFailed
from mspclaw.pipeline.durable import CallLedger, DurableTools
from mspclaw.store.database import Database
from mspclaw.store.db import make_engine, migrate, sqlite_url
from mspclaw.store.registry import Registry
from mspclaw.store.runs import RunStore
from mspclaw.store.tickets import TicketStore

pytestmark = pytest.mark.anyio


class Recorder:
    """The tool port below DurableTools: records what reaches the agent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, tool: str, args: dict[str, Any], *, reason: str, approval: Any = None) -> dict[str, Any]:
        self.sent.append((tool, args))
        return {"sent": len(self.sent)}


@pytest.fixture
def setup(tmp_path: Path) -> Any:
    engine = make_engine(sqlite_url(tmp_path))
    migrate(engine)
    statements: list[str] = []

    @event.listens_for(engine, "connect")
    def _trace(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.set_trace_callback(statements.append)  # what SQLite runs, whichever path sent it

    engine.dispose()
    db = Database(engine)
    client = Registry(db).add_client("Acme")
    store = TicketStore(db)
    _, session = store.open_ticket(client_id=client.id, subject="s", body="", requester="", device_id=None)
    yield store, RunStore(db), client.id, session.id, statements
    engine.dispose()


async def test_a_replayed_session_gets_stored_results_and_dispatches_only_the_rest(setup: Any) -> None:
    store, runs, client_id, session_id, _ = setup
    for n, ok in ((1, True), (2, False)):
        call_id = f"call_{session_id}_{n}"
        store.record_call(call_id=call_id, session_id=session_id, client_id=client_id, agent_id="ag", tool="t",
                          args={}, approval_id=None)
        store.finish_call(call_id, ok=ok, output={"stored": n} if ok else None, error_code=None if ok else "failed",
                          error_message=None if ok else "it broke", duration_ms=3)
    inner = Recorder()
    tools = DurableTools(inner, runs, CallLedger(session_id))
    assert await tools("t", {}, reason="r") == {"stored": 1}
    with pytest.raises(ToolFailed, match="it broke"):
        await tools("t", {}, reason="r")
    assert await tools("t", {"third": True}, reason="r") == {"sent": 1}
    assert inner.sent == [("t", {"third": True})]


async def test_a_fresh_session_dispatches_without_reading_the_call_ledger(setup: Any) -> None:
    _, runs, _, session_id, statements = setup
    inner = Recorder()
    ledger = CallLedger(session_id, fresh=True)
    tools = DurableTools(inner, runs, ledger)
    statements.clear()
    assert await tools("t", {"n": 1}, reason="r") == {"sent": 1}
    assert await tools("t", {"n": 2}, reason="r") == {"sent": 2}
    assert ledger.current == f"call_{session_id}_2" and ledger.stored is None
    assert not [s for s in statements if "tool_calls" in s]
