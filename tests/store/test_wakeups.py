"""Waiters woken by a change made on another connection, on the real PostgreSQL server on 127.0.0.1:5432
(a private schema per test, ``tests/store/conftest.py``): ``NOTIFY mspclaw_jobs`` from :meth:`JobQueue.enqueue`,
``LISTEN`` on the one dedicated psycopg connection of :class:`Wakeups`, whatever the number of channels.

The enqueuing "replica" is a second engine (its own connections) used from a thread. NOTIFY reaches
every listener of the database, so other tests' jobs in other schemas may wake these workers too:
the assertions hold either way (a wake-up only makes a worker claim). The tests that count wake-ups
exactly listen on channels of their own (random names), which nothing else notifies; those that count
backends give their connections an ``application_name`` of their own.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
from sqlalchemy import Engine, insert, text
from sqlalchemy.engine import make_url
from tests.ops.tcp_proxy import ProxyThread

from mspclaw.pipeline.intake import JOB_KIND, Intake, Worker
from mspclaw.settings import Settings
from mspclaw.store.database import Database
from mspclaw.store.db import sqlite_url
from mspclaw.store.jobs import Job, JobQueue
from mspclaw.store.tables import JobRow
from mspclaw.store.technicians import CHANGED_CHANNEL
from mspclaw.store.wakeups import JOBS_CHANNEL, ChannelWakeups, Wakeups, listen_conninfo
from mspclaw.wiring import build

if TYPE_CHECKING:
    from tests.store.conftest import TestDatabase

pytestmark = pytest.mark.anyio


class ClaimingIntake(Intake):
    """An intake whose ticket run only records when each job reached it."""

    def __init__(self, jobs: JobQueue) -> None:
        super().__init__(jobs=jobs, tickets=None, audit=None, connectors={})  # type: ignore[arg-type]
        self.processed: dict[str, float] = {}

    async def process(self, job: Job) -> str:
        self.processed[job.id] = time.monotonic()
        return "resolved"


async def until(predicate: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


async def listening(wakeups: Wakeups) -> asyncio.Task[None]:
    task = asyncio.get_running_loop().create_task(wakeups.run())
    await until(lambda: wakeups.listening, 10)
    return task


async def stop(*tasks: asyncio.Task[None]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@pytest.mark.postgres
async def test_an_enqueue_on_another_connection_wakes_the_listener(blank_postgres: TestDatabase) -> None:
    Database.open(blank_postgres.url).dispose()  # migrated
    wakeups = Wakeups(listen_conninfo(blank_postgres.new_engine()))
    jobs = wakeups.channel(JOBS_CHANNEL, fallback_s=30)
    event = asyncio.Event()
    jobs.subscribe(event)
    task = await listening(wakeups)
    other = JobQueue(Database(blank_postgres.new_engine()))
    try:
        for _ in range(3):
            event.clear()
            queued = time.monotonic()
            await asyncio.to_thread(other.enqueue, JOB_KIND, {"psa": "local", "ticket_id": "1"})
            await asyncio.wait_for(event.wait(), 5)
            assert time.monotonic() - queued < 0.2
        assert jobs.received >= 3 and wakeups.received >= 3
    finally:
        await stop(task)


@pytest.mark.postgres
async def test_a_waiting_worker_claims_a_job_queued_elsewhere_at_once(blank_postgres: TestDatabase) -> None:
    """The worker's fallback poll is 30 s: only the notification can bring the job to it this fast."""
    db = Database.open(blank_postgres.url)
    blank_postgres.engines.append(db.engine)
    intake = ClaimingIntake(JobQueue(db))
    wakeups = Wakeups.for_engine(db.engine)
    jobs = wakeups.channel(JOBS_CHANNEL, fallback_s=30)
    listener = await listening(wakeups)
    worker = Worker(intake, idle_s=0.05, wakeups=jobs)
    assert jobs.idle_s(worker.idle_s) == 30
    running = asyncio.get_running_loop().create_task(worker.run())
    other = JobQueue(Database(blank_postgres.new_engine()))
    try:
        await asyncio.sleep(0.3)  # the worker has claimed nothing and is waiting
        for i in range(3):
            queued = time.monotonic()
            job, _ = await asyncio.to_thread(other.enqueue, JOB_KIND, {"psa": "local", "ticket_id": str(i)},
                                             dedupe_key=f"local:{i}")
            await until(lambda job=job: job.id in intake.processed, 5)
            assert intake.processed[job.id] - queued < 0.25
            await until(lambda job=job: other.get(job.id).status == "done", 5)
    finally:
        await stop(running, listener)


@pytest.mark.postgres
async def test_a_missed_notification_is_picked_up_by_the_fallback_poll(blank_postgres: TestDatabase) -> None:
    """A job that arrives without a notification (written by no enqueue, as when the listening connection
    was down) is claimed at the next fallback poll."""
    db = Database.open(blank_postgres.url)
    blank_postgres.engines.append(db.engine)
    intake = ClaimingIntake(JobQueue(db))
    wakeups = Wakeups.for_engine(db.engine)
    jobs = wakeups.channel(JOBS_CHANNEL, fallback_s=0.5)
    listener = await listening(wakeups)
    running = asyncio.get_running_loop().create_task(Worker(intake, idle_s=0.05, wakeups=jobs).run())
    try:
        await asyncio.sleep(0.2)
        now = datetime.now(UTC)
        with blank_postgres.new_engine().begin() as conn:  # no NOTIFY
            conn.execute(insert(JobRow).values(
                id="jb_silent", kind=JOB_KIND, payload={"psa": "local", "ticket_id": "9"}, dedupe_key=None,
                client_id=None, status="queued", attempts=0, max_attempts=5, run_after=now, lease_until=None,
                worker=None, last_error=None, created_at=now, updated_at=now, finished_at=None))
        await until(lambda: "jb_silent" in intake.processed, 0.5 + 2)
    finally:
        await stop(running, listener)


@pytest.mark.postgres
async def test_after_its_connection_drops_the_listener_reconnects_and_wakes_the_workers(
        blank_postgres: TestDatabase) -> None:
    """The listener reaches PostgreSQL through a TCP proxy on loopback (``tests/ops/tcp_proxy.py``) that
    the test takes down: a job queued meanwhile sends a notification nobody hears, and is claimed as
    soon as the listener is back (it wakes every worker on reconnecting), not at the 30 s fallback poll."""
    db = Database.open(blank_postgres.url)
    blank_postgres.engines.append(db.engine)
    proxy = ProxyThread("127.0.0.1", make_url(blank_postgres.url).port or 5432)
    proxy.up()
    via_proxy = make_url(blank_postgres.url).set(host="127.0.0.1", port=proxy.port)
    wakeups = Wakeups(via_proxy.set(drivername="postgresql").render_as_string(hide_password=False), retry_s=0.05)
    jobs = wakeups.channel(JOBS_CHANNEL, fallback_s=30)
    intake = ClaimingIntake(JobQueue(db))
    listener = await listening(wakeups)
    # the worker's own poll is 30 s too: only a wake-up brings a job to it within this test
    running = asyncio.get_running_loop().create_task(Worker(intake, idle_s=30, wakeups=jobs).run())
    try:
        await asyncio.sleep(0.2)
        await asyncio.to_thread(proxy.down)
        await until(lambda: not wakeups.listening and not jobs.listening, 5)
        job, _ = await asyncio.to_thread(JobQueue(Database(blank_postgres.new_engine())).enqueue, JOB_KIND,
                                         {"psa": "local", "ticket_id": "7"})
        await asyncio.sleep(0.5)
        assert job.id not in intake.processed  # the notification went nowhere
        await asyncio.to_thread(proxy.up)
        await until(lambda: job.id in intake.processed, 5)
    finally:
        await stop(running, listener)
        await asyncio.to_thread(proxy.close)


async def test_on_sqlite_nothing_listens_and_workers_keep_their_own_poll(tmp_path: Path) -> None:
    db = Database.open(sqlite_url(tmp_path))
    try:
        wakeups = Wakeups.for_engine(db.engine)
        jobs, roster = wakeups.channel(JOBS_CHANNEL, fallback_s=30), wakeups.channel(CHANGED_CHANNEL, fallback_s=30)
        await asyncio.wait_for(wakeups.run(), 1)  # returns at once: no LISTEN on SQLite
        assert not wakeups.listening and not jobs.listening and not roster.listening
        assert jobs.idle_s(0.5) == 0.5 and roster.idle_s(0.5) == 0.5
        JobQueue(db).enqueue(JOB_KIND, {"psa": "local", "ticket_id": "1"})  # no NOTIFY statement on SQLite
    finally:
        db.dispose()


async def test_an_unreachable_database_leaves_the_workers_polling(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing listens on this port: the listener keeps retrying, backing off, and waiters poll at their own pace;
    each retry is logged with the channels' names, never the password."""
    wakeups = Wakeups("postgresql://postgres:s3cr%40t-pw@127.0.0.1:9/test", retry_s=0.05, connect_timeout_s=1)
    jobs, roster = wakeups.channel(JOBS_CHANNEL, fallback_s=30), wakeups.channel(CHANGED_CHANNEL, fallback_s=30)
    with caplog.at_level(logging.WARNING, logger="mspclaw.store.wakeups"):
        task = asyncio.get_running_loop().create_task(wakeups.run())
        try:
            await asyncio.sleep(0.5)
            assert not task.done() and not wakeups.listening and not jobs.listening and not roster.listening
            assert jobs.idle_s(0.5) == 0.5 and roster.idle_s(0.5) == 0.5
        finally:
            await stop(task)
    retries = [r.getMessage() for r in caplog.records if r.name == "mspclaw.store.wakeups"]
    assert len(retries) >= 2
    assert all(f"not listening on {JOBS_CHANNEL}, {CHANGED_CHANNEL} (" in line for line in retries)
    assert [line.split("retrying in ")[1].split(" s")[0] for line in retries[:3]] == ["0.05", "0.1", "0.2"][
        :len(retries[:3])]
    assert not any("s3cr" in line for line in retries)


async def test_a_listen_refused_after_connecting_backs_off(caplog: pytest.LogCaptureFixture) -> None:
    """Connected, but ``LISTEN`` fails each time (a hot standby refuses it): the retries back off as when the
    server cannot be reached, rather than reconnecting every ``retry_s``. The connection is stood in for by an
    override of this module's own connect-and-listen step; the message's password is masked."""

    class Refused(Wakeups):
        async def _listen(self, conninfo: str) -> None:
            self._connected = True
            raise psycopg.errors.FeatureNotSupported(
                "cannot execute LISTEN during recovery (as postgres:s3cr@t-pw, s3cr%40t-pw)")

    wakeups = Refused("postgresql://postgres:s3cr%40t-pw@127.0.0.1:9/test", retry_s=0.05)
    wakeups.channel(JOBS_CHANNEL)
    with caplog.at_level(logging.WARNING, logger="mspclaw.store.wakeups"):
        task = asyncio.get_running_loop().create_task(wakeups.run())
        try:
            await asyncio.sleep(0.5)
        finally:
            await stop(task)
    retries = [r.getMessage() for r in caplog.records if r.name == "mspclaw.store.wakeups"]
    assert [line.split("retrying in ")[1].split(" s")[0] for line in retries[:3]] == ["0.05", "0.1", "0.2"]
    assert len(retries) <= 5, retries
    assert all("LISTEN during recovery" in line and "s3cr" not in line for line in retries), retries


class Counted(asyncio.Event):
    """An event that counts how often it was set (each wake-up of a waiter)."""

    def __init__(self) -> None:
        super().__init__()
        self.sets = 0

    def set(self) -> None:
        self.sets += 1
        super().set()


def own_name(prefix: str) -> str:
    """A channel or application name of this test's own: nothing else notifies it or connects as it."""
    return f"{prefix}_{secrets.token_hex(6)}"


def named(url: str, application_name: str) -> str:
    """The libpq connection string of ``url``, its connections shown as ``application_name``."""
    return make_url(url).set(drivername="postgresql").update_query_dict(
        {"application_name": application_name}).render_as_string(hide_password=False)


def notify(engine: Engine, channel: str) -> None:
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": channel})


def listen_backends(engine: Engine, application_name: str) -> list[int]:
    """The pids of the backends of ``application_name`` whose last statement was a ``LISTEN``."""
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT pid FROM pg_stat_activity WHERE application_name = :name "
                                      "AND query LIKE 'LISTEN %' ORDER BY pid"), {"name": application_name}).scalars())


async def backends_once(engine: Engine, application_name: str, predicate: Callable[[list[int]], bool],
                        seconds: float = 10) -> list[int]:
    deadline = time.monotonic() + seconds
    while not predicate(pids := await asyncio.to_thread(listen_backends, engine, application_name)):
        if time.monotonic() > deadline:
            raise AssertionError(f"listening backends of {application_name}: {pids}")
        await asyncio.sleep(0.05)
    return pids


@pytest.mark.postgres
async def test_one_connection_listens_on_every_channel_of_the_process(blank_postgres: TestDatabase) -> None:
    """The jobs' and the roster's channels over one backend; a channel asked for while it listens is added to that
    backend (``LISTEN`` on the live connection), not given a connection of its own."""
    app = own_name("wakeups")
    wakeups = Wakeups(named(blank_postgres.url, app))
    jobs, roster = wakeups.channel(JOBS_CHANNEL, fallback_s=30), wakeups.channel(CHANGED_CHANNEL, fallback_s=30)
    assert wakeups.channels == (JOBS_CHANNEL, CHANGED_CHANNEL)
    admin = blank_postgres.new_engine()
    task = await listening(wakeups)
    try:
        assert jobs.listening and roster.listening
        assert jobs.idle_s(0.5) == 30 and roster.idle_s(0.5) == 30
        [pid] = await backends_once(admin, app, lambda pids: len(pids) == 1)
        await asyncio.sleep(0.3)
        assert await asyncio.to_thread(listen_backends, admin, app) == [pid]
        for handle in (jobs, roster):  # both heard through it
            before = handle.received
            await asyncio.to_thread(notify, admin, handle.channel)
            await until(lambda handle=handle, before=before: handle.received > before, 5)

        late = wakeups.channel(own_name("late"), fallback_s=30)
        assert not late.listening and not wakeups.listening
        heard = asyncio.Event()
        late.subscribe(heard)
        await until(lambda: late.listening and wakeups.listening, 5)
        await asyncio.to_thread(notify, admin, late.channel)
        await until(lambda: late.received == 1, 5)
        assert await asyncio.to_thread(listen_backends, admin, app) == [pid]  # the same backend, still the only one
    finally:
        await stop(task)
    await backends_once(admin, app, lambda pids: not pids)  # closed when cancelled


def two_channels(wakeups: Wakeups, **options: float) -> tuple[ChannelWakeups, ChannelWakeups, list[Counted], Counted]:
    """Two channels of this test's own standing for the jobs' and the roster's: two job workers subscribed to the
    first, the roster's refresher to the second."""
    jobs, roster = wakeups.channel(own_name("jobs"), **options), wakeups.channel(own_name("roster"), **options)
    workers, refresher = [Counted(), Counted()], Counted()
    for event in workers:
        jobs.subscribe(event)
    roster.subscribe(refresher)
    return jobs, roster, workers, refresher


@pytest.mark.postgres
async def test_a_notification_wakes_the_waiters_of_its_channel_only(blank_postgres: TestDatabase) -> None:
    """A queued job does not wake the roster's refresher, a roster edit does not wake the job workers: two channels
    of this test's own stand for them (nothing else notifies these, so every wake-up is counted exactly)."""
    wakeups = Wakeups(listen_conninfo(blank_postgres.new_engine()))
    jobs, roster, workers, refresher = two_channels(wakeups)
    admin = blank_postgres.new_engine()
    task = await listening(wakeups)
    try:
        await until(lambda: min(e.sets for e in (*workers, refresher)) >= 1, 5)
        await asyncio.sleep(0.2)
        assert [e.sets for e in (*workers, refresher)] == [1, 1, 1]  # once, on connecting
        await asyncio.to_thread(notify, admin, jobs.channel)
        await until(lambda: [e.sets for e in workers] == [2, 2], 5)
        await asyncio.sleep(0.3)
        assert refresher.sets == 1

        await asyncio.to_thread(notify, admin, roster.channel)
        await until(lambda: refresher.sets == 2, 5)
        await asyncio.sleep(0.3)
        assert [e.sets for e in workers] == [2, 2]
        assert (jobs.received, roster.received, wakeups.received) == (1, 1, 2)
    finally:
        await stop(task)


@pytest.mark.postgres
async def test_a_terminated_listener_reconnects_and_wakes_every_waiter_once(blank_postgres: TestDatabase) -> None:
    """``pg_terminate_backend`` on the listening backend (as a server restart or an administrator does): the
    listener connects again after ``retry_s``, listens on every channel again over one new backend, and wakes each
    waiter of each channel exactly once for what it may have missed."""
    app = own_name("wakeups")
    wakeups = Wakeups(named(blank_postgres.url, app), retry_s=0.05)
    jobs, roster, workers, refresher = two_channels(wakeups, fallback_s=30)
    admin = blank_postgres.new_engine()
    task = await listening(wakeups)
    try:
        [pid] = await backends_once(admin, app, lambda pids: len(pids) == 1)
        await until(lambda: min(e.sets for e in (*workers, refresher)) >= 1, 5)
        await asyncio.sleep(0.2)
        assert [e.sets for e in (*workers, refresher)] == [1, 1, 1]  # once, on connecting
        with admin.begin() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
        [again] = await backends_once(admin, app, lambda pids: len(pids) == 1 and pids != [pid])
        await until(lambda: wakeups.listening, 5)
        await until(lambda: min(e.sets for e in (*workers, refresher)) >= 2, 5)
        await asyncio.sleep(0.3)
        assert [e.sets for e in (*workers, refresher)] == [2, 2, 2]  # once each, not once per channel
        assert jobs.listening and roster.listening and jobs.idle_s(0.5) == 30
        await asyncio.to_thread(notify, admin, roster.channel)  # and the new backend routes as the old one did
        await until(lambda: refresher.sets == 3, 5)
        await asyncio.sleep(0.2)
        assert [e.sets for e in workers] == [2, 2]
        assert await asyncio.to_thread(listen_backends, admin, app) == [again]
    finally:
        await stop(task)


@pytest.mark.postgres
async def test_a_server_holds_one_listening_backend_for_the_roster_and_the_jobs(
        blank_postgres: TestDatabase, tmp_path: Path) -> None:
    """The server as ``mspclaw serve`` builds and starts it (``wiring.build``, workers on): the roster's refresher
    and the job workers share one listening backend (before, each had its own)."""
    app = own_name("server")
    url = make_url(blank_postgres.url).update_query_dict({"application_name": app}).render_as_string(
        hide_password=False)
    server = build(Settings(data_dir=tmp_path / "one", api_key="test_one", database_url=url))
    admin = blank_postgres.new_engine()
    try:
        await server.start()
        try:
            await backends_once(admin, app, lambda pids: len(pids) >= 1)
            await asyncio.sleep(1.0)  # a second listener, if any, has connected by now
            listening = await asyncio.to_thread(listen_backends, admin, app)
            assert len(listening) == 1, f"listening backends: {listening}"
            before = server.staff.techs.notified
            await asyncio.to_thread(notify, admin, CHANGED_CHANNEL)
            await until(lambda: server.staff.techs.notified > before, 5)
        finally:
            await server.stop()
    finally:
        server.close()
