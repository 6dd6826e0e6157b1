"""Server replicas for the cluster tests: each a real :class:`Hub` with a :class:`Cluster` on a real Redis.

Two replicas live in one process (two hubs, two clusters, different replica ids) and share a Redis on
loopback: the shared test server on 127.0.0.1:6379 under a random key prefix per test (deleted after it),
or a ``redis-server`` of the test's own (:class:`OwnRedis`) when the test stops Redis. An agent is the real
sans-I/O ``AgentConnection`` with the real ``Executor`` (signature, schema and approval gates) and its
SQLite ``Journal``, over the in-memory socket of ``test_hub_push``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from redis.asyncio import Redis
from tests.conftest import free_port
from tests.dispatch.test_hub_push import MemorySocket

from mspclaw.agent.executor import Executor
from mspclaw.agent.journal import Journal
from mspclaw.agent.tools import ToolContext, tool_registry
from mspclaw.dispatch.cluster import Cluster
from mspclaw.dispatch.hub import AgentIdentity, Hub
from mspclaw.pipeline.approvals import ApprovalSigner
from mspclaw.protocol.connection import AgentConnection, FrameReceived
from mspclaw.protocol.frames import PROTOCOL_VERSION, Approval, Hello, ToolCall
from mspclaw.protocol.signing import args_digest

SHARED_REDIS = "redis://127.0.0.1:6379/0"
APPROVALS = ApprovalSigner(secrets.token_bytes(32))
"""The server's approval key in these tests (each agent pins its public half)."""


def grant(tool: str, args: dict[str, Any], *, call_id: str, agent_id: str) -> Approval:
    """A technician's approval of one call, as the server signs it."""
    return APPROVALS.sign(Approval(approval_id="apr-" + secrets.token_hex(4), approver="tech@msp",
                                   decided_at=time.time(), tool=tool, args_sha256=args_digest(args),
                                   agent_id=agent_id, expires_at=time.time() + 60), call_id=call_id)


@dataclass
class Replica:
    hub: Hub
    cluster: Cluster
    task: asyncio.Task[None]

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.cluster.aclose()


async def start_replica(url: str, prefix: str, name: str, *, heartbeat_s: float = 0.2,
                        ttl_s: float = 1.5) -> Replica:
    cluster = Cluster.from_url(url, replica_id=name, prefix=prefix, heartbeat_s=heartbeat_s, ttl_s=ttl_s)
    hub = Hub(heartbeat_interval=30, cluster=cluster)
    replica = Replica(hub, cluster, asyncio.create_task(cluster.run(hub)))
    await wait_for(lambda: cluster.healthy, f"replica {name} did not reach Redis")
    return replica


async def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> float:
    """Poll ``condition`` until it holds; the seconds it took. Fails with ``what`` after ``timeout``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what} (waited {timeout:g} s)")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def wait_for_holder(cluster: Cluster, agent_id: str, expected: tuple[str, str] | None,
                          timeout: float = 10.0) -> float:
    started = time.monotonic()
    while (found := await cluster.holder(agent_id)) != expected:
        if time.monotonic() - started > timeout:
            raise AssertionError(f"holder of {agent_id} is {found}, expected {expected}")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


@contextlib.asynccontextmanager
async def key_prefix(url: str = SHARED_REDIS) -> AsyncIterator[str]:
    """A random key prefix for one test; every key under it is deleted afterwards."""
    prefix = f"test-{secrets.token_hex(6)}:"
    try:
        yield prefix
    finally:
        redis = Redis.from_url(url)
        try:
            keys = [key async for key in redis.scan_iter(match=prefix + "*")]
            if keys:
                await redis.delete(*keys)
        finally:
            await redis.aclose()


Counted = dict[str, int]


def counting_tools(runs: Counted, *, slow: asyncio.Event | None = None) -> dict[str, Any]:
    """``end_process`` (destructive) and ``system_info`` replaced by tools that count their runs (and, with
    ``slow``, wait until it is set); they run behind every gate of the executor like the real ones."""

    def hold() -> None:  # until the test releases it (the tool runs in a thread of its own)
        deadline = time.monotonic() + 30
        while slow is not None and not slow.is_set() and time.monotonic() < deadline:
            time.sleep(0.02)

    def end_process(args: BaseModel, context: ToolContext) -> dict[str, Any]:
        runs["end_process"] = runs.get("end_process", 0) + 1
        hold()
        return {"ended": args.model_dump()}

    def system_info(args: BaseModel, context: ToolContext) -> dict[str, Any]:
        runs["system_info"] = runs.get("system_info", 0) + 1
        hold()
        return {"hostname": "pc-test"}

    return {"end_process": end_process, "system_info": system_info}


@dataclass
class JournalAgent:
    """An agent's end of a socket: the real sans-I/O connection, executor and journal."""

    sock: MemorySocket
    identity: AgentIdentity
    executor: Executor
    received: list[str] = field(default_factory=list)
    """The call ids of every tool call this agent was sent, in order."""

    def __post_init__(self) -> None:
        self.conn = AgentConnection(now=time.time())
        self._tasks: set[asyncio.Task[None]] = set()

    def hello(self) -> None:
        self.conn.start(Hello(protocol=PROTOCOL_VERSION, agent_id=self.identity.agent_id,
                              client_id=self.identity.client_id, role="device", hostname="pc-test", os="linux",
                              tools=self.executor.offered_tools()))
        self._flush()

    def _flush(self) -> None:
        for text in self.conn.data_to_send():
            self.sock.arrive(text)

    async def run(self) -> None:
        try:
            while True:
                text = await self.sock.to_agent.get()
                for event in self.conn.receive(text, time.time()):
                    if isinstance(event, FrameReceived) and isinstance(event.frame, ToolCall):
                        self.received.append(event.frame.call_id)
                        task = asyncio.create_task(self._execute(event.frame))
                        self._tasks.add(task)
                        task.add_done_callback(self._tasks.discard)
                self._flush()
        finally:
            for task in self._tasks:
                task.cancel()

    async def _execute(self, call: ToolCall) -> None:
        result = await self.executor.execute(call)
        self.conn.result(result)
        self._flush()


@dataclass
class Connected:
    agent: JournalAgent
    serving: asyncio.Task[None]
    answering: asyncio.Task[None]

    async def disconnect(self) -> None:
        self.answering.cancel()
        self.agent.sock.inbox.put_nowait(None)
        await self.serving


def make_agent(agent_id: str, client_id: str, tmp: Path, tools: dict[str, Any],
               journal: Journal | None = None) -> tuple[AgentIdentity, Executor, Journal]:
    identity = AgentIdentity(agent_id, client_id, "device", secrets.token_bytes(32))
    journal = journal or Journal(tmp / f"{agent_id}-journal.db")
    executor = Executor(key=identity.signing_key, registry=tool_registry("linux") | tools, journal=journal,
                        context=ToolContext(temp_roots=()), approval_key=APPROVALS.public_key, agent_id=agent_id)
    return identity, executor, journal


async def connect(hub: Hub, identity: AgentIdentity, executor: Executor) -> Connected:
    sock = MemorySocket(can_push=True)
    agent = JournalAgent(sock, identity, executor)
    serving = asyncio.create_task(hub.serve(identity, sock))
    answering = asyncio.create_task(agent.run())
    agent.hello()
    await wait_for(lambda: (link := hub.link(identity.agent_id)) is not None and link.transport is sock,
                   f"{identity.agent_id} did not connect")
    return Connected(agent, serving, answering)


class OwnRedis:
    """A ``redis-server`` of the test's own on a free loopback port (no persistence), to stop and start again."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.binary = binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        self.proc = subprocess.Popen([self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env={**os.environ})
        redis = Redis.from_url(self.url)
        try:
            for _ in range(200):
                try:
                    if await redis.ping():
                        return
                except OSError:
                    pass
                except Exception:  # redis.exceptions.ConnectionError while it starts
                    pass
                await asyncio.sleep(0.025)
            raise RuntimeError(f"redis-server on port {self.port} did not start")
        finally:
            await redis.aclose()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None
