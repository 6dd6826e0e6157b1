"""Forwarded calls over the replicas' direct connection (``dispatch/relay.py``): the result comes back over it,
a peer without the shared secret gets nothing run, a lost connection fails the call at once, and a replica
that cannot be reached directly is called through Redis instead.

Real services: the shared Redis on 127.0.0.1:6379 under a random key prefix per test (deleted after it), real
TCP connections on loopback between two replicas in this process (two hubs, two clusters); agents are the
real sans-I/O connection, executor and SQLite journal (``cluster_replicas``). The raw-socket tests speak the
relay's framing (4-byte big-endian length, then the payload) as an attacker on the network would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.dispatch.cluster_replicas import (
    SHARED_REDIS,
    Replica,
    connect,
    counting_tools,
    key_prefix,
    make_agent,
    wait_for,
    wait_for_holder,
)

from mspclaw.dispatch.cluster import Cluster
from mspclaw.dispatch.hub import Hub, new_call_id
from mspclaw.dispatch.relay import ReplicaRelay
from mspclaw.errors import AgentOffline, ConfigError

pytestmark = pytest.mark.anyio

SECRET = secrets.token_bytes(32)


async def start(prefix: str, name: str, secret: bytes = SECRET, *, port: int = 0) -> Replica:
    cluster = Cluster.from_url(SHARED_REDIS, replica_id=name, prefix=prefix, heartbeat_s=0.2, ttl_s=1.5,
                               relay=ReplicaRelay(secret, host="127.0.0.1", port=port))
    hub = Hub(heartbeat_interval=30, cluster=cluster)
    replica = Replica(hub, cluster, asyncio.create_task(cluster.run(hub)))
    await wait_for(lambda: cluster.healthy, f"replica {name} did not start")
    return replica


@contextlib.asynccontextmanager
async def two_replicas(b_secret: bytes = SECRET) -> AsyncIterator[tuple[Replica, Replica]]:
    async with key_prefix() as prefix:
        a = await start(prefix, "replica-a")
        b = await start(prefix, "replica-b", b_secret)
        try:
            yield a, b
        finally:
            await a.stop()
            await b.stop()


def frame(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


async def test_a_forwarded_call_goes_over_the_direct_connection(tmp_path: Path) -> None:
    runs: dict[str, int] = {}
    identity, executor, journal = make_agent("ag_1", "cl_1", tmp_path, counting_tools(runs))
    async with two_replicas() as (a, b):
        try:
            link = await connect(a.hub, identity, executor)
            await wait_for_holder(b.cluster, "ag_1", ("replica-a", "cl_1"))
            assert b.cluster.relay is not None and b.cluster.relay.connected("replica-a") is None
            call_id = new_call_id()
            result = await b.hub.for_client("cl_1").call_tool("ag_1", "system_info", {}, timeout=10, call_id=call_id)
            assert result.ok and result.output == {"hostname": "pc-test"} and result.call_id == call_id
            assert link.agent.received == [call_id]
            assert b.cluster.relay.connected("replica-a") is not None, "the call must have opened the direct link"
            results = await asyncio.gather(*(b.hub.for_client("cl_1").call_tool("ag_1", "system_info", {}, timeout=10)
                                             for _ in range(20)))  # multiplexed on the one connection
            assert all(r.ok for r in results) and runs == {"system_info": 21}
            with pytest.raises(AgentOffline, match="ag_1 is not connected"):  # another client's agent
                await b.hub.for_client("cl_2").call_tool("ag_1", "system_info", {}, timeout=10)
            assert runs == {"system_info": 21}
        finally:
            journal.close()


async def test_a_replica_without_the_secret_is_refused_and_its_calls_go_through_redis(tmp_path: Path) -> None:
    runs: dict[str, int] = {}
    identity, executor, journal = make_agent("ag_1", "cl_1", tmp_path, counting_tools(runs))
    async with two_replicas(b_secret=secrets.token_bytes(32)) as (a, b):
        try:
            await connect(a.hub, identity, executor)
            await wait_for_holder(b.cluster, "ag_1", ("replica-a", "cl_1"))
            result = await b.hub.for_client("cl_1").call_tool("ag_1", "system_info", {}, timeout=10)
            assert result.ok and runs == {"system_info": 1}, "the fallback through Redis must still run the call"
            assert b.cluster.relay is not None and b.cluster.relay.connected("replica-a") is None
        finally:
            journal.close()


async def test_the_listener_runs_nothing_for_a_peer_that_skips_or_fails_the_handshake(tmp_path: Path) -> None:
    runs: dict[str, int] = {}
    identity, executor, journal = make_agent("ag_1", "cl_1", tmp_path, counting_tools(runs))
    async with two_replicas() as (a, _b):
        try:
            await connect(a.hub, identity, executor)
            assert a.cluster.relay is not None
            host, port = a.cluster.relay.address.rsplit(":", 1)
            call = json.dumps({"kind": "call", "call_id": "c1", "client_id": "cl_1", "agent_id": "ag_1",
                               "tool": "system_info", "args": {}, "timeout": 5, "reply_to": "x"}).encode()

            # a call instead of the hello: closed without an answer
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(frame(call))
            assert await asyncio.wait_for(reader.read(), 10) == b""
            writer.close()

            # a hello, then a guessed proof: closed, the call after it never runs
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(frame(json.dumps({"v": 1, "replica": "intruder", "nonce": secrets.token_hex(32)}).encode()))
            size = int.from_bytes(await reader.readexactly(4), "big")
            server_hello = json.loads(await reader.readexactly(size))
            assert server_hello["replica"] == "replica-a" and len(server_hello["proof"]) == 64
            writer.write(frame(json.dumps({"proof": "0" * 64}).encode()) + frame(call))
            assert await asyncio.wait_for(reader.read(), 10) == b""
            writer.close()

            # an oversized length prefix: closed at once, nothing buffered
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write((1 << 30).to_bytes(4, "big"))
            assert await asyncio.wait_for(reader.read(), 10) == b""
            writer.close()
            await asyncio.sleep(0.2)
            assert runs == {}, "no unauthenticated call may reach the agent"
        finally:
            journal.close()


async def test_a_call_whose_direct_connection_breaks_fails_at_once(tmp_path: Path) -> None:
    runs: dict[str, int] = {}
    release = asyncio.Event()
    identity, executor, journal = make_agent("ag_1", "cl_1", tmp_path, counting_tools(runs, slow=release))
    async with two_replicas() as (a, b):
        try:
            await connect(a.hub, identity, executor)
            await wait_for_holder(b.cluster, "ag_1", ("replica-a", "cl_1"))
            call = asyncio.create_task(b.hub.for_client("cl_1").call_tool("ag_1", "system_info", {}, timeout=30))
            await wait_for(lambda: runs.get("system_info") == 1, "the call did not reach the agent")
            assert a.cluster.relay is not None
            await a.cluster.relay.aclose()  # the holder's end of the connection goes away mid-call
            with pytest.raises(AgentOffline, match=r"connection to replica replica-a, .* was lost"):
                await asyncio.wait_for(call, 5)
            release.set()
            await asyncio.sleep(0.3)  # the tool's thread finishes and journals its result before the journal closes
        finally:
            release.set()
            journal.close()


async def test_a_replica_that_cannot_listen_is_still_reached_through_redis(tmp_path: Path,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    runs: dict[str, int] = {}
    identity, executor, journal = make_agent("ag_1", "cl_1", tmp_path, counting_tools(runs))
    async with key_prefix() as prefix:
        b = await start(prefix, "replica-b")
        assert b.cluster.relay is not None
        taken = int(b.cluster.relay.address.rsplit(":", 1)[1])
        a = await start(prefix, "replica-a", port=taken)  # the port is B's: A cannot listen
        try:
            assert a.cluster.relay is None and "replica-a cannot listen for direct calls" in caplog.text
            await connect(a.hub, identity, executor)
            await wait_for_holder(b.cluster, "ag_1", ("replica-a", "cl_1"))
            result = await b.hub.for_client("cl_1").call_tool("ag_1", "system_info", {}, timeout=10)
            assert result.ok and runs == {"system_info": 1}
            assert b.cluster.relay.connected("replica-a") is None
        finally:
            await a.stop()
            await b.stop()
            journal.close()


def test_a_short_secret_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="at least 32 random bytes"):
        ReplicaRelay(b"too short")


def test_addresses_and_derived_secrets_are_checked() -> None:
    relay = ReplicaRelay.listening_on("[::1]:0", "x" * 48, advertise="10.0.0.5:7401")
    assert relay.address == ""  # known once started
    with pytest.raises(ConfigError, match=r"MSPCLAW_RELAY_LISTEN\) is '0.0.0.0'; write host:port"):
        ReplicaRelay.listening_on("0.0.0.0", "x" * 48)
    with pytest.raises(ConfigError, match="MSPCLAW_RELAY_ADVERTISE"):
        ReplicaRelay.listening_on("0.0.0.0:7401", "x" * 48, advertise="host:port")
    with pytest.raises(ConfigError, match="MSPCLAW_JWT_SECRET has 9 characters"):
        ReplicaRelay.listening_on("0.0.0.0:7401", "too-short")
