"""What every local PSA test server shares: serving a Starlette app on a loopback port, recording
requests, and injecting faults (a status with headers and the vendor's error body, or a delay
after the work is done so the client times out although the write happened)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response


@dataclass
class Fault:
    status: int | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    times: int = 1


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]


@dataclass
class RestFake:
    """Base of the fakes: ``url`` once serving, ``seen`` requests, ``fail`` to inject faults."""

    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    faults: list[tuple[str, str, Fault]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    """Requests the fake refused as not following the vendor's spec or documented shapes."""

    def fail(self, method: str, path_part: str, *, status: int | None = None, body: Any = None,
             headers: dict[str, str] | None = None, delay: float = 0.0, times: int = 1) -> None:
        """The next ``times`` requests of ``method`` ("*" any) whose path contains ``path_part`` meet this fault."""
        self.faults.append((method.upper(), path_part, Fault(status, body, dict(headers or {}), delay, times)))

    def take_fault(self, method: str, path: str) -> Fault | None:
        for i, (m, part, fault) in enumerate(self.faults):
            if m in ("*", method) and part in path:
                fault.times -= 1
                if fault.times <= 0:
                    del self.faults[i]
                return fault
        return None

    def requests(self, method: str, path_part: str = "") -> list[Seen]:
        return [s for s in self.seen if s.method == method and path_part in s.path]

    @staticmethod
    def fault_response(fault: Fault) -> Response:
        return JSONResponse(fault.body if fault.body is not None else {"message": f"injected {fault.status}"},
                            status_code=fault.status or 500, headers=fault.headers)


@contextlib.asynccontextmanager
async def serve(app: Starlette) -> AsyncIterator[str]:
    """Serve ``app`` on a free loopback port until the block ends; yield its origin."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    origin = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False,
                                           timeout_graceful_shutdown=2))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        assert not task.done(), "the test PSA server did not start"
        await asyncio.sleep(0.01)
    try:
        yield origin
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()
