"""Run the app under uvicorn with settings fit for thousands of agent sockets."""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import resource
from collections.abc import Callable

import uvicorn
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from mspclaw.api.app import create_app
from mspclaw.api.sockets import AGENT_PATH, agent_socket_asgi
from mspclaw.protocol.frames import MAX_FRAME_BYTES
from mspclaw.wiring import Services

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
    """

    WINDOW = 2

    def send_receive_event_to_app(self) -> None:
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
