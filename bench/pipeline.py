"""Pipeline benchmark: PSA tickets per second from webhook to internal note, against a bare job queue.

    .venv/bin/python bench/pipeline.py                    # 300 tickets on SQLite, then on PostgreSQL
    .venv/bin/python bench/pipeline.py --quick            # 60 tickets: a smoke run
    .venv/bin/python bench/pipeline.py --db sqlite --agents 8 --workers 8 --agent-kind real

What runs, for each database:

* the **MSPclaw server**, the real ``python -m mspclaw server`` in its own process (``MSPCLAW_WORKERS``
  intake workers, the deterministic playbook model), with a ``local`` PSA account pointing at
* the **local PSA simulator** (:func:`~mspclaw.simulators.local_psa.run_local_psa`) in this
  process: tickets are opened through its REST API, it sends each one's signed ``ticket.created``
  webhook to ``/webhooks/local``, and MSPclaw reads the ticket and writes its notes back over the
  same REST API;
* **agents**, one per client (``--agents`` clients, one device each; tickets go round-robin over
  them, each naming its device as the asset, so routing does real work). ``--agent-kind sim``
  (the default) runs them in this process: enrolled through ``/enroll``, connected over a real
  WebSocket, speaking the protocol through the sans-I/O
  :class:`~mspclaw.protocol.connection.AgentConnection`, checking each call's signature and running
  the agent's own Linux tool functions. ``--agent-kind real`` starts ``mspclaw agent`` processes
  instead; these also keep the agent's call journal (two fsynced SQLite commits per call) and a
  thread per call, in processes that compete with the server for the same cores.

Every ticket asks for the ``disk_full`` playbook. The agents' temp roots are empty, so the
deletion step (the one that needs approval) is skipped: three tool calls per ticket, no human.

Measured: a warm-up ticket per client; five lone tickets, each opened a second after the last
one's note, when the workers are idle (the latency of one ticket); then ``--tickets`` opened as
fast as the PSA takes them. Throughput is tickets / (last internal note stored on the PSA - first
ticket opened on the PSA; its webhook leaves at once); latency is per ticket, opened to note, so in
the burst it is mostly time spent queued. The **baseline** then runs on the same database with the
server stopped: as many jobs enqueued, one after the other, while ``--workers`` slots claim and
complete them as the intake worker does, minus the work. The figure of merit is the ratio
pipeline / baseline, measured in the same run. Results: ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from mspclaw.agent.tools import ToolContext
from mspclaw.agent.tools.linux import LINUX_TOOLS
from mspclaw.protocol.connection import AgentConnection, FrameReceived
from mspclaw.protocol.frames import PROTOCOL_VERSION, ErrorInfo, Hello, ToolCall, ToolResult
from mspclaw.protocol.signing import verify_call
from mspclaw.settings import Settings
from mspclaw.simulators.local_psa import Note, PSAStore, RunningPSA, Ticket, run_local_psa
from mspclaw.store.database import Database
from mspclaw.store.db import make_engine, sqlite_url
from mspclaw.store.jobs import JobQueue, PSAAccounts
from mspclaw.tools import get_tool
from mspclaw.wiring import secret_box

HOST = "127.0.0.1"
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TARGET_SQLITE = 100.0  # tickets/s per server process on SQLite
TARGET_POSTGRES_RATIO = 0.5
"""PostgreSQL, one server process: pipeline / baseline (the bare queue on the same server, same run),
the target of 100 tickets/s as a ratio (how it was set: docs/benchmarks.md, Pipeline). A ratio, not
tickets/s: the machine's other work moves both figures of a run together."""
SUBJECT = "disk full"
BODY = "My disk is almost full and I cannot save files anymore."
TOOLS = ["disk_usage", "clear_temp_files"]
BASELINE_KIND = "bench_noop"
CREATE_CONCURRENCY = 16  # tickets being opened on the PSA at once
LONE_TICKETS = 5  # tickets opened one at a time on an idle server, for the latency of one ticket
SQL_SHAPES_SHOWN = 24  # kinds of statement listed with --count-sql, the most frequent first
IDLE_GAP_S = 1.0  # longer than the intake worker's idle poll (0.5 s): the workers are asleep


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def system_cpu_seconds(pid: int) -> float:
    """stime of a process: its CPU in the kernel (system calls, thread switches, the network stack)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return int(fields[12]) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (and its reaped children: none here)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(main: Coroutine[Any, Any, Any]) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


@contextlib.contextmanager
def database(kind: str, work: Path, postgres_url: str) -> Iterator[str]:
    """A private, empty database: a SQLite file under ``work``, or a fresh PostgreSQL schema."""
    if kind == "sqlite":
        data = work / "sqlite-data"
        data.mkdir()
        yield sqlite_url(data.resolve())
        return
    schema = f"bench_{secrets.token_hex(5)}"
    admin = make_engine(postgres_url)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with contextlib.suppress(Exception), admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


class TimedStore(PSAStore):
    """The simulator's storage, noting when each ticket was opened and got its first internal note.

    ``all_noted`` is set while every ticket opened so far has its internal note."""

    def __init__(self) -> None:
        super().__init__()
        self.opened: dict[str, float] = {}
        self.noted: dict[str, float] = {}
        self.waiting: set[str] = set()
        self.all_noted = asyncio.Event()

    def create_ticket(self, company_id: str, *, requester: str, subject: str, body: str = "",
                      asset: str | None = None, status: str = "New", ticket_id: str | None = None,
                      requester_name: str | None = None) -> Ticket:
        ticket = super().create_ticket(company_id, requester=requester, subject=subject, body=body, asset=asset,
                                       status=status, ticket_id=ticket_id, requester_name=requester_name)
        self.opened[ticket.id] = time.perf_counter()
        self.waiting.add(ticket.id)
        self.all_noted.clear()
        return ticket

    def add_note(self, ticket_id: str, text: str, *, public: bool) -> Note:
        note = super().add_note(ticket_id, text, public=public)
        if not public and ticket_id not in self.noted:
            self.noted[ticket_id] = time.perf_counter()
            self.waiting.discard(ticket_id)
            if not self.waiting:
                self.all_noted.set()
        return note


# ------------------------------------------------------------------------------------------------
# agents
# ------------------------------------------------------------------------------------------------


class SimAgent:
    """One agent over a real WebSocket: hello, verify each call's signature, run the real tool function."""

    def __init__(self, index: int, temp_root: Path) -> None:
        self.hostname = f"bench-pc-{index:02d}"
        self.context = ToolContext(temp_roots=(temp_root,))
        self.agent_id = ""
        self.calls = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._ws: ClientConnection | None = None

    async def start(self, http: httpx.AsyncClient, base_url: str, code: str) -> None:
        r = await http.post("/enroll", json={"code": code, "hostname": self.hostname, "os": "linux",
                                             "os_version": "bench", "agent_version": "bench", "tools": TOOLS})
        r.raise_for_status()
        enrolled = r.json()
        self.agent_id, key = enrolled["agent_id"], bytes.fromhex(enrolled["server_key"])
        ws = await connect(enrolled["agent_url"], compression=None, ping_interval=None,
                           additional_headers={"Authorization": f"Bearer {self.agent_id}.{enrolled['credential']}"})
        conn = AgentConnection(now=time.time())
        conn.start(Hello(protocol=PROTOCOL_VERSION, agent_id=self.agent_id, client_id=enrolled["client_id"],
                         role="device", hostname=self.hostname, os="linux", os_version="bench",
                         agent_version="bench", tools=TOOLS))
        self._ws = ws
        await self._flush(ws, conn)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._read(ws, conn, key)), loop.create_task(self._tick(ws, conn))]

    async def _read(self, ws: ClientConnection, conn: AgentConnection, key: bytes) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for data in ws:
                for event in conn.receive(data, time.time()):
                    if isinstance(event, FrameReceived) and isinstance(event.frame, ToolCall):
                        conn.result(self._answer(event.frame, key))
                await self._flush(ws, conn)

    async def _tick(self, ws: ClientConnection, conn: AgentConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.sleep(1.0)
                conn.tick(time.time())
                await self._flush(ws, conn)

    def _answer(self, call: ToolCall, key: bytes) -> ToolResult:
        self.calls += 1
        started = time.monotonic()
        if not verify_call(key, call):
            return ToolResult(call_id=call.call_id, ok=False,
                              error=ErrorInfo(code="bad_signature", message="signature does not verify"))
        output = LINUX_TOOLS[call.tool](get_tool(call.tool).validate(call.args), self.context)
        return ToolResult(call_id=call.call_id, ok=True, output=output,
                          duration_ms=int((time.monotonic() - started) * 1000))

    @staticmethod
    async def _flush(ws: ClientConnection, conn: AgentConnection) -> None:
        for frame in conn.data_to_send():
            await ws.send(frame)

    async def stop(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@dataclass
class Agents:
    sims: list[SimAgent] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def cpu(self) -> float:
        return sum(cpu_seconds(p.pid) for p in self.procs if p.poll() is None)

    async def stop(self) -> None:
        for sim in self.sims:
            await sim.stop()
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(proc.wait, 10)
            if proc.poll() is None:
                proc.kill()


async def start_agents(opts: argparse.Namespace, http: httpx.AsyncClient, base_url: str, work: Path,
                       clients: list[str]) -> tuple[Agents, list[str]]:
    """One agent per client; returns them and each one's hostname (the tickets' asset)."""
    agents = Agents()
    for i, client in enumerate(clients):
        temp_root = work / f"temp-{i}"
        temp_root.mkdir()
        r = await http.post("/api/enrollments", json={"client": client})
        r.raise_for_status()
        code = r.json()["code"]
        if opts.agent_kind == "sim":
            sim = SimAgent(i, temp_root)
            await sim.start(http, base_url, code)
            agents.sims.append(sim)
        else:
            agents.procs.append(subprocess.Popen(
                [sys.executable, "-m", "mspclaw", "agent", "--server", base_url, "--enroll", code,
                 "--state-dir", str(work / f"agent-{i}"), "--temp-root", str(temp_root), "--log-level", "warning"],
                stdin=subprocess.DEVNULL))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        listed = (await http.get("/api/agents")).json()
        if len(listed) == len(clients) and all(a["online"] for a in listed):
            by_client = {a["client_id"]: a["hostname"] for a in listed}
            return agents, [by_client[c] for c in clients]
        if any(p.poll() is not None for p in agents.procs):
            break
        await asyncio.sleep(0.1)
    await agents.stop()
    raise RuntimeError("the agents did not all come online within 60 s")


# ------------------------------------------------------------------------------------------------
# the pipeline run
# ------------------------------------------------------------------------------------------------


@dataclass
class PipelineResult:
    tickets: int
    elapsed: float
    latencies: list[float]
    lone: list[float]
    server_cpu: float
    agents_cpu: float
    bench_cpu: float
    outcomes: dict[str, int]
    jobs: dict[str, int]
    sql: dict[str, int] = field(default_factory=dict)
    server_sys: float = 0.0
    """Of ``server_cpu``, the time in the kernel."""
    """Statements, commits, pool checkouts during the burst (``--count-sql``), by ``bench/statement_counter.py``."""

    @property
    def rate(self) -> float:
        return self.tickets / self.elapsed


def prepare_database(url: str, data_dir: Path, api_key: str, psa_url: str, psa_token: str, secret: str) -> None:
    """Migrate and add the ``local`` PSA account, as ``mspclaw psa add local`` would."""
    settings = Settings(data_dir=data_dir, database_url=url, api_key=api_key)
    settings.ensure_data_dir()
    db = Database.open(settings.resolved_database_url())
    try:
        PSAAccounts(db, secret_box(settings)).add("local", "local", {"base_url": psa_url, "poll_interval_s": 0},
                                                  {"token": psa_token, "webhook_secret": secret})
    finally:
        db.dispose()


@contextlib.asynccontextmanager
async def mspclaw_server(url: str, data_dir: Path, api_key: str, port: int, workers: int,
                         log: Path, cprofile: Path | None = None,
                         counts: Path | None = None) -> AsyncIterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "MSPCLAW_API_KEY": api_key, "MSPCLAW_WORKERS": str(workers), "MSPCLAW_LOG_LEVEL": "WARNING",
           "MSPCLAW_AGENT_PORT": str(free_port())}
    python = [sys.executable] + (["-m", "cProfile", "-o", str(cprofile)] if cprofile else [])
    entry = [str(Path(__file__).with_name("statement_counter.py")), str(counts)] if counts else ["-m", "mspclaw"]
    with log.open("wb") as out:
        proc = subprocess.Popen([*python, *entry, "server", "--host", HOST, "--port", str(port),
                                 "--data-dir", str(data_dir), "--database-url", url],
                                env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}") as probe:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"the server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
                with contextlib.suppress(httpx.TransportError):
                    if (await probe.get("/healthz")).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError("the server did not start within 60 s")
                await asyncio.sleep(0.05)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                await asyncio.to_thread(proc.wait, 15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def open_tickets(psa: RunningPSA, companies: list[str], assets: list[str], count: int,
                       first: int = 0) -> None:
    """``count`` disk_full tickets, round-robin over the companies, through the PSA's REST API."""
    sem = asyncio.Semaphore(CREATE_CONCURRENCY)

    async def one(i: int) -> None:
        k = i % len(companies)
        async with sem:
            await psa.connector.create_ticket(companies[k], requester=f"user{i}@client{k}.example",
                                              subject=SUBJECT, body=BODY, asset=assets[k])

    await asyncio.gather(*(one(first + i) for i in range(count)))


async def wait_noted(store: TimedStore, seconds: float) -> None:
    try:
        await asyncio.wait_for(store.all_noted.wait(), seconds)
    except TimeoutError:
        raise RuntimeError(f"{len(store.waiting)} tickets got no internal note within {seconds:.0f} s") from None


async def sql_counts(proc: subprocess.Popen[bytes], path: Path | None) -> dict[str, int]:
    """The server's statement counts so far (``bench/statement_counter.py``), ``{}`` when not counting."""
    if path is None:
        return {}
    path.unlink(missing_ok=True)
    proc.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the server wrote no statement counts within 10 s")
        await asyncio.sleep(0.02)
    counted: dict[str, int] = json.loads(path.read_text())
    return counted


def start_profiler(opts: argparse.Namespace, pid: int, kind: str) -> subprocess.Popen[bytes] | None:
    if not opts.profile:
        return None
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        raise RuntimeError("--profile needs py-spy (pip install py-spy)")
    out = Path(opts.profile) / f"pipeline-{kind}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    # --gil: only the thread holding the GIL is sampled, so the profile shows CPU, not waits
    return subprocess.Popen([spy, "record", "-p", str(pid), "-r", "250", "-f", "raw", "-o", str(out), "--nonblocking",
                             "--gil"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def run_pipeline(opts: argparse.Namespace, kind: str, url: str, work: Path) -> PipelineResult:
    data_dir = work / f"{kind}-server"
    api_key = "msp_bench_" + secrets.token_hex(16)
    port, psa_port = free_port(), free_port()
    psa_token, secret = "lpsa_" + secrets.token_urlsafe(16), "whsec_" + secrets.token_urlsafe(16)
    store = TimedStore()
    counts = work / f"{kind}-sql-counts.json" if opts.count_sql else None
    prepare_database(url, data_dir, api_key, f"http://{HOST}:{psa_port}", psa_token, secret)
    async with (
        run_local_psa(port=psa_port, api_token=psa_token, webhook_url=f"http://{HOST}:{port}/webhooks/local",
                      webhook_secret=secret, store=store) as psa,
        mspclaw_server(url, data_dir, api_key, port, opts.workers, work / f"{kind}-server.log",
                       Path(opts.cprofile) / f"pipeline-{kind}.prof" if opts.cprofile else None, counts) as server,
        httpx.AsyncClient(base_url=f"http://{HOST}:{port}", headers={"Authorization": f"Bearer {api_key}"},
                          timeout=30) as http,
    ):
        companies, clients = [], []
        for i in range(opts.agents):
            company = await psa.connector.create_company(f"Bench Client {i:02d}")
            r = await http.post("/api/clients", json={"name": f"Bench Client {i:02d}", "psa_refs": {"local": company}})
            r.raise_for_status()
            companies.append(company)
            clients.append(str(r.json()["id"]))
        agents, assets = await start_agents(opts, http, f"http://{HOST}:{port}", work / kind, clients)
        try:
            # warm-up: one ticket per client (first imports, connection pools, prepared statements)
            await open_tickets(psa, companies, assets, len(companies))
            await wait_noted(store, 60)
            # lone tickets on an idle server: each opened after the workers have gone idle
            lone: list[float] = []
            for i in range(LONE_TICKETS):
                await asyncio.sleep(IDLE_GAP_S)
                await open_tickets(psa, companies, assets, 1, first=len(store.opened) + i)
                await wait_noted(store, 60)
                newest = max(store.opened, key=store.opened.__getitem__)
                lone.append(store.noted[newest] - store.opened[newest])
            warm = set(store.opened)

            sql0 = await sql_counts(server, counts)
            spy = start_profiler(opts, server.pid, kind)
            cpu0, agents0, bench0 = cpu_seconds(server.pid), agents.cpu(), time.process_time()
            sys0 = system_cpu_seconds(server.pid)
            await open_tickets(psa, companies, assets, opts.tickets, first=len(warm))
            await wait_noted(store, opts.timeout)
            server_cpu, agents_cpu = cpu_seconds(server.pid) - cpu0, agents.cpu() - agents0
            server_sys = system_cpu_seconds(server.pid) - sys0
            bench_cpu = time.process_time() - bench0
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                await asyncio.to_thread(spy.wait)
            measured = [t for t in store.opened if t not in warm]
            start = min(store.opened[t] for t in measured)
            end = max(store.noted[t] for t in measured)
            latencies = [store.noted[t] - store.opened[t] for t in measured]
            # write-back continues after the note (reply, status): let it land before reading outcomes
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                statuses = [store.ticket(t).status for t in measured]
                if all(s in ("Resolved", "Escalated") for s in statuses):
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # the jobs' completions after the last status
            sql1 = await sql_counts(server, counts)
            sql = {key: n - sql0.get(key, 0) for key, n in sql1.items() if n != sql0.get(key, 0)}
            outcomes: dict[str, int] = {}
            for s in statuses:
                outcomes[s] = outcomes.get(s, 0) + 1
        finally:
            await agents.stop()
    db = Database(make_engine(url))  # the server has stopped: count its jobs (the baseline's come later)
    try:
        jobs = {status: n for status, n in JobQueue(db).stats().items() if n}
    finally:
        db.dispose()
    return PipelineResult(len(measured), end - start, latencies, lone, server_cpu, agents_cpu, bench_cpu, outcomes,
                          jobs, sql, server_sys)


# ------------------------------------------------------------------------------------------------
# the baseline: the same jobs through the bare queue
# ------------------------------------------------------------------------------------------------


@dataclass
class BaselineResult:
    jobs: int
    elapsed: float

    @property
    def rate(self) -> float:
        return self.jobs / self.elapsed


async def run_baseline(url: str, count: int, workers: int) -> BaselineResult:
    """Enqueue ``count`` jobs one after the other while ``workers`` slots claim and complete them.

    As in the server: enqueue runs on the event loop (the webhook route calls it there), claim in a
    thread (``asyncio.to_thread``, as :class:`~mspclaw.pipeline.intake.Worker` does), complete on the
    loop. A slot claims once per job enqueued (a semaphore counts them), so no slot polls an empty
    queue: the figure is the queue's own capacity, not an idle interval.
    """
    db = Database(make_engine(url))
    jobs = JobQueue(db)
    queued = asyncio.Semaphore(0)
    done = 0
    finished = asyncio.Event()
    run_id = secrets.token_hex(4)

    async def produce() -> None:
        for i in range(count):
            jobs.enqueue(BASELINE_KIND, {"psa": "local", "ticket_id": str(i), "source": "webhook",
                                         "delivery_id": secrets.token_hex(8)}, dedupe_key=f"bench-{run_id}:{i}")
            queued.release()
            await asyncio.sleep(0)

    async def slot(index: int) -> None:
        nonlocal done
        worker = f"bench-{run_id}/{index}"
        while True:
            await queued.acquire()
            job = await asyncio.to_thread(jobs.claim, worker, kinds=[BASELINE_KIND], lease_s=30.0)
            if job is None:  # another slot took this permit's job first and left a newer one: try again
                queued.release()
                await asyncio.sleep(0.001)
                continue
            jobs.complete(job.id, worker)
            done += 1
            if done == count:
                finished.set()

    tasks: list[asyncio.Task[None]] = []
    try:
        t0 = time.perf_counter()
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(produce()), *(loop.create_task(slot(i)) for i in range(workers))]
        await asyncio.wait_for(finished.wait(), 300)
        elapsed = time.perf_counter() - t0
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        db.dispose()
    return BaselineResult(count, elapsed)


# ------------------------------------------------------------------------------------------------
# report
# ------------------------------------------------------------------------------------------------


@dataclass
class Run:
    kind: str
    pipeline: PipelineResult
    baseline: BaselineResult


def report(opts: argparse.Namespace, runs: list[Run], total_s: float, load: tuple[float, float]) -> bool:
    def ms(seconds: float) -> str:
        return f"{seconds * 1e3:,.0f} ms"

    cols = [r.kind for r in runs]
    rows: list[list[str]] = [
        ["tickets/s, webhook to note"] + [f"{r.pipeline.rate:,.1f}" for r in runs],
        ["baseline jobs/s, enqueue + claim + complete"] + [f"{r.baseline.rate:,.0f}" for r in runs],
        ["ratio pipeline / baseline"] + [f"{r.pipeline.rate / r.baseline.rate:.3f}" for r in runs],
        ["wall time, first webhook to last note"] + [f"{r.pipeline.elapsed:.2f} s" for r in runs],
        ["latency p50 / p99 in the burst (opened to note)"]
        + [f"{ms(pct(r.pipeline.latencies, 0.5))} / {ms(pct(r.pipeline.latencies, 0.99))}" for r in runs],
        [f"latency of a lone ticket, median of {LONE_TICKETS}"] + [ms(pct(r.pipeline.lone, 0.5)) for r in runs],
        ["server CPU per ticket (of it in the kernel)"]
        + [f"{ms(r.pipeline.server_cpu / r.pipeline.tickets)} ({ms(r.pipeline.server_sys / r.pipeline.tickets)})"
           for r in runs],
        ["ceiling at one busy core (1 / CPU per ticket)"]
        + [f"{r.pipeline.tickets / r.pipeline.server_cpu:,.1f} tickets/s" for r in runs],
        ["server CPU use (of one core)"] + [f"{r.pipeline.server_cpu / r.pipeline.elapsed:.0%}" for r in runs],
        ["bench process CPU per ticket (PSA, load)"] + [ms(r.pipeline.bench_cpu / r.pipeline.tickets) for r in runs],
        ["PSA outcome"] + [", ".join(f"{n} {s}" for s, n in sorted(r.pipeline.outcomes.items())) for r in runs],
        ["server jobs"] + [", ".join(f"{n} {s}" for s, n in sorted(r.pipeline.jobs.items())) for r in runs],
    ]
    if any(r.pipeline.sql for r in runs):
        def per(r: Run, key: str) -> str:
            return f"{r.pipeline.sql.get(key, 0) / r.pipeline.tickets:.1f}"

        rows += [["statements per ticket (of them in autocommit mode)"]
                 + [f"{per(r, 'statements')} ({per(r, 'autocommit')})" for r in runs],
                 ["commits per ticket (transactions of several statements)"] + [per(r, "commits") for r in runs],
                 ["pool checkouts per ticket"] + [per(r, "checkouts") for r in runs]]
        shapes = sorted({k for r in runs for k in r.pipeline.sql if k.startswith("sql: ")},
                        key=lambda k: -max(r.pipeline.sql.get(k, 0) for r in runs))
        rows += [[f"  {k[5:]} per ticket"] + [per(r, k) for r in runs] for k in shapes[:SQL_SHAPES_SHOWN]]
    if opts.agent_kind == "real":
        rows.insert(7, ["agent processes' CPU per ticket"] + [ms(r.pipeline.agents_cpu / r.pipeline.tickets)
                                                               for r in runs])
    widths = [max(len(row[i]) for row in [["figure", *cols], *rows]) for i in range(len(cols) + 1)]
    print()
    print(f"Pipeline benchmark {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}: {opts.tickets} tickets "
          f"(disk_full, 3 tool calls each) over {opts.agents} clients with one {opts.agent_kind} agent each; "
          f"{opts.workers} intake workers; one server process; {os.cpu_count()} CPUs; run {total_s:.0f} s; "
          f"1-minute load average {load[0]:.1f} before, {load[1]:.1f} after (other processes share these CPUs)")
    line = "  ".join(h.ljust(w) for h, w in zip(["figure", *cols], widths, strict=True))
    print(line)
    print("-" * len(line))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    print()
    ok = True
    for r in runs:
        finished = sum(r.pipeline.outcomes.get(s, 0) for s in ("Resolved", "Escalated"))
        complete = finished == r.pipeline.tickets and r.pipeline.jobs.get("done", 0) >= r.pipeline.tickets
        ok &= complete
        print(f"  {'PASS' if complete else 'FAIL'}  {r.kind}: every ticket closed on the PSA, every job done")
        if r.kind == "sqlite":
            passed = r.pipeline.rate >= TARGET_SQLITE
            ok &= passed
            print(f"  {'PASS' if passed else 'FAIL'}  sqlite: >= {TARGET_SQLITE:.0f} tickets/s per server process: "
                  f"{r.pipeline.rate:.1f}")
        if r.kind == "postgres":
            ratio = r.pipeline.rate / r.baseline.rate
            passed = ratio >= TARGET_POSTGRES_RATIO
            ok &= passed
            print(f"  {'PASS' if passed else 'FAIL'}  postgres: pipeline / baseline >= {TARGET_POSTGRES_RATIO:.2f} "
                  f"(100 tickets/s per server process): {ratio:.3f}")
    rates = {r.kind: r.pipeline.rate for r in runs}
    if len(rates) == 2:
        print(f"        postgres / sqlite tickets/s in this run: {rates['postgres'] / rates['sqlite']:.2f}")
    return ok


async def bench(opts: argparse.Namespace) -> bool:
    t0 = time.perf_counter()
    load_before = os.getloadavg()[0]
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="mspclaw-pipeline-") as tmp:
        work = Path(tmp)
        for kind in opts.dbs:
            (work / kind).mkdir()
            with database(kind, work, opts.postgres_url) as url:
                print(f"... {kind}: {opts.tickets} tickets", flush=True)
                pipeline = await run_pipeline(opts, kind, url, work)
                print(f"... {kind}: baseline, {opts.tickets} jobs", flush=True)
                baseline = await run_baseline(url, opts.tickets, opts.workers)
                runs.append(Run(kind, pipeline, baseline))
    return report(opts, runs, time.perf_counter() - t0, (load_before, os.getloadavg()[0]))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--tickets", type=int, default=300, help="tickets measured per database (default 300)")
    p.add_argument("--agents", type=int, default=4, help="clients, one device and agent each (default 4)")
    p.add_argument("--agent-kind", choices=["sim", "real"], default="sim",
                   help="agents in this process over real WebSockets (default), or `mspclaw agent` processes")
    p.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    p.add_argument("--workers", type=int, default=Settings.model_fields["workers"].default,
                   help="intake slots of the server (MSPCLAW_WORKERS; default: the server's own, %(default)s)")
    p.add_argument("--quick", action="store_true", help="60 tickets: a smoke run")
    p.add_argument("--postgres-url", default=os.environ.get("TEST_POSTGRES_URL", POSTGRES_URL),
                   help="PostgreSQL server; the bench creates and drops its own schema there")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the last note (default 120)")
    p.add_argument("--profile", metavar="DIR", help="record the server with py-spy during the measured burst")
    p.add_argument("--count-sql", action="store_true",
                   help="count the server's statements, commits and pool checkouts per ticket (a little CPU)")
    p.add_argument("--cprofile", metavar="DIR", help="run the server under cProfile (start to stop) into DIR")
    opts = p.parse_args(argv)
    if opts.quick:
        opts.tickets = min(opts.tickets, 60)
    if opts.tickets < 1 or opts.agents < 1 or opts.workers < 1:
        p.error("--tickets, --agents and --workers must be positive")
    opts.dbs = ["sqlite", "postgres"] if opts.db == "both" else [opts.db]
    if opts.cprofile:
        Path(opts.cprofile).mkdir(parents=True, exist_ok=True)
    sys.exit(0 if run(bench(opts)) else 1)


if __name__ == "__main__":
    main()
