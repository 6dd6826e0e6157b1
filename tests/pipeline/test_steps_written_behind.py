"""Steps that changed nothing are written behind: stored together with the next write, at the latest
``STEPS_BEHIND_S`` later, before anything that changes something, and at the run's end; a step that changed
something is stored at once with those before it. Through the session's tool port on a real store (a SQLite
file, and a schema of its own on the PostgreSQL at ``TEST_POSTGRES_URL`` on loopback). The agent is enrolled
and not connected, so the hub's own answer (offline) is a call's result."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

import pytest
from tests.pipeline.test_tool_call_rows import database_url, services
from tests.store.statement_log import statements_seen

from mspclaw.errors import ToolError
from mspclaw.pipeline import session_ports
from mspclaw.pipeline.durable import CallLedger
from mspclaw.pipeline.handover import Handover, Recipient
from mspclaw.pipeline.requester import Verifications
from mspclaw.pipeline.session_ports import QuietSessions, RunContext, SessionApprovals, SessionTools
from mspclaw.store.tables import Session
from mspclaw.wiring import Services

__all__ = ["database_url", "services"]  # the fixtures: a SQLite file, and a schema on PostgreSQL
pytestmark = pytest.mark.anyio


def port(services: Services) -> tuple[SessionTools, Session]:
    tools, session, _ = port_and_context(services)
    return tools, session


def port_and_context(services: Services) -> tuple[SessionTools, Session, RunContext]:
    client = services.registry.add_client("Acme Dental")
    issued = services.registry.issue_code(client.id, ttl=timedelta(hours=1))
    agent = services.registry.enroll(issued.code, hostname="pc-7", os="linux", os_version="", agent_version="",
                                     tools=["disk_usage", "clear_temp_files"]).agent
    ticket, session = services.store.open_ticket(client_id=client.id, subject="disk full", body="",
                                                 requester="tom@acme.example", device_id=None, started=True)
    ctx = RunContext(ticket, session, None, agent.id, CallLedger(session.id, fresh=True),
                     Recipient(client_id=client.id, device_agent_id=None, device_name=None, psa=None,
                               external_id=None), QuietSessions())
    tools = SessionTools(ctx, dispatcher=services.hub.for_client(client.id), store=services.store,
                         runs=services.tickets.runs, audit=services.audit, handover=Handover(services.hub),
                         learning=services.staff.learning, tool_timeout_s=1.0, reconnect_grace_s=0.0)
    return tools, session, ctx


async def step(services: Services, tools: SessionTools, n: int, tool: str | None = "disk_usage",
               args: dict[str, Any] | None = None, *, skipped: bool = False) -> None:
    await tools.save_step(services.events, title=f"step {n}", tool=tool, args=args or {}, ok=True,
                          observation={"output": {"n": n}, "skipped": skipped}, data={"index": n})


def stored(services: Services, session: Session) -> list[str]:
    return [s.title for s in services.store.steps(session.id)]


def announced(services: Services, session: Session) -> list[tuple[int, Any]]:
    return [(e.seq, e.data["index"]) for e in services.events.history(session.id) if e.event == "step"]


async def test_steps_that_changed_nothing_are_stored_together_at_the_end(services: Services) -> None:
    tools, session = port(services)
    with statements_seen(*services.db.engines) as statements:
        await step(services, tools, 1)
        await step(services, tools, 2, "clear_temp_files", {"dry_run": True})  # a preview changes nothing
        await step(services, tools, 3, "clear_temp_files", {"dry_run": False}, skipped=True)
        await step(services, tools, 4, None)
        assert statements == [] and announced(services, session) == []
        await tools.save_unsaved()  # a write of them all (a resolved run's end hands them to the closing)
    assert stored(services, session) == ["step 1", "step 2", "step 3", "step 4"]
    assert announced(services, session) == [(2, 1), (3, 2), (4, 3), (5, 4)]  # in order, after "started"
    writes = [s for s in statements if "steps" in s]
    assert len(writes) == (1 if services.engine.dialect.name == "postgresql" else 4), writes  # SQLite: one transaction


async def test_a_step_that_changed_something_is_stored_at_once_with_those_before_it(services: Services) -> None:
    tools, session = port(services)
    await step(services, tools, 1)
    await step(services, tools, 2, "clear_temp_files", {"dry_run": False})
    assert stored(services, session) == ["step 1", "step 2"]
    assert announced(services, session) == [(2, 1), (3, 2)]


async def test_what_the_run_found_is_stored_before_a_change_is_sent(services: Services) -> None:
    tools, session = port(services)
    await step(services, tools, 1)
    with pytest.raises(ToolError):  # offline: the hub answers, after the port sent it
        await tools("clear_temp_files", {"dry_run": False, "older_than_days": 7}, reason="free space")
    assert stored(services, session) == ["step 1"]


async def test_a_preview_sends_without_storing_first(services: Services) -> None:
    tools, session = port(services)
    await step(services, tools, 1)
    with pytest.raises(ToolError):
        await tools("clear_temp_files", {"dry_run": True, "older_than_days": 7}, reason="what would go")
    assert stored(services, session) == []
    await tools.save_unsaved()
    assert stored(services, session) == ["step 1"]
    assert len(services.store.calls(session.id)) == 1  # the failed call's row, stored by itself


async def test_a_step_waits_at_most_steps_behind_s(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session_ports, "STEPS_BEHIND_S", 0.05)
    tools, session = port(services)
    await step(services, tools, 1)
    assert announced(services, session) == []
    for _ in range(100):
        if announced(services, session):
            break
        await asyncio.sleep(0.02)
    assert announced(services, session) == [(2, 1)] and stored(services, session) == ["step 1"]


async def test_a_run_that_stops_keeps_its_steps_unless_cancelled(services: Services) -> None:
    tools, session = port(services)
    await step(services, tools, 1)
    await tools.settle(store=True)  # an error: what it did stays on record
    assert stored(services, session) == ["step 1"]
    await step(services, tools, 2)
    await tools.settle(store=False)  # cancelled (its lease may be another replica's): replayed there
    await asyncio.sleep(session_ports.STEPS_BEHIND_S + 0.2)  # and no timer stores it later
    assert stored(services, session) == ["step 1"]


async def test_the_technician_sees_every_step_before_an_approval_request(services: Services) -> None:
    tools, session, ctx = port_and_context(services)
    asker = SessionApprovals(ctx, approvals=services.approvals, target="pc-7", tools=tools,
                             verifications=Verifications(), note_label="Playbook")
    await step(services, tools, 1)
    asking = asyncio.ensure_future(asker.request("clear_temp_files", {"dry_run": False}, reason="free space"))
    try:
        for _ in range(250):  # the request is announced after its row is stored
            if "approval_request" in [e.event for e in services.events.history(session.id)]:
                break
            await asyncio.sleep(0.02)
        (pending,) = services.store.approvals(status="pending")
        assert stored(services, session) == ["step 1"]  # stored before the request was
        events = [e.event for e in services.events.history(session.id)]
        assert events.index("step") < events.index("approval_request")
    finally:
        asking.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asking
    assert pending.tool == "clear_temp_files"
