"""``GET /metrics``: every family moves when what it counts happens, and only an admin of every client reads it.

A real server (uvicorn, SQLite) with a scripted model and a real agent daemon in the test's loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from tests.conftest import live_server
from tests.inprocess_agent import inprocess_agent
from tests.ops.scrape import parse, scrape, total, value

from mspclaw import __version__
from mspclaw.connectors.http import PSAHttp
from mspclaw.engine.messages import Message, ModelRequest, ModelResponse, ToolDef, ToolReturn, UserPrompt
from mspclaw.engine.models.function import FunctionModel, call
from mspclaw.errors import AgentOffline, PSANotFound, UnknownTool
from mspclaw.observability.metrics import LoopHistogram

pytestmark = pytest.mark.anyio


def script(messages: list[Message], tools: list[ToolDef]) -> ModelResponse:
    """One tool, then resolve; a ticket that says "scenario approval" asks for a destructive one."""
    prompt = next(p.text for m in messages if isinstance(m, ModelRequest) for p in m.parts
                  if isinstance(p, UserPrompt))
    if any(isinstance(p, ToolReturn) for m in messages if isinstance(m, ModelRequest) for p in m.parts):
        return call("resolve", {"summary": "checked the disk", "reply": "done."})
    if "scenario approval" in prompt:
        return call("clear_temp_files", {"dry_run": False, "older_than_days": 7})
    return call("disk_usage", {})


MODEL = FunctionModel(script, name="function:metrics", price_per_mtok=(3000.0, 15000.0))


async def until(check: Callable[[], Awaitable[bool]], what: str, seconds: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def test_every_family_moves(tmp_path: Path) -> None:
    async with live_server(tmp_path, model=MODEL, workers=0) as live:
        before = await scrape(live.http)
        assert value(before, "mspclaw_build_info", version=__version__) == 1
        assert value(before, "mspclaw_database_up") == 1
        assert total(before, "mspclaw_agents_connected") == 0
        assert "process_cpu_seconds_total" in {name for name, _ in before}, "the process's own figures"

        client = await live.client()
        async with inprocess_agent(live.url, await live.code(client), tmp_path / "agent",
                                   temp_root=tmp_path / "temp") as agent:
            link = live.services.hub.link(agent.state.agent_id)
            assert link is not None and link.agent_version == __version__, "the hub keeps the hello's version"
            done = (await live.http.post("/api/tickets", json={
                "client": client, "subject": "disk almost full", "body": "it says the disk is full"})).json()
            await live.wait_ticket(done["ticket_id"])
            await live.services.tickets.wait(done["session_id"])  # usage is recorded as the run closes
            await live.http.post("/api/tickets", json={
                "client": client, "subject": "disk almost full", "body": "disk full, scenario approval"})
            await live.wait_approval()
            live.services.intake.enqueue("nowhere", "T-1", source="test")  # no worker in this process claims it
            dispatcher = live.services.hub.for_client(client)
            with pytest.raises(UnknownTool):
                await dispatcher.call_tool(agent.state.agent_id, "format_the_disk", {}, timeout=5)
            with pytest.raises(AgentOffline):
                await dispatcher.call_tool("a_gone", "disk_usage", {}, timeout=5)
            await asyncio.sleep(1.1)

            after = await scrape(live.http)
            assert value(after, "mspclaw_agents_connected", role="device", version=__version__) == 1
            assert value(after, "mspclaw_tickets", status="resolved") == value(
                before, "mspclaw_tickets", status="resolved") + 1
            assert value(after, "mspclaw_approvals_pending") == 1
            assert value(after, "mspclaw_approvals_oldest_pending_seconds") >= 1
            assert value(after, "mspclaw_queue_jobs", status="queued") == 1
            assert value(after, "mspclaw_queue_oldest_due_seconds") >= 1
            calls = ("mspclaw_tool_call_duration_seconds_count", {"tool": "disk_usage", "outcome": "ok"})
            assert value(after, calls[0], **calls[1]) == value(before, calls[0], **calls[1]) + 1
            assert value(after, "mspclaw_tool_call_duration_seconds_bucket", tool="disk_usage", outcome="ok",
                         le="+Inf") >= 1
            assert value(after, calls[0], tool="format_the_disk", outcome="refused") == value(
                before, calls[0], tool="format_the_disk", outcome="refused") + 1
            assert value(after, calls[0], tool="disk_usage", outcome="offline") == value(
                before, calls[0], tool="disk_usage", outcome="offline") + 1
            assert value(after, "mspclaw_model_tokens_total", model="function:metrics", direction="input") > 0
            assert value(after, "mspclaw_model_tokens_total", model="function:metrics", direction="output") > 0
            assert value(after, "mspclaw_model_cost_usd_total", model="function:metrics") > 0
            assert value(after, "mspclaw_audit_write_duration_seconds_count") > value(
                before, "mspclaw_audit_write_duration_seconds_count")

        await until(lambda: _agents(live.http, 0), "the agent to be gone from the gauge")


async def _agents(http: httpx.AsyncClient, count: int) -> bool:
    return total(await scrape(http), "mspclaw_agents_connected") == count


async def test_psa_requests_and_errors_are_counted_per_psa(tmp_path: Path) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404 if request.url.path.endswith("/missing") else 200, json={"ok": True})

    psa = PSAHttp(service="MetricsPSA", base_url="http://psa.test", transport=httpx.MockTransport(answer),
                  max_retries=0)
    async with live_server(tmp_path, workers=0) as live:
        before = await scrape(live.http)
        await psa.request("GET", "/tickets")
        with pytest.raises(PSANotFound):
            await psa.request("GET", "/missing")
        await psa.aclose()
        after = await scrape(live.http)
    assert value(after, "mspclaw_psa_requests_total", psa="MetricsPSA") == value(
        before, "mspclaw_psa_requests_total", psa="MetricsPSA") + 2
    assert value(after, "mspclaw_psa_errors_total", psa="MetricsPSA", code="psa_not_found") == value(
        before, "mspclaw_psa_errors_total", psa="MetricsPSA", code="psa_not_found") + 1
    assert value(after, "mspclaw_psa_request_duration_seconds_count", psa="MetricsPSA") == value(
        before, "mspclaw_psa_request_duration_seconds_count", psa="MetricsPSA") + 2


async def test_only_an_admin_of_every_client_may_scrape(tmp_path: Path) -> None:
    async with live_server(tmp_path, workers=0) as live:
        client = await live.client()
        viewer = (await live.http.post("/api/keys", json={"name": "grafana", "role": "viewer",
                                                          "clients": [client]})).json()["key"]
        scraper = (await live.http.post("/api/keys", json={"name": "prometheus", "role": "admin",
                                                           "all_clients": True})).json()["key"]
        async with httpx.AsyncClient(base_url=live.url) as anon:
            assert (await anon.get("/metrics")).status_code == 401
            assert (await anon.get("/metrics", headers={"Authorization": f"Bearer {viewer}"})).status_code == 403
            ok = await anon.get("/metrics", headers={"Authorization": f"Bearer {scraper}"})
            assert ok.status_code == 200 and "mspclaw_database_up 1.0" in ok.text


def test_the_loop_histogram_counts_each_value_in_its_bucket_and_above() -> None:
    histogram = LoopHistogram("h_seconds", "test", ["tool"], buckets=(0.1, 1.0))
    for seconds in (0.05, 0.1, 0.5, 3.0):
        histogram.observe(("t",), seconds)
    registry = CollectorRegistry()
    registry.register(histogram)
    samples = parse(generate_latest(registry).decode())
    assert [value(samples, "h_seconds_bucket", tool="t", le=le) for le in ("0.1", "1.0", "+Inf")] == [2, 3, 4]
    assert value(samples, "h_seconds_count", tool="t") == 4
    assert value(samples, "h_seconds_sum", tool="t") == pytest.approx(3.65)
