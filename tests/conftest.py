"""Shared test fixtures: a live server on loopback and real agent processes.

The server is the real app (``create_app`` over ``wiring.build``) served by uvicorn on an
ephemeral port in the test's event loop; agents are real ``mspclaw agent`` processes that
enroll over HTTP and connect over a WebSocket.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from mspclaw.api.server import start_agent_listener, uvicorn_config
from mspclaw.connectors.base import PSAConnector
from mspclaw.engine.models.base import Model
from mspclaw.playbooks.schema import Playbook
from mspclaw.settings import Settings
from mspclaw.store import loop_guard
from mspclaw.wiring import Services, build

# Every test runs with the loop guard: a database statement the server's async code runs on the event
# loop's thread raises (mspclaw.store.loop_guard). The variable reaches the servers tests start as processes.
os.environ["MSPCLAW_LOOP_GUARD"] = "1"
loop_guard.enable()

# Real services shared by several folders, as plugins so each fixture is defined once: the Samba DC is
# one per test session (its ports are fixed), and a module importing it would start a second one.
pytest_plugins = ["tests.site.samba", "tests.site.graph_server"]


def pytest_itemcollected(item: pytest.Item) -> None:
    """Every test that needs a real Samba DC is marked ``samba``, so ``-m "not samba"`` (or ``-k``) skips them
    all: those using the session's DC (``samba_dc``, also through fixtures such as ``ad_user``) and those
    starting one of their own (``own_samba_dc``). A test asking for the DC with ``request.getfixturevalue``
    is invisible here and carries the mark itself (tests/playbooks/test_matrix.py)."""
    uses_dc = isinstance(item, pytest.Function) and "samba_dc" in item.fixturenames
    if uses_dc or item.get_closest_marker("own_samba_dc") is not None:
        item.add_marker(pytest.mark.samba)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that start a Samba DC of their own (``own_samba_dc``: the demo's) run first, before the
    session's shared DC takes the fixed ports it would need."""
    items.sort(key=lambda item: item.get_closest_marker("own_samba_dc") is None)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def free_port() -> int:
    """A port nobody listened on a moment ago. Only for a server in another process, or an address that
    must refuse connections: between this close and the other bind the port may be taken (a later
    connection's ephemeral source port, say). A server in this process binds with ``listening_socket``."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening_socket(port: int = 0) -> socket.socket:
    """A TCP socket listening on loopback (``0``: the kernel picks a free port), to hand to
    ``uvicorn.Server.serve(sockets=...)``: the port is held from the bind on, so nothing can take it
    in between. ``SO_REUSEADDR`` lets a restarted server take its predecessor's port back."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
        sock.listen(4096)
    except OSError:
        sock.close()
        raise
    return sock


@dataclass
class Live:
    url: str
    api_key: str
    services: Services
    http: httpx.AsyncClient
    tmp: Path
    agent_url: str = ""
    """The agent channel, ``ws://127.0.0.1:PORT/ws/agent`` (its own listener)."""
    agents: list[asyncio.subprocess.Process] = field(default_factory=list)

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://")

    async def client(self, name: str = "Acme Dental") -> str:
        r = await self.http.post("/api/clients", json={"name": name})
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    async def code(self, client: str, **extra: Any) -> str:
        r = await self.http.post("/api/enrollments", json={"client": client, **extra})
        assert r.status_code == 201, r.text
        return str(r.json()["code"])

    async def start_agent(self, client: str, *, temp_root: Path | None = None, name: str = "agent") -> str:
        """Enroll and start a real agent process; return its agent id once it is online."""
        code = await self.code(client)
        before = {a.id for a in self.services.registry.agents()}
        args = [sys.executable, "-m", "mspclaw", "agent", "--server", self.url, "--enroll", code,
                "--state-dir", str(self.tmp / f"{name}-state"), "--log-level", "warning"]
        if temp_root is not None:
            args += ["--temp-root", str(temp_root)]
        proc = await asyncio.create_subprocess_exec(*args)
        self.agents.append(proc)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            new = [a.id for a in self.services.registry.agents() if a.id not in before]
            if new and self.services.hub.is_online(new[0]):
                return new[0]
            assert proc.returncode is None, f"agent exited with {proc.returncode}"
            await asyncio.sleep(0.1)
        raise AssertionError("agent did not come online within 30 s")

    async def wait_ticket(self, ticket_id: str, seconds: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            r = await self.http.get(f"/api/tickets/{ticket_id}")
            body: dict[str, Any] = r.json()
            if body["status"] in ("resolved", "escalated"):
                return body
            await asyncio.sleep(0.1)
        raise AssertionError(f"ticket {ticket_id} did not finish: {body}")

    async def wait_approval(self, seconds: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            pending: list[dict[str, Any]] = (await self.http.get("/api/approvals")).json()
            if pending:
                return pending[0]
            await asyncio.sleep(0.1)
        raise AssertionError("no approval was requested")


@contextlib.asynccontextmanager
async def live_server(tmp: Path, *, connectors: dict[str, PSAConnector] | None = None, model: Model | None = None,
                      playbooks: list[Playbook] | None = None, **overrides: Any) -> AsyncIterator[Live]:
    # a socket bound by the caller (whose port it already gave away, e.g. as a webhook URL), else one bound here
    sock = overrides.pop("sock", None) or listening_socket(int(overrides.pop("port", 0)))
    port = int(sock.getsockname()[1])
    agent_port = int(overrides.pop("agent_port", 0))  # 0: a free one; a restarted server passes the old one
    key = "test_" + secrets.token_urlsafe(16)
    settings = Settings(data_dir=tmp / "data", api_key=key, port=port, server_url=f"http://127.0.0.1:{port}",
                        **overrides)
    services = build(settings, connectors=connectors, model=model, playbooks=playbooks)
    listener = await start_agent_listener(services, host="127.0.0.1", port=agent_port)
    server = uvicorn.Server(uvicorn_config(services, host="127.0.0.1", port=port, log_level="warning",
                                           agent_port=listener.port))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        assert not task.done(), "server failed to start"
        await asyncio.sleep(0.02)
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        live = Live(url, key, services, http, tmp, f"ws://127.0.0.1:{listener.port}/ws/agent")
        try:
            yield live
        finally:
            for proc in live.agents:
                if proc.returncode is None:
                    proc.terminate()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(proc.wait(), 10)
            server.should_exit = True
            await asyncio.wait_for(task, 15)
            await listener.close()
            services.close()
            sock.close()


def make_old_files(root: Path, count: int, size: int = 4096, age_days: int = 30) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    old = time.time() - age_days * 86400
    paths = []
    for i in range(count):
        path = root / f"old-{i}.tmp"
        path.write_bytes(os.urandom(size))
        os.utime(path, (old, old))
        paths.append(path)
    return paths
