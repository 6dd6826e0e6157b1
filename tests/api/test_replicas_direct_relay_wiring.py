"""Two servers with ``MSPCLAW_REDIS_URL`` and ``MSPCLAW_RELAY_LISTEN`` forward a tool call over their direct
connection, authenticated with the key both derive from the JWT secret they share.

Real services only: two servers (``wiring.build`` + uvicorn + the agent listener, each with its own SQLite)
on loopback, a real agent daemon enrolled on server A over HTTP and connected over a real WebSocket, and a
``redis-server`` of this test's own on a free loopback port (so the servers' default key prefix meets no
other test's keys).
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import pytest
from tests.conftest import live_server
from tests.dispatch.cluster_replicas import OwnRedis
from tests.inprocess_agent import inprocess_agent

pytestmark = pytest.mark.anyio


async def test_servers_with_a_relay_forward_calls_over_their_direct_connection(tmp_path: Path) -> None:
    redis = OwnRedis()
    await redis.start()
    shared = secrets.token_urlsafe(48)
    try:
        async with live_server(tmp_path / "a", workers=0, redis_url=redis.url, relay_listen="127.0.0.1:0",
                               jwt_secret=shared) as a, \
                live_server(tmp_path / "b", workers=0, redis_url=redis.url, relay_listen="127.0.0.1:0",
                            jwt_secret=shared) as b:
            cluster_a, cluster_b = a.services.cluster, b.services.cluster
            assert cluster_a is not None and cluster_b is not None
            assert cluster_a.relay is not None and cluster_b.relay is not None
            client = await a.client()
            async with inprocess_agent(a.url, await a.code(client), tmp_path / "agent") as agent:
                agent_id = agent.state.agent_id

                async def holder_known() -> None:
                    while await cluster_b.holder(agent_id) is None:
                        await asyncio.sleep(0.05)

                await asyncio.wait_for(holder_known(), 10)
                assert cluster_b.relay.connected(cluster_a.replica_id) is None
                result = await b.services.hub.for_client(client).call_tool(agent_id, "system_info", {}, timeout=20)
                assert result.ok and "hostname" in result.output
                assert cluster_b.relay.connected(cluster_a.replica_id) is not None, "the call went through Redis"
    finally:
        redis.stop()
