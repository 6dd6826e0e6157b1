"""The hub's two ways of taking a tool result: pushed from the socket's read callback, or through ``recv``.

The transport here is an in-memory socket that behaves like the server's (``api/agent_listener.py``): a message
is offered to the registered push handler when nothing waits unread before it, else queued for
``recv``. The agent end is the real sans-I/O ``AgentConnection`` and the real ``Signer``.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import pytest

from mspclaw.dispatch.hub import AgentIdentity, Hub, PushHandler, TransportClosed
from mspclaw.errors import ToolTimeout
from mspclaw.protocol.codec import decode_agent_frame, encode
from mspclaw.protocol.connection import AgentConnection, FrameReceived
from mspclaw.protocol.frames import PROTOCOL_VERSION, Error, Hello, Ping, Pong, ToolCall, ToolResult
from mspclaw.protocol.signing import Signer

pytestmark = pytest.mark.anyio


class MemorySocket:
    """The hub's transport over two in-memory queues; ``can_push`` decides whether it offers ``push``."""

    def __init__(self, can_push: bool) -> None:
        self.can_push = can_push
        self.inbox: asyncio.Queue[str | None] = asyncio.Queue()  # read by the hub's recv
        self.to_agent: asyncio.Queue[str] = asyncio.Queue()
        self.handler: PushHandler | None = None
        self.registrations: list[PushHandler | None] = []
        self.pushed: list[str] = []
        self.closed: tuple[int, str] | None = None

    def __getattr__(self, name: str) -> Any:
        if name == "push" and self.can_push:
            return self._push
        raise AttributeError(name)

    def _push(self, handler: PushHandler | None) -> bool:
        self.handler = handler
        self.registrations.append(handler)
        return True

    def arrive(self, text: str) -> None:
        """What the server socket does with a message it read."""
        if self.handler is not None and self.inbox.empty() and self.handler(text):
            self.pushed.append(text)
            return
        self.inbox.put_nowait(text)

    async def send(self, text: str) -> None:
        if self.closed:
            raise TransportClosed("closed")
        self.to_agent.put_nowait(text)

    async def recv(self) -> str:
        text = await self.inbox.get()
        if text is None:
            raise TransportClosed("peer closed")
        return text

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


class Agent:
    """Answers every signed call with a result; anything else it receives is kept."""

    def __init__(self, sock: MemorySocket, identity: AgentIdentity) -> None:
        self.sock, self.identity = sock, identity
        self.conn = AgentConnection(now=time.time())
        self.signer = Signer(identity.signing_key)
        self.other: list[Any] = []

    def hello(self) -> None:
        self.conn.start(Hello(protocol=PROTOCOL_VERSION, agent_id=self.identity.agent_id,
                              client_id=self.identity.client_id, role="device", hostname="pc", os="linux",
                              tools=["system_info"]))
        self._flush()

    def _flush(self) -> None:
        for text in self.conn.data_to_send():
            self.sock.arrive(text)

    async def run(self) -> None:
        while True:
            text = await self.sock.to_agent.get()
            for event in self.conn.receive(text, time.time()):
                if isinstance(event, FrameReceived) and isinstance(event.frame, ToolCall):
                    assert self.signer.verify(event.frame)
                    self.conn.result(ToolResult(call_id=event.frame.call_id, ok=True, output={"n": 1}))
                else:
                    self.other.append(event)
            self._flush()


async def connected(can_push: bool) -> tuple[Hub, MemorySocket, Agent, asyncio.Task[None], asyncio.Task[None]]:
    hub = Hub(heartbeat_interval=30)
    identity = AgentIdentity("ag_1", "cl_1", "device", secrets.token_bytes(32))
    sock = MemorySocket(can_push)
    agent = Agent(sock, identity)
    serving = asyncio.create_task(hub.serve(identity, sock))
    answering = asyncio.create_task(agent.run())
    agent.hello()
    for _ in range(100):
        if hub.is_online("ag_1"):
            break
        await asyncio.sleep(0.01)
    assert hub.is_online("ag_1")
    return hub, sock, agent, serving, answering


async def test_results_are_pushed_to_their_callers_and_the_rest_still_comes_through_recv() -> None:
    hub, sock, _agent, serving, answering = await connected(can_push=True)
    try:
        assert sock.handler is not None, "the hub did not register for pushes after hello"
        for _ in range(3):
            result = await hub.for_client("cl_1").call_tool("ag_1", "system_info", {}, timeout=5)
            assert result.ok and result.output == {"n": 1}
        assert [decode_agent_frame(t).kind for t in sock.pushed] == ["tool_result"] * 3
        assert sock.inbox.empty()
        sock.arrive(encode(Ping(seq=7)))  # not a result: left to recv, answered by the pump
        assert decode_agent_frame(await asyncio.wait_for(sock.to_agent.get(), 5)) == Pong(seq=7)
        assert len(sock.pushed) == 3
    finally:
        answering.cancel()
        sock.inbox.put_nowait(None)
        await serving
    assert sock.registrations[-1] is None, "the handler stays registered after the connection ended"
    assert not hub.is_online("ag_1")


async def test_a_result_the_handler_leaves_is_refused_by_the_pump_as_before() -> None:
    hub, sock, _agent, serving, answering = await connected(can_push=True)
    answering.cancel()
    try:
        sock.arrive(encode(ToolResult(call_id="nobody", ok=True)))
        assert sock.pushed == []
        error = decode_agent_frame(await asyncio.wait_for(sock.to_agent.get(), 5))
        assert isinstance(error, Error) and error.ref == "nobody"
        with pytest.raises(ToolTimeout):  # the call is sent, nobody answers: the caller's own timer
            await hub.for_client("cl_1").call_tool("ag_1", "system_info", {}, timeout=0.05)
        link = hub.link("ag_1")
        assert link is not None and link.waiters == {}
    finally:
        sock.inbox.put_nowait(None)
        await serving


async def test_without_push_every_result_comes_through_recv() -> None:
    hub, sock, _agent, serving, answering = await connected(can_push=False)
    try:
        for _ in range(3):
            result = await hub.for_client("cl_1").call_tool("ag_1", "system_info", {}, timeout=5)
            assert result.ok
        assert sock.registrations == [] and sock.pushed == []
    finally:
        answering.cancel()
        sock.inbox.put_nowait(None)
        await serving
