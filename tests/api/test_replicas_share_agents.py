"""Two servers with ``MSPCLAW_REDIS_URL`` share their agents end to end, and say in ``/healthz`` and
``/readyz`` when Redis is gone.

Real services only: two servers (``wiring.build`` + uvicorn + the agent listener, each with its own
SQLite) on loopback, a real agent daemon enrolled on server A over HTTP and connected over a real
WebSocket, and a ``redis-server`` of this test's own on a free loopback port, stopped and started again
(the shared Redis on 6379 is never stopped).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import live_server
from tests.dispatch.cluster_replicas import OwnRedis
from tests.inprocess_agent import inprocess_agent

from mspclaw.errors import AgentOffline

pytestmark = pytest.mark.anyio


async def health(http: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, Any]]:
    alive, ready = await http.get("/healthz"), await http.get("/readyz")
    assert alive.status_code == 200 and ready.status_code in (200, 503)
    body: dict[str, Any] = ready.json()
    assert (ready.status_code == 200) == (body["status"] == "ready")
    return alive.json(), body


async def until_redis(http: httpx.AsyncClient, ok: bool, seconds: float = 15) -> tuple[dict[str, Any], dict[str, Any]]:
    deadline = time.monotonic() + seconds
    while True:
        alive, ready = await health(http)
        if alive.get("redis", {}).get("ok") is ok and ready["checks"]["redis"]["ok"] is ok:
            return alive, ready
        if time.monotonic() > deadline:
            raise AssertionError(f"redis ok={ok} never reported: {alive} {ready}")
        await asyncio.sleep(0.1)


async def test_a_call_on_one_server_reaches_an_agent_on_the_other_and_health_tracks_redis(tmp_path: Path) -> None:
    redis = OwnRedis()
    await redis.start()
    try:
        async with live_server(tmp_path / "a", workers=0, redis_url=redis.url) as a, \
                live_server(tmp_path / "b", workers=0, redis_url=redis.url) as b:
            client = await a.client()
            async with inprocess_agent(a.url, await a.code(client), tmp_path / "agent") as agent:
                agent_id = agent.state.agent_id
                assert a.services.hub.is_online(agent_id) and not b.services.hub.is_online(agent_id)
                alive, ready = await until_redis(a.http, True)
                assert alive["redis"]["detail"].startswith("replica ")

                async def holder_known() -> None:
                    cluster = b.services.cluster
                    assert cluster is not None
                    while await cluster.holder(agent_id) is None:
                        await asyncio.sleep(0.05)

                await asyncio.wait_for(holder_known(), 10)
                result = await b.services.hub.for_client(client).call_tool(agent_id, "system_info", {}, timeout=20)
                assert result.ok and "hostname" in result.output

                redis.stop()
                alive, ready = await until_redis(a.http, False)
                assert "Redis unreachable" in alive["redis"]["detail"]
                assert any(r.startswith("redis: replica ") for r in ready["reasons"])
                local = await a.services.hub.for_client(client).call_tool(agent_id, "system_info", {}, timeout=20)
                assert local.ok, "a replica without Redis still serves its own agents"
                started = time.monotonic()
                with pytest.raises(AgentOffline, match="Redis unreachable"):
                    await b.services.hub.for_client(client).call_tool(agent_id, "system_info", {}, timeout=20)
                assert time.monotonic() - started < 1.0

                await redis.start()
                await until_redis(a.http, True)
                await until_redis(b.http, True)
                await asyncio.wait_for(holder_known(), 10)
                again = await b.services.hub.for_client(client).call_tool(agent_id, "system_info", {}, timeout=20)
                assert again.ok
    finally:
        redis.stop()
