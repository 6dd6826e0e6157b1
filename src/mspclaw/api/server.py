"""Run the app under uvicorn with settings fit for thousands of agent sockets."""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import logging
import resource
from collections.abc import Callable

import uvicorn
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

from mspclaw.api.app import create_app
from mspclaw.api.sockets import AGENT_PATH, PUSH_EXTENSION, agent_socket_asgi
from mspclaw.protocol.frames import MAX_FRAME_BYTES
from mspclaw.wiring import Services

log = logging.getLogger(__name__)

WS_HARD_LIMIT = 4 * MAX_FRAME_BYTES
"""Frames up to this size reach the codec, which answers an ``error`` frame when they are over
the protocol limit; only larger ones are cut by the WebSocket layer (close 1009)."""


def raise_open_files_limit() -> int:
    """Raise the soft limit on open files to the hard one: each agent holds a socket."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class WindowedWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's ``websockets-sansio`` protocol, with flow control over a window of messages instead of one.

    uvicorn stops reading a socket as soon as one received message waits for the app, and starts again
    when the app has taken it: with one agent frame per tool call that is a stop and a restart of the
    socket's poll registration (two system calls) for every result. Here reading stops only when
    :data:`WINDOW` messages wait unread, and restarts once the app has taken them all, so a socket
    still holds at most about ``WINDOW`` frames of ``ws_max_size`` before the peer is held back.

    It also offers the app the :data:`~mspclaw.api.sockets.PUSH_EXTENSION` ASGI extension: a handler the
    app registers is offered each text message as it is read, and a message it takes never goes through
    the ``receive`` queue. The hub takes tool results this way, so a result resolves its caller's future
    from the socket's read callback, without waking the connection's own task and the queue's getter
    for it (what the ASGI path costs on every tool call). Everything else still arrives by ``receive``,
    in order: a message is offered only when none waits unread before it.
    """

    WINDOW = 2

    push: Callable[[str], bool] | None = None
    """The app's push handler (:data:`~mspclaw.api.sockets.PUSH_EXTENSION`), if it registered one."""

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:  # upgraded: the app's task is created but has not run yet
            extensions = scope.get("extensions")
            if extensions is None:
                scope["extensions"] = extensions = {}
            extensions[PUSH_EXTENSION] = {"register": self._register_push}

    def _register_push(self, handler: Callable[[str], bool] | None) -> None:
        self.push = handler

    def connection_lost(self, exc: Exception | None) -> None:
        self.push = None  # the handler refers back to this socket's transport: no cycle left behind
        super().connection_lost(exc)

    def send_receive_event_to_app(self) -> None:
        push = self.push
        if push is not None and self.curr_msg_data_type == "text" and not self.close_sent and self.queue.empty():
            # Nothing waits unread, so the app has seen every earlier message: offering this one to the
            # push handler now keeps the order. One text frame per tool result goes this way.
            frames = self.frames
            try:
                text = (frames[0] if len(frames) == 1 else b"".join(frames)).decode()
            except UnicodeDecodeError:
                pass  # the base class refuses it (close 1007)
            else:
                try:
                    taken = push(text)
                except Exception:  # a bug in the handler must not lose the message: the app reads it instead
                    log.exception("push handler failed; the message goes through receive()")
                    taken = False
                if taken:
                    self.frames = []
                    return
        paused, self.read_paused = self.read_paused, True  # the base class pauses unless already paused
        try:
            super().send_receive_event_to_app()
        finally:
            self.read_paused = paused
        if not paused and self.queue.qsize() >= self.WINDOW:
            self.read_paused = True
            self.transport.pause_reading()


class AgentSocketFirst:
    """The ASGI app uvicorn serves: agent upgrades go straight to their endpoint, all else to FastAPI.

    An agent holds its socket for days and there are thousands of them. FastAPI's middleware, router
    and dependency machinery keep about a dozen objects alive per socket (exit stacks, wrapped
    send/receive closures, coroutine frames) and add a few layers to every frame sent; the agent
    endpoint needs none of it (it authenticates from the header itself). The route stays declared
    on the app, so in-process test clients and the API description see the same endpoint.
    """

    __slots__ = ("app", "services")

    def __init__(self, app: FastAPI, services: Services) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == AGENT_PATH:
            await agent_socket_asgi(self.services, scope, receive, send)
            return
        await self.app(scope, receive, send)


def uvicorn_config(services: Services, *, host: str, port: int, log_level: str = "info") -> uvicorn.Config:
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return uvicorn.Config(
        AgentSocketFirst(create_app(services), services), host=host, port=port, loop=loop,
        ws=WindowedWebSocketProtocol,
        ws_max_size=WS_HARD_LIMIT, ws_per_message_deflate=False, ws_ping_interval=None, ws_ping_timeout=None,
        backlog=4096, log_level=log_level.lower(), timeout_graceful_shutdown=5, lifespan="on",
    )


async def serve(services: Services, *, host: str, port: int, log_level: str = "info") -> None:
    raise_open_files_limit()
    server = uvicorn.Server(uvicorn_config(services, host=host, port=port, log_level=log_level))
    gc.freeze()  # start-up objects never need collecting; halves GC work under many connections
    await server.serve()


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's loop when it is installed (the ``server`` extra brings it on Linux and macOS), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(services: Services, *, host: str, port: int, log_level: str = "info") -> None:
    """Serve until stopped, on uvloop when installed.

    ``asyncio.run(serve(...))`` always gets asyncio's own loop: the ``loop`` named in the uvicorn
    config only applies when uvicorn creates the loop itself. On uvloop a tool call's round trip and
    the server's CPU per call are both markedly lower (docs/benchmarks.md).
    """
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(serve(services, host=host, port=port, log_level=log_level))
