"""Run the app under uvicorn with settings fit for thousands of agent sockets."""

from __future__ import annotations

import gc
import importlib.util
import resource

import uvicorn

from mspclaw.api.app import create_app
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


def uvicorn_config(services: Services, *, host: str, port: int, log_level: str = "info") -> uvicorn.Config:
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return uvicorn.Config(
        create_app(services), host=host, port=port, loop=loop, ws="websockets-sansio",
        ws_max_size=WS_HARD_LIMIT, ws_per_message_deflate=False, ws_ping_interval=None, ws_ping_timeout=None,
        backlog=4096, log_level=log_level.lower(), timeout_graceful_shutdown=5, lifespan="on",
    )


async def serve(services: Services, *, host: str, port: int, log_level: str = "info") -> None:
    raise_open_files_limit()
    server = uvicorn.Server(uvicorn_config(services, host=host, port=port, log_level=log_level))
    gc.freeze()  # start-up objects never need collecting; halves GC work under many connections
    await server.serve()
