"""Tool calls forwarded between replicas: the result comes back, the call id is the same on both sides, a
retried destructive call runs once, and a replica that loses Redis keeps serving its own agents.

Real Redis: the shared test server on 127.0.0.1:6379 under a random key prefix per test (deleted after it),
and, for the outage, a ``redis-server`` of the test's own on a free loopback port that the test stops and
starts again (the shared server is never stopped). Two replicas (two hubs, two clusters with different
replica ids) run in this process; agents are the real sans-I/O connection, executor (signature, schema,
Ed25519 approval gates) and SQLite journal (``cluster_replicas``).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from tests.dispatch.cluster_replicas import (
    SHARED_REDIS,
    OwnRedis,
    connect,
    counting_tools,
    grant,
    key_prefix,
    make_agent,
    start_replica,
    wait_for,
    wait_for_holder,
)

from mspclaw.dispatch.hub import new_call_id
from mspclaw.errors import AgentOffline, ToolRefused, ToolTimeout, UnknownTool

pytestmark = pytest.mark.anyio

END = {"pid": 4242, "name": "frozen-app"}


async def test_a_call_from_another_replica_reaches_the_agent_with_the_same_call_id(tmp_path: Path) -> None:
    runs: dict[str, int] = {}
    identity, executor, journal = make_agent("ag_1", "cl_1", tmp_path, counting_tools(runs))
    async with key_prefix() as prefix:
        a = await start_replica(SHARED_REDIS, prefix, "replica-a")
        b = await start_replica(SHARED_REDIS, prefix, "replica-b")
        try:
            link = await connect(a.hub, identity, executor)
            await wait_for_holder(b.cluster, "ag_1", ("replica-a", "cl_1"))
            call_id = new_call_id()
            result = await b.hub.for_client("cl_1").call_tool("ag_1", "system_info", {}, timeout=10, call_id=call_id)
            assert result.ok and result.output == {"hostname": "pc-test"} and result.call_id == call_id
            assert link.agent.received == [call_id], "the agent must see the caller's call id"
            assert runs == {"system_info": 1}

            # without a call id the hub draws one, and it is still the one the agent sees
            result = await b.hub.for_client("cl_1").call_tool("ag_1", "system_info", {}, timeout=10)
            assert link.agent.received[-1] == result.call_id != call_id

            # what the agent refuses comes back as the refusal a local caller gets
            with pytest.raises(ToolRefused) as refused:
                await b.hub.for_client("cl_1").call_tool("ag_1", "end_process", END, timeout=10)
            assert refused.value.refusal_code == "approval_required"
            with pytest.raises(UnknownTool, match="does not offer 'no_such_tool'"):
                await b.hub.for_client("cl_1").call_tool("ag_1", "no_such_tool", {}, timeout=10)
            assert runs == {"system_info": 2}
            await link.disconnect()
            await wait_for_holder(b.cluster, "ag_1", None)
            with pytest.raises(AgentOffline, match="ag_1 is not connected"):
                await b.hub.for_client("cl_1").call_tool("ag_1", "system_info", {}, timeout=10)
        finally:
            await a.stop()
            await b.stop()
            journal.close()


async def test_a_retried_forwarded_destructive_call_runs_once(tmp_path: Path) -> None:
    runs: dict[str, int] = {}
    identity, executor, journal = make_agent("ag_1", "cl_1", tmp_path, counting_tools(runs))
    async with key_prefix() as prefix:
        a = await start_replica(SHARED_REDIS, prefix, "replica-a")
        b = await start_replica(SHARED_REDIS, prefix, "replica-b")
        try:
            link = await connect(a.hub, identity, executor)
            await wait_for_holder(b.cluster, "ag_1", ("replica-a", "cl_1"))
            call_id = new_call_id()
            approval = grant("end_process", END, call_id=call_id, agent_id="ag_1")
            first = await b.hub.for_client("cl_1").call_tool("ag_1", "end_process", END, timeout=10,
                                                              call_id=call_id, approval=approval)
            assert first.ok and runs == {"end_process": 1}
            # the caller did not hear back (say), and retries: forwarded again, then from the holder itself
            again = await b.hub.for_client("cl_1").call_tool("ag_1", "end_process", END, timeout=10,
                                                              call_id=call_id, approval=approval)
            local = await a.hub.for_client("cl_1").call_tool("ag_1", "end_process", END, timeout=10,
                                                              call_id=call_id, approval=approval)
            assert again.output == first.output == local.output
            assert runs == {"end_process": 1}, "the journal must answer a retried call, not run it again"
            assert link.agent.received == [call_id] * 3
            await link.disconnect()
        finally:
            await a.stop()
            await b.stop()
            journal.close()


async def test_a_forwarded_call_times_out_like_a_local_one(tmp_path: Path) -> None:
    release = asyncio.Event()
    identity, executor, journal = make_agent("ag_1", "cl_1", tmp_path, counting_tools({}, slow=release))
    async with key_prefix() as prefix:
        a = await start_replica(SHARED_REDIS, prefix, "replica-a")
        b = await start_replica(SHARED_REDIS, prefix, "replica-b")
        try:
            link = await connect(a.hub, identity, executor)
            await wait_for_holder(b.cluster, "ag_1", ("replica-a", "cl_1"))
            started = time.monotonic()
            with pytest.raises(ToolTimeout, match=r"system_info on pc-test: no result within 0\.5 s"):
                await b.hub.for_client("cl_1").call_tool("ag_1", "system_info", {}, timeout=0.5)
            assert time.monotonic() - started < 2.0
            release.set()
            await link.disconnect()
        finally:
            release.set()
            await a.stop()
            await b.stop()
            journal.close()


async def test_a_replica_that_loses_redis_serves_its_own_agents_fails_forwarded_calls_fast_and_recovers(
        tmp_path: Path) -> None:
    runs: dict[str, int] = {}
    one, exec_one, journal_one = make_agent("ag_1", "cl_1", tmp_path, counting_tools(runs))
    two, exec_two, journal_two = make_agent("ag_2", "cl_1", tmp_path, counting_tools(runs))
    redis = OwnRedis()
    await redis.start()
    a = await start_replica(redis.url, "t:", "replica-a")
    b = await start_replica(redis.url, "t:", "replica-b")
    try:
        on_a = await connect(a.hub, one, exec_one)
        on_b = await connect(b.hub, two, exec_two)
        await wait_for_holder(b.cluster, "ag_1", ("replica-a", "cl_1"))
        await wait_for_holder(a.cluster, "ag_2", ("replica-b", "cl_1"))
        assert (await b.hub.for_client("cl_1").call_tool("ag_1", "system_info", {}, timeout=5)).ok

        redis.stop()
        await wait_for(lambda: not a.cluster.healthy and not b.cluster.healthy, "the replicas did not notice")
        assert "Redis unreachable" in b.cluster.problem
        for replica, agent_id in ((a, "ag_1"), (b, "ag_2")):  # each still serves its own agents
            assert (await replica.hub.for_client("cl_1").call_tool(agent_id, "system_info", {}, timeout=5)).ok
        started = time.monotonic()
        with pytest.raises(AgentOffline, match="other replicas cannot be reached: Redis unreachable"):
            await b.hub.for_client("cl_1").call_tool("ag_1", "system_info", {}, timeout=30)
        assert time.monotonic() - started < 0.5, "a forwarded call must fail at once while Redis is down"

        await redis.start()  # the same port, empty: presence comes back from the heartbeats
        await wait_for(lambda: a.cluster.healthy and b.cluster.healthy, "the replicas did not recover", timeout=15)
        await wait_for_holder(b.cluster, "ag_1", ("replica-a", "cl_1"))
        result = await b.hub.for_client("cl_1").call_tool("ag_1", "system_info", {}, timeout=5)
        assert result.ok and on_a.agent.received[-1] == result.call_id
        assert (await a.hub.for_client("cl_1").call_tool("ag_2", "system_info", {}, timeout=5)).ok
        assert b.cluster.problem == ""
        await on_a.disconnect()
        await on_b.disconnect()
    finally:
        await a.stop()
        await b.stop()
        redis.stop()
        journal_one.close()
        journal_two.close()


async def test_a_destructive_call_whose_agent_moves_to_another_replica_mid_call_runs_once(tmp_path: Path) -> None:
    runs: dict[str, int] = {}
    release = asyncio.Event()
    identity, executor, journal = make_agent("ag_1", "cl_1", tmp_path, counting_tools(runs, slow=release))
    async with key_prefix() as prefix:
        a = await start_replica(SHARED_REDIS, prefix, "replica-a")
        b = await start_replica(SHARED_REDIS, prefix, "replica-b")
        c = await start_replica(SHARED_REDIS, prefix, "replica-c")
        try:
            on_a = await connect(a.hub, identity, executor)
            await wait_for_holder(b.cluster, "ag_1", ("replica-a", "cl_1"))
            call_id = new_call_id()
            approval = grant("end_process", END, call_id=call_id, agent_id="ag_1")
            call = asyncio.create_task(b.hub.for_client("cl_1").call_tool(
                "ag_1", "end_process", END, timeout=20, call_id=call_id, approval=approval, reconnect_grace=15))
            await wait_for(lambda: runs.get("end_process") == 1, "the call did not start on the agent")

            await on_a.disconnect()  # the agent's connection to A drops while the tool runs ...
            on_c = await connect(c.hub, identity, executor)  # ... and it comes back on replica C
            await wait_for_holder(b.cluster, "ag_1", ("replica-c", "cl_1"))
            release.set()
            result = await asyncio.wait_for(call, 20)
            assert result.ok and result.call_id == call_id and result.output == {"ended": END}
            assert runs == {"end_process": 1}, "the resent call must be answered by the journal, not run again"
            assert on_a.agent.received == [call_id] and on_c.agent.received[-1] == call_id
            await on_c.disconnect()
        finally:
            release.set()
            for replica in (a, b, c):
                await replica.stop()
            journal.close()
