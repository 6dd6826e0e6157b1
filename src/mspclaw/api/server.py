"""Run the server: the app under uvicorn, and the agent channel on its own listener.

The REST API, the session WebSocket and the web pages are served by uvicorn on ``port``; agents
connect to :class:`~mspclaw.api.agent_listener.AgentListener` on ``agent_port``
(``MSPCLAW_AGENT_PORT``), which enrollment advertises to them (``agent_url`` in the answer to
``POST /enroll``). Both use only their libraries' public APIs.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import logging
import resource
from collections.abc import Callable

import uvicorn

from mspclaw.api.agent_listener import WS_HARD_LIMIT, AgentListener
from mspclaw.api.app import create_app
from mspclaw.api.auth import bearer
from mspclaw.dispatch import AgentIdentity
from mspclaw.wiring import Services

log = logging.getLogger(__name__)


def raise_open_files_limit() -> int:
    """Raise the soft limit on open files to the hard one: each agent holds a socket."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def uvicorn_config(services: Services, *, host: str, port: int, log_level: str = "info",
                   agent_port: int | None = None) -> uvicorn.Config:
    """The app under uvicorn. ``agent_port``: where the agent listener really listens (it may have been
    given ``0``), for the enrollment answer; default ``MSPCLAW_AGENT_PORT``."""
    app = create_app(services)
    app.state.agent_port = agent_port
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return uvicorn.Config(
        app, host=host, port=port, loop=loop, ws="websockets-sansio", ws_max_size=WS_HARD_LIMIT,
        ws_per_message_deflate=False, ws_ping_interval=None, ws_ping_timeout=None, backlog=4096,
        log_level=log_level.lower(), timeout_graceful_shutdown=5, lifespan="on",
    )


async def start_agent_listener(services: Services, *, host: str, port: int) -> AgentListener:
    """Listen for agents on ``host:port`` (``0``: a free port): each authenticated socket goes to the hub."""
    fleet = services.fleet

    def authenticate(header: str | None, remote: str) -> AgentIdentity:
        return fleet.authenticate(bearer(header), remote=remote)

    return await AgentListener(authenticate, services.hub.serve).start(host, port)


async def serve(services: Services, *, host: str, port: int, agent_port: int | None = None,
                log_level: str = "info") -> None:
    """Serve until stopped: the app on ``port``, agents on ``agent_port`` (default ``MSPCLAW_AGENT_PORT``)."""
    raise_open_files_limit()
    wanted = services.settings.agent_port if agent_port is None else agent_port
    listener = await start_agent_listener(services, host=host, port=wanted)
    try:
        server = uvicorn.Server(uvicorn_config(services, host=host, port=port, log_level=log_level,
                                               agent_port=listener.port))
        gc.freeze()  # start-up objects never need collecting; halves GC work under many connections
        await server.serve()
    finally:
        await listener.close()


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's loop when it is installed (the ``server`` extra brings it on Linux and macOS), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(services: Services, *, host: str, port: int, agent_port: int | None = None, log_level: str = "info") -> None:
    """Serve until stopped, on uvloop when installed.

    ``asyncio.run(serve(...))`` always gets asyncio's own loop: the ``loop`` named in the uvicorn
    config only applies when uvicorn creates the loop itself. On uvloop a tool call's round trip and
    the server's CPU per call are both markedly lower (docs/benchmarks.md).
    """
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(serve(services, host=host, port=port, agent_port=agent_port, log_level=log_level))
