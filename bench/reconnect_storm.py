"""Reconnect storm: two server replicas holding 20,000 agents, one restarted, its 10,000 agents back.

    .venv/bin/python bench/reconnect_storm.py            # 2 x 10,000 agents (about 2 minutes)
    .venv/bin/python bench/reconnect_storm.py --quick    # 2 x 1,000 agents, a smoke run

What runs (every server is ``bench/fleet.py _serve``, the same process the fleet benchmark starts):

* two **MSPclaw replicas** (``wiring.build`` served by ``api.server.serve``, agents on the agent listener)
  on one database, each on its own agent port, each holding half the agents (each process stays under the
  open-files limit of 20,000);
* two **agent processes** (``reconnect_storm.py _agents``), one per replica, each holding that replica's
  agents: a WebSocket per agent with its bearer credential, ``hello`` through the sans-I/O
  :class:`~mspclaw.protocol.connection.AgentConnection` until ``welcome``. When its connection ends, an
  agent reconnects the way the daemon does (:func:`mspclaw.agent.daemon.full_jitter`: first retry
  uniform in [0, 1 s], then doubling windows, capped);
* the **baseline** in the same run: the same two agent processes against two bare ``websockets`` echo
  servers (fleet.py's ``echo``): an agent is back once the echo server has registered its connection.

The storm: replica A is stopped (SIGINT: it closes its agents' sockets with 1001 and writes their
disconnects) and started again on the same port. Once it listens, its agents are told to reconnect
(so the replica's start-up time is reported apart, not mixed into the storm): the storm's time runs
from then until the replica's hub has all of them online, authenticated and registered. Each figure
is read against the echo's in the same run; the guard is the ratio (and the 10 s of the issue is
printed beside it, for this machine).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import json
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from websockets.frames import Frame, Opcode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `bench.fleet` when run as a script

from bench.fleet import (
    HOST,
    IP_BIND_ADDRESS_NO_PORT,
    PORTS_PER_SOURCE,
    TOOL,
    AgentCred,
    Control,
    prepared,
    raise_nofile,
    run,
    sample_message_size,
    start_server,
    stop_server,
)

from mspclaw.agent.daemon import BACKOFF_INITIAL_S, BACKOFF_MAX_S, full_jitter
from mspclaw.protocol.codec import decode_agent_frame, encode
from mspclaw.protocol.frames import PROTOCOL_VERSION, Hello, Welcome

TARGETS = {
    "storm_ratio": 2.0,  # the storm back on MSPclaw at most this many times the echo's, in the same run
    "storm_s": 10.0,  # the figure for 10,000 agents (printed, not the guard)
    "kib_per_agent": 25.0,
    "agents": 20_000,
}
OPEN_TIMEOUT_S = 10.0  # the daemon's


# ------------------------------------------------------------------------------------------------
# agent process: holds one replica's agents, reconnects them on command
# ------------------------------------------------------------------------------------------------


class LeanAgent(asyncio.Protocol):
    """One agent's connection, as lean as a client can be, so the bench's side costs little next to the server's.

    The upgrade request and the masked ``hello`` frame are built once per agent (valid WebSocket, RFC 6455:
    websockets' own :class:`~websockets.frames.Frame` serializes the frame); the answer must be ``101``
    and then the server's first frame must be a ``welcome`` (decoded with the protocol's codec) or, from the
    echo server, ``ok``. A close frame from the server is answered with a close frame, as a client must.
    """

    __slots__ = ("_buf", "_first", "_kind", "_request", "_state", "lost", "transport", "welcomed")

    def __init__(self, request: bytes, first: bytes, kind: str) -> None:
        self._request, self._first, self._kind = request, first, kind
        self._buf = b""
        self._state = 0  # 0: awaiting 101, 1: awaiting the first frame, 2: up
        loop = asyncio.get_running_loop()
        self.welcomed: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data
        if self._state == 0:
            head, sep, buf = buf.partition(b"\r\n\r\n")
            if not sep:
                self._buf = head
                return
            if not head.startswith(b"HTTP/1.1 101"):
                status = head.split(b"\r\n", 1)[0].decode(errors="replace")
                self._fail(f"upgrade refused: {status}")
                return
            self._state = 1
            assert self.transport is not None
            self.transport.write(self._first)
        while len(buf) >= 2:
            size, start = buf[1] & 0x7F, 2
            if size == 126:
                if len(buf) < 4:
                    break
                size, start = int.from_bytes(buf[2:4], "big"), 4
            elif size == 127:
                if len(buf) < 10:
                    break
                size, start = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < start + size:
                break
            opcode, payload, buf = buf[0] & 0x0F, buf[start:start + size], buf[start + size:]
            if opcode == Opcode.CLOSE.value:
                assert self.transport is not None
                self.transport.write(CLOSE_REPLY)
                self.transport.close()
            elif self._state == 1:
                ok = (isinstance(decode_agent_frame(payload), Welcome) if self._kind == "mspclaw"
                      else payload == b"ok")
                if not ok:
                    self._fail(f"no welcome: {payload[:80]!r}")
                    return
                self._state = 2
                self.welcomed.set_result(None)
        self._buf = buf

    def _fail(self, why: str) -> None:
        if not self.welcomed.done():
            self.welcomed.set_exception(RuntimeError(why))
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.welcomed.done():
            self.welcomed.set_exception(ConnectionError("closed before the welcome"))
        if not self.lost.done():
            self.lost.set_result(None)


CLOSE_REPLY = Frame(Opcode.CLOSE, (1000).to_bytes(2, "big")).serialize(mask=True)


class Agents:
    """N agents of one replica in this process; commands on stdin, one JSON line back on stdout each."""

    def __init__(self, creds: list[AgentCred], kind: str, port: int, block: int) -> None:
        self.creds, self.kind, self.port, self.block = creds, kind, port, block
        self.up = 0
        self.attempts = 0  # connection attempts, failed ones included
        self.failures: dict[str, int] = {}
        self.last_up = 0.0  # loop time when the last agent came (back) up
        self.go = asyncio.Event()  # set: agents that are down connect now
        self.quick = True  # the first connect: no backoff delay (the bench's own ramp), a semaphore instead
        self.sem = asyncio.Semaphore(200)
        self.generation = 0  # bumped per storm: each one takes fresh source ports
        self.tasks: list[asyncio.Task[None]] = []
        self.requests = [self._request(c) for c in creds]
        self.firsts = [self._first(i, c) for i, c in enumerate(creds)]

    def _request(self, cred: AgentCred) -> bytes:
        auth = f"Authorization: Bearer {cred.agent_id}.{cred.credential}\r\n" if self.kind == "mspclaw" else ""
        return (f"GET /ws/agent HTTP/1.1\r\nHost: {HOST}:{self.port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
                f"Sec-WebSocket-Version: 13\r\n{auth}\r\n").encode()

    def _first(self, i: int, cred: AgentCred) -> bytes:
        if self.kind == "mspclaw":
            text = encode(Hello(protocol=PROTOCOL_VERSION, agent_id=cred.agent_id, client_id=cred.client_id,
                                role="device", hostname=f"bench-{i:05d}", os="linux", os_version="bench",
                                agent_version="bench", tools=[TOOL]))
        else:
            text = str(i)
        return Frame(Opcode.TEXT, text.encode()).serialize(mask=True)

    def _sock(self, i: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        sock.bind((f"127.{self.block}.{self.generation % 200 + 1}.{2 + i // PORTS_PER_SOURCE}", 0))
        sock.setblocking(False)
        return sock

    async def _open(self, i: int) -> LeanAgent:
        loop = asyncio.get_running_loop()
        sock = self._sock(i)
        try:
            await loop.sock_connect(sock, (HOST, self.port))
        except BaseException:
            sock.close()
            raise
        proto = LeanAgent(self.requests[i], self.firsts[i], self.kind)
        await loop.create_connection(lambda: proto, sock=sock)
        try:
            await asyncio.wait_for(asyncio.shield(proto.welcomed), OPEN_TIMEOUT_S)
        except BaseException:
            if proto.transport is not None:
                proto.transport.abort()
            raise
        return proto

    async def agent(self, i: int, cred: AgentCred) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self.go.wait()
            attempt = 0
            delay = 0.0 if self.quick else full_jitter(0, BACKOFF_INITIAL_S, BACKOFF_MAX_S)  # the daemon's first
            while True:
                await asyncio.sleep(delay)
                self.attempts += 1
                try:
                    if self.quick:
                        async with self.sem:
                            proto = await self._open(i)
                    else:
                        proto = await self._open(i)
                    break
                except Exception as exc:  # refused, reset, timed out, no welcome: retry as the daemon does
                    what = type(exc).__name__
                    self.failures[what] = self.failures.get(what, 0) + 1
                    attempt += 1
                    delay = full_jitter(attempt, BACKOFF_INITIAL_S, BACKOFF_MAX_S)
            self.up += 1
            self.last_up = loop.time()
            await proto.lost
            self.up -= 1

    async def serve(self) -> None:
        reader = asyncio.StreamReader(limit=1 << 20)
        loop = asyncio.get_running_loop()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        self.tasks = [asyncio.create_task(self.agent(i, c)) for i, c in enumerate(self.creds)]
        while line := await reader.readline():
            cmd = json.loads(line)
            op = cmd["op"]
            if op == "connect":  # the first connect, or a storm: every agent that is down connects
                self.quick = bool(cmd.get("quick"))
                self.generation += 1
                self.go.set()
            elif op == "hold":  # agents that go down stay down until the next connect
                self.go.clear()
            elif op == "reset":
                self.attempts, self.failures = 0, {}
            reply = {"up": self.up, "last_up": self.last_up, "attempts": self.attempts, "failures": self.failures,
                     "cpu": time.process_time()}
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()
        for task in self.tasks:
            task.cancel()


def agents_main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="reconnect_storm.py _agents")
    p.add_argument("--creds", required=True)
    p.add_argument("--kind", choices=["mspclaw", "echo"], required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--block", type=int, required=True)
    args = p.parse_args(argv)
    raise_nofile()
    creds = [AgentCred(a, c, s, bytes.fromhex(k)) for a, c, s, k in json.loads(Path(args.creds).read_text())]
    with contextlib.suppress(KeyboardInterrupt):
        run(_agents(Agents(creds, args.kind, args.port, args.block)))


async def _agents(agents: Agents) -> None:
    gc.freeze()
    await agents.serve()


# ------------------------------------------------------------------------------------------------
# the bench (this process)
# ------------------------------------------------------------------------------------------------


class AgentProcess:
    """One ``_agents`` process, driven through its stdin and stdout."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, creds_file: Path, kind: str, port: int, block: int) -> AgentProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "_agents", "--creds", str(creds_file), "--kind", kind, "--port", str(port),
            "--block", str(block), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        return cls(proc)

    async def ask(self, op: str, **args: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}).encode() + b"\n")
        await self.proc.stdin.drain()
        line = await self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"agent process exited with {await self.proc.wait()}")
        reply: dict[str, Any] = json.loads(line)
        return reply

    async def stop(self) -> None:
        if self.proc.returncode is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


@dataclass
class Result:
    name: str
    kind: str
    agents: int = 0  # across both servers
    connect_s: float = 0.0  # the first connect of all agents (the bench's ramp: 200 handshakes in flight each)
    online: list[int] = field(default_factory=list)  # per server after the first connect
    kib_per_agent: list[float] = field(default_factory=list)  # per server
    restart_s: float = 0.0  # stop, start, listening
    storm_agents: int = 0
    storm_s: float = 0.0  # listening -> all of the restarted server's agents registered
    storm_back: int = 0
    storm_cpu: float = 0.0  # the restarted server's CPU seconds during the storm
    storm_attempts: int = 0
    storm_gc_s: float = 0.0  # the restarted server's garbage collections during the storm
    storm_collections: list[int] = field(default_factory=list)
    storm_failures: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


async def online(ctl: Control) -> int:
    return int((await ctl.ask("stats"))["online"])


async def wait_online(ctl: Control, n: int, timeout: float) -> tuple[int, float]:
    """Poll the server until ``n`` are online (or ``timeout``); the count and when it was reached."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        count = await online(ctl)
        if count >= n or loop.time() > deadline:
            return count, loop.time()
        await asyncio.sleep(0.02)


async def scenario(res: Result, opts: argparse.Namespace, work: Path, creds: list[AgentCred], data_dir: Path,
                   api_key: str, msg_size: int) -> Result:
    halves = [creds[: len(creds) // 2], creds[len(creds) // 2:]]
    mspclaw = res.kind == "mspclaw"
    server_opts = argparse.Namespace(ws="", loop="uvloop", pin=False, trace=0)
    servers: list[tuple[Any, Control, int]] = []
    procs: list[AgentProcess] = []
    loop = asyncio.get_running_loop()
    try:
        for _ in halves:
            if mspclaw:
                servers.append(await start_server("mspclaw", server_opts, work, msg_size, data_dir, api_key))
            else:
                servers.append(await start_server("echo", server_opts, work, msg_size))
        base = [await ctl.ask("stats", collect=True) for _, ctl, _ in servers]
        for k, (half, (_, _, port)) in enumerate(zip(halves, servers, strict=True)):
            creds_file = work / f"creds-{res.kind}-{k}.json"
            creds_file.write_text(json.dumps([[c.agent_id, c.client_id, c.credential, c.key.hex()] for c in half]))
            procs.append(await AgentProcess.start(creds_file, res.kind, port, 10 + k * 100 + (50 if mspclaw else 0)))

        # 1. everyone connects (the bench's ramp), idle memory per agent on each server
        t0 = loop.time()
        for proc in procs:
            await proc.ask("connect", quick=True)
        for (_, ctl, _), half in zip(servers, halves, strict=True):
            count, _at = await wait_online(ctl, len(half), 120)
            res.online.append(count)
        res.connect_s = loop.time() - t0
        res.agents = sum(res.online)
        await asyncio.sleep(1.0)
        for (_, ctl, _), b, count in zip(servers, base, res.online, strict=True):
            idle = await ctl.ask("stats", collect=True)
            res.kib_per_agent.append((idle["rss"] - b["rss"]) / 1024 / max(1, count))

        # 2. the storm: server A stops; its agents hold until A listens again, then come back as the daemon does
        proc_a, ctl_a, port_a = servers[0]
        await procs[0].ask("hold")
        t0 = loop.time()
        ctl_a.writer.close()
        await stop_server(proc_a)
        while (await procs[0].ask("reset"))["up"]:  # every agent of A has seen its socket close
            await asyncio.sleep(0.05)
        if mspclaw:
            servers[0] = await start_server("mspclaw", server_opts, work, msg_size, data_dir, api_key, port=port_a)
        else:
            servers[0] = await start_server("echo", server_opts, work, msg_size, port=port_a)
        _, ctl_a, _ = servers[0]
        res.restart_s = loop.time() - t0
        before = await ctl_a.ask("stats")
        cpu0 = before["cpu"]
        profile = os.environ.get("STORM_PROFILE")  # diagnosis: cProfile the restarted server during the storm
        if profile:
            await ctl_a.ask("profile")
        t0 = loop.time()
        await procs[0].ask("connect", quick=False)
        res.storm_agents = len(halves[0])
        res.storm_back, t1 = await wait_online(ctl_a, res.storm_agents, 120)
        res.storm_s = t1 - t0
        if profile:
            await ctl_a.ask("profile", path=f"{profile}.{res.kind}")
        after = await ctl_a.ask("stats")
        res.storm_cpu = after["cpu"] - cpu0
        res.storm_gc_s = after["gc_s"] - before["gc_s"]
        res.storm_collections = [a - b for a, b in zip(after["collections"], before["collections"], strict=True)]
        state = await procs[0].ask("status")
        res.storm_attempts, res.storm_failures = state["attempts"], state["failures"]
        still = await online(servers[1][1])
        if still != res.online[1]:
            res.notes.append(f"the other server lost agents during the storm: {still:,} of {res.online[1]:,}")
    finally:
        for proc in procs:
            await proc.stop()
        for server, ctl, _ in servers:
            ctl.writer.close()
            await stop_server(server)
    return res


def report(results: list[Result], n: int, prep_s: float, total_s: float) -> bool:
    echo = next(r for r in results if r.kind == "echo")
    main = next(r for r in results if r.kind == "mspclaw")

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}x" if b else "-"

    rows = [
        ["agents connected (two servers)"] + [f"{r.agents:,} / {n:,} ({' + '.join(f'{c:,}' for c in r.online)})"
                                              for r in results] + [""],
        ["first connect of all (200 in flight per server)"] + [f"{r.connect_s:.1f} s" for r in results]
        + [ratio(main.connect_s, echo.connect_s)],
        ["server RSS per idle agent (each server)"]
        + [" / ".join(f"{k:.1f}" for k in r.kib_per_agent) + " KiB" for r in results]
        + [ratio(max(main.kib_per_agent), max(echo.kib_per_agent))],
        ["restart: stop, start, listening"] + [f"{r.restart_s:.1f} s" for r in results] + [""],
        ["storm: listening -> all back and registered"]
        + [f"{r.storm_s:.2f} s ({r.storm_back:,} / {r.storm_agents:,})" for r in results]
        + [ratio(main.storm_s, echo.storm_s)],
        ["server CPU during the storm, per agent"] + [f"{r.storm_cpu / max(1, r.storm_back) * 1e6:,.0f} µs"
                                                      for r in results]
        + [ratio(main.storm_cpu, echo.storm_cpu)],
        ["server GC during the storm (gen0/1/2)"]
        + [f"{r.storm_gc_s * 1e3:,.0f} ms ({'/'.join(map(str, r.storm_collections))})" for r in results] + [""],
        ["connection attempts in the storm (failed)"]
        + [f"{r.storm_attempts:,} ({', '.join(f'{k} {v}' for k, v in r.storm_failures.items()) or 'none'})"
           for r in results] + [""],
    ]
    cols = ["figure", *[r.name for r in results], "MSPclaw / echo"]
    widths = [max(len(row[i]) for row in [cols, *rows]) for i in range(len(cols))]
    print()
    print(f"Reconnect storm: {n:,} agents on two server processes, one restarted ({main.storm_agents:,} agents); "
          f"agents reconnect with the daemon's backoff (first retry in [0, {BACKOFF_INITIAL_S:.0f} s]); "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; agents prepared in {prep_s:.1f} s; "
          f"run {total_s:.0f} s")
    line = "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))
    print(line)
    print("-" * len(line))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    for r in results:
        for note in r.notes:
            print(f"  [{r.name}] {note}")
    storm_ratio = main.storm_s / echo.storm_s if echo.storm_s else float("inf")
    checks: list[tuple[str, bool | None, str]] = [
        (f"{TARGETS['agents']:,} agents across two server processes",
         main.agents >= TARGETS["agents"] if n >= TARGETS["agents"] else None, f"{main.agents:,} of {n:,}"),
        (f"storm back within {TARGETS['storm_ratio']}x the bare echo's, same run", storm_ratio <= TARGETS["storm_ratio"]
         and main.storm_back == main.storm_agents, f"{storm_ratio:.2f}x ({main.storm_s:.2f} s against "
                                                   f"{echo.storm_s:.2f} s)"),
        (f"storm of 10,000 back within {TARGETS['storm_s']:.0f} s on this machine (information)", None
         if main.storm_agents < 10_000 else main.storm_s <= TARGETS["storm_s"], f"{main.storm_s:.2f} s"),
        (f"server memory <= {TARGETS['kib_per_agent']:.0f} KiB per idle agent",
         max(main.kib_per_agent) <= TARGETS["kib_per_agent"],
         " / ".join(f"{k:.1f}" for k in main.kib_per_agent) + " KiB"),
    ]
    print()
    ok = True
    for what, passed, got in checks:
        if "information" not in what:
            ok &= passed is not False
        print(f"  {'----' if passed is None else 'PASS' if passed else 'FAIL'}  {what}: {got}")
    return ok


async def bench(opts: argparse.Namespace) -> bool:
    t_start = time.perf_counter()
    raise_nofile()
    msg_size = sample_message_size()
    async with prepared("mspclaw-storm-", opts.agents, opts.per_client) as ready:
        results = []
        for name, kind in (("bare echo", "echo"), ("MSPclaw", "mspclaw")):
            print(f"... {name}: {opts.agents:,} agents on two servers, then a restart of one", flush=True)
            results.append(await scenario(Result(name, kind), opts, ready.work, ready.creds, ready.data_dir,
                                          ready.api_key, msg_size))
    return report(results, opts.agents, ready.prep_s, time.perf_counter() - t_start)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_agents":
        agents_main(sys.argv[2:])
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--agents", type=int, default=20_000, help="agents across the two servers (default 20,000)")
    p.add_argument("--per-client", type=int, default=1000, help="agents per client (default 1,000)")
    p.add_argument("--quick", action="store_true", help="2,000 agents: a smoke run")
    opts = p.parse_args()
    if opts.quick:
        opts.agents = min(opts.agents, 2000)
    if not 2 <= opts.agents <= 38_000:
        p.error("--agents must be 2 to 38,000 (each server process holds at most about 19,000 sockets here)")
    sys.exit(0 if run(bench(opts)) else 1)


if __name__ == "__main__":
    main()
