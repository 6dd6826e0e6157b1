"""The server's WebSocket flow control: a window of unread messages per socket, then the peer is held back.

Real uvicorn with :class:`~mspclaw.api.server.WindowedWebSocketProtocol` on loopback, a real
``websockets`` client, and an ASGI app that stops reading: what a stuck agent pump looks like.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest
import uvicorn
from tests.conftest import free_port
from websockets.asyncio.client import connect

from mspclaw.api.server import WindowedWebSocketProtocol

pytestmark = pytest.mark.anyio


class Probe(WindowedWebSocketProtocol):
    """Records, after each message is handed over, whether the socket was paused for it."""

    paused_after: ClassVar[list[bool]] = []

    def send_receive_event_to_app(self) -> None:
        super().send_receive_event_to_app()
        Probe.paused_after.append(self.read_paused)


async def _serve(app: Any, protocol: type[WindowedWebSocketProtocol] = WindowedWebSocketProtocol,
                 ) -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, ws=protocol, log_level="warning",
                            lifespan="off", ws_ping_interval=None)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    return server, task, port


def _socket(server: uvicorn.Server) -> WindowedWebSocketProtocol:
    (proto,) = [c for c in server.server_state.connections if isinstance(c, WindowedWebSocketProtocol)]
    return proto



async def test_a_socket_whose_app_stops_reading_is_paused_after_the_window_and_loses_nothing() -> None:
    release = asyncio.Event()
    received: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        await release.wait()  # the app is busy: nothing is read
        while len(received) < 20:
            message = await receive()
            received.append(message["text"])
        await send({"type": "websocket.send", "text": "done"})

    server, task, port = await _serve(app)
    try:
        async with connect(f"ws://127.0.0.1:{port}/") as ws:
            proto = _socket(server)
            for i in range(20):
                await ws.send(f"m{i}")
                await asyncio.sleep(0.01)  # one read per message on the server
            assert proto.read_paused, "reading goes on although the app has taken nothing"
            assert proto.queue.qsize() == WindowedWebSocketProtocol.WINDOW
            release.set()
            assert await asyncio.wait_for(ws.recv(), 5) == "done"
        assert received == [f"m{i}" for i in range(20)]
    finally:
        server.should_exit = True
        await task



async def test_a_socket_whose_app_keeps_up_is_never_paused() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] != "websocket.receive":
                return
            await send({"type": "websocket.send", "text": message["text"]})

    Probe.paused_after = []
    server, task, port = await _serve(app, Probe)
    try:
        async with connect(f"ws://127.0.0.1:{port}/") as ws:
            for i in range(50):
                await ws.send(f"m{i}")
                assert await ws.recv() == f"m{i}"
        assert len(Probe.paused_after) == 50
        assert not any(Probe.paused_after), "the socket was paused for a message the app was ready to take"
    finally:
        server.should_exit = True
        await task
