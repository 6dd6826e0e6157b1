"""An approval's deadline is kept across a restart: the resumed session waits for the same row until
the same stored instant, then the no-decision deny fires (a precise timer, not a sweep).

Two server lifetimes on one data directory (real app, SQLite, a scripted model, a real agent daemon
in this event loop); the first is stopped while the session awaits the approval.
"""

from __future__ import annotations

import contextlib
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from tests.conftest import live_server
from tests.inprocess_agent import inprocess_agent

from mspclaw.engine.messages import Message, ModelRequest, ModelResponse, ToolDef, ToolReturn
from mspclaw.engine.models.function import FunctionModel, call

pytestmark = pytest.mark.anyio


def script(messages: list[Message], tools: list[ToolDef]) -> ModelResponse:
    seen = [p for m in messages if isinstance(m, ModelRequest) for p in m.parts if isinstance(p, ToolReturn)]
    if not seen:
        return call("clear_temp_files", {"dry_run": False, "older_than_days": 7})
    return call("escalate", {"reason": f"cleanup: {seen[0].error}"})


async def test_the_stored_deadline_still_fires_after_a_restart(tmp_path: Path) -> None:
    model = FunctionModel(script)
    async with contextlib.AsyncExitStack() as stack:
        async with live_server(tmp_path, model=model, approval_timeout_s=2.5) as live:
            client = await live.client()
            port, agent_port = int(live.url.rsplit(":", 1)[1]), urlsplit(live.agent_url).port
            agent = await stack.enter_async_context(
                inprocess_agent(live.url, await live.code(client), tmp_path / "agent"))
            created = (await live.http.post("/api/tickets", json={"client": client, "subject": "disk full",
                                                                  "body": "no space left"})).json()
            first = await live.wait_approval()
        deadline = datetime.fromisoformat(first["deadline"]).timestamp()
        assert deadline - time.time() > 0.3, "the first server stopped before the deadline"
        agent.daemon.connected.clear()
        # started again with a much longer timeout: the stored deadline, not the new setting, decides
        async with live_server(tmp_path, model=model, approval_timeout_s=300, port=port,
                               agent_port=agent_port) as live:
            ticket = await live.wait_ticket(created["ticket_id"], seconds=20)
            [approval] = live.services.store.approvals(status=None)
    assert approval.id == first["id"] and approval.status == "expired"
    assert approval.decided_at is not None
    assert 0 <= approval.decided_at.timestamp() - deadline < 1.0, "expired at the stored deadline"
    assert ticket["status"] == "escalated"
    assert "no technician decided on clear_temp_files" in ticket["reason"]
