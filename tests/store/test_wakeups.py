"""Idle workers woken by a job queued on another connection, on the real PostgreSQL server on
127.0.0.1:5432 (a private schema per test, ``tests/store/conftest.py``): ``NOTIFY mspclaw_jobs`` from
:meth:`JobQueue.enqueue`, ``LISTEN`` on a dedicated psycopg connection in :class:`Wakeups`.

The enqueuing "replica" is a second engine (its own connections) used from a thread. NOTIFY reaches
every listener of the database, so other tests' jobs in other schemas may wake these workers too:
the assertions hold either way (a wake-up only makes a worker claim).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import insert
from sqlalchemy.engine import make_url
from tests.ops.tcp_proxy import ProxyThread

from mspclaw.pipeline.intake import JOB_KIND, Intake, Worker
from mspclaw.store.database import Database
from mspclaw.store.db import sqlite_url
from mspclaw.store.jobs import Job, JobQueue
from mspclaw.store.tables import JobRow
from mspclaw.store.wakeups import Wakeups, listen_conninfo

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
    wakeups = Wakeups(listen_conninfo(blank_postgres.new_engine()), fallback_s=30)
    event = asyncio.Event()
    wakeups.subscribe(event)
    task = await listening(wakeups)
    other = JobQueue(Database(blank_postgres.new_engine()))
    try:
        for _ in range(3):
            event.clear()
            queued = time.monotonic()
            await asyncio.to_thread(other.enqueue, JOB_KIND, {"psa": "local", "ticket_id": "1"})
            await asyncio.wait_for(event.wait(), 5)
            assert time.monotonic() - queued < 0.2
        assert wakeups.received >= 3
    finally:
        await stop(task)


@pytest.mark.postgres
async def test_a_waiting_worker_claims_a_job_queued_elsewhere_at_once(blank_postgres: TestDatabase) -> None:
    """The worker's fallback poll is 30 s: only the notification can bring the job to it this fast."""
    db = Database.open(blank_postgres.url)
    blank_postgres.engines.append(db.engine)
    intake = ClaimingIntake(JobQueue(db))
    wakeups = Wakeups.for_engine(db.engine, fallback_s=30)
    listener = await listening(wakeups)
    worker = Worker(intake, idle_s=0.05, wakeups=wakeups)
    assert wakeups.idle_s(worker.idle_s) == 30
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
    wakeups = Wakeups.for_engine(db.engine, fallback_s=0.5)
    listener = await listening(wakeups)
    running = asyncio.get_running_loop().create_task(Worker(intake, idle_s=0.05, wakeups=wakeups).run())
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
    wakeups = Wakeups(via_proxy.set(drivername="postgresql").render_as_string(hide_password=False),
                         fallback_s=30, retry_s=0.05)
    intake = ClaimingIntake(JobQueue(db))
    listener = await listening(wakeups)
    # the worker's own poll is 30 s too: only a wake-up brings a job to it within this test
    running = asyncio.get_running_loop().create_task(Worker(intake, idle_s=30, wakeups=wakeups).run())
    try:
        await asyncio.sleep(0.2)
        await asyncio.to_thread(proxy.down)
        await until(lambda: not wakeups.listening, 5)
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
        wakeups = Wakeups.for_engine(db.engine, fallback_s=30)
        await asyncio.wait_for(wakeups.run(), 1)  # returns at once: no LISTEN on SQLite
        assert not wakeups.listening
        assert wakeups.idle_s(0.5) == 0.5
        JobQueue(db).enqueue(JOB_KIND, {"psa": "local", "ticket_id": "1"})  # no NOTIFY statement on SQLite
    finally:
        db.dispose()


async def test_an_unreachable_database_leaves_the_workers_polling(tmp_path: Path) -> None:
    """Nothing listens on this port: the listener keeps retrying, and workers poll at their own pace."""
    wakeups = Wakeups("postgresql://postgres@127.0.0.1:9/test", fallback_s=30, retry_s=0.05,
                         connect_timeout_s=1)
    task = asyncio.get_running_loop().create_task(wakeups.run())
    try:
        await asyncio.sleep(0.3)
        assert not task.done() and not wakeups.listening
        assert wakeups.idle_s(0.5) == 0.5
    finally:
        await stop(task)
