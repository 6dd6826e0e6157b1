"""The push extension of the server's WebSocket protocol (``mspclaw.websocket.push``), on real uvicorn.

A handler the app registers is offered each text message as it is read; what it takes never comes
through ``receive``, what it leaves does, and order is kept: a message is not offered while an earlier
one waits unread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from tests.api.test_ws_window import _serve
from websockets.asyncio.client import ClientConnection, connect

from mspclaw.api.server import WindowedWebSocketProtocol
from mspclaw.api.sockets import PUSH_EXTENSION

pytestmark = pytest.mark.anyio


async def recv(ws: ClientConnection) -> str | bytes:
    return await asyncio.wait_for(ws.recv(), 5)


class Recorder:
    """An app that registers a push handler taking messages that start with ``take``, and logs the rest."""

    def __init__(self, handler: Callable[[str], bool] | None = None) -> None:
        self.taken: list[str] = []
        self.received: list[str] = []
        self.busy = asyncio.Event()  # set: the app does not read
        self.extensions: dict[str, Any] = {}
        self.handler = handler or self.take
        self.register: Callable[[Callable[[str], bool] | None], None] | None = None

    def take(self, text: str) -> bool:
        if text.startswith("take"):
            self.taken.append(text)
            return True
        return False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        self.extensions = scope["extensions"]
        self.register = scope["extensions"][PUSH_EXTENSION]["register"]
        self.register(self.handler)
        await send({"type": "websocket.accept"})
        while True:
            while self.busy.is_set():
                await asyncio.sleep(0.005)
            message = await receive()
            if message["type"] != "websocket.receive":
                return
            self.received.append(message["text"])
            await send({"type": "websocket.send", "text": "ack " + message["text"]})


async def test_taken_messages_skip_receive_and_the_rest_keep_their_order() -> None:
    app = Recorder()
    server, task, port = await _serve(app)
    try:
        async with connect(f"ws://127.0.0.1:{port}/") as ws:
            await ws.send("take 1")
            await ws.send("keep 1")
            assert await recv(ws) == "ack keep 1"
            assert app.taken == ["take 1"] and app.received == ["keep 1"]

            app.busy.set()  # 'keep 2' waits unread: 'take 2' must not overtake it
            await ws.send("keep 2")
            await ws.send("take 2")
            await asyncio.sleep(0.1)
            assert app.taken == ["take 1"], "a message was offered while an earlier one waited unread"
            app.busy.clear()
            assert [await recv(ws), await recv(ws)] == ["ack keep 2", "ack take 2"]

            await ws.send("take 3")  # nothing waits any more: pushed again
            await ws.send("keep 3")
            assert await recv(ws) == "ack keep 3"
            assert app.taken == ["take 1", "take 3"]
            assert app.received == ["keep 1", "keep 2", "take 2", "keep 3"]
    finally:
        server.should_exit = True
        await task


async def test_a_failing_handler_loses_nothing_and_unregistering_stops_the_pushes() -> None:
    def broken(text: str) -> bool:
        raise RuntimeError("bug in the handler")

    app = Recorder(broken)
    server, task, port = await _serve(app)
    try:
        async with connect(f"ws://127.0.0.1:{port}/") as ws:
            await ws.send("take 1")
            assert await recv(ws) == "ack take 1", "the message the handler failed on went to receive"
            assert app.register is not None
            app.register(app.take)
            await ws.send("take 2")
            await ws.send("keep 1")
            assert await recv(ws) == "ack keep 1"
            app.register(None)
            await ws.send("take 3")
            assert await recv(ws) == "ack take 3"
            assert app.taken == ["take 2"]
            assert app.received == ["take 1", "keep 1", "take 3"]
    finally:
        server.should_exit = True
        await task


async def test_the_handler_is_dropped_with_the_connection() -> None:
    app = Recorder()
    server, task, port = await _serve(app)
    try:
        async with connect(f"ws://127.0.0.1:{port}/") as ws:
            await ws.send("keep 1")
            await recv(ws)
            (proto,) = [c for c in server.server_state.connections if isinstance(c, WindowedWebSocketProtocol)]
            assert proto.push is not None
        for _ in range(100):
            if proto.push is None:
                break
            await asyncio.sleep(0.01)
        assert proto.push is None, "the closed socket still holds the app's handler"
    finally:
        server.should_exit = True
        await task
