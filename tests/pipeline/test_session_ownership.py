"""Each running session is driven by one replica, under its lease; a dead replica's sessions are resumed
by another within the lease's time to live, and a destructive call in flight is not run twice.

Real services only: SQLite in a temporary file and the PostgreSQL server on 127.0.0.1:5432 (a schema
of its own per test). The first tests run two "replicas" in this process: two
:class:`~mspclaw.pipeline.submission.Submissions` over one database, each with its own
:class:`SessionOwnership` (replica id, engine, renewer); a replica "dies" when its renewer stops. The
last test runs two real server processes (``tests/resume_server.py``: ``wiring.build`` with a
scripted model) on one PostgreSQL database, SIGKILLs the one running the sessions, and counts the
runs of a destructive tool on a real agent daemon in this test's event loop, which reaches the
servers through a TCP proxy standing in for the load balancer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select
from tests.conftest import free_port
from tests.inprocess_agent import CountingCleaner, inprocess_agent
from tests.ops.tcp_proxy import TcpProxy
from tests.private_schema import migrated_database
from tests.private_schema import postgres_schema as private_schema

from mspclaw.agent.tools import bind
from mspclaw.pipeline.routing import Route
from mspclaw.pipeline.session_ownership import SessionLost, SessionOwnership
from mspclaw.pipeline.session_ports import QuietSessions
from mspclaw.pipeline.submission import Submissions, Submitted
from mspclaw.protocol.frames import Approval
from mspclaw.settings import Settings
from mspclaw.store.database import Database
from mspclaw.store.leases import Leases
from mspclaw.store.session_leases import SessionLeaseStore, session_lease
from mspclaw.store.tables import Session, SessionEvent, Ticket
from mspclaw.tools.catalogue import ClearTempFilesArgs
from mspclaw.wiring import Services, build

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]
TTL = 1.0


def postgres_schema() -> Generator[str, None, None]:
    return private_schema("sess")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from migrated_database(request.param, tmp_path, "sess")


@pytest.fixture
async def services(database_url: str, tmp_path: Path) -> AsyncIterator[Services]:
    svc = build(Settings(data_dir=tmp_path / "data", api_key="k" * 20, database_url=database_url))
    yield svc
    await svc.stop()  # never started: this closes the audit log and its connection
    svc.close()


class HeldRun:
    """The runner: records each run it was given and holds it until released."""

    def __init__(self) -> None:
        self.started: list[tuple[str, bool]] = []
        self.release = asyncio.Event()

    async def process(self, ticket: Ticket, session: Session, route: Route, *, resumed: bool = False) -> None:
        self.started.append((session.id, resumed))
        await self.release.wait()


class Replica:
    """One replica in this process: its own engine, session leases and submissions."""

    def __init__(self, svc: Services, url: str, name: str) -> None:
        self.db = Database.open(url)
        self.sessions = SessionOwnership(Leases(self.db), SessionLeaseStore(self.db), replica=name, ttl_s=TTL,
                                         recover_s=0.1)
        self.run = HeldRun()
        self.subs = Submissions(registry=svc.registry, store=svc.store, router=svc.router, events=svc.events,
                                audit=svc.audit, hub=svc.hub, run=self.run, quiet=QuietSessions(),
                                sessions=self.sessions)
        self.renewer = asyncio.get_running_loop().create_task(self.sessions.renew_forever())

    async def start(self, client_id: str, subject: str, body: str) -> Submitted:
        """The first ticket submitted here, once its run (the only one) has started here."""
        sub = await self.subs.submit(client=client_id, subject=subject, body=body, requester="tom@acme.example",
                                     device=None)
        started = [(sub.session.id, False)]
        await until(lambda: _value(self.run.started == started), f"the run to start on {self.sessions.replica}", 2)
        return sub

    async def close(self) -> None:
        self.run.release.set()
        await self.subs.shutdown()
        self.renewer.cancel()
        await asyncio.gather(self.renewer, return_exceptions=True)
        self.db.dispose()


@contextlib.asynccontextmanager
async def replicas(svc: Services, url: str) -> AsyncIterator[tuple[Replica, Replica]]:
    a, b = Replica(svc, url, "replica-a"), Replica(svc, url, "replica-b")
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def until(check: Callable[[], Awaitable[Any]], what: str, seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        with contextlib.suppress(httpx.TransportError):
            value = await check()
            if value:
                return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


class CountingPort:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, tool: str, args: dict[str, Any], *, reason: str,
                       approval: Approval | None = None) -> dict[str, Any]:
        self.calls += 1
        return {}


async def test_a_live_replicas_session_is_not_resumed_elsewhere_and_a_dead_ones_is_taken_over_within_the_ttl(
        services: Services, database_url: str) -> None:
    client = services.registry.add_client("Acme Dental")
    async with replicas(services, database_url) as (a, b):
        sub = await a.start(client.id, "disk full", "no space")
        sid = sub.session.id
        assert a.sessions.holds(sid)
        await asyncio.sleep(1.5 * TTL)  # old enough to be resumed if no one held it; a renews it meanwhile
        assert await b.subs.recover() == 0, "b resumes nothing a runs"
        assert b.run.started == [] and a.sessions.holds(sid) and a.subs.running(sid)
        lease = Leases(b.db).current(session_lease(sid))
        assert lease is not None and (lease.holder, lease.token) == ("replica-a", 1)

        a.renewer.cancel()  # a dies (no renewal any more); its run is still "there", as a frozen process's is
        died = time.monotonic()
        await until(lambda: _value(not a.sessions.holds(sid)), "a to give the session up by itself", TTL)
        with pytest.raises(SessionLost):
            a.sessions.check(sid)  # the fence: a's run makes no tool call from here on
        assert Leases(b.db).current(session_lease(sid)) is not None, "a stops before its lease can expire"
        await until(lambda: b.subs.recover(), "b to resume the session", TTL + 2)
        assert time.monotonic() - died <= TTL + 1.5
        assert b.run.started == [(sid, True)] and b.subs.running(sid)
        lease = Leases(b.db).current(session_lease(sid))
        assert lease is not None and (lease.holder, lease.token) == ("replica-b", 2)
        assert await a.subs.recover() == 0, "a resumes nothing b runs"

        await a.sessions.renew_once()  # a wakes up: its renewal is refused and its old run is cancelled
        await until(lambda: _value(not a.subs.running(sid)), "a's old run to stop", 2)
        port = CountingPort()
        with pytest.raises(SessionLost):
            await a.sessions.fenced(sid, port)("system_info", {}, reason="check")
        assert port.calls == 0
        await b.sessions.fenced(sid, port)("system_info", {}, reason="check")
        assert port.calls == 1

        b.run.release.set()  # b finishes: the lease is released, not left to expire
        await until(lambda: _value(not b.subs.running(sid)), "b's run to end", 2)
        assert Leases(b.db).current(session_lease(sid)) is None and not b.sessions.held


async def test_a_stopping_replica_releases_its_session_and_another_resumes_it_without_waiting_for_expiry(
        services: Services, database_url: str) -> None:
    client = services.registry.add_client("Acme Dental")
    async with replicas(services, database_url) as (a, b):
        sub = await a.start(client.id, "vpn down", "no vpn")
        sid = sub.session.id
        await asyncio.sleep(1.2 * TTL)
        assert await b.subs.recover() == 0  # a full scan: every unfinished session
        await a.subs.shutdown()  # SIGTERM: the run stops where it stands and its lease is released
        assert not a.subs.running(sid) and not a.sessions.held
        assert await a.subs.recover() == 0, "a stopping replica resumes nothing"
        assert Leases(b.db).current(session_lease(sid)) is None
        assert await b.subs.recover() == 1  # found from its released lease, at once
        lease = Leases(b.db).current(session_lease(sid))
        assert lease is not None and (lease.holder, lease.token) == ("replica-b", 2)
        assert b.run.started == [(sid, True)]


async def test_sessions_whose_replica_died_before_leasing_them_are_resumed_once_by_racing_recoveries(
        services: Services, database_url: str) -> None:
    """Sessions whose replica never took their lease (it died at once) are resumed once, by one replica,
    however many recover at the same moment."""
    client = services.registry.add_client("Acme Dental")
    opened = [await asyncio.to_thread(services.store.open_ticket, client_id=client.id, subject=f"t{i}", body="b",
                                      requester="tom@acme.example", device_id=None, started=True)
              for i in range(6)]
    await asyncio.sleep(TTL + 0.1)
    async with replicas(services, database_url) as (a, b):
        counts = await asyncio.gather(a.subs.recover(), b.subs.recover(), a.subs.recover(), b.subs.recover())
        assert sum(counts) == 6
        resumed = sorted(sid for r in (a, b) for sid, again in r.run.started if again)
        assert resumed == sorted(session.id for _, session in opened)
        holders = {lease.name: lease.holder for lease in Leases(a.db).holders()}
        assert holders == {session_lease(sid): ("replica-a" if (sid, True) in a.run.started else "replica-b")
                           for sid in resumed}


async def test_one_replica_writes_the_lease_twice_per_ticket_and_never_renews_a_short_one(
        tmp_path: Path, database_url: str) -> None:
    """One server (``wiring.build``): the session's lease is written with the ticket's first write and deleted
    with the write that stores the session's end (one statement on PostgreSQL, one transaction on SQLite);
    nothing else touches it."""
    svc = build(Settings(data_dir=tmp_path / "data", api_key="k" * 20, database_url=database_url))
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        statements.append(f"{statement} {parameters!r}")

    def committed(conn: Any) -> None:
        statements.append("COMMIT")

    try:
        await svc.start(workers=False)
        client = svc.registry.add_client("Acme Dental")
        for engine in svc.db.engines:  # on PostgreSQL, single statements run on an autocommit engine of their own
            event.listen(engine, "before_cursor_execute", seen)
            event.listen(engine, "commit", committed)
        started = time.monotonic()
        sub = await svc.tickets.submit(client=client.id, subject="printer jammed", body="paper stuck",
                                       requester="tom@acme.example", device=None)
        await svc.tickets.wait(sub.session.id)
        took = time.monotonic() - started
        for engine in svc.db.engines:
            event.remove(engine, "before_cursor_execute", seen)
            event.remove(engine, "commit", committed)
        name = session_lease(sub.session.id)
        touching = [s for s in statements if name in s]
        # a session that outlives the renewal period is renewed, as it must be: only a short one never is (a
        # machine loaded by other work can make this one long)
        renewals = [s for s in touching if s.startswith("UPDATE ownership_leases")]
        ownership = svc.tickets.submissions.sessions
        assert ownership is not None
        if took < ownership.renew_s:
            assert renewals == [], (took, renewals)
        touching = [s for s in touching if s not in renewals]
        assert len(touching) == 2, touching
        assert "INSERT INTO ownership_leases" in touching[0] and "DELETE FROM ownership_leases" in touching[1]
        if svc.engine.dialect.name == "postgresql":  # the ticket's first write, and its session's end
            assert touching[0].startswith("WITH new_ticket") and touching[1].startswith("WITH closed_session")
        else:  # the delete in the transaction that closes the session, after its UPDATE and before its COMMIT
            end = statements.index(touching[1])
            closing = max(i for i, s in enumerate(statements[:end]) if s.startswith("UPDATE sessions SET status"))
            assert "COMMIT" not in statements[closing:end], statements[closing:end + 1]
            assert statements[end + 1] == "COMMIT"
        assert svc.store.session(sub.session.id).status not in ("running", "awaiting_approval", "awaiting_answer")
        assert Leases(Database(svc.engine)).current(name) is None
    finally:
        await svc.stop()
        svc.close()


async def test_a_sessions_end_deletes_its_lease_and_the_renewer_takes_that_for_no_loss(
        services: Services, database_url: str) -> None:
    """The lease goes with the write that stores the session's end (``SessionOwnership.ending``, then
    ``ended``): a renewal that runs between the two finds no lease and cancels nothing; afterwards the replica
    holds nothing, so the run's end deletes or releases nothing more. A store that fails gives the lease back
    to the renewer."""
    client = services.registry.add_client("Acme Dental")
    async with replicas(services, database_url) as (a, b):
        sub = await a.start(client.id, "disk full", "no space")
        sid = sub.session.id
        lease = a.sessions.ending(sid)
        assert lease is not None and (lease.name, lease.holder, lease.token) == (session_lease(sid), "replica-a", 1)
        assert b.sessions.ending(sid) is None  # b holds nothing
        await asyncio.to_thread(services.store.close_session, sid, sub.ticket.id, outcome="resolved", note="n",
                                reply="r", reason="done", event=("final_answer", {}), lease=lease)
        assert Leases(b.db).current(session_lease(sid)) is None
        await a.sessions.renew_once()  # the lease is gone: its end was being stored, no loss
        assert a.sessions.holds(sid) and a.subs.running(sid)
        a.sessions.ended(sid, lease, stored=True)
        assert sid not in a.sessions.held
        a.run.release.set()
        await until(lambda: _value(not a.subs.running(sid)), "a's run to end", 2)
        assert Leases(b.db).current(session_lease(sid)) is None and await b.subs.recover() == 0

        a.run.release.clear()
        sub = await a.subs.submit(client=client.id, subject="vpn down", body="no vpn", requester="tom@acme.example",
                                  device=None)
        sid = sub.session.id
        await until(lambda: _value(a.subs.running(sid)), "the second run to start on a", 2)
        lease = a.sessions.ending(sid)
        assert lease is not None
        a.sessions.ended(sid, lease, stored=False)  # its end could not be stored: held and renewed as before
        await a.sessions.renew_once()
        assert a.sessions.holds(sid)
        await asyncio.to_thread(Leases(b.db).release, session_lease(sid), "replica-a", 1)  # lost meanwhile
        await a.sessions.renew_once()
        await until(lambda: _value(not a.subs.running(sid)), "a's run to be cancelled", 2)


def start_server(data: Path, port: int, agent_port: int, key: str, url: str, agent_url: str,
                 log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MSPCLAW_DATA_DIR": str(data), "MSPCLAW_PORT": str(port), "MSPCLAW_API_KEY": key,
           "MSPCLAW_AGENT_PORT": str(agent_port), "MSPCLAW_AGENT_URL": agent_url, "MSPCLAW_DATABASE_URL": url,
           "MSPCLAW_APPROVAL_TIMEOUT_S": "120", "MSPCLAW_QUESTION_TIMEOUT_S": "120", "MSPCLAW_WORKERS": "0"}
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "tests.resume_server"], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)


@pytest.mark.postgres
@pytest.mark.timeout(180)
async def test_two_servers_on_one_database_a_killed_servers_sessions_finish_on_the_other_and_run_once(
        tmp_path: Path) -> None:
    """Replica A runs two sessions: one awaiting approval, one with an approved destructive call running on
    the agent. Replica B starts meanwhile and resumes neither. A is SIGKILLed: B resumes both within the
    lease's ttl (10 s) and a few seconds, the approval is granted on B, both resolve, and each destructive
    call ran exactly once (the in-flight one is answered from the agent's journal by its call id)."""
    url = next(schema := postgres_schema())
    key = "test_" + secrets.token_urlsafe(12)
    ports = {name: (free_port(), free_port()) for name in ("a", "b")}
    proxy = TcpProxy("127.0.0.1", ports["a"][1])  # the load balancer in front of the agent listeners
    await proxy.up()
    agent_url = f"ws://127.0.0.1:{proxy.port}/ws/agent"
    log = tmp_path / "servers.log"
    cleaner = CountingCleaner()
    servers: dict[str, subprocess.Popen[bytes]] = {}
    db = Database.open(url)
    leases = Leases(db)

    def holder(session_id: str) -> str | None:
        lease = leases.current(session_lease(session_id))
        return lease.holder if lease is not None else None

    def on(name: str) -> Callable[[str], bool]:
        pid = servers[name].pid
        return lambda session_id: (holder(session_id) or "").split(":")[-2:-1] == [str(pid)]

    try:
        servers["a"] = start_server(tmp_path / "a", *ports["a"], key, url, agent_url, log)
        a_url, b_url = (f"http://127.0.0.1:{ports[n][0]}" for n in ("a", "b"))
        auth = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=a_url, headers=auth, timeout=10) as a_http, \
                httpx.AsyncClient(base_url=b_url, headers=auth, timeout=10) as b_http:
            await until(lambda: _ok(a_http), "server A to start", 30)
            client = (await a_http.post("/api/clients", json={"name": "Acme"})).json()["id"]
            code = (await a_http.post("/api/enrollments", json={"client": client})).json()["code"]
            async with inprocess_agent(a_url, code, tmp_path / "agent",
                                       tools={"clear_temp_files": bind(ClearTempFilesArgs, cleaner)}) as agent:
                tickets = {}
                for scenario in ("approval", "inflight"):
                    r = await a_http.post("/api/tickets", json={"client": client, "subject": "disk full",
                                                                "body": f"my disk is full (scenario {scenario})"})
                    tickets[scenario] = r.json()["ticket_id"]
                sessions = {s: (await a_http.get(f"/api/tickets/{t}")).json()["session_id"]
                            for s, t in tickets.items()}
                approvals = await until(lambda: _json_if(a_http, "/api/approvals", 2), "two approvals", 30)
                assert all(on("a")(sid) for sid in sessions.values())

                # B starts while A lives (replicas share their keys, as a deployment's do): it resumes nothing
                (tmp_path / "b").mkdir()
                shutil.copy(tmp_path / "a" / "approval_signing_key", tmp_path / "b" / "approval_signing_key")
                servers["b"] = start_server(tmp_path / "b", *ports["b"], key, url, agent_url, log)
                await until(lambda: _ok(b_http), "server B to start", 30)
                await asyncio.sleep(4)  # B's recovery at start, and again every 2 s
                assert all(on("a")(sid) for sid in sessions.values()), "B took a session A runs"
                assert _resumed(db, sessions.values()) == 0
                assert len((await b_http.get("/api/approvals")).json()) == 2, "no second run asked again"

                inflight = next(a for a in approvals if a["args"]["older_than_days"] == 1)
                assert (await a_http.post(f"/api/approvals/{inflight['id']}/approve",
                                          json={"approver": "Dana"})).status_code == 200
                assert await asyncio.to_thread(cleaner.started.wait, 15), "the approved call never started"

                servers["a"].send_signal(signal.SIGKILL)  # A dies: no shutdown, no release
                servers["a"].wait(10)
                killed = time.monotonic()
                proxy.target = ("127.0.0.1", ports["b"][1])  # the load balancer sends agents to B now
                await until(lambda: _value(all(on("b")(sid) for sid in sessions.values())),
                            "B to take both sessions over", 30)
                took = time.monotonic() - killed
                # leases expire 10 s after A's last renewal; B's recovery runs every 2 s once it has taken
                # the session-recovery loop over (itself within 11 s): a few seconds of slack for a busy host
                assert took <= 10 + 6, f"B took the sessions over {took:.1f} s after A died"
                await until(lambda: _value(agent.daemon.connected.is_set()), "the agent to reach B", 20)

                pending = (await b_http.get("/api/approvals")).json()
                assert [a["args"]["older_than_days"] for a in pending] == [7], "the same approval, not a new one"
                assert (await b_http.post(f"/api/approvals/{pending[0]['id']}/approve",
                                          json={"approver": "Sam"})).status_code == 200
                cleaner.release.set()

                async def finished() -> dict[str, dict[str, Any]] | None:
                    out = {s: (await b_http.get(f"/api/tickets/{t}")).json() for s, t in tickets.items()}
                    return out if all(t["status"] in ("resolved", "escalated") for t in out.values()) else None

                done = await until(finished, "both tickets to finish on B", 40)
        assert {s: t["status"] for s, t in done.items()} == dict.fromkeys(tickets, "resolved"), {
            s: t["reason"] for s, t in done.items()}
        assert done["approval"]["reason"].startswith("clear_temp_files: {'deleted': 3")
        assert done["inflight"]["reason"].startswith("clear_temp_files: {'deleted': 3")
        assert cleaner.runs == Counter({7: 1, 1: 1}), "each destructive call ran exactly once"
        assert [s["tool"] for s in done["inflight"]["steps"]] == ["clear_temp_files", "resolve"]
        assert _resumed(db, sessions.values()) == 2, "each session resumed once, by B"
        # a run ends, and its lease row goes, just after its ticket's status is stored and its feedback asked
        await until(lambda: _value(all(holder(sid) is None for sid in sessions.values())),
                    "both leases released when their sessions finished", 10)
    finally:
        cleaner.release.set()
        for server in servers.values():
            if server.poll() is None:
                server.terminate()
                server.wait(15)
        await proxy.down()
        db.dispose()
        schema.close()


def _resumed(db: Database, session_ids: Any) -> int:
    with db.engine.connect() as conn:
        return len(list(conn.execute(select(SessionEvent.id).where(
            SessionEvent.session_id.in_(list(session_ids)), SessionEvent.event == "resumed"))))


async def _value(value: Any) -> Any:
    return value


async def _ok(http: httpx.AsyncClient) -> bool:
    return (await http.get("/healthz")).status_code == 200


async def _json_if(http: httpx.AsyncClient, path: str, count: int) -> Any:
    body = (await http.get(path)).json()
    return body if len(body) == count else None
