"""``/healthz`` and ``/readyz``: alive with the version; ready only when the database answers, its schema is
current, no PSA poller keeps failing and the queue moves; each failing check says why and recovers."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import secrets
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from tests.conftest import live_server
from tests.ops.conftest import PrivateSchema
from tests.ops.scrape import scrape, value
from tests.ops.tcp_proxy import ProxyThread

from mspclaw import __version__
from mspclaw.api.app import create_app
from mspclaw.connectors.base import PSATicket
from mspclaw.connectors.local import LocalPSA, LocalPSAConnector
from mspclaw.dispatch import Hub
from mspclaw.observability import logs
from mspclaw.settings import Settings
from mspclaw.store.db import make_engine
from mspclaw.wiring import build

pytestmark = pytest.mark.anyio


async def until(check: Callable[[], Awaitable[Any]], what: str, seconds: float = 30) -> Any:
    deadline = asyncio.get_running_loop().time() + seconds
    last = None
    while asyncio.get_running_loop().time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last: {last}")


async def ready(http: httpx.AsyncClient, want: bool) -> dict[str, Any] | None:
    r = await http.get("/readyz")
    assert r.status_code in (200, 503), r.text
    body: dict[str, Any] = r.json()
    assert (r.status_code == 200) == (body["status"] == "ready")
    return body if (r.status_code == 200) == want else None


async def test_healthz_is_alive_with_the_version_and_needs_no_credential(tmp_path: Path) -> None:
    async with live_server(tmp_path, workers=0) as live, httpx.AsyncClient(base_url=live.url) as anon:
        r = await anon.get("/healthz")
        assert r.status_code == 200
        assert r.json() == {"status": "ok", "version": __version__, "agents_online": 0}
        body = await ready(anon, True)
        assert body is not None and body["reasons"] == []
        assert {name for name, check in body["checks"].items() if check["ok"]} == {
            "database", "migrations", "pollers", "queue", "playbooks"}


async def test_a_background_loop_that_crashed_makes_healthz_fail_and_is_logged(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The agents' heartbeat ticker meets an error nobody expected (its clock breaks): the process answers but
    will never close a silent agent again, so /healthz fails, naming the loop and not the error (an anonymous
    probe reads it), and the log has the traceback. The loops run under a lease restart by themselves instead
    (``pipeline/ownership.py``) and do not fail it."""
    services = build(Settings(data_dir=tmp_path / "data", api_key="k", workers=0))

    def broken_clock() -> float:
        raise OverflowError("the clock broke at 0x7f3a")

    services.hub = Hub(heartbeat_interval=0.2, clock=broken_clock)  # ticks every 0.05 s
    app = create_app(services, manage_lifecycle=False)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://mspclaw") as anon:
            assert (await anon.get("/healthz")).status_code == 200, "nothing started, nothing crashed"
            with caplog.at_level(logging.ERROR, logger="mspclaw.wiring"):
                await services.start(workers=False)
                try:
                    async def failing() -> httpx.Response | None:
                        r = await anon.get("/healthz")
                        return r if r.status_code != 200 else None

                    r = await until(failing, "/healthz to fail", seconds=10)
                finally:
                    await services.stop()  # a crashed loop does not make the shutdown fail
        assert r.status_code == 503
        body = r.json()
        assert body["status"] == "failing" and body["version"] == __version__
        assert [reason.split(" stopped")[0] for reason in body["reasons"]] == ["the background loop Hub.run_ticker"]
        assert "clock broke" not in r.text, "which loop, not its error"
        [record] = [rec for rec in caplog.records if rec.name == "mspclaw.wiring" and rec.levelno == logging.ERROR]
        assert "Hub.run_ticker" in record.getMessage()
        assert "OverflowError: the clock broke" in caplog.text, "the log has the error and its traceback"
    finally:
        services.close()


def add_polled_account(data: Path, name: str) -> None:
    """``mspclaw psa add``: an account polled every 0.2 s (its connector is the test's)."""
    env = {**os.environ, "MSPCLAW_DATA_DIR": str(data), "MSPCLAW_PSA_TOKEN": "tok"}
    done = subprocess.run([sys.executable, "-m", "mspclaw", "psa", "add", "local", "--name", name, "--base-url",
                           "http://psa.test", "--poll-interval", "0.2"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr


async def test_a_poller_failing_again_and_again_makes_readyz_fail_with_the_reason(tmp_path: Path) -> None:
    name = "poll" + secrets.token_hex(3)
    add_polled_account(tmp_path / "data", name)
    psa_down = True

    def psa(request: httpx.Request) -> httpx.Response:
        if psa_down:
            return httpx.Response(401, json={"error": {"code": "unauthorized", "message": "token revoked"}})
        return httpx.Response(200, json={"tickets": [], "has_more": False})

    connector = LocalPSAConnector("http://psa.test", "tok", transport=httpx.MockTransport(psa))
    async with live_server(tmp_path, connectors={name: connector}, ready_poll_failures=3) as live:
        body = await until(lambda: ready(live.http, False), "the poller to fail three times")
        [reason] = body["reasons"]
        assert reason.startswith(f"pollers: poller {name}: ") and "failed polls in a row" in reason
        assert "401" in reason or "credential" in reason or "token" in reason.lower()
        assert await live.http.get("/healthz") and (await live.http.get("/healthz")).status_code == 200
        failing = await scrape(live.http)
        assert value(failing, "mspclaw_psa_poll_consecutive_failures", psa=name) >= 3
        assert value(failing, "mspclaw_psa_polls_total", psa=name, outcome="failed") >= 3

        psa_down = False
        await until(lambda: ready(live.http, True), "the poller to recover")
        healthy = await scrape(live.http)
        assert value(healthy, "mspclaw_psa_poll_consecutive_failures", psa=name) == 0
        assert value(healthy, "mspclaw_psa_polls_total", psa=name, outcome="ok") >= 1


class HeldPSA(LocalPSA):
    """A PSA whose ticket reads hang until released: the one worker slot stays busy."""

    def __init__(self) -> None:
        super().__init__([PSATicket(id=str(n), company="nobody", requester="x@y.example", subject="s", body="b")
                          for n in (1, 2)])
        self.release = asyncio.Event()

    async def get_ticket(self, ticket_id: str) -> PSATicket:
        await self.release.wait()
        return await super().get_ticket(ticket_id)


async def test_a_stuck_queue_makes_readyz_fail_until_it_moves(tmp_path: Path) -> None:
    psa = HeldPSA()
    out, level = io.StringIO(), logging.getLogger().level
    handler = logs.configure("INFO", "json", stream=out)
    try:
        await _stuck_queue(tmp_path, psa)
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(level)
    job_lines = [json.loads(line) for line in out.getvalue().splitlines()
                 if '"logger": "mspclaw.pipeline.intake"' in line and "escalated" in line]
    assert len(job_lines) == 2 and all(line["msg"].startswith(f"job {line['job_id']}: ") for line in job_lines), \
        "each job's lines carry its own id"


async def _stuck_queue(tmp_path: Path, psa: HeldPSA) -> None:
    async with live_server(tmp_path, connectors={"held": psa}, workers=1, ready_queue_stuck_s=1) as live:
        assert await ready(live.http, True)
        first, _ = live.services.intake.enqueue("held", "1", source="test")
        second, _ = live.services.intake.enqueue("held", "2", source="test")
        body = await until(lambda: ready(live.http, False), "the queue to be reported stuck")
        assert any(r.startswith("queue: queue stuck: a PSA ticket has been due for") for r in body["reasons"])
        psa.release.set()
        await until(lambda: ready(live.http, True), "the queue to move again")

        async def both_done() -> bool:
            return {live.services.jobs.get(j.id).status for j in (first, second)} == {"done"}

        await until(both_done, "both held tickets to finish")


async def test_a_schema_behind_this_version_makes_readyz_fail(tmp_path: Path) -> None:
    async with live_server(tmp_path, workers=0) as live:
        engine = make_engine(live.services.settings.resolved_database_url())
        try:
            with engine.begin() as conn:
                head = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
                conn.execute(text("UPDATE alembic_version SET version_num = '0001'"))
            body = await ready(live.http, False)
            assert body is not None
            assert [r for r in body["reasons"] if r.startswith("migrations: schema at 0001, this version needs")]
            with engine.begin() as conn:
                conn.execute(text("UPDATE alembic_version SET version_num = :head"), {"head": head})
            assert await ready(live.http, True)
        finally:
            engine.dispose()


@pytest.mark.postgres
async def test_the_database_down_during_operation_fails_readyz_and_the_server_recovers(
        tmp_path: Path, pg_schema: PrivateSchema) -> None:
    proxy = ProxyThread("127.0.0.1", pg_schema.url.port or 5432)
    proxy.up()
    try:
        async with live_server(tmp_path, database_url=pg_schema.via(proxy.port), workers=2) as live:
            assert await ready(live.http, True)
            assert (await live.http.post("/api/clients", json={"name": "Before"})).status_code == 201

            proxy.down()
            body = await until(lambda: ready(live.http, False), "/readyz to see the database gone")
            assert body["reasons"][0].startswith("database: database unreachable: ")
            assert (await live.http.get("/healthz")).status_code == 200, "alive, only not ready"
            assert value(await scrape(live.http), "mspclaw_database_up") == 0
            refused = await live.http.post("/api/clients", json={"name": "During"})
            assert refused.status_code == 503, refused.text
            await asyncio.sleep(1.5)  # the workers try to claim meanwhile, and must survive it

            proxy.up()
            await until(lambda: ready(live.http, True), "/readyz to see the database back")
            assert value(await scrape(live.http), "mspclaw_database_up") == 1
            assert (await live.http.post("/api/clients", json={"name": "After"})).status_code == 201
            job, _ = live.services.intake.enqueue("nowhere", "T-after", source="test")
            final = await until(lambda: _finished(live.services, job.id), "a worker to take a job again")
            assert final == "dead", "claimed and failed for its unknown PSA: the workers are alive"
    finally:
        proxy.close()


async def _finished(services: Any, job_id: str) -> str | None:
    status: str = services.jobs.get(job_id).status
    return status if status not in ("queued", "running") else None
