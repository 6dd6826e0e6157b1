"""The intake worker's scheduling, on the real job queue (SQLite in a temporary directory).

The ticket run itself is replaced by a function the test controls (``process``): what is under
test here is how the worker claims, how many jobs it runs at once, and that a waiting ticket
never stops it from claiming the next one. The full run is covered by test_intake.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mspclaw.pipeline.intake import JOB_KIND, Intake, Worker
from mspclaw.store.database import Database
from mspclaw.store.db import sqlite_url
from mspclaw.store.jobs import Job, JobQueue

pytestmark = pytest.mark.anyio


class HeldIntake(Intake):
    """An intake whose tickets wait until the test releases them."""

    def __init__(self, jobs: JobQueue) -> None:
        self.jobs = jobs
        self._listeners = []
        self.running: set[str] = set()
        self.most_at_once = 0
        self.release = asyncio.Event()

    async def process(self, job: Job) -> str:
        self.running.add(job.id)
        self.most_at_once = max(self.most_at_once, len(self.running))
        try:
            await self.release.wait()
        finally:
            self.running.discard(job.id)
        return "resolved"


def queue(tmp_path: Path) -> JobQueue:
    return JobQueue(Database.open(sqlite_url(tmp_path)))


async def until(predicate: object, seconds: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not predicate():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def test_waiting_tickets_hold_their_slots_and_the_rest_wait_in_the_queue(tmp_path: Path) -> None:
    jobs = queue(tmp_path)
    intake = HeldIntake(jobs)
    for i in range(5):
        jobs.enqueue(JOB_KIND, {"psa": "local", "ticket_id": str(i)}, dedupe_key=f"local:{i}")
    worker = Worker(intake, concurrency=3, idle_s=0.05)
    task = asyncio.get_running_loop().create_task(worker.run())
    try:
        await until(lambda: len(intake.running) == 3)
        await asyncio.sleep(0.3)  # several idle periods: still no fourth job while all slots wait
        assert intake.most_at_once == 3
        assert len(jobs.list(status="queued")) == 2
        intake.release.set()
        await until(lambda: len(jobs.list(status="done")) == 5)
        assert intake.most_at_once == 3
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_job_enqueued_while_idle_starts_without_waiting_for_the_poll(tmp_path: Path) -> None:
    jobs = queue(tmp_path)
    intake = HeldIntake(jobs)
    intake.release.set()
    worker = Worker(intake, concurrency=2, idle_s=30.0)  # the poll alone would take 30 s
    task = asyncio.get_running_loop().create_task(worker.run())
    try:
        await asyncio.sleep(0.2)  # the claimer has found nothing and sleeps
        intake.enqueue("local", "7", source="webhook")
        await until(lambda: len(jobs.list(status="done")) == 1, seconds=5.0)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_stopping_the_worker_stops_its_running_tickets(tmp_path: Path) -> None:
    jobs = queue(tmp_path)
    intake = HeldIntake(jobs)
    jobs.enqueue(JOB_KIND, {"psa": "local", "ticket_id": "1"}, dedupe_key="local:1")
    task = asyncio.get_running_loop().create_task(Worker(intake, concurrency=2, idle_s=0.05).run())
    await until(lambda: len(intake.running) == 1)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert intake.running == set()  # cancelled with the worker, not left behind
    assert jobs.list(status="running")[0].attempts == 1  # its lease runs out and another worker takes it


def test_a_worker_needs_a_slot(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one slot"):
        Worker(HeldIntake(queue(tmp_path)), concurrency=0)
