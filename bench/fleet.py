"""Fleet benchmark: N simulated agents on one MSPclaw server process, against a bare WebSocket echo.

    .venv/bin/python bench/fleet.py                 # 10,000 agents, 2 rounds in ABBA order (about 2 minutes)
    .venv/bin/python bench/fleet.py --quick         # 500 agents, a smoke run
    .venv/bin/python bench/fleet.py --layers        # also uvicorn alone, and the hub on websockets' server

Diagnosis: ``--trace 1`` (tracemalloc in the server: what each connection keeps), ``--loop asyncio``,
``--ws IMPL`` (another uvicorn WebSocket implementation for the ``--layers`` uvicorn echo),
``FLEET_PROFILE=/tmp/prof`` (cProfile of each server during the concurrent calls),
``FLEET_CPROFILE=DIR`` (each server process under cProfile from start to stop),
``FLEET_PYSPY=/path/to/py-spy`` (sampled stacks instead; ``FLEET_PYSPY_PHASE=seq`` samples the
sequential calls).

Three kinds of process, all started from here:

* the **server** (``fleet.py _serve mspclaw``): ``wiring.build(Settings(...))`` served by
  ``mspclaw.api.server.serve`` (the app under uvicorn, and the agents on the product's agent listener,
  :mod:`mspclaw.api.agent_listener`, whose port the agents connect to), plus a control socket
  that only this bench opens. On command it calls ``hub.for_client(c).call_tool(agent, "system_info")``
  through the dispatcher, sequentially (round trip p50/p99) and from C concurrent callers (calls/s),
  and reports its own RSS after ``gc.collect()``.
* the **baseline** (``fleet.py _serve echo``): a bare ``websockets`` server in the same kind of
  process (same loop, open-files limit, ``gc.freeze()``, compression off). On command it sends a
  JSON message the size of a signed ``tool_call`` to one connection and awaits the echo: the same
  round trip, timed at the same place.
* with ``--layers``, two more in the middle: a raw ASGI echo under uvicorn (``asgi-echo``: what an
  ASGI server would add), and the same services and hub served by the ``websockets`` asyncio server
  instead of the agent listener (``hub-ws``: the listener against websockets' own I/O layer).
* the **load generator**, this process: opens N WebSockets (``websockets.asyncio.client``,
  compression off) with the agents' credentials, says ``hello`` through the sans-I/O
  :class:`~mspclaw.protocol.connection.AgentConnection`, and answers each ``tool_call`` with a
  ``tool_result`` after checking its signature with :class:`~mspclaw.protocol.signing.Signer`, as
  the agent's executor does. For the baseline it opens as many connections and echoes.

The agents are created in the server's database before it starts (one through the real
``issue_code``/``enroll`` path, the rest by a bulk insert of the same rows). Figures are printed as
ratios against the baseline measured in the same run; targets are checked at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import gc
import json
import os
import random
import resource
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from mspclaw.protocol.connection import AgentConnection, FrameReceived, WelcomeReceived
from mspclaw.protocol.frames import MAX_FRAME_BYTES, PROTOCOL_VERSION, ErrorInfo, Hello, ToolCall, ToolResult
from mspclaw.protocol.signing import Signer, encode_call

HOST = "127.0.0.1"
TOOL = "system_info"
OUTPUT = {"hostname": "bench-host", "os": "linux", "uptime_s": 12345}
HEARTBEAT_S = 3600.0  # agents stay idle: no pings during the run
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
PORTS_PER_SOURCE = 25_000
CTL_LIMIT = 1 << 26  # control messages carry agent lists and latencies

TARGETS = {
    "agents": 10_000,
    "kib_per_agent": 40.0,
    "p50_ratio": 1.5,
    "calls_per_s": 5_000.0,
}


# ------------------------------------------------------------------------------------------------
# common helpers
# ------------------------------------------------------------------------------------------------


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def loop_factory(name: str = "uvloop") -> tuple[Callable[[], asyncio.AbstractEventLoop], str]:
    """uvloop when installed and wanted (it is what the product's uvicorn config asks for), else asyncio."""
    if name == "uvloop":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop, f"uvloop {getattr(uvloop, '__version__', '')}".strip()
    return asyncio.new_event_loop, "asyncio"


def run(main: Coroutine[Any, Any, Any], loop: str = "uvloop") -> Any:
    factory, _ = loop_factory(loop)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def pin(cpu: int | None) -> None:
    if cpu is not None and hasattr(os, "sched_setaffinity") and cpu < (os.cpu_count() or 1):
        os.sched_setaffinity(0, {cpu})


def rss_bytes(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def pct(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    idx = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[idx]


def protocol_costs(n: int = 5000) -> dict[str, float]:
    """CPU seconds per call of the wire protocol alone, in this process: the floor under each end's share.

    Server: build and sign the ``tool_call``, encode it, decode the ``tool_result``. Agent: decode
    the call, check its signature, build and encode the result. Both as the hub and the agent do them.
    """
    from mspclaw.protocol.connection import PendingCall, ServerConnection

    key = secrets.token_bytes(32)
    server_signer, agent_signer = Signer(key), Signer(key)
    server = ServerConnection(now=time.time(), heartbeat_interval=HEARTBEAT_S)
    agent = AgentConnection(now=time.time(), heartbeat_interval=HEARTBEAT_S)
    agent.start(Hello(protocol=PROTOCOL_VERSION, agent_id="ag_x", client_id="cl_x", role="device", hostname="h",
                      os="linux", tools=[TOOL]))
    server.receive(agent.data_to_send()[0], time.time())
    agent.receive(server.data_to_send()[0], time.time())
    clock = time.process_time
    t_server = t_agent = 0.0
    for _ in range(n):
        t0 = clock()
        call_id, deadline = "call_" + secrets.token_hex(8), time.time() + 10
        server.call_encoded(PendingCall(call_id, TOOL, deadline),
                            encode_call(server_signer, call_id=call_id, tool=TOOL, args={}, deadline=deadline))
        (text,) = server.data_to_send()
        t1 = clock()
        for event in agent.receive(text, time.time()):
            if isinstance(event, FrameReceived) and isinstance(event.frame, ToolCall):
                assert agent_signer.verify(event.frame)
                agent.result(ToolResult(call_id=event.frame.call_id, ok=True, output=OUTPUT, duration_ms=0))
        (reply,) = agent.data_to_send()
        t2 = clock()
        server.receive(reply, time.time())
        t3 = clock()
        t_server += (t1 - t0) + (t3 - t2)
        t_agent += t2 - t1
    return {"server": t_server / n, "agent": t_agent / n}


class GCWatch:
    """Counts this process's garbage collections and their pauses from construction to :meth:`stop`."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []
        self._start = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.pauses.append((info["generation"], time.perf_counter() - self._start))

    def stop(self) -> str:
        gc.callbacks.remove(self._on_gc)
        per_gen = [sum(1 for g, _ in self.pauses if g == gen) for gen in range(3)]
        return (f"{'/'.join(map(str, per_gen))} (gen0/1/2), {sum(t for _, t in self.pauses) * 1e3:.1f} ms in all, "
                f"longest {max((t for _, t in self.pauses), default=0.0) * 1e3:.1f} ms")


def sample_message_size() -> int:
    """Bytes of the signed ``tool_call`` frame the dispatcher sends: the echo sends as many."""
    return len(encode_call(Signer(secrets.token_bytes(32)), call_id="call_" + secrets.token_hex(8), tool=TOOL,
                           args={}, deadline=time.time() + 10))


# ------------------------------------------------------------------------------------------------
# server side: control channel shared by both server kinds
# ------------------------------------------------------------------------------------------------


class ControlServer:
    """JSON lines on a Unix socket: ``stats`` and ``calls``. Bench-only; never part of the app."""

    def __init__(self, kind: str, call_one: Callable[[Any, float], Awaitable[None]], online: Callable[[], int],
                 trace: bool) -> None:
        self.kind = kind
        self.call_one = call_one
        self.online = online
        self.trace = trace
        self.snapshot: Any = None
        self.server: asyncio.AbstractServer | None = None
        self.profiler: Any = None
        self.collections = [0, 0, 0]  # garbage collections by generation since start, and their seconds
        self.gc_s = 0.0
        self._gc_t0 = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_t0 = time.perf_counter()
        else:
            self.collections[info["generation"]] += 1
            self.gc_s += time.perf_counter() - self._gc_t0

    async def start(self, path: str) -> None:
        self.server = await asyncio.start_unix_server(self._client, path=path, limit=CTL_LIMIT)  # keep a reference

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.CancelledError):  # the bench stops this server with SIGINT
            await self._serve_client(reader, writer)

    async def _serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            req = json.loads(line)
            try:
                reply = await getattr(self, "op_" + req["op"])(**req.get("args", {}))
            except Exception as exc:  # report, keep serving
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()

    async def op_stats(self, top: int = 0, mark: bool = False, collect: bool = False) -> dict[str, Any]:
        t0 = time.perf_counter()
        if collect:
            gc.collect()
        # gc.get_freeze_count() walks the whole permanent generation (30 ms with a million frozen objects):
        # only with a collection, never in a poll
        out: dict[str, Any] = {"rss": rss_bytes(), "online": self.online(),
                               "gc_frozen": gc.get_freeze_count() if collect else 0,
                               "cpu": time.process_time(), "gc_full_s": time.perf_counter() - t0,
                               "gc_tracked": len(gc.get_objects()) if collect else 0,
                               "collections": list(self.collections), "gc_s": self.gc_s}
        if self.trace and (top or mark):
            import tracemalloc

            snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
            if top and self.snapshot is not None:
                stats = snap.compare_to(self.snapshot, "lineno")
                out["top"] = [str(s) for s in stats[:top]]
                out["traced_diff"] = sum(s.size_diff for s in stats)
            if mark:
                self.snapshot = snap
        return out

    async def op_profile(self, path: str = "") -> dict[str, Any]:
        """Diagnosis: cProfile this server from now until asked again with ``path`` (where the stats go)."""
        import cProfile

        if not path:
            self.profiler = cProfile.Profile()
            self.profiler.enable()
        elif self.profiler is not None:
            self.profiler.disable()
            self.profiler.dump_stats(path)
            self.profiler = None
        return {}

    async def op_calls(self, targets: list[Any], n: int, concurrency: int, timeout: float) -> dict[str, Any]:
        """``n`` calls from ``concurrency`` callers; caller ``w`` uses only ``targets[w::concurrency]``.

        ``timeout`` is the dispatcher's own (``call_tool(timeout=...)``); nothing else wraps the call,
        so the time measured is the call's alone."""
        lat: list[float] = []
        errors: list[str] = []
        per_worker = [targets[w::concurrency] for w in range(concurrency)]
        counts = [n // concurrency + (1 if w < n % concurrency else 0) for w in range(concurrency)]
        clock = time.perf_counter

        async def worker(mine: list[Any], count: int) -> None:
            for i in range(count):
                target = mine[i % len(mine)]
                t0 = clock()
                try:
                    await self.call_one(target, timeout)
                except Exception as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                lat.append(clock() - t0)

        gc_watch = GCWatch()
        profile = os.environ.get("FLEET_PROFILE") if concurrency > 1 else None
        if profile:
            import cProfile

            prof = cProfile.Profile()
            prof.enable()
        cpu0, t0 = time.process_time(), clock()
        await asyncio.gather(*(worker(m, c) for m, c in zip(per_worker, counts, strict=True) if c))
        elapsed, cpu = clock() - t0, time.process_time() - cpu0
        if profile:
            prof.disable()
            prof.dump_stats(f"{profile}.{self.kind}")
        return {"lat": lat, "elapsed": elapsed, "cpu": cpu, "errors": len(errors), "first_error": errors[:1],
                "gc": gc_watch.stop()}


async def serve_mspclaw(args: argparse.Namespace) -> None:
    from mspclaw.api import server as api_server
    from mspclaw.settings import Settings
    from mspclaw.wiring import build

    if args.trace:
        import tracemalloc

        tracemalloc.start(args.trace)
    settings = Settings(data_dir=Path(args.data_dir), api_key=args.api_key,
                        heartbeat_interval_s=HEARTBEAT_S, log_level="WARNING")
    services = build(settings)
    hub = services.hub

    async def call_one(target: Any, timeout: float) -> None:
        client_id, agent_id = target
        await hub.for_client(client_id).call_tool(agent_id, TOOL, {}, timeout=timeout)

    ctl = ControlServer("mspclaw", call_one, hub.online_count, bool(args.trace))
    await ctl.start(args.ctl)
    try:
        if args.kind == "hub-ws":
            await serve_hub_on_websockets(services, args.port)
        else:  # the agents connect to the agent listener; the app gets a port of its own
            await api_server.serve(services, host=HOST, port=free_port(), agent_port=args.port, log_level="warning")
    finally:
        services.close()


async def serve_hub_on_websockets(services: Any, port: int) -> None:
    """Diagnosis: the same services and hub, with the ``websockets`` server instead of uvicorn and Starlette."""
    from websockets.asyncio.server import ServerConnection, serve

    from mspclaw.dispatch import TransportClosed
    from mspclaw.errors import AuthError

    class WsTransport:
        __slots__ = ("ws",)

        def __init__(self, ws: ServerConnection) -> None:
            self.ws = ws

        async def send(self, text: str) -> None:
            try:
                await self.ws.send(text)
            except ConnectionClosed as exc:
                raise TransportClosed(str(exc)) from exc

        async def recv(self) -> str | bytes:
            try:
                return await self.ws.recv()
            except ConnectionClosed as exc:
                raise TransportClosed(str(exc)) from exc

        async def close(self, code: int, reason: str) -> None:
            await self.ws.close(code, reason)

    async def handler(ws: ServerConnection) -> None:
        bearer = (ws.request.headers.get("authorization") or "").removeprefix("Bearer ") if ws.request else ""
        try:
            identity = services.fleet.authenticate(bearer, remote="bench")
        except AuthError:
            await ws.close(4401, "unauthorized")
            return
        await services.hub.serve(identity, WsTransport(ws))

    raise_nofile()
    await services.start()
    async with serve(handler, HOST, port, compression=None, ping_interval=None, max_size=4 * MAX_FRAME_BYTES,
                     backlog=4096) as server:
        gc.freeze()
        await server.serve_forever()


async def serve_echo(args: argparse.Namespace) -> None:
    """Bare websockets: the connection's first message names it; later ones resolve a waiter."""
    from websockets.asyncio.server import ServerConnection, serve

    raise_nofile()
    conns: dict[int, tuple[ServerConnection, list[asyncio.Future[str | bytes] | None]]] = {}
    payload = json.dumps({"kind": "echo", "pad": ""})
    payload = json.dumps({"kind": "echo", "pad": "x" * max(0, args.msg_size - len(payload))})

    async def handler(ws: ServerConnection) -> None:
        first = await ws.recv()
        index = int(first)
        slot: list[asyncio.Future[str | bytes] | None] = [None]
        conns[index] = (ws, slot)
        await ws.send("ok")
        try:
            async for message in ws:
                fut = slot[0]
                if fut is not None and not fut.done():
                    fut.set_result(message)
        except ConnectionClosed:
            pass
        finally:
            conns.pop(index, None)

    async def call_one(target: Any, timeout: float) -> None:
        ws, slot = conns[target]
        fut: asyncio.Future[str | bytes] = asyncio.get_running_loop().create_future()
        slot[0] = fut
        await ws.send(payload)
        await fut

    ctl = ControlServer("echo", call_one, lambda: len(conns), False)
    await ctl.start(args.ctl)
    async with serve(handler, HOST, args.port, compression=None, ping_interval=None, max_size=4 * MAX_FRAME_BYTES,
                     backlog=4096) as server:
        gc.freeze()
        await server.serve_forever()


async def serve_asgi_echo(args: argparse.Namespace) -> None:
    """A raw ASGI app under the product's uvicorn settings: what uvicorn alone costs."""
    import uvicorn

    from mspclaw.api.agent_listener import WS_HARD_LIMIT

    raise_nofile()
    conns: dict[int, tuple[Callable[[dict[str, Any]], Awaitable[None]], list[asyncio.Future[Any] | None]]] = {}
    payload = json.dumps({"kind": "echo", "pad": ""})
    payload = json.dumps({"kind": "echo", "pad": "x" * max(0, args.msg_size - len(payload))})

    async def app(scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]],
                  send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        first = await receive()
        index = int(first["text"])
        slot: list[asyncio.Future[Any] | None] = [None]
        conns[index] = (send, slot)
        await send({"type": "websocket.send", "text": "ok"})
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    return
                fut = slot[0]
                if fut is not None and not fut.done():
                    fut.set_result(message.get("text"))
        finally:
            conns.pop(index, None)

    async def call_one(target: Any, timeout: float) -> None:
        send, slot = conns[target]
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        slot[0] = fut
        await send({"type": "websocket.send", "text": payload})
        await fut

    ctl = ControlServer("asgi-echo", call_one, lambda: len(conns), False)
    await ctl.start(args.ctl)
    config = uvicorn.Config(app, host=HOST, port=args.port, ws=args.ws or "websockets-sansio",
                            ws_max_size=WS_HARD_LIMIT, ws_per_message_deflate=False, ws_ping_interval=None,
                            ws_ping_timeout=None, backlog=4096, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    gc.freeze()
    await server.serve()


def server_main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="fleet.py _serve")
    p.add_argument("kind", choices=["mspclaw", "hub-ws", "echo", "asgi-echo"])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ctl", required=True)
    p.add_argument("--data-dir")
    p.add_argument("--api-key")
    p.add_argument("--msg-size", type=int, default=300)
    p.add_argument("--ws", default="")
    p.add_argument("--trace", type=int, default=0)
    p.add_argument("--loop", default="uvloop")
    p.add_argument("--cpu", type=int)
    args = p.parse_args(argv)
    raise_nofile()
    pin(args.cpu)
    main = {"mspclaw": serve_mspclaw, "hub-ws": serve_mspclaw, "echo": serve_echo,
            "asgi-echo": serve_asgi_echo}[args.kind]
    with contextlib.suppress(KeyboardInterrupt):
        run(main(args), args.loop)


# ------------------------------------------------------------------------------------------------
# database preparation (before the server starts)
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentCred:
    agent_id: str
    client_id: str
    credential: str
    key: bytes


def prepare_agents(data_dir: Path, api_key: str, n: int, per_client: int) -> list[AgentCred]:
    """N agents over ceil(N / per_client) clients. The first through the real enrollment path."""
    from sqlalchemy import insert

    from mspclaw.settings import Settings
    from mspclaw.store.registry import digest
    from mspclaw.store.tables import Agent, Device, new_id
    from mspclaw.wiring import build

    services = build(Settings(data_dir=data_dir, api_key=api_key))
    try:
        clients = [services.registry.add_client(f"bench-client-{i:03d}") for i in range(-(-n // per_client))]
        issued = services.fleet.issue_code(clients[0].id, ttl_hours=1, actor="bench")
        first = services.fleet.enroll(issued.code, remote="bench", hostname="bench-00000", os="linux",
                                      os_version="bench", agent_version="bench", tools=[TOOL])
        creds = [AgentCred(first.agent.id, first.agent.client_id, first.credential,
                           bytes.fromhex(first.agent.signing_key))]
        agents: list[dict[str, Any]] = []
        devices: list[dict[str, Any]] = []
        for i in range(1, n):
            client_id = clients[i // per_client].id
            agent_id, credential, key = new_id("ag"), secrets.token_urlsafe(32), secrets.token_hex(32)
            hostname = f"bench-{i:05d}"
            agents.append({"id": agent_id, "client_id": client_id, "role": "device", "hostname": hostname,
                           "os": "linux", "os_version": "bench", "agent_version": "bench", "tools": [TOOL],
                           "credential_hash": digest(credential), "signing_key": key})
            devices.append({"id": new_id("dv"), "client_id": client_id, "agent_id": agent_id,
                            "hostname": hostname, "os": "linux"})
            creds.append(AgentCred(agent_id, client_id, credential, bytes.fromhex(key)))
        sessions = services.registry._sessions
        with sessions.begin() as db:
            if agents:
                db.execute(insert(Agent), agents)
                db.execute(insert(Device), devices)
        # the bulk rows authenticate like enrolled ones
        services.registry.authenticate(f"{creds[-1].agent_id}.{creds[-1].credential}")
    finally:
        services.close()
    return creds


@dataclass(frozen=True)
class Prepared:
    """A bench's work directory: the server's data directory with its agents enrolled, and its API key."""

    work: Path
    data_dir: Path
    api_key: str
    creds: list[AgentCred]
    prep_s: float
    """How long enrolling the agents took."""


@contextlib.asynccontextmanager
async def prepared(prefix: str, n: int, per_client: int) -> AsyncIterator[Prepared]:
    """A temporary work directory (removed afterwards) with ``n`` agents prepared by :func:`prepare_agents`
    in a thread (the audit log refuses a blocking append on the event loop)."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        work = Path(tmp)
        data_dir = work / "data"
        api_key = "msp_bench_" + secrets.token_hex(16)
        t0 = time.perf_counter()
        creds = await asyncio.to_thread(prepare_agents, data_dir, api_key, n, per_client)
        yield Prepared(work, data_dir, api_key, creds, time.perf_counter() - t0)


# ------------------------------------------------------------------------------------------------
# load generator (this process)
# ------------------------------------------------------------------------------------------------


class Control:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def ask(self, op: str, **args: Any) -> dict[str, Any]:
        self.writer.write(json.dumps({"op": op, "args": args}).encode() + b"\n")
        await self.writer.drain()
        reply: dict[str, Any] = json.loads(await self.reader.readline())
        if "error" in reply:
            raise RuntimeError(f"server {op}: {reply['error']}")
        return reply


@dataclass
class Scenario:
    name: str
    kind: str
    source: int  # which block of source addresses
    connected: int = 0
    connect_s: float = 0.0
    connect_cpu: float = 0.0  # server CPU seconds spent accepting the N connections
    rss_base: int = 0
    rss_idle: int = 0
    rss_after: int = 0
    gc_full_s: float = 0.0  # one full collection with all N connected and idle
    gc_tracked: int = 0  # objects the collector tracks then (start-up objects are frozen)
    seq: list[float] = field(default_factory=list)
    conc: list[float] = field(default_factory=list)
    conc_elapsed: float = 0.0
    conc_calls: int = 0
    server_cpu: float = 0.0  # CPU seconds of the server during the concurrent calls
    lg_cpu: float = 0.0  # the load generator's, same interval
    seq_server_cpu: float = 0.0  # CPU seconds of the server during the sequential calls
    seq_lg_cpu: float = 0.0  # the load generator's, same interval
    seq_calls: int = 0
    errors: int = 0
    notes: list[str] = field(default_factory=list)
    round_p50: list[float] = field(default_factory=list)  # sequential p50 of each round
    rounds: int = 0

    def absorb(self, run: Scenario) -> None:
        """Pool one round's figures into this scenario: latencies and CPU add up, sizes average."""
        k = self.rounds
        self.rounds += 1

        def avg(old: float, new: float) -> float:
            return (old * k + new) / (k + 1)

        self.connected = run.connected if k == 0 else min(self.connected, run.connected)
        self.connect_s, self.connect_cpu = avg(self.connect_s, run.connect_s), avg(self.connect_cpu, run.connect_cpu)
        self.rss_base = round(avg(self.rss_base, run.rss_base))
        self.rss_idle = round(avg(self.rss_idle, run.rss_idle))
        self.rss_after = round(avg(self.rss_after, run.rss_after))
        self.gc_full_s = avg(self.gc_full_s, run.gc_full_s)
        self.gc_tracked = round(avg(self.gc_tracked, run.gc_tracked))
        self.seq = sorted(self.seq + run.seq)
        self.conc = sorted(self.conc + run.conc)
        self.round_p50.append(pct(run.seq, 0.5))
        for name in ("conc_elapsed", "conc_calls", "server_cpu", "lg_cpu", "seq_server_cpu", "seq_lg_cpu",
                     "seq_calls", "errors"):
            setattr(self, name, getattr(self, name) + getattr(run, name))
        self.notes += [f"round {k + 1}: {note}" for note in run.notes]

    @property
    def kib_per_conn(self) -> float:
        return (self.rss_idle - self.rss_base) / 1024 / max(1, self.connected)

    @property
    def rate(self) -> float:
        return self.conc_calls / self.conc_elapsed if self.conc_elapsed else 0.0


def answer(conn: AgentConnection, signer: Signer, data: str | bytes) -> list[str]:
    """One received frame through the agent's protocol end; returns the frames to send back."""
    for event in conn.receive(data, time.time()):
        if isinstance(event, FrameReceived) and isinstance(event.frame, ToolCall):
            call = event.frame
            if signer.verify(call):
                conn.result(ToolResult(call_id=call.call_id, ok=True, output=OUTPUT, duration_ms=0))
            else:
                conn.result(ToolResult(call_id=call.call_id, ok=False, error=ErrorInfo(
                    code="bad_signature", message="signature does not verify")))
    return conn.data_to_send()


class LoadGenerator:
    def __init__(self, opts: argparse.Namespace, msg_size: int) -> None:
        self.opts = opts
        self.msg_size = msg_size
        self.sockets: list[ClientConnection] = []
        self.tasks: set[asyncio.Task[None]] = set()

    def _sock(self, source: str) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        sock.bind((source, 0))
        sock.setblocking(False)
        return sock

    async def _open(self, i: int, block: int, port: int, headers: dict[str, str] | None) -> ClientConnection:
        source = f"127.0.{block}.{2 + i // PORTS_PER_SOURCE}"
        last: Exception | None = None
        for attempt in range(5):
            sock = self._sock(source)
            try:
                await asyncio.get_running_loop().sock_connect(sock, (HOST, port))
                return await connect(f"ws://{HOST}:{port}/ws/agent", sock=sock, compression=None,
                                     ping_interval=None, proxy=None, open_timeout=60, close_timeout=1,
                                     max_size=4 * MAX_FRAME_BYTES, additional_headers=headers,
                                     user_agent_header=None)
            except (OSError, TimeoutError) as exc:
                sock.close()
                last = exc
                await asyncio.sleep(0.2 * (attempt + 1))
        raise RuntimeError(f"connection {i} failed: {last}")

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def open_agents(self, creds: list[AgentCred], block: int, port: int) -> None:
        sem = asyncio.Semaphore(self.opts.connect_concurrency)

        async def one(i: int, cred: AgentCred) -> None:
            async with sem:
                ws = await self._open(i, block, port, {"Authorization": f"Bearer {cred.agent_id}.{cred.credential}"})
                conn = AgentConnection(now=time.time(), heartbeat_interval=HEARTBEAT_S)
                conn.start(Hello(protocol=PROTOCOL_VERSION, agent_id=cred.agent_id, client_id=cred.client_id,
                                 role="device", hostname=f"bench-{i:05d}", os="linux", os_version="bench",
                                 agent_version="bench", tools=[TOOL]))
                for text in conn.data_to_send():
                    await ws.send(text)
                events = conn.receive(await ws.recv(), time.time())
                if not any(isinstance(e, WelcomeReceived) for e in events):
                    raise RuntimeError(f"agent {i}: no welcome: {events}")
                self.sockets.append(ws)
                self._spawn(self._agent(ws, conn, cred.key))

        await asyncio.gather(*(one(i, c) for i, c in enumerate(creds)))

    async def _agent(self, ws: ClientConnection, conn: AgentConnection, key: bytes) -> None:
        """Answer tool calls the way an agent does: decode, verify the signature, reply.

        The frame is handled in :func:`answer`, whose locals go when it returns: the agent daemon's
        handling (``_react``, then the call's own task) keeps nothing of a call either, and a loop
        variable here would keep each agent's last call alive between calls.
        """
        signer = Signer(key)
        try:
            async for data in ws:
                for text in answer(conn, signer, data):
                    await ws.send(text)
        except ConnectionClosed:
            pass

    async def open_echo(self, n: int, block: int, port: int) -> None:
        sem = asyncio.Semaphore(self.opts.connect_concurrency)

        async def one(i: int) -> None:
            async with sem:
                ws = await self._open(i, block, port, None)
                await ws.send(str(i))
                if await ws.recv() != "ok":
                    raise RuntimeError("echo server did not register the connection")
                self.sockets.append(ws)
                self._spawn(self._echo(ws))

        await asyncio.gather(*(one(i) for i in range(n)))

    async def _echo(self, ws: ClientConnection) -> None:
        try:
            async for data in ws:
                await ws.send(data)
        except ConnectionClosed:
            pass

    async def close_all(self) -> None:
        for ws in self.sockets:
            ws.transport.abort()  # RST: no TIME_WAIT left behind
        self.sockets.clear()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def start_server(kind: str, opts: argparse.Namespace, work: Path, msg_size: int,
                       data_dir: Path | None = None, api_key: str = "",
                       port: int | None = None) -> tuple[subprocess.Popen[bytes], Control, int]:
    """Start one server process (on ``port``, else a free one) and open its control socket."""
    port = port or free_port()
    ctl_path = str(work / f"ctl-{kind}-{port}-{time.monotonic_ns() % 10**9}.sock")  # a restart gets a new one
    cmd = [sys.executable, __file__, "_serve", kind, "--port", str(port), "--ctl", ctl_path,
           "--msg-size", str(msg_size)]
    if profile_dir := os.environ.get("FLEET_CPROFILE"):  # diagnosis: the whole server process under cProfile
        cmd[1:1] = ["-m", "cProfile", "-o", str(Path(profile_dir) / f"{kind}-{port}-{time.monotonic_ns()}.prof")]
    if data_dir is not None:
        cmd += ["--data-dir", str(data_dir), "--api-key", api_key]
    if opts.ws and kind == "asgi-echo":
        cmd += ["--ws", opts.ws]
    cmd += ["--loop", opts.loop] + (["--cpu", "0"] if opts.pin else [])
    if opts.trace and kind == "mspclaw":
        cmd += ["--trace", str(opts.trace)]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
    atexit.register(_kill_if_running, proc)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{kind} server exited with {proc.returncode}")
        if os.path.exists(ctl_path):
            with contextlib.suppress(OSError):
                reader, writer = await asyncio.open_unix_connection(ctl_path, limit=CTL_LIMIT)
                break
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"{kind} server did not start")
        await asyncio.sleep(0.05)
    # the control socket comes up before the listener: wait for the port too
    while True:
        try:
            _r, w = await asyncio.open_connection(HOST, port)
            w.close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"{kind} server did not listen") from None
            await asyncio.sleep(0.05)
    return proc, Control(reader, writer), port


def _kill_if_running(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()


async def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    for _ in range(50):
        if proc.poll() is not None:
            return
        await asyncio.sleep(0.1)
    proc.kill()
    proc.wait()


async def run_scenario(sc: Scenario, opts: argparse.Namespace, work: Path, msg_size: int,
                       creds: list[AgentCred], data_dir: Path, api_key: str, calls: int) -> Scenario:
    n = len(creds)
    lg = LoadGenerator(opts, msg_size)
    agents = sc.kind in ("mspclaw", "hub-ws")
    if agents:
        proc, ctl, port = await start_server(sc.kind, opts, work, msg_size, data_dir, api_key)
    else:
        proc, ctl, port = await start_server(sc.kind, opts, work, msg_size)
    try:
        # warm up: one connection and a few round trips, so lazy start-up cost is not counted per agent
        if agents:
            await lg.open_agents(creds[:1], 200 + sc.source, port)
            first: list[Any] = [[creds[0].client_id, creds[0].agent_id]]
        else:
            await lg.open_echo(1, 200 + sc.source, port)
            first = [0]
        await ctl.ask("calls", targets=first, n=200, concurrency=1, timeout=10.0)
        await lg.close_all()
        while (await ctl.ask("stats"))["online"]:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        base = await ctl.ask("stats", mark=True, collect=True)
        sc.rss_base = base["rss"]

        t0 = time.perf_counter()
        if agents:
            await lg.open_agents(creds, sc.source, port)
        else:
            await lg.open_echo(n, sc.source, port)
        sc.connect_s = time.perf_counter() - t0
        # The load generator's own N simulated agents are long-lived: keep its collector off them, in
        # both scenarios alike, so its CPU per call is the protocol's and not its garbage collector's.
        gc.collect()
        gc.freeze()
        while (stats := await ctl.ask("stats"))["online"] < n and time.perf_counter() - t0 < 60:
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # idle
        stats = await ctl.ask("stats", top=opts.trace_top, collect=True)
        sc.connected, sc.rss_idle = stats["online"], stats["rss"]
        sc.connect_cpu = stats["cpu"] - base["cpu"]
        sc.gc_full_s, sc.gc_tracked = stats["gc_full_s"], stats["gc_tracked"] - base["gc_tracked"]
        for line in stats.get("top", []):
            sc.notes.append(line)
        if "traced_diff" in stats:
            sc.notes.append(f"tracemalloc: {stats['traced_diff'] / max(1, n) / 1024:.1f} KiB traced per connection")

        if agents:
            targets: list[Any] = [[c.client_id, c.agent_id] for c in creds]
        else:
            targets = list(range(n))
        random.Random(7).shuffle(targets)
        await ctl.ask("calls", targets=targets[:100], n=opts.warmup, concurrency=1, timeout=10.0)
        spy = start_pyspy(proc.pid, sc.kind, "seq")
        lg_cpu0, lg_gc = time.process_time(), GCWatch()
        seq = await ctl.ask("calls", targets=targets, n=calls, concurrency=1, timeout=10.0)
        sc.seq_lg_cpu, sc.seq_server_cpu, sc.seq_calls = time.process_time() - lg_cpu0, seq["cpu"], len(seq["lat"])
        sc.notes.append(f"load generator GC during sequential calls: {lg_gc.stop()}")
        await stop_pyspy(spy)
        spy = start_pyspy(proc.pid, sc.kind, "conc")
        lg_cpu0 = time.process_time()
        conc = await ctl.ask("calls", targets=targets, n=calls, concurrency=opts.concurrency, timeout=10.0)
        await stop_pyspy(spy)
        sc.lg_cpu = time.process_time() - lg_cpu0
        sc.server_cpu = conc["cpu"]
        sc.seq = sorted(seq["lat"])
        sc.conc = sorted(conc["lat"])
        sc.conc_elapsed, sc.conc_calls = conc["elapsed"], len(conc["lat"])
        sc.errors = seq["errors"] + conc["errors"]
        if sc.errors:
            sc.notes.append(f"errors: {seq['first_error'] or conc['first_error']}")
        sc.notes.append(f"server GC during sequential calls: {seq['gc']}")
        sc.notes.append(f"server GC during concurrent calls: {conc['gc']}")
        sc.rss_after = (await ctl.ask("stats", collect=True))["rss"]
    finally:
        await lg.close_all()
        gc.unfreeze()
        ctl.writer.close()
        await stop_server(proc)
    return sc


def start_pyspy(pid: int, kind: str, phase: str) -> subprocess.Popen[bytes] | None:
    """Diagnosis: sample the server's stacks during one phase (``FLEET_PYSPY_PHASE``: seq or conc, default conc)."""
    if not os.environ.get("FLEET_PYSPY") or os.environ.get("FLEET_PYSPY_PHASE", "conc") != phase:
        return None
    out = Path(os.environ.get("FLEET_PYSPY_OUT", "/tmp")) / f"fleet-{kind}-{phase}.txt"
    spy = subprocess.Popen([os.environ["FLEET_PYSPY"], "record", "-p", str(pid), "-r", "1000", "-f", "raw",
                            "--nonblocking", "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # py-spy attaches
    return spy


async def stop_pyspy(spy: subprocess.Popen[bytes] | None) -> None:
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        await asyncio.to_thread(spy.wait)


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f} µs"


def report(opts: argparse.Namespace, loop_name: str, scenarios: list[Scenario], n: int, msg_size: int,
           prep_s: float, total_s: float, costs: dict[str, float]) -> bool:
    base = next(s for s in scenarios if s.kind == "echo")
    main = next(s for s in scenarios if s.kind == "mspclaw")
    cols = [s.name for s in scenarios] + ["MSPclaw / echo"]

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}x" if b else "-"

    rows: list[list[str]] = [
        ["connections open"] + [f"{s.connected:,} / {n:,}" for s in scenarios] + [""],
        ["time to connect all"] + [f"{s.connect_s:.1f} s" for s in scenarios]
        + [ratio(main.connect_s, base.connect_s)],
        ["server CPU per connection accepted"] + [us(s.connect_cpu / max(1, s.connected)) for s in scenarios]
        + [ratio(main.connect_cpu / max(1, main.connected), base.connect_cpu / max(1, base.connected))],
        ["server RSS before / idle / after calls"]
        + [f"{s.rss_base / 2**20:.0f} / {s.rss_idle / 2**20:.0f} / {s.rss_after / 2**20:.0f} MiB" for s in scenarios]
        + [""],
        ["server RSS per idle connection"] + [f"{s.kib_per_conn:.1f} KiB" for s in scenarios]
        + [ratio(main.kib_per_conn, base.kib_per_conn)],
        ["server RSS per connection after calls"]
        + [f"{(s.rss_after - s.rss_base) / 1024 / max(1, s.connected):.1f} KiB" for s in scenarios] + [""],
        ["GC-tracked objects per connection"] + [f"{s.gc_tracked / max(1, s.connected):.0f}" for s in scenarios]
        + [ratio(main.gc_tracked, base.gc_tracked)],
        ["one full GC pass, all connected"] + [f"{s.gc_full_s * 1e3:,.0f} ms" for s in scenarios] + [""],
        ["round trip p50, sequential"] + [us(pct(s.seq, 0.5)) for s in scenarios]
        + [ratio(pct(main.seq, 0.5), pct(base.seq, 0.5))],
        ["round trip p50 of each round"] + [" / ".join(us(v).removesuffix(" µs") for v in s.round_p50) + " µs"
                                             for s in scenarios]
        + [" / ".join(f"{a / b:.2f}" for a, b in zip(main.round_p50, base.round_p50, strict=True)) + "x"],
        ["round trip p99, sequential"] + [us(pct(s.seq, 0.99)) for s in scenarios]
        + [ratio(pct(main.seq, 0.99), pct(base.seq, 0.99))],
        [f"round trips/s, {opts.concurrency} concurrent"] + [f"{s.rate:,.0f}" for s in scenarios]
        + [ratio(main.rate, base.rate)],
        ["server CPU per call, sequential"] + [us(s.seq_server_cpu / max(1, s.seq_calls)) for s in scenarios]
        + [ratio(main.seq_server_cpu / max(1, main.seq_calls), base.seq_server_cpu / max(1, base.seq_calls))],
        ["load generator CPU per call, sequential"] + [us(s.seq_lg_cpu / max(1, s.seq_calls)) for s in scenarios]
        + [""],
        ["server CPU per call under load"] + [us(s.server_cpu / max(1, s.conc_calls)) for s in scenarios]
        + [ratio(main.server_cpu / max(1, main.conc_calls), base.server_cpu / max(1, base.conc_calls))],
        ["load generator CPU per call"] + [us(s.lg_cpu / max(1, s.conc_calls)) for s in scenarios] + [""],
        [f"p50 / p99 under load ({opts.concurrency})"]
        + [f"{pct(s.conc, 0.5) * 1e3:.2f} / {pct(s.conc, 0.99) * 1e3:.2f} ms" for s in scenarios] + [""],
        ["errors"] + [str(s.errors) for s in scenarios] + [""],
    ]
    widths = [max(len(r[i]) for r in [["figure", *cols], *rows]) for i in range(len(cols) + 1)]
    print()
    print(f"Fleet benchmark: {n:,} agents, {opts.calls:,} calls sequential and {opts.calls:,} from "
          f"{opts.concurrency} concurrent callers, over {opts.rounds} rounds in ABBA order; {msg_size}-byte call "
          f"frame; loop {loop_name}; {'server and load generator pinned to CPU 0 and 1; ' if opts.pin else ''}"
          f"{os.cpu_count()} CPUs; agents prepared in {prep_s:.1f} s; run {total_s:.0f} s")
    line = "  ".join(h.ljust(w) for h, w in zip(["figure", *cols], widths, strict=True))
    print(line)
    print("-" * len(line))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    for s in scenarios:
        for note in s.notes:
            print(f"  [{s.name}] {note}")
    gap = pct(main.seq, 0.5) - pct(base.seq, 0.5)
    print(f"  wire protocol alone, CPU per call measured in-process: server {us(costs['server'])} (build, sign, "
          f"encode the call; decode the result), agent {us(costs['agent'])} (decode, verify, answer); "
          f"{us(costs['server'] + costs['agent'])} of the {us(gap)} p50 gap over the echo")

    p50_ratio = pct(main.seq, 0.5) / pct(base.seq, 0.5)
    checks: list[tuple[str, bool | None, str]] = [
        (f"{TARGETS['agents']:,} agents connected to one server process",
         main.connected >= TARGETS["agents"] if n >= TARGETS["agents"] else None,
         f"{main.connected:,} of {n:,} asked"),
        (f"server memory <= {TARGETS['kib_per_agent']:.0f} KiB per idle agent",
         main.kib_per_conn <= TARGETS["kib_per_agent"], f"{main.kib_per_conn:.1f} KiB"),
        (f"round trip p50 <= {TARGETS['p50_ratio']}x bare echo", p50_ratio <= TARGETS["p50_ratio"],
         f"{p50_ratio:.2f}x"),
        (f">= {TARGETS['calls_per_s']:,.0f} tool calls/s", main.rate >= TARGETS["calls_per_s"],
         f"{main.rate:,.0f} measured; {1 / max(1e-9, main.server_cpu / max(1, main.conc_calls)):,.0f} per server "
         "core from its CPU per call"),
        ("no failed calls", main.errors == 0, str(main.errors)),
    ]
    print()
    ok = True
    for what, passed, got in checks:
        ok &= passed is not False
        print(f"  {'----' if passed is None else 'PASS' if passed else 'FAIL'}  {what}: {got}")
    return ok


async def bench(opts: argparse.Namespace) -> bool:
    t_start = time.perf_counter()
    _, loop_name = loop_factory(opts.loop)
    raise_nofile()
    msg_size = sample_message_size()
    async with prepared("mspclaw-fleet-", opts.agents, opts.per_client) as ready:
        gc.collect()
        gc.freeze()
        costs = protocol_costs()
        scenarios = [Scenario("bare echo", "echo", 1)]
        if opts.layers:
            scenarios.append(Scenario("uvicorn echo", "asgi-echo", 2))
            scenarios.append(Scenario("hub on websockets", "hub-ws", 4))
        scenarios.append(Scenario("MSPclaw", "mspclaw", 3))
        # Rounds in ABBA order (echo, MSPclaw, MSPclaw, echo, ...), each with its share of the calls, pooled:
        # what else the machine does drifts over a run, and this way it weighs on both sides alike.
        calls = -(-opts.calls // opts.rounds)
        for r in range(opts.rounds):
            for sc in scenarios if r % 2 == 0 else scenarios[::-1]:
                print(f"... round {r + 1}/{opts.rounds}, {sc.name}: {opts.agents:,} connections", flush=True)
                sc.absorb(await run_scenario(Scenario(sc.name, sc.kind, sc.source), opts, ready.work, msg_size,
                                             ready.creds, ready.data_dir, ready.api_key, calls))
    return report(opts, loop_name, scenarios, opts.agents, msg_size, ready.prep_s, time.perf_counter() - t_start,
                  costs)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_serve":
        server_main(sys.argv[2:])
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--agents", type=int, default=10_000, help="simulated agents (default 10,000)")
    p.add_argument("--calls", type=int, default=10_000, help="tool calls per measurement (default 10,000)")
    p.add_argument("--concurrency", type=int, default=100, help="concurrent callers for calls/s (default 100)")
    p.add_argument("--quick", action="store_true", help="500 agents and 2,000 calls: a smoke run")
    p.add_argument("--layers", action="store_true",
                   help="also measure a raw ASGI echo under uvicorn, and the hub served by websockets without uvicorn")
    p.add_argument("--per-client", type=int, default=1000, help="agents per client (default 1,000)")
    p.add_argument("--connect-concurrency", type=int, default=200, help="handshakes in flight (default 200)")
    p.add_argument("--warmup", type=int, default=500, help="calls before measuring (default 500)")
    p.add_argument("--rounds", type=int, default=2,
                   help="rounds in ABBA order, the calls split between them and pooled (default 2)")
    p.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop",
                   help="event loop of every process (default uvloop, as the product's uvicorn config)")
    p.add_argument("--pin", action="store_true", help="pin the server to CPU 0 and the load generator to CPU 1")
    p.add_argument("--ws", default="", help="uvicorn's WebSocket implementation for the --layers echo (diagnosis)")
    p.add_argument("--trace", type=int, default=0, help="tracemalloc frames in the MSPclaw server (diagnosis)")
    p.add_argument("--trace-top", type=int, default=25, help="allocation sites to print with --trace")
    opts = p.parse_args()
    if opts.quick:
        opts.agents, opts.calls = min(opts.agents, 500), min(opts.calls, 2000)
    if opts.agents < 1 or opts.calls < 1 or opts.concurrency < 1 or opts.rounds < 1:
        p.error("--agents, --calls, --concurrency and --rounds must be positive")
    if opts.agents > 19_000:
        p.error("one process holds at most about 19,900 sockets here (open-files limit 20,000)")
    if opts.pin:
        pin(1)
    sys.exit(0 if run(bench(opts), opts.loop) else 1)


if __name__ == "__main__":
    main()
