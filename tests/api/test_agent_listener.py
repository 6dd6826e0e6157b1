"""The agent listener on loopback: its handshake, push, order, flow control and close, with a real client.

The pump behind it is a small recorder instead of the hub (the hub over this listener is tested end to
end in ``test_agent_socket.py``): it registers a push handler taking messages that start with ``take``,
reads the rest with ``recv`` and answers each with ``ack``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import CloseCode, Frame, Opcode

from mspclaw.api.agent_listener import AGENT_PATH, WS_HARD_LIMIT, AgentListener, AgentSocket
from mspclaw.dispatch.hub import AgentIdentity, TransportClosed
from mspclaw.errors import AuthError

pytestmark = pytest.mark.anyio


@pytest.fixture(params=[pytest.param(("asyncio", {"use_uvloop": False}), id="asyncio"),
                        pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop")])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, bool]]:
    """Both loops: the server runs on uvloop when it is installed, tests elsewhere on asyncio's."""
    params: tuple[str, dict[str, bool]] = request.param
    return params

IDENTITY = AgentIdentity("agt_1", "acme", "device", b"k" * 32)
AUTH = {"Authorization": "Bearer good"}


def authenticate(header: str | None, remote: str) -> AgentIdentity:
    if header != AUTH["Authorization"]:
        raise AuthError("the agent channel needs 'Authorization: Bearer AGENT_ID.CREDENTIAL'")
    assert remote == "127.0.0.1"
    return IDENTITY


class Recorder:
    def __init__(self, handler: Callable[[str], bool] | None = None) -> None:
        self.taken: list[str] = []
        self.received: list[str | bytes] = []
        self.busy = asyncio.Event()  # set: the pump does not read
        self.handler = handler or self.take
        self.sockets: list[AgentSocket] = []
        self.ended = asyncio.Event()

    def take(self, text: str) -> bool:
        if text.startswith("take"):
            self.taken.append(text)
            return True
        return False

    async def serve(self, identity: AgentIdentity, sock: AgentSocket) -> None:
        assert identity == IDENTITY
        self.sockets.append(sock)
        assert sock.push(self.handler)
        try:
            while True:
                while self.busy.is_set():
                    await asyncio.sleep(0.005)
                message = await sock.recv()
                self.received.append(message)
                await sock.send("ack " + (message if isinstance(message, str) else message.hex()))
        except TransportClosed:
            pass
        finally:
            self.ended.set()


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[Recorder, str]]:
    rec = Recorder()
    listener = await AgentListener(authenticate, rec.serve).start("127.0.0.1", 0)
    try:
        yield rec, f"ws://127.0.0.1:{listener.port}{AGENT_PATH}"
    finally:
        await listener.close()


async def recv(ws: ClientConnection) -> str | bytes:
    return await asyncio.wait_for(ws.recv(), 5)


async def test_the_upgrade_is_refused_before_it_happens_without_a_credential_or_on_another_path(
        recorder: tuple[Recorder, str]) -> None:
    rec, url = recorder
    with pytest.raises(InvalidStatus) as info:
        await connect(url, additional_headers={"Authorization": "Bearer wrong"})
    assert info.value.response.status_code == 401
    assert b"AGENT_ID.CREDENTIAL" in info.value.response.body
    with pytest.raises(InvalidStatus) as info:  # two credentials: which one would it be?
        await connect(url, additional_headers=[("Authorization", AUTH["Authorization"])] * 2)
    assert info.value.response.status_code == 401
    with pytest.raises(InvalidStatus) as info:
        await connect(url.replace(AGENT_PATH, "/ws/sessions"), additional_headers=AUTH)
    assert info.value.response.status_code == 404
    assert rec.sockets == [], "a refused socket reached the pump"


async def test_compression_is_off_even_when_the_agent_offers_it(recorder: tuple[Recorder, str]) -> None:
    _rec, url = recorder
    async with connect(url, additional_headers=AUTH) as ws:  # the client offers permessage-deflate by default
        assert ws.response is not None and "Sec-WebSocket-Extensions" not in ws.response.headers


async def test_taken_messages_skip_recv_and_the_rest_keep_their_order(recorder: tuple[Recorder, str]) -> None:
    rec, url = recorder
    async with connect(url, additional_headers=AUTH) as ws:
        await ws.send("take 1")
        await ws.send("keep 1")
        assert await recv(ws) == "ack keep 1"
        assert rec.taken == ["take 1"] and rec.received == ["keep 1"]

        rec.busy.set()  # 'keep 2' waits unread: 'take 2' must not overtake it
        await ws.send("keep 2")
        await ws.send("take 2")
        await asyncio.sleep(0.1)
        assert rec.taken == ["take 1"], "a message was offered while an earlier one waited unread"
        rec.busy.clear()
        assert [await recv(ws), await recv(ws)] == ["ack keep 2", "ack take 2"]

        await ws.send("take 3")  # nothing waits any more: pushed again
        await ws.send(b"\x01\x02")  # binary never goes to the push handler
        await ws.send(["keep ", "3"])  # a fragmented message arrives whole
        assert [await recv(ws), await recv(ws)] == ["ack 0102", "ack keep 3"]
        assert rec.taken == ["take 1", "take 3"]
        assert rec.received == ["keep 1", "keep 2", "take 2", b"\x01\x02", "keep 3"]


async def test_a_failing_handler_loses_nothing_and_unregistering_stops_the_pushes() -> None:
    def broken(text: str) -> bool:
        raise RuntimeError("bug in the handler")

    rec = Recorder(broken)
    listener = await AgentListener(authenticate, rec.serve).start("127.0.0.1", 0)
    try:
        async with connect(f"ws://127.0.0.1:{listener.port}{AGENT_PATH}", additional_headers=AUTH) as ws:
            await ws.send("take 1")
            assert await recv(ws) == "ack take 1", "the message the handler failed on went to recv"
            (sock,) = rec.sockets
            sock.push(rec.take)
            await ws.send("take 2")
            await ws.send("keep 1")
            assert await recv(ws) == "ack keep 1"
            sock.push(None)
            await ws.send("take 3")
            assert await recv(ws) == "ack take 3"
            assert rec.taken == ["take 2"]
            assert rec.received == ["take 1", "keep 1", "take 3"]
    finally:
        await listener.close()


async def test_the_handler_is_dropped_with_the_connection(recorder: tuple[Recorder, str]) -> None:
    rec, url = recorder
    async with connect(url, additional_headers=AUTH) as ws:
        await ws.send("keep 1")
        await recv(ws)
    await asyncio.wait_for(rec.ended.wait(), 5)
    (sock,) = rec.sockets
    assert not sock.pushing(), "the closed socket still holds the pump's handler"


async def test_a_socket_whose_pump_stops_reading_is_paused_after_the_window_and_loses_nothing(
        recorder: tuple[Recorder, str]) -> None:
    rec, url = recorder
    rec.busy.set()
    async with connect(url, additional_headers=AUTH) as ws:
        for i in range(20):
            await ws.send(f"m{i}")
            await asyncio.sleep(0.01)  # one read per message on the server
        (sock,) = rec.sockets
        assert not sock.is_reading(), "reading goes on although the pump has taken nothing"
        assert sock.unread() == AgentSocket.WINDOW
        rec.busy.clear()
        assert [await recv(ws) for _ in range(20)] == [f"ack m{i}" for i in range(20)]
        assert sock.is_reading()
    assert rec.received == [f"m{i}" for i in range(20)]


async def test_a_socket_whose_pump_keeps_up_is_never_paused(recorder: tuple[Recorder, str]) -> None:
    rec, url = recorder
    async with connect(url, additional_headers=AUTH) as ws:
        await ws.send("m")
        await recv(ws)
        (sock,) = rec.sockets
        for i in range(50):
            await ws.send(f"m{i}")
            assert await recv(ws) == f"ack m{i}"
            assert sock.is_reading(), "the socket was paused for a message the pump was ready to take"


async def test_bad_frames_close_the_socket_with_the_websocket_codes(recorder: tuple[Recorder, str]) -> None:
    _rec, url = recorder
    async with connect(url, additional_headers=AUTH, max_size=None) as ws:
        with pytest.raises(ConnectionClosed) as info:
            await ws.send(b"x" * (WS_HARD_LIMIT + 1))
            await recv(ws)
    assert info.value.rcvd is not None and info.value.rcvd.code == CloseCode.MESSAGE_TOO_BIG
    async with connect(url, additional_headers=AUTH) as ws:
        ws.transport.write(Frame(Opcode.TEXT, b"\xff\xfe").serialize(mask=True))  # not UTF-8
        with pytest.raises(ConnectionClosed) as info:
            await recv(ws)
    assert info.value.rcvd is not None and info.value.rcvd.code == CloseCode.INVALID_DATA


async def test_closing_the_listener_closes_every_agent_socket_with_1001() -> None:
    rec = Recorder()
    listener = await AgentListener(authenticate, rec.serve).start("127.0.0.1", 0)
    url = f"ws://127.0.0.1:{listener.port}{AGENT_PATH}"
    sockets = [await connect(url, additional_headers=AUTH) for _ in range(3)]
    for ws in sockets:
        await ws.send("keep")
        await recv(ws)
    await asyncio.wait_for(listener.close(), 10)
    for ws in sockets:
        with pytest.raises(ConnectionClosed) as info:
            await recv(ws)
        assert info.value.rcvd is not None and info.value.rcvd.code == CloseCode.GOING_AWAY
    assert rec.ended.is_set()
