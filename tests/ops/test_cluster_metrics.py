"""``GET /metrics`` with several replicas: presence, forwarded calls (counted once), broadcast messages,
leases held and taken over, and Redis reachable.

Real services only: a private schema on the test PostgreSQL for the lease takeovers; two servers
(``wiring.build`` + uvicorn + the agent listener, each with its own SQLite) on loopback sharing a
``redis-server`` of this test's own on a free loopback port (stopped at the end; the shared Redis on 6379
is never stopped); a real agent daemon enrolled on server A over HTTP and connected over a real WebSocket.
Both servers live in this process, so the counters they export are the process's: the test reads their
deltas, and the per-replica gauges by their ``replica`` label.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import live_server
from tests.dispatch.cluster_replicas import OwnRedis
from tests.inprocess_agent import inprocess_agent
from tests.ops.conftest import PrivateSchema
from tests.ops.scrape import Samples, scrape, value

from mspclaw.pipeline.ownership import Held, Ownership
from mspclaw.pipeline.session_ownership import SessionOwnership
from mspclaw.settings import Settings
from mspclaw.store.database import Database
from mspclaw.store.leases import Leases
from mspclaw.store.session_leases import SessionLeaseStore, session_lease
from mspclaw.wiring import build

pytestmark = pytest.mark.anyio

CALLS = "mspclaw_tool_call_duration_seconds_count"


async def until(http: httpx.AsyncClient, check: Callable[[Samples], bool], what: str,
                seconds: float = 15) -> Samples:
    deadline = time.monotonic() + seconds
    while True:
        samples = await scrape(http)
        if check(samples):
            return samples
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("transport", ["redis", "direct"])
async def test_replica_metrics_move_with_the_cluster(tmp_path: Path, pg_schema: PrivateSchema, transport: str) -> None:
    """``direct``: the servers forward calls over their replica relay; ``redis``: through pub/sub."""
    redis = OwnRedis()
    await redis.start()
    relay: dict[str, Any] = {} if transport == "redis" else {
        "relay_listen": "127.0.0.1:0", "jwt_secret": secrets.token_urlsafe(32)}
    try:
        async with live_server(tmp_path / "a", workers=0, redis_url=redis.url, **relay) as a, \
                live_server(tmp_path / "b", workers=0, redis_url=redis.url, **relay) as b:
            assert a.services.cluster is not None and b.services.cluster is not None
            ra, rb = a.services.cluster.replica_id, b.services.cluster.replica_id
            client = await a.client()
            async with inprocess_agent(a.url, await a.code(client), tmp_path / "agent") as agent:
                agent_id = agent.state.agent_id

                # presence: the agent on A is on A, and B knows of it cluster-wide
                seen = await until(b.http, lambda s: value(s, "mspclaw_cluster_agents", replica=rb,
                                                           scope="cluster") == 1, "B to see A's agent")
                assert value(seen, "mspclaw_cluster_agents", replica=rb, scope="replica") == 0
                seen = await until(a.http, lambda s: value(s, "mspclaw_cluster_agents", replica=ra,
                                                           scope="replica") == 1, "A to hold its agent")
                assert value(seen, "mspclaw_redis_up", replica=ra) == 1
                assert value(seen, "mspclaw_redis_up", replica=rb) == 1

                # a call made on B for A's agent: counted once in the tool-call latency, as forwarded on B
                # and relayed on A
                before = await scrape(b.http)
                result = await b.services.hub.for_client(client).call_tool(agent_id, "system_info", {}, timeout=20)
                assert result.ok
                after = await scrape(b.http)
                ok = {"tool": "system_info", "outcome": "ok"}
                assert value(after, CALLS, **ok) == value(before, CALLS, **ok) + 1, "a forwarded call counts once"
                for name, labels in (("mspclaw_forwarded_calls_total", {"transport": transport, "outcome": "ok"}),
                                     ("mspclaw_forwarded_call_duration_seconds_count", {"transport": transport}),
                                     ("mspclaw_relayed_calls_total", {"outcome": "ok"})):
                    assert value(after, name, **labels) == value(before, name, **labels) + 1, name

                # a configuration signal from A: sent once, received by B
                assert a.services.broadcast is not None
                sent = value(after, "mspclaw_broadcast_messages_total", outcome="sent")
                received = value(after, "mspclaw_broadcast_messages_total", outcome="received")
                a.services.broadcast.changed("psa_accounts")
                # both counters waited for: B may count the message received before A's publish has returned
                # and counted it sent (the two servers share this process's metrics)
                moved = await until(b.http, lambda s: value(s, "mspclaw_broadcast_messages_total",
                                                            outcome="received") >= received + 1
                                    and value(s, "mspclaw_broadcast_messages_total", outcome="sent") >= sent + 1,
                                    "B to receive A's signal, and A to count it sent")

                # leases: one held while its loop runs, and a takeover of another replica's expired lease
                leases = Leases(Database(a.services.engine))
                held_before = value(moved, "mspclaw_leases_held", kind="poller")
                running = asyncio.Event()

                async def poller(_: Held) -> None:
                    running.set()
                    await asyncio.Event().wait()

                ownership = Ownership(leases, replica="metrics-test", ttl_s=3.0, retry_s=0.1)
                task = asyncio.create_task(ownership.run("poller:metrics-test", poller))
                try:
                    await asyncio.wait_for(running.wait(), 10)
                    now = await scrape(a.http)
                    assert value(now, "mspclaw_leases_held", kind="poller") == held_before + 1
                finally:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                await until(a.http, lambda s: value(s, "mspclaw_leases_held", kind="poller") == held_before,
                            "the released lease to leave the gauge")

                # takeovers, on PostgreSQL (replicas share one; a SQLite server is alone and never counts them)
                shared = Database.open(pg_schema.url.render_as_string(hide_password=False))
                leases = Leases(shared)
                takeovers = value(await scrape(a.http), "mspclaw_lease_takeovers_total", kind="poller")
                assert leases.acquire("poller:taken", "replica-that-dies", 0.2) is not None
                assert leases.acquire("poller:taken", "replica-that-dies", 0.2) is not None, "its own: no takeover"
                assert value(await scrape(a.http), "mspclaw_lease_takeovers_total", kind="poller") == takeovers
                await asyncio.sleep(0.3)
                assert leases.acquire("poller:taken", "replica-that-lives", 5.0) is not None
                token = leases.acquire("poller:released", "replica-that-stops", 5.0)
                assert token is not None and leases.release("poller:released", "replica-that-stops", token)
                assert leases.acquire("poller:released", "replica-that-lives", 5.0) is not None
                counted = await scrape(a.http)
                assert value(counted, "mspclaw_lease_takeovers_total", kind="poller") == takeovers + 1, \
                    "an expired lease taken over counts; a released one taken does not"
                shared.dispose()

                # Redis down: both replicas say so, and B knows only its own agents
                redis.stop()
                await until(a.http, lambda s: value(s, "mspclaw_redis_up", replica=ra) == 0, "A to report Redis down")
                gone = await until(b.http, lambda s: value(s, "mspclaw_redis_up", replica=rb) == 0,
                                   "B to report Redis down")
                assert value(gone, "mspclaw_cluster_agents", replica=rb, scope="cluster") == 0
                assert value(gone, "mspclaw_cluster_agents", replica=ra, scope="replica") == 1
    finally:
        redis.stop()


async def test_session_recoveries_are_counted(tmp_path: Path, pg_schema: PrivateSchema) -> None:
    """A session whose replica stopped (its lease released) resumed by another replica counts once; a pass
    that finds nothing to resume counts nothing. The tickets and leases are on a private PostgreSQL schema,
    whose services are not started (no recovery loop of theirs races this one); a live server scrapes."""
    url = pg_schema.url.render_as_string(hide_password=False)
    shared = build(Settings(data_dir=tmp_path / "shared", api_key="k" * 20, database_url=url))
    db = Database.open(url)
    try:
        async with live_server(tmp_path / "scrape", workers=0) as live:
            client = shared.registry.add_client("Acme Dental")
            _, session = await asyncio.to_thread(shared.store.open_ticket, client_id=client.id, subject="vpn down",
                                                 body="no vpn", requester="tom@acme.example", device_id=None,
                                                 started=True)
            leases = Leases(db)
            token = leases.acquire(session_lease(session.id), "replica-that-stopped", 5.0)
            assert token is not None and leases.release(session_lease(session.id), "replica-that-stopped", token)
            owner = SessionOwnership(leases, SessionLeaseStore(db), replica="metrics-test", ttl_s=3.0)
            resumed: list[str] = []

            async def resume(session_id: str) -> None:
                resumed.append(session_id)

            before = value(await scrape(live.http), "mspclaw_session_recoveries_total")
            assert await owner.recover((), resume) == 1
            assert resumed == [session.id]
            middle = await scrape(live.http)
            assert value(middle, "mspclaw_session_recoveries_total") == before + 1
            assert value(middle, "mspclaw_leases_held", kind="session") >= 1, "the resumed session's lease"
            assert await owner.recover({session.id}, resume) == 0
            assert value(await scrape(live.http), "mspclaw_session_recoveries_total") == before + 1
            await owner.release(session.id)
    finally:
        db.dispose()
        await shared.stop()
        shared.close()
