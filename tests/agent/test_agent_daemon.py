"""The daemon end to end over a real WebSocket on 127.0.0.1.

The other end is :class:`ProtocolPeer`: a websockets server driving the real server-side
protocol state machine (:class:`mspclaw.protocol.connection.ServerConnection`). It is the
protocol peer the daemon talks to in production, not a mock of the daemon.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from websockets.asyncio.server import ServerConnection as WebSocket
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

import mspclaw
from mspclaw.agent.daemon import EXIT_FATAL, EXIT_OK, AgentDaemon, agent_ws_url
from mspclaw.agent.executor import Executor
from mspclaw.agent.journal import Journal
from mspclaw.agent.state import AgentState
from mspclaw.agent.tools import JsonObject, ToolContext, bind, tool_registry
from mspclaw.protocol.codec import encode
from mspclaw.protocol.connection import CallCompleted, HelloReceived, ServerConnection
from mspclaw.protocol.frames import AskUser, Error, Hello, NotifyUser, ToolCall, ToolResult
from mspclaw.protocol.signing import sign_call
from mspclaw.tools.catalogue import CATALOGUE, NoArgs

if TYPE_CHECKING:
    from tests.agent.conftest import SignCall

pytestmark = pytest.mark.anyio

T = TypeVar("T")
WAIT_S = 5.0


async def within(awaitable: Awaitable[T], timeout: float = WAIT_S) -> T:
    return await asyncio.wait_for(awaitable, timeout)


class ProtocolPeer:
    """The server's end of ``/ws/agent``: records what the agent sends, sends calls and frames to it.

    ``mode`` scripts the server's behaviour: ``serve`` (normal), ``revoke`` (close 4401 at once),
    ``old_protocol`` (answer hello with a version_mismatch error, as a server of another version).
    """

    def __init__(self, key: bytes, heartbeat_interval: float = 30.0) -> None:
        self.key = key
        self.heartbeat_interval = heartbeat_interval
        self.mode = "serve"
        self.refuse_upgrade: HTTPStatus | None = None
        self.url = ""
        self.auth_headers: list[str | None] = []
        self.hellos: list[Hello] = []
        self.frames: list[dict[str, Any]] = []
        self.close_codes: list[int | None] = []
        self.results: asyncio.Queue[ToolResult] = asyncio.Queue()
        self.hello_seen = asyncio.Condition()
        self._ws: WebSocket | None = None
        self._conn: ServerConnection | None = None

    def process_request(self, ws: WebSocket, request: Request) -> Response | None:
        self.auth_headers.append(request.headers.get("Authorization"))
        if self.refuse_upgrade is not None:
            return ws.respond(self.refuse_upgrade, "credential refused\n")
        return None

    async def handler(self, ws: WebSocket) -> None:
        if self.mode == "revoke":
            await ws.close(4401, "credential revoked")
            self.close_codes.append(ws.close_code)
            return
        conn = ServerConnection(now=time.time(), heartbeat_interval=self.heartbeat_interval)
        self._ws, self._conn = ws, conn
        try:
            async for text in ws:
                self.frames.append(json.loads(text))
                if self.mode == "old_protocol":
                    await ws.send(encode(Error(code="version_mismatch", message="this server speaks protocol 99")))
                    continue
                for event in conn.receive(text, time.time()):
                    match event:
                        case HelloReceived(hello=hello):
                            async with self.hello_seen:
                                self.hellos.append(hello)
                                self.hello_seen.notify_all()
                        case CallCompleted(result=result):
                            await self.results.put(result)
                await self.flush()
        except ConnectionClosed:
            pass
        self.close_codes.append(ws.close_code)

    async def flush(self) -> None:
        assert self._ws is not None and self._conn is not None
        for text in self._conn.data_to_send():
            await self._ws.send(text)

    async def wait_hellos(self, count: int) -> Hello:
        async with self.hello_seen:
            await within(self.hello_seen.wait_for(lambda: len(self.hellos) >= count))
        return self.hellos[count - 1]

    async def call(self, call: ToolCall, *, sign: bool = True) -> ToolResult:
        assert self._conn is not None
        self._conn.call(sign_call(self.key, call) if sign else call)
        await self.flush()
        return await within(self.results.get())

    async def send(self, frame: NotifyUser | AskUser) -> None:
        assert self._conn is not None
        self._conn.send(frame)
        await self.flush()

    def drop(self) -> None:
        """Lose the connection abruptly (no close frame), as a crashed server or a dead network would."""
        assert self._ws is not None
        self._ws.transport.abort()


@pytest.fixture
async def peer(key: bytes) -> AsyncIterator[ProtocolPeer]:
    peer = ProtocolPeer(key, heartbeat_interval=0.2)
    async with serve(peer.handler, "127.0.0.1", 0, compression=None, process_request=peer.process_request) as server:
        host, port = next(iter(server.sockets)).getsockname()[:2]
        peer.url = f"http://{host}:{port}"
        yield peer


class CountingTool:
    def __init__(self) -> None:
        self.runs = 0

    def __call__(self, args: NoArgs, context: ToolContext) -> JsonObject:
        self.runs += 1
        return {"run": self.runs}


@pytest.fixture
def counting() -> CountingTool:
    return CountingTool()


@pytest.fixture
def daemon(peer: ProtocolPeer, state: AgentState, key: bytes, journal: Journal, context: ToolContext,
           counting: CountingTool) -> AgentDaemon:
    registry = tool_registry("linux") | {"system_info": bind(NoArgs, counting)}
    executor = Executor(key=key, registry=registry, journal=journal, context=context)
    return AgentDaemon(server=peer.url, state=state, executor=executor,
                       backoff_initial=0.01, backoff_max=0.05, tick_interval=0.05)


@pytest.fixture
async def running(daemon: AgentDaemon) -> AsyncIterator[asyncio.Task[int]]:
    task = asyncio.create_task(daemon.run())
    yield task
    daemon.stop()
    assert await within(task) == EXIT_OK


def test_ws_url_follows_the_server_url() -> None:
    assert agent_ws_url("http://127.0.0.1:8700") == "ws://127.0.0.1:8700/ws/agent"
    assert agent_ws_url("https://msp.example.com/claw/") == "wss://msp.example.com/claw/ws/agent"


def test_ws_url_is_the_one_enrollment_named_for_that_server(state: AgentState) -> None:
    enrolled = state.model_copy(update={"server": "http://msp.example.com:8700",
                                        "agent_url": "ws://msp.example.com:8701/ws/agent"})
    assert agent_ws_url("http://msp.example.com:8700/", enrolled) == "ws://msp.example.com:8701/ws/agent"
    # pointed at another server than it enrolled with: that server's own /ws/agent, not the old listener
    assert agent_ws_url("https://other.example.com", enrolled) == "wss://other.example.com/ws/agent"
    # enrolled before servers named their agent channel: /ws/agent on the server URL (a reverse proxy routes it)
    assert agent_ws_url("http://msp.example.com:8700", state) == "ws://msp.example.com:8700/ws/agent"


async def test_hello_carries_identity_and_offered_tools(
    peer: ProtocolPeer, daemon: AgentDaemon, running: asyncio.Task[int], state: AgentState
) -> None:
    hello = await peer.wait_hellos(1)
    assert peer.auth_headers == [f"Bearer {state.agent_id}.{state.credential}"]
    assert hello.protocol == 1
    assert (hello.agent_id, hello.client_id, hello.role) == (state.agent_id, state.client_id, state.role)
    assert hello.os == "linux" and hello.os_version and hello.hostname
    assert hello.agent_version == mspclaw.__version__
    # every device tool of the catalogue that exists on Linux; site tools belong to site agents
    assert hello.tools == sorted(n for n, s in CATALOGUE.items() if s.runs_on == "device" and "linux" in s.os)
    await within(daemon.connected.wait())


async def test_a_signed_call_gets_its_result_and_a_forged_one_is_refused(
    peer: ProtocolPeer, running: asyncio.Task[int], signed: SignCall
) -> None:
    await peer.wait_hellos(1)
    deadline = time.time() + 10
    result = await peer.call(ToolCall(call_id="c-disk", tool="disk_usage", args={"paths": ["/"]}, deadline=deadline))
    assert result.ok and result.call_id == "c-disk"
    assert result.output["filesystems"][0]["mount_point"] == "/"
    forged = ToolCall(call_id="c-forged", tool="system_info", deadline=deadline, signature="00" * 32)
    refused = await peer.call(forged, sign=False)
    assert not refused.ok and refused.error is not None and refused.error.code == "bad_signature"


async def test_several_calls_run_concurrently(peer: ProtocolPeer, running: asyncio.Task[int]) -> None:
    await peer.wait_hellos(1)
    assert peer._conn is not None
    started = time.monotonic()
    for i in range(3):  # top_processes samples for 0.5 s each
        call = ToolCall(call_id=f"c-top-{i}", tool="top_processes", args={"limit": 3}, deadline=time.time() + 10)
        peer._conn.call(sign_call(peer.key, call))
    await peer.flush()
    results = [await within(peer.results.get()) for _ in range(3)]
    assert all(r.ok for r in results)
    assert sorted(r.call_id for r in results) == ["c-top-0", "c-top-1", "c-top-2"]
    assert time.monotonic() - started < 1.4


async def test_reconnects_after_a_drop_and_replays_a_finished_call(
    peer: ProtocolPeer, daemon: AgentDaemon, running: asyncio.Task[int], counting: CountingTool
) -> None:
    await peer.wait_hellos(1)
    call = ToolCall(call_id="c-once", tool="system_info", deadline=time.time() + 30)
    first = await peer.call(call)
    assert first.ok and not first.replayed and first.output == {"run": 1}

    peer.drop()
    await peer.wait_hellos(2)  # the daemon came back by itself
    again = await peer.call(call)  # the server resends the same call_id after the reconnect

    assert again.replayed is True
    assert again.output == first.output
    assert counting.runs == 1


async def test_heartbeat_pings_follow_the_welcome_interval(peer: ProtocolPeer, running: asyncio.Task[int]) -> None:
    await peer.wait_hellos(1)
    await asyncio.sleep(0.7)
    pings = [f for f in peer.frames if f["kind"] == "ping"]
    assert 2 <= len(pings) <= 5  # every 0.2 s
    assert [p["seq"] for p in pings] == list(range(1, len(pings) + 1))


async def test_notify_is_logged_and_a_question_without_an_answer_source_is_not_answered(
    peer: ProtocolPeer, running: asyncio.Task[int], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mspclaw.agent")
    await peer.wait_hellos(1)
    await peer.send(NotifyUser(text="Your disk has been cleaned up."))
    await peer.send(AskUser(question_id="q1", text="Is the printer on?", choices=["yes", "no"]))
    await asyncio.sleep(0.3)
    assert "Your disk has been cleaned up." in caplog.text
    assert "question q1 for the user, but this agent has no way to ask" in caplog.text
    assert not [f for f in peer.frames if f["kind"] == "user_answer"]


async def test_a_question_is_answered_from_the_injected_answer_source(
    peer: ProtocolPeer, state: AgentState, key: bytes, journal: Journal, context: ToolContext
) -> None:
    asked: list[AskUser] = []

    async def user(question: AskUser) -> str | None:
        asked.append(question)
        return None if question.question_id == "q-dismissed" else "yes, it is on"

    executor = Executor(key=key, registry=tool_registry("linux"), journal=journal, context=context)
    daemon = AgentDaemon(server=peer.url, state=state, executor=executor, answers=user,
                         backoff_initial=0.01, backoff_max=0.05, tick_interval=0.05)
    task = asyncio.create_task(daemon.run())
    try:
        await peer.wait_hellos(1)
        await peer.send(AskUser(question_id="q-dismissed", text="Anything else?"))
        await peer.send(AskUser(question_id="q1", text="Is the printer on?", choices=["yes", "no"]))
        for _ in range(100):
            if [f for f in peer.frames if f["kind"] == "user_answer"]:
                break
            await asyncio.sleep(0.02)
        answers = [f for f in peer.frames if f["kind"] == "user_answer"]
        assert answers == [{"kind": "user_answer", "question_id": "q1", "answer": "yes, it is on"}]
        assert [q.text for q in asked] == ["Anything else?", "Is the printer on?"]
        assert asked[1].choices == ["yes", "no"]
    finally:
        daemon.stop()
        assert await within(task) == EXIT_OK


async def test_stop_closes_the_connection_normally(
    peer: ProtocolPeer, daemon: AgentDaemon, state: AgentState
) -> None:
    task = asyncio.create_task(daemon.run())
    await peer.wait_hellos(1)
    daemon.stop()
    assert await within(task) == EXIT_OK
    await asyncio.sleep(0.1)
    assert peer.close_codes == [1000]


async def test_a_revoked_credential_stops_the_daemon_with_exit_3(
    peer: ProtocolPeer, daemon: AgentDaemon, caplog: pytest.LogCaptureFixture
) -> None:
    peer.mode = "revoke"
    assert await within(daemon.run()) == EXIT_FATAL
    assert len(peer.auth_headers) == 1  # no retry loop
    assert "--enroll" in caplog.text
    assert "s3cret-credential" not in caplog.text


async def test_an_upgrade_refused_with_401_is_fatal_too(peer: ProtocolPeer, daemon: AgentDaemon) -> None:
    peer.refuse_upgrade = HTTPStatus.UNAUTHORIZED
    assert await within(daemon.run()) == EXIT_FATAL
    assert len(peer.auth_headers) == 1


async def test_a_server_of_another_protocol_version_is_fatal(
    peer: ProtocolPeer, daemon: AgentDaemon, caplog: pytest.LogCaptureFixture
) -> None:
    peer.mode = "old_protocol"
    assert await within(daemon.run()) == EXIT_FATAL
    assert "Upgrade" in caplog.text
    await asyncio.sleep(0.1)
    assert peer.close_codes == [4400]


async def test_an_unreachable_server_is_retried_until_stopped(
    state: AgentState, executor: Executor, caplog: pytest.LogCaptureFixture
) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nobody listens here
        daemon = AgentDaemon(server=f"http://127.0.0.1:{port}", state=state, executor=executor,
                             backoff_initial=0.01, backoff_max=0.02)
        task = asyncio.create_task(daemon.run())
        await asyncio.sleep(0.3)
        assert not task.done()
        daemon.stop()
        assert await within(task) == EXIT_OK
    assert caplog.text.count("reconnecting in") >= 3


async def test_debug_logging_never_shows_the_credential(
    peer: ProtocolPeer, daemon: AgentDaemon, state: AgentState, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    task = asyncio.create_task(daemon.run())
    await peer.wait_hellos(1)
    daemon.stop()
    assert await within(task) == EXIT_OK
    agent_log = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("mspclaw"))
    # websockets did log the header line (redacted by the daemon's filter, or by the process-wide log
    # redaction when a server in the same process installed it first)...
    assert re.search(r"> Authorization: (Bearer )?\[redacted\]", agent_log), agent_log
    assert state.credential not in agent_log  # ...but not the credential in it


async def test_without_a_desktop_session_the_default_answer_source_gives_no_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mspclaw.agent.daemon import desktop_answer

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert await desktop_answer(AskUser(question_id="q1", text="Is the printer on?")) is None
