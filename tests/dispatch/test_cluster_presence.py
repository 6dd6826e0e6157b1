"""Which replica holds which agent, as every replica sees it through Redis.

Real Redis: the shared test server on 127.0.0.1:6379, under a random key prefix per test that is deleted
afterwards; two replicas (two hubs, two clusters with different replica ids) in this process; agents are
the real sans-I/O connection, executor and journal (``cluster_replicas``). A replica's death is its Redis
connections cut for good by a loopback TCP proxy (``tests/ops/tcp_proxy.py``) between it and Redis.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from tests.dispatch.cluster_replicas import (
    SHARED_REDIS,
    connect,
    counting_tools,
    key_prefix,
    make_agent,
    start_replica,
    wait_for_holder,
)
from tests.ops.tcp_proxy import TcpProxy

from mspclaw.errors import AgentOffline, ConfigError

pytestmark = pytest.mark.anyio


async def test_every_replica_sees_which_replica_holds_an_agent_from_connect_to_disconnect(tmp_path: Path) -> None:
    async with key_prefix() as prefix:
        a = await start_replica(SHARED_REDIS, prefix, "replica-a")
        b = await start_replica(SHARED_REDIS, prefix, "replica-b")
        identity, executor, journal = make_agent("ag_1", "cl_1", tmp_path, counting_tools({}))
        try:
            assert await b.cluster.holder("ag_1") is None
            link = await connect(a.hub, identity, executor)
            took = await wait_for_holder(b.cluster, "ag_1", ("replica-a", "cl_1"), timeout=2)
            assert took < 1.0, f"presence took {took:.2f} s to be written"
            assert not b.hub.is_online("ag_1"), "the hub's own view stays local"

            await asyncio.sleep(2 * a.cluster.ttl_s)  # the heartbeat keeps it past its TTL
            assert await b.cluster.holder("ag_1") == ("replica-a", "cl_1")

            await link.disconnect()
            took = await wait_for_holder(b.cluster, "ag_1", None, timeout=2)
            assert took < 1.0, "a disconnect must be forgotten at once, not after the TTL"
        finally:
            await a.stop()
            await b.stop()
            journal.close()


async def test_the_newest_connection_wins_and_the_old_holder_does_not_take_the_agent_back(tmp_path: Path) -> None:
    async with key_prefix() as prefix:
        a = await start_replica(SHARED_REDIS, prefix, "replica-a")
        b = await start_replica(SHARED_REDIS, prefix, "replica-b")
        identity, executor, journal = make_agent("ag_1", "cl_1", tmp_path, counting_tools({}))
        try:
            old = await connect(a.hub, identity, executor)  # A has not noticed the agent left it yet
            await wait_for_holder(b.cluster, "ag_1", ("replica-a", "cl_1"))
            new = await connect(b.hub, identity, executor)
            await wait_for_holder(a.cluster, "ag_1", ("replica-b", "cl_1"))
            await asyncio.sleep(5 * a.cluster.heartbeat_s)  # several of A's heartbeats
            assert await a.cluster.holder("ag_1") == ("replica-b", "cl_1")

            await old.disconnect()  # A's late disconnect must not erase B's record
            await asyncio.sleep(3 * a.cluster.heartbeat_s)
            assert await a.cluster.holder("ag_1") == ("replica-b", "cl_1")
            await new.disconnect()
            await wait_for_holder(a.cluster, "ag_1", None)
        finally:
            await a.stop()
            await b.stop()
            journal.close()


async def test_a_dead_replicas_agents_expire_and_its_inflight_call_ends_as_agent_offline(tmp_path: Path) -> None:
    async with key_prefix() as prefix:
        proxy = TcpProxy("127.0.0.1", 6379)
        await proxy.up()
        a = await start_replica(f"redis://127.0.0.1:{proxy.port}/0", prefix, "replica-a")
        b = await start_replica(SHARED_REDIS, prefix, "replica-b")
        release = asyncio.Event()
        identity, executor, journal = make_agent("ag_1", "cl_1", tmp_path, counting_tools({}, slow=release))
        try:
            link = await connect(a.hub, identity, executor)
            await wait_for_holder(b.cluster, "ag_1", ("replica-a", "cl_1"))
            call = asyncio.create_task(b.hub.for_client("cl_1").call_tool("ag_1", "system_info", {}, timeout=60))
            await asyncio.sleep(0.3)  # the call is running on A's agent now
            assert not call.done()

            await proxy.down()  # replica A is gone, as far as Redis and the other replicas can tell
            started = time.monotonic()
            with pytest.raises(AgentOffline, match="replica-a"):
                await asyncio.wait_for(call, 10)
            waited = time.monotonic() - started
            assert waited < a.cluster.ttl_s + 2 * b.cluster.heartbeat_s + 1, f"the caller waited {waited:.1f} s"
            await wait_for_holder(b.cluster, "ag_1", None, timeout=a.cluster.ttl_s + 1)
            with pytest.raises(AgentOffline, match="not connected"):
                await b.hub.for_client("cl_1").call_tool("ag_1", "system_info", {}, timeout=5)
            release.set()
            await link.disconnect()
        finally:
            release.set()
            await proxy.down()
            await a.stop()
            await b.stop()
            journal.close()


async def test_another_clients_agent_on_another_replica_does_not_exist_for_the_caller(tmp_path: Path) -> None:
    async with key_prefix() as prefix:
        a = await start_replica(SHARED_REDIS, prefix, "replica-a")
        b = await start_replica(SHARED_REDIS, prefix, "replica-b")
        runs: dict[str, int] = {}
        identity, executor, journal = make_agent("ag_1", "cl_1", tmp_path, counting_tools(runs))
        try:
            link = await connect(a.hub, identity, executor)
            await wait_for_holder(b.cluster, "ag_1", ("replica-a", "cl_1"))
            with pytest.raises(AgentOffline, match="ag_1 is not connected"):
                await b.hub.for_client("cl_2").call_tool("ag_1", "system_info", {}, timeout=5)
            assert runs == {} and link.agent.received == []
            await link.disconnect()
        finally:
            await a.stop()
            await b.stop()
            journal.close()


def test_a_heartbeat_not_shorter_than_the_ttl_is_refused() -> None:
    from mspclaw.dispatch.cluster import Cluster

    with pytest.raises(ConfigError, match="shorter than the presence TTL"):
        Cluster.from_url(SHARED_REDIS, heartbeat_s=5, ttl_s=5)
    with pytest.raises(ConfigError, match="MSPCLAW_REDIS_URL is not a Redis URL"):
        Cluster.from_url("http://127.0.0.1:6379")
