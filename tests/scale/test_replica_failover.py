"""Three server replicas, one killed with SIGKILL, nothing lost and nothing run twice (issue: scale out).

Real services on loopback: three ``mspclaw server`` processes (the shipped CLI, deterministic
playbook model, shipped ``disk_full`` playbook) on one private schema of the test PostgreSQL and a
private ``redis-server``; the local PSA simulator (``simulators/local_psa.py``) polled by whichever
replica holds the poller's lease; agents behind a round-robin TCP balancer (``tests/scale/replicas.py``).

The agents are real daemons run in this test's event loop (``tests/inprocess_agent.py``), not
``mspclaw agent`` processes: the test must hold a destructive call in flight at the moment of the
kill and count each tool run on the agent side, which a process cannot be told to do. Their
``clear_temp_files``, ``disk_usage`` and ``large_files`` are counting stand-ins registered under the
catalogue names, so the signature, schema, Ed25519 approval and journal gates all apply.

The replica killed owns, at that moment, a session awaiting approval, a session whose approved
``clear_temp_files`` is running on its agent, and the PSA poller. Afterwards: every ticket finishes
resolved, each destructive call ran exactly once, the killed replica's agents are online on the
others, the poller runs elsewhere, ``mspclaw audit verify`` passes; then the private Redis is stopped
and started again with work in flight, and nothing is lost.

Select with ``-m replicas``.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from tests.inprocess_agent import RunningAgent, inprocess_agent
from tests.ops.conftest import PrivateSchema
from tests.scale.replicas import ROOT, AgentBalancer, PrivateRedis, Replica, Replicas

from mspclaw.agent.tools import ToolContext, bind
from mspclaw.simulators.local_psa import RunningPSA, run_local_psa
from mspclaw.tools.catalogue import ClearTempFilesArgs, DiskUsageArgs
from mspclaw.tools.device import LargeFilesArgs

pytestmark = [pytest.mark.anyio, pytest.mark.postgres, pytest.mark.replicas, pytest.mark.timeout(240)]

T = TypeVar("T")
FINISHED = ("resolved", "escalated")
APPROVAL_TIMEOUT_S = 40
"""A decision that never reaches the session's owner lets the ticket go on only at this deadline (the stored
decision is read then): short, so the test shows the lag and goes on to what follows."""
WOKEN_WITHIN_S = 10
"""How soon a ticket approved through another replica must finish (its owner woken by the decision)."""
REQUESTER = "pat@polled.example"
"""Who opens the polled tickets (the device becomes theirs: device memory)."""
SEEN: dict[str, str] = {}
"""What the last check saw that was not yet as awaited (for the timeout's message)."""


class CountingDisk:
    """One agent's disk tools: ``clear_temp_files`` counts each real (not dry-run) run, and can be held
    running until released; ``dry_run`` reports ``files`` old files (0: the playbook skips the delete)."""

    def __init__(self, files: int) -> None:
        self.files = files
        self.runs = 0
        self.started = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self._lock = threading.Lock()

    def clear(self, args: ClearTempFilesArgs, context: ToolContext) -> dict[str, Any]:
        report: dict[str, Any] = {"dry_run": args.dry_run, "older_than_days": args.older_than_days, "roots": [],
                                  "files": self.files, "bytes": 4096 * self.files, "sample": [], "errors": []}
        if args.dry_run:
            return report
        with self._lock:
            self.runs += 1
        self.started.set()
        self.release.wait(60)
        return {**report, "deleted": self.files, "freed_bytes": 4096 * self.files}

    def usage(self, args: DiskUsageArgs, context: ToolContext) -> dict[str, Any]:
        return {"filesystems": [{"path": "/", "mount_point": "/", "device": "/dev/sda1", "fstype": "ext4",
                                 "total_bytes": 100 << 30, "used_bytes": 40 << 30, "free_bytes": 60 << 30,
                                 "percent_used": 40.0}], "errors": []}

    def large(self, args: LargeFilesArgs, context: ToolContext) -> dict[str, Any]:
        return {"files": [], "errors": []}

    def tools(self) -> dict[str, Any]:
        return {"clear_temp_files": bind(ClearTempFilesArgs, self.clear), "disk_usage": bind(DiskUsageArgs, self.usage),
                "large_files": bind(LargeFilesArgs, self.large)}


@dataclass
class Site:
    """A client with one device agent."""

    name: str
    client_id: str
    disk: CountingDisk
    agent: RunningAgent | None = None
    tickets: list[str] = field(default_factory=list)


async def until(check: Callable[[], Awaitable[T | None]], what: str, seconds: float = 30,
                logs: Callable[[], str] | None = None) -> T:
    SEEN.clear()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            value = await check()
            if value:
                return value
        await asyncio.sleep(0.1)
    seen = "".join(f"\n{key}: {value}" for key, value in SEEN.items())
    raise AssertionError(f"timed out after {seconds:g} s waiting for {what}{seen}" + (f"\n{logs()}" if logs else ""))


async def submit(replica: Replica, site: Site) -> str:
    r = await replica.api.post("/api/tickets", json={"client": site.client_id, "subject": "disk full",
                                                      "body": "my disk is full"})
    assert r.status_code == 202, r.text
    ticket = str(r.json()["ticket_id"])
    site.tickets.append(ticket)
    return ticket


async def pending_approval(replica: Replica, ticket: str) -> dict[str, Any] | None:
    body = (await replica.api.get(f"/api/tickets/{ticket}")).json()
    approvals: list[dict[str, Any]] = (await replica.api.get("/api/approvals")).json()
    found = next((a for a in approvals if a["session_id"] == body["session_id"] and a["status"] == "pending"), None)
    if found is None:
        SEEN["ticket"] = (f"{ticket[:8]} {body['status']} reason={body['reason']!r} "
                          f"steps={[(s['tool'], s['ok'], s['summary'][:80]) for s in body['steps']]}")
    return found


async def approve(replica: Replica, approval: dict[str, Any]) -> None:
    r = await replica.api.post(f"/api/approvals/{approval['id']}/approve", json={"approver": "Dana"})
    assert r.status_code == 200, r.text


async def finished(replica: Replica, tickets: list[str]) -> dict[str, dict[str, Any]] | None:
    out = {t: (await replica.api.get(f"/api/tickets/{t}")).json() for t in tickets}
    if all(body["status"] in FINISHED for body in out.values()):
        return out
    SEEN["tickets"] = "; ".join(f"{t[:8]} {b['status']} steps={[s['tool'] for s in b['steps']]}"
                                for t, b in out.items() if b["status"] not in FINISHED)
    return None


async def psa_ticket(replica: Replica, psa: RunningPSA, external: str) -> str | None:
    found: list[dict[str, Any]] = (await replica.api.get("/api/tickets")).json()
    return next((str(t["id"]) for t in found if t["psa"] == "local" and t["external_id"] == external), None)


def audit_verify(replicas: Replicas) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in replicas.env.items() if k != "MSPCLAW_REDIS_URL"}
    return subprocess.run([sys.executable, "-m", "mspclaw", "audit", "verify"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


@contextlib.asynccontextmanager
async def cluster(tmp: Path, schema: PrivateSchema, *, count: int = 3,
                  secrets_in_env: bool = True) -> AsyncIterator[tuple[Replicas, AgentBalancer, PrivateRedis]]:
    redis = PrivateRedis(tmp / "redis")
    redis.start()
    balancer = AgentBalancer()
    await balancer.start()
    replicas = Replicas(tmp, count=count, secrets_in_env=secrets_in_env,
                        database_url=schema.url.render_as_string(hide_password=False),
                        redis_url=redis.url, agent_url=balancer.agent_url,
                        api_key="test_" + secrets.token_urlsafe(12),
                        extra_env={"MSPCLAW_APPROVAL_TIMEOUT_S": str(APPROVAL_TIMEOUT_S),
                                   "MSPCLAW_QUESTION_TIMEOUT_S": "300", "MSPCLAW_HEARTBEAT_INTERVAL_S": "5",
                                   "MSPCLAW_WORKERS": "4"})
    balancer.backends = replicas.agent_ports
    try:
        yield replicas, balancer, redis
    finally:
        await replicas.aclose()
        await balancer.close()
        redis.stop()


async def test_a_replica_killed_owning_an_approval_a_call_in_flight_and_the_poller_loses_nothing(
        tmp_path: Path, pg_schema: PrivateSchema) -> None:
    async with cluster(tmp_path, pg_schema) as (replicas, balancer, redis), run_local_psa() as psa:
        first = replicas[0]
        await replicas.start(first)  # migrates the schema; the others start on it
        company = await psa.connector.create_company("Polled Dental")
        sites: dict[str, Site] = {}
        for name, files in (("approval", 3), ("inflight", 3), ("polled", 0), ("r0", 3), ("r1", 3), ("r2", 3),
                            ("outage", 3)):
            refs = {"local": company} if name == "polled" else {}
            r = await first.api.post("/api/clients", json={"name": f"Client {name}", "psa_refs": refs})
            assert r.status_code == 201, r.text
            sites[name] = Site(name, str(r.json()["id"]), CountingDisk(files))
        await asyncio.gather(replicas.start(replicas[1]), replicas.start(replicas[2]))
        r = await replicas[2].api.post("/api/psa-accounts", json={  # added at run time: every replica learns it
            "name": "local", "kind": "local", "poll_interval_s": 1,
            "fields": {"base_url": psa.base_url, "token": psa.api_token}})
        assert r.status_code == 201, r.text

        async with contextlib.AsyncExitStack() as agents:
            for i, site in enumerate(sites.values()):
                enrolling = replicas[i % 3]
                r = await enrolling.api.post("/api/enrollments", json={"client": site.client_id})
                assert r.status_code == 201, r.text
                site.agent = await agents.enter_async_context(inprocess_agent(
                    enrolling.url, r.json()["code"], tmp_path / f"agent-{site.name}", tools=site.disk.tools(),
                    hostname=f"{site.name}-lt"))
            spread = balancer.open_links()
            assert all(spread[port] >= 2 for port in replicas.agent_ports), f"agents spread unevenly: {spread}"

            # -- every replica takes tickets; each is approved through another replica --------------------
            for i in range(3):
                await submit(replicas[i], sites[f"r{i}"])
            approved_at: dict[str, float] = {}
            for i in range(3):
                ticket = sites[f"r{i}"].tickets[0]
                found = await until(_approval_of(replicas[0], ticket), f"the approval of r{i}", logs=replicas.logs)
                await approve(replicas[(i + 1) % 3], found)
                approved_at[ticket] = time.monotonic()
            seen_lags: dict[str, float] = {}
            lags = await until(lambda: _lags(replicas[0], approved_at, seen_lags),
                               "the tickets of each replica, approved through another", APPROVAL_TIMEOUT_S + 20,
                               replicas.logs)

            # -- the poller's replica takes two sessions; one waits for approval, one runs a slow call --------
            doomed = await until(lambda: _poller(replicas), "a replica to hold the poller's lease", 20, replicas.logs)
            polled_1 = await psa.connector.create_ticket(company, requester=REQUESTER,
                                                         subject="disk full", body="my disk is full")
            first_polled = await until(lambda: psa_ticket(doomed, psa, polled_1.id),
                                       f"the ticket polled by replica {doomed.index}", 30, replicas.logs)
            sites["polled"].tickets.append(first_polled)
            sites["inflight"].disk.release.clear()
            waiting = await submit(doomed, sites["approval"])
            inflight = await submit(doomed, sites["inflight"])
            in_flight_approval = await until(lambda: pending_approval(doomed, inflight), "the in-flight approval")
            await approve(doomed, in_flight_approval)
            assert await asyncio.to_thread(sites["inflight"].disk.started.wait, 30), "the approved call never ran"
            await until(lambda: pending_approval(doomed, waiting), "the waiting approval")
            owners = replicas.leases()
            sessions = {name: (await doomed.api.get(f"/api/tickets/{t}")).json()["session_id"]
                        for name, t in (("approval", waiting), ("inflight", inflight))}
            assert owners.get("poller:local") is doomed, f"poller lease: {owners}"
            for name, session in sessions.items():
                assert owners.get(f"session:{session}") is doomed, f"{name} session not owned by the doomed: {owners}"
            doomed_port = doomed.agent_port
            doomed_agents = balancer.open_links()[doomed_port]
            assert doomed_agents >= 1, "the replica to kill holds agents"

            doomed.kill()  # SIGKILL: no shutdown, leases left to expire, the agents' sockets reset
            survivors = replicas.alive()
            assert len(survivors) == 2
            left, right = survivors
            sites["inflight"].disk.release.set()  # the call ends on the agent; its result has nowhere to go
            polled_2 = await psa.connector.create_ticket(company, requester=REQUESTER,
                                                         subject="disk full", body="my disk is still full")
            late = await until(lambda: pending_approval(left, waiting), "the stored approval, seen by a survivor")
            await approve(left, late)
            second_polled = await until(lambda: psa_ticket(right, psa, polled_2.id),
                                        "the poller to resume on a survivor", 45, replicas.logs)
            sites["polled"].tickets.append(second_polled)

            all_tickets = [t for s in sites.values() for t in s.tickets]
            done = await until(lambda: finished(left, all_tickets), "every ticket to finish after the kill", 90,
                               replicas.logs)
            assert {t: d["status"] for t, d in done.items()} == dict.fromkeys(all_tickets, "resolved"), {
                t: (d["status"], d["reason"]) for t, d in done.items()}
            runs = {name: site.disk.runs for name, site in sites.items()}
            assert runs == {"approval": 1, "inflight": 1, "polled": 0, "r0": 1, "r1": 1, "r2": 1, "outage": 0}, \
                f"each destructive call ran exactly once: {runs}"

            await until(lambda: _all_connected(sites), "every agent to be connected again", 30)
            links = balancer.open_links()
            assert links[doomed_port] == 0 and sum(links.values()) == len(sites), links
            for site in sites.values():  # the killed replica's agents too, whichever survivor is asked
                for survivor in survivors:
                    asked = {"client": site.client_id, "requester": REQUESTER if site.name == "polled" else ""}
                    r = await survivor.api.get("/api/agents/lookup", params=asked)
                    assert r.status_code == 200 and r.json()["online"], (site.name, survivor.index, r.text)
            owners = replicas.leases()
            assert owners.get("poller:local") in survivors, f"the poller resumed on a survivor: {owners}"

            # -- Redis stopped and started again with work in flight: nothing lost --------------------------
            # one ticket through each survivor for the same agent: one of the two calls crosses replicas
            redis.stop()
            across = [await submit(left, sites["outage"]), await submit(right, sites["outage"])]
            polled_3 = await psa.connector.create_ticket(company, requester=REQUESTER,
                                                         subject="disk full", body="disk full again")
            await until(_redis_is(left, ok=False), "/readyz to say Redis is unreachable", 15)
            await asyncio.sleep(2)
            redis.start()
            for survivor in survivors:
                await until(_redis_is(survivor, ok=True), "/readyz to say Redis is back", 30)
            for ticket, deciding in zip(across, (right, left), strict=True):
                found = await until(_approval_of(deciding, ticket), "an approval asked while Redis was down", 45,
                                    replicas.logs)
                await approve(deciding, found)
            third_polled = await until(lambda: psa_ticket(left, psa, polled_3.id),
                                       "the ticket opened while Redis was down", 30, replicas.logs)
            done = await until(lambda: finished(left, [*across, third_polled]), "the tickets across the outage",
                               60, replicas.logs)
            assert {t: d["status"] for t, d in done.items()} == dict.fromkeys([*across, third_polled], "resolved"), {
                t: (d["status"], d["reason"]) for t, d in done.items()}
            assert sites["outage"].disk.runs == 2, "each destructive call across the outage ran once"

            # a decision taken on one replica wakes the session on another at once (not at its deadline)
            assert max(lags.values()) < WOKEN_WITHIN_S, f"seconds from approval to the ticket's end: {lags}"
            # the agent list says which agents are online in the whole fleet, whichever replica answers
            listed = {survivor.index: await _online(survivor) for survivor in survivors}
            assert all(len(ids) == len(sites) for ids in listed.values()), f"agents online by replica asked: {listed}"

        verified = await asyncio.to_thread(audit_verify, replicas)
        assert verified.returncode == 0 and "audit verify: ok" in verified.stdout, verified.stdout + verified.stderr


async def test_a_psa_account_added_on_a_replica_that_then_dies_is_polled_by_another(
        tmp_path: Path, pg_schema: PrivateSchema) -> None:
    """The replicas share only the data directory for their secrets (no MSPCLAW_SECRET_KEY): the first to
    store a PSA credential creates the data directory's key; the others must read the credential too."""
    async with cluster(tmp_path, pg_schema, count=2, secrets_in_env=False) as (replicas, _, _), \
            run_local_psa() as psa:
        keeper, adder = replicas[0], replicas[1]
        await replicas.start(keeper)
        await replicas.start(adder)
        company = await psa.connector.create_company("Polled Dental")
        r = await keeper.api.post("/api/clients", json={"name": "Polled Dental", "psa_refs": {"local": company}})
        assert r.status_code == 201, r.text
        r = await adder.api.post("/api/psa-accounts", json={
            "name": "local", "kind": "local", "poll_interval_s": 1,
            "fields": {"base_url": psa.base_url, "token": psa.api_token}})
        assert r.status_code == 201, r.text
        await asyncio.sleep(1)  # the other replica told of the new account (Redis), as a deployment would be
        adder.kill()
        opened = await psa.connector.create_ticket(company, requester=REQUESTER, subject="disk full",
                                                   body="my disk is full")
        await until(lambda: psa_ticket(keeper, psa, opened.id), "the surviving replica to poll the account", 40,
                    replicas.logs)


async def _lags(replica: Replica, approved_at: dict[str, float], lags: dict[str, float]) -> dict[str, float] | None:
    """Once every ticket finished: seconds from its approval to when it was first seen finished (in ``lags``)."""
    now = time.monotonic()
    for ticket, at in approved_at.items():
        if ticket not in lags and (await replica.api.get(f"/api/tickets/{ticket}")).json()["status"] in FINISHED:
            lags[ticket] = round(now - at, 1)
    return lags if len(lags) == len(approved_at) else None


def _approval_of(replica: Replica, ticket: str) -> Callable[[], Awaitable[dict[str, Any] | None]]:
    return lambda: pending_approval(replica, ticket)


def _redis_is(replica: Replica, *, ok: bool) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        checks: dict[str, Any] = (await replica.api.get("/readyz")).json()["checks"]
        SEEN["readyz"] = str(checks.get("redis"))
        return bool(checks["redis"]["ok"]) is ok
    return check


async def _poller(replicas: Replicas) -> Replica | None:
    return replicas.leases().get("poller:local")


async def _all_connected(sites: dict[str, Site]) -> bool:
    return all(site.agent is not None and site.agent.daemon.connected.is_set() for site in sites.values())


async def _online(replica: Replica) -> list[str]:
    agents: list[dict[str, Any]] = (await replica.api.get("/api/agents")).json()
    return [str(a["hostname"]) for a in agents if a["online"]]

