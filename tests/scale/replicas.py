"""A cluster of real ``mspclaw server`` replicas on loopback, for the scale-out acceptance tests.

* :class:`PrivateRedis`: a ``redis-server`` process of the test's own on a free port (never the shared
  Redis on 6379), without persistence, that the test stops and starts again to cut the replicas off.
* :class:`AgentBalancer`: a small TCP load balancer for the agent channel, as HAProxy in ``mode tcp``
  would be: each new connection goes to the next replica in turn, a replica that refuses the
  connection is skipped (passive health check), and an agent that loses its replica reconnects
  through it to one of the others. It knows which replica carries each connection.
* :class:`Replicas`: N ``python -m mspclaw server`` processes on one PostgreSQL schema, one private
  Redis (``MSPCLAW_REDIS_URL``), the same ``MSPCLAW_API_KEY``, ``MSPCLAW_SECRET_KEY`` and
  ``MSPCLAW_JWT_SECRET``, one data directory (the shared volume of a deployment: approval signing key,
  audit checkpoint key, audit day files), each on its own HTTP and agent port, telling agents at
  enrollment to connect through the balancer (``MSPCLAW_AGENT_URL``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from mspclaw.store.database import Database
from mspclaw.store.leases import Leases
from mspclaw.store.secretbox import SecretKey

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A port nobody listened on a moment ago (for a server in another process)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_exit(proc: subprocess.Popen[bytes], seconds: float) -> None:
    try:
        proc.wait(seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


class PrivateRedis:
    """A Redis server of this test only, stopped and started again on the same port."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        if self.proc is not None:
            raise RuntimeError("the private Redis is already running")
        self.workdir.mkdir(parents=True, exist_ok=True)
        with (self.workdir / "redis.log").open("ab") as out:
            self.proc = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(self.workdir), "--protected-mode", "no"],
                stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}; see {self.workdir}/redis.log")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(64).startswith(b"+PONG"):
                    return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not answer PING within 10 s")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            _wait_for_exit(proc, 10)


@dataclass(eq=False)  # identity: each link is one connection
class _Link:
    backend: int
    writers: tuple[asyncio.StreamWriter, asyncio.StreamWriter]


class AgentBalancer:
    """Round-robin TCP balancing of agent connections over the replicas' agent ports, in this event loop."""

    def __init__(self) -> None:
        self.port = free_port()
        self.backends: list[int] = []
        self._next = 0
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._pumps: set[asyncio.Task[None]] = set()
        self.accepted: dict[int, int] = {}
        """Connections each backend (agent port) was given, in all."""

    @property
    def agent_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/agent"

    def open_links(self) -> dict[int, int]:
        """Connections open now, by backend agent port."""
        counts = dict.fromkeys(self.backends, 0)
        for link in self._links:
            counts[link.backend] = counts.get(link.backend, 0) + 1
        return counts

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            for writer in link.writers:
                writer.transport.abort()
        for task in list(self._pumps):
            task.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    async def _connect(self) -> tuple[int, asyncio.StreamReader, asyncio.StreamWriter] | None:
        for _ in range(len(self.backends)):
            backend = self.backends[self._next % len(self.backends)]
            self._next += 1
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", backend), 2)
            except (OSError, TimeoutError):
                continue  # that replica is down: the next one
            return backend, reader, writer
        return None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = await self._connect()
        if upstream is None:
            writer.transport.abort()
            return
        backend, up_reader, up_writer = upstream
        self.accepted[backend] = self.accepted.get(backend, 0) + 1
        link = _Link(backend, (writer, up_writer))
        self._links.add(link)
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.get_running_loop().create_task(self._pump(src, dst, link))
            self._pumps.add(task)
            task.add_done_callback(self._pumps.discard)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, link: _Link) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._links.discard(link)
            for writer in link.writers:  # one side gone: the whole connection is
                writer.transport.abort()


@dataclass
class Replica:
    """One ``mspclaw server`` process of the cluster."""

    index: int
    port: int
    agent_port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    http: httpx.AsyncClient | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"replica {self.index} is not running"
        return self.proc.pid

    @property
    def api(self) -> httpx.AsyncClient:
        assert self.http is not None, f"replica {self.index} has no HTTP client (not started)"
        return self.http

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown of any kind, its leases left to expire."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            _wait_for_exit(self.proc, 20)


class Replicas:
    """N server replicas on one PostgreSQL schema, one Redis and one data directory."""

    def __init__(self, tmp: Path, *, count: int, database_url: str, redis_url: str, agent_url: str,
                 api_key: str, extra_env: dict[str, str] | None = None, secrets_in_env: bool = True) -> None:
        """``secrets_in_env=False``: the secret key and JWT secret are left to the shared data directory
        (created there by the first replica that needs them)."""
        self.tmp = tmp
        self.data_dir = tmp / "data"
        self.database_url = database_url
        self.api_key = api_key
        # the secrets every replica must share, given as a deployment gives them (the approval signing key
        # and the audit checkpoint key live in the shared data directory)
        shared = {"MSPCLAW_SECRET_KEY": SecretKey.generate().encoded(),
                  "MSPCLAW_JWT_SECRET": secrets.token_urlsafe(48)} if secrets_in_env else {}
        self.env = {**os.environ, **shared, "MSPCLAW_DATA_DIR": str(self.data_dir),
                    "MSPCLAW_DATABASE_URL": database_url, "MSPCLAW_REDIS_URL": redis_url, "MSPCLAW_API_KEY": api_key,
                    "MSPCLAW_AGENT_URL": agent_url, "MSPCLAW_LOG_FORMAT": "json", "MSPCLAW_LOG_LEVEL": "WARNING",
                    **(extra_env or {})}
        self.members = [Replica(i, free_port(), free_port(), tmp / f"replica-{i}.log") for i in range(count)]
        self._db: Database | None = None

    def __iter__(self) -> Iterator[Replica]:
        return iter(self.members)

    def __getitem__(self, index: int) -> Replica:
        return self.members[index]

    @property
    def agent_ports(self) -> list[int]:
        return [r.agent_port for r in self.members]

    def alive(self) -> list[Replica]:
        return [r for r in self.members if r.running]

    async def start(self, replica: Replica, *, seconds: float = 60) -> None:
        """Start one replica and wait until it answers ``/readyz`` 200."""
        env = {**self.env, "MSPCLAW_PORT": str(replica.port), "MSPCLAW_AGENT_PORT": str(replica.agent_port),
               "MSPCLAW_SERVER_URL": replica.url}
        with replica.log.open("ab") as out:
            replica.proc = subprocess.Popen([sys.executable, "-m", "mspclaw", "server"], cwd=ROOT, env=env,
                                            stdout=out, stderr=subprocess.STDOUT)
        if replica.http is None:
            replica.http = httpx.AsyncClient(base_url=replica.url, timeout=15,
                                             headers={"Authorization": f"Bearer {self.api_key}"})
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if replica.proc.poll() is not None:
                raise AssertionError(f"replica {replica.index} exited with {replica.proc.returncode}: "
                                     f"{replica.log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.TransportError):
                if (await replica.api.get("/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.2)
        raise AssertionError(f"replica {replica.index} not ready in {seconds:g} s: {replica.log.read_text()[-3000:]}")

    def by_holder(self, holder: str) -> Replica | None:
        """The replica a lease holder names (``host:pid:random``, pipeline/ownership.py)."""
        parts = holder.split(":")
        pid = int(parts[-2]) if len(parts) >= 3 and parts[-2].isdigit() else -1
        return next((r for r in self.members if r.proc is not None and r.proc.pid == pid), None)

    def leases(self) -> dict[str, Replica | None]:
        """Every lease held now (sessions, pollers, loops) and the replica holding it."""
        if self._db is None:
            self._db = Database.open(self.database_url, migrated=False)
        return {lease.name: self.by_holder(lease.holder) for lease in Leases(self._db).holders()}

    async def aclose(self) -> None:
        for replica in self.members:
            await asyncio.to_thread(replica.stop)
            if replica.http is not None:
                await replica.http.aclose()
                replica.http = None
        if self._db is not None:
            self._db.dispose()
            self._db = None

    def logs(self, tail: int = 4000) -> str:
        """The end of each replica's log, for an assertion message."""
        return "\n".join(f"--- replica {r.index} ---\n{r.log.read_text(errors='replace')[-tail:]}"
                         for r in self.members if r.log.exists())
