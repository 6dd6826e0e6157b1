"""Owned loops run on one replica at a time and move to another within seconds, on the real databases:
SQLite in a temporary file and the PostgreSQL server on 127.0.0.1:5432 (a private schema per test).

Two "replicas" are two :class:`Ownership` runners in this process, with different replica ids and an
engine each. A replica is cut off from the database by :class:`Partitioned`, its leases failing
every call as a dropped connection does (``StoreError``), so it can no longer renew; nothing of the
database or of SQLAlchemy is patched. Each loop records when it started and stopped on which replica;
the tests assert that no two of these spans ever overlap.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from tests.ops.tcp_proxy import ProxyThread
from tests.private_schema import migrated_database

from mspclaw.errors import StoreError
from mspclaw.pipeline.intake import Intake, Poller
from mspclaw.pipeline.ownership import Held, Ownership
from mspclaw.settings import Settings
from mspclaw.store.database import Database
from mspclaw.store.db import make_engine
from mspclaw.store.jobs import JobQueue
from mspclaw.store.leases import Leases
from mspclaw.wiring import build

pytestmark = pytest.mark.anyio

TTL = 1.0
TIMING = {"ttl_s": TTL, "renew_s": 0.3, "margin_s": 0.2, "retry_s": 0.1, "restart_s": 0.3}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated private database: a SQLite file, or a schema of its own on the test PostgreSQL."""
    yield from migrated_database(request.param, tmp_path, "own")


class Partitioned(Leases):
    """One replica's leases, whose link to the database the test can cut."""

    cut = False

    def _link(self) -> None:
        if self.cut:
            raise StoreError("cannot reach the database: connection refused (cut by the test)")

    def acquire(self, name: str, holder: str, ttl_s: float) -> int | None:
        self._link()
        return super().acquire(name, holder, ttl_s)

    def renew(self, name: str, holder: str, token: int, ttl_s: float) -> bool:
        self._link()
        return super().renew(name, holder, token, ttl_s)

    def release(self, name: str, holder: str, token: int) -> bool:
        self._link()
        return super().release(name, holder, token)


@dataclass
class Span:
    replica: str
    token: int
    start: float
    end: float | None = None


@dataclass
class Spans:
    """When the owned loop ran, on which replica."""

    spans: list[Span] = field(default_factory=list)

    def loop(self, replica: str, *, fail: bool = False) -> Callable[[Held], Awaitable[None]]:
        async def owned(held: Held) -> None:
            span = Span(replica, held.token, time.monotonic())
            self.spans.append(span)
            try:
                if fail:
                    raise RuntimeError("the PSA poller crashed")
                await asyncio.Event().wait()
            finally:
                span.end = time.monotonic()
        return owned

    def running(self) -> list[str]:
        return [span.replica for span in self.spans if span.end is None]

    def assert_never_overlapping(self) -> None:
        ordered = sorted(self.spans, key=lambda span: span.start)
        for before, after in itertools.pairwise(ordered):
            assert before.end is not None and before.end <= after.start, ordered
        assert len(self.running()) <= 1


async def until(predicate: Callable[[], bool], seconds: float) -> float:
    """Wait for ``predicate``; the monotonic time it became true."""
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)
    return time.monotonic()


@dataclass
class Replica:
    leases: Partitioned
    owner: Ownership
    task: asyncio.Task[None] | None = None

    def start(self, spans: Spans, name: str, *, fail: bool = False) -> None:
        self.task = asyncio.get_running_loop().create_task(self.owner.run(name, spans.loop(self.owner.replica,
                                                                                           fail=fail)))

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


@pytest.fixture
def replicas(database_url: str) -> Iterator[Callable[[str], Replica]]:
    made: list[Database] = []

    def replica(name: str) -> Replica:
        db = Database.open(database_url, migrated=False)
        made.append(db)
        leases = Partitioned(db)
        return Replica(leases, Ownership(leases, replica=name, **TIMING))

    yield replica
    for db in made:
        db.dispose()


async def test_a_single_replica_runs_its_loop_at_once_and_releases_it_on_stop(
        replicas: Callable[[str], Replica]) -> None:
    spans = Spans()
    a = replicas("replica-a")
    a.start(spans, "poller:halo")
    await until(lambda: spans.running() == ["replica-a"], 2)
    assert a.owner.held == {"poller:halo": Held("poller:halo", 1)}
    await asyncio.sleep(3 * TTL)  # renewed all along: still running, never restarted
    assert len(spans.spans) == 1 and spans.running() == ["replica-a"]

    await a.stop()
    assert spans.running() == [] and a.owner.held == {}
    assert a.leases.current("poller:halo") is None  # released, not left to expire


async def test_a_cut_off_owner_stops_before_the_other_replica_takes_over(replicas: Callable[[str], Replica]) -> None:
    spans = Spans()
    a, b = replicas("replica-a"), replicas("replica-b")
    a.start(spans, "feedback")
    await until(lambda: spans.running() == ["replica-a"], 2)
    b.start(spans, "feedback")
    try:
        await asyncio.sleep(2 * TTL)  # b keeps trying; a keeps renewing
        assert [span.replica for span in spans.spans] == ["replica-a"]

        a.leases.cut = True  # a can no longer renew (nor release)
        killed = time.monotonic()
        taken = await until(lambda: spans.running() == ["replica-b"], TTL + 3)
        assert taken - killed <= TTL + 1.0
        first, second = spans.spans
        assert (first.replica, second.replica) == ("replica-a", "replica-b")
        assert first.end is not None and first.end <= second.start  # a stopped before b started
        assert second.token == first.token + 1

        a.leases.cut = False  # a comes back: it finds the lease taken and stays idle
        await asyncio.sleep(2 * TTL)
        assert spans.running() == ["replica-b"] and len(spans.spans) == 2
        current = b.leases.current("feedback")
        assert current is not None and current.holder == "replica-b"
    finally:
        await a.stop()
        await b.stop()
    spans.assert_never_overlapping()


async def test_a_stopping_replica_hands_over_within_the_retry_interval(replicas: Callable[[str], Replica]) -> None:
    spans = Spans()
    a, b = replicas("replica-a"), replicas("replica-b")
    a.start(spans, "retention")
    await until(lambda: spans.running() == ["replica-a"], 2)
    b.start(spans, "retention")
    await asyncio.sleep(0.5)
    try:
        stopped = time.monotonic()
        await a.stop()  # released on the way out
        taken = await until(lambda: spans.running() == ["replica-b"], 2)
        assert taken - stopped < TTL  # not waiting for an expiry
    finally:
        await b.stop()
    spans.assert_never_overlapping()
    assert [span.replica for span in spans.spans] == ["replica-a", "replica-b"]


async def test_a_failing_loop_is_restarted(replicas: Callable[[str], Replica]) -> None:
    spans = Spans()
    a = replicas("replica-a")
    a.start(spans, "poller:autotask", fail=True)
    try:
        await until(lambda: len(spans.spans) >= 3, 5)
    finally:
        await a.stop()
    spans.assert_never_overlapping()
    # each restart released the lease and acquired it again: a new token every time
    tokens = [span.token for span in spans.spans]
    assert tokens == sorted(set(tokens))


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_replica_whose_network_drops_stops_before_the_takeover(database_url: str) -> None:
    """The same as above through a real network failure: replica a reaches PostgreSQL through a TCP
    proxy on loopback (``tests/ops/tcp_proxy.py``) that the test takes down, cutting its connections."""
    proxy = ProxyThread("127.0.0.1", make_url(database_url).port or 5432)
    proxy.up()
    spans = Spans()
    via_proxy = make_url(database_url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    dbs = [Database.open(via_proxy, migrated=False), Database.open(database_url, migrated=False)]
    a = Ownership(Leases(dbs[0]), replica="replica-a", **TIMING)
    b = Ownership(Leases(dbs[1]), replica="replica-b", **TIMING)
    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(a.run("poller:connectwise", spans.loop("replica-a")))]
    try:
        await until(lambda: spans.running() == ["replica-a"], 2)
        tasks.append(loop.create_task(b.run("poller:connectwise", spans.loop("replica-b"))))
        await asyncio.sleep(TTL)
        assert spans.running() == ["replica-a"]

        await asyncio.to_thread(proxy.down)
        cut = time.monotonic()
        taken = await until(lambda: spans.running() == ["replica-b"], TTL + 5)
        assert taken - cut <= TTL + 1.0
        await asyncio.to_thread(proxy.up)  # a reaches the database again: the lease stays with b
        await asyncio.sleep(2 * TTL)
        assert [span.replica for span in spans.spans] == ["replica-a", "replica-b"]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for db in dbs:
            db.dispose()
        await asyncio.to_thread(proxy.close)
    spans.assert_never_overlapping()


class CountingIntake(Intake):
    """An intake whose poll only counts, per replica: the PSA is not what is under test here."""

    def __init__(self, jobs: JobQueue, ownership: Ownership) -> None:
        super().__init__(jobs=jobs, tickets=None, audit=None, connectors={}, ownership=ownership)  # type: ignore[arg-type]
        self.polls = 0

    async def poll(self, psa: str) -> int:
        self.polls += 1
        return 0


async def test_two_replicas_pollers_of_one_psa_account_poll_from_one_replica(
        replicas: Callable[[str], Replica]) -> None:
    """The pollers as the server starts them (``Poller(intake, account)``, the intake holding the ownership)."""
    a, b = replicas("replica-a"), replicas("replica-b")
    intakes = [CountingIntake(JobQueue(Database(make_engine("sqlite://"))), r.owner) for r in (a, b)]
    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(Poller(intake, "halo", interval_s=0.05).run()) for intake in intakes]
    try:
        await until(lambda: intakes[0].polls + intakes[1].polls >= 10, 5)
        await asyncio.sleep(3 * TTL)
        assert sorted([intakes[0].polls > 0, intakes[1].polls > 0]) == [False, True]
        holder = a.leases.current("poller:halo")
        assert holder is not None
        assert (intakes[0] if holder.holder == "replica-a" else intakes[1]).polls >= 10
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert a.leases.current("poller:halo") is None  # released by the poller that stopped


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_two_servers_on_one_database_run_the_timer_loops_once(database_url: str, tmp_path: Path) -> None:
    """Two servers built as ``mspclaw serve`` builds them (``wiring.build``), sharing one PostgreSQL
    database: one runs the feedback, retention and session-recovery loops; when it stops, the other takes them over."""
    servers = [build(Settings(data_dir=tmp_path / name, api_key=f"test_{name}", database_url=database_url))
               for name in ("one", "two")]
    owners: list[Ownership] = []
    for server in servers:
        assert server.intake.ownership is not None
        owners.append(server.intake.ownership)
    loops = {"feedback", "retention", "session-recovery"}
    started = []
    try:
        await servers[0].start(workers=False)
        started.append(servers[0])
        await until(lambda: set(owners[0].held) == loops, 5)
        await servers[1].start(workers=False)  # the second finds every loop held
        started.append(servers[1])
        await asyncio.sleep(1.0)
        first = 0
        assert set(owners[first].held) == loops and not owners[1 - first].held  # run once, on the first

        stopped = time.monotonic()
        await servers[first].stop()
        started.remove(servers[first])
        taken = await until(lambda: set(owners[1 - first].held) == loops, 5)
        assert taken - stopped < 3  # released on stop: no waiting for the 10 s expiry
    finally:
        for server in started:
            await server.stop()
        for server in servers:
            server.close()


async def test_one_replica_runs_one_runner_per_name(replicas: Callable[[str], Replica]) -> None:
    spans = Spans()
    a = replicas("replica-a")
    a.start(spans, "feedback")
    try:
        await until(lambda: spans.running() == ["replica-a"], 2)
        with pytest.raises(ValueError, match="already runs"):
            await a.owner.run("feedback", spans.loop("replica-a"))
    finally:
        await a.stop()
    a.start(spans, "feedback")  # once stopped, it may run again
    try:
        await until(lambda: len(spans.spans) == 2 and spans.running() == ["replica-a"], 2)
    finally:
        await a.stop()


def test_timings_that_cannot_work_are_refused() -> None:
    leases = Leases(Database(make_engine("sqlite://")))
    with pytest.raises(ValueError, match="fit in it"):
        Ownership(leases, replica="r", ttl_s=1.0, renew_s=0.9, margin_s=0.2)
