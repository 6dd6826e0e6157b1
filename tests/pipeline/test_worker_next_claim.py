"""A worker slot whose job completes runs the next due job it claimed with that completion, without a claim of
its own (``JobQueue.complete_and_claim``); a failed job still gives its slot back to the claimer."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Collection
from pathlib import Path

import pytest

from mspclaw.errors import PSAError
from mspclaw.pipeline.intake import JOB_KIND, Intake, Worker
from mspclaw.store.database import Database
from mspclaw.store.db import sqlite_url
from mspclaw.store.jobs import Job, JobQueue

pytestmark = pytest.mark.anyio


class CountingQueue(JobQueue):
    """The real queue (SQLite), counting the claims and completions the worker asks for."""

    calls: Counter[str]

    def claim(self, worker: str, *, kinds: Collection[str] | None = None, lease_s: float = 30.0) -> Job | None:
        self.calls["claim"] += 1
        return super().claim(worker, kinds=kinds, lease_s=lease_s)

    def complete(self, job_id: str, worker: str) -> bool:
        self.calls["complete"] += 1
        return super().complete(job_id, worker)

    def complete_and_claim(self, job_id: str, worker: str, *, kinds: Collection[str] | None = None,
                           lease_s: float = 30.0) -> tuple[bool, Job | None]:
        self.calls["complete_and_claim"] += 1
        return super().complete_and_claim(job_id, worker, kinds=kinds, lease_s=lease_s)


class RecordingIntake(Intake):
    """An intake whose tickets end at once, in the order run (``fail``: the ticket ids whose PSA fails)."""

    def __init__(self, jobs: JobQueue, fail: Collection[str] = ()) -> None:
        self.jobs = jobs
        self._listeners = []
        self.ran: list[str] = []
        self.fail = set(fail)

    async def process(self, job: Job) -> str:
        ticket = str(job.payload["ticket_id"])
        self.ran.append(ticket)
        if ticket in self.fail:
            raise PSAError("the PSA refused the ticket")  # not retryable: dead at once
        return "resolved"


async def until(predicate: object, seconds: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not predicate():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


def counting_queue(tmp_path: Path) -> CountingQueue:
    queue = CountingQueue(Database.open(sqlite_url(tmp_path)))
    queue.calls = Counter()
    return queue


async def test_a_completed_job_hands_its_slot_the_next_job_without_a_claim(tmp_path: Path) -> None:
    jobs = counting_queue(tmp_path)
    for i in range(4):
        jobs.enqueue(JOB_KIND, {"psa": "local", "ticket_id": str(i)}, dedupe_key=f"local:{i}")
    intake = RecordingIntake(jobs)
    task = asyncio.get_running_loop().create_task(Worker(intake, concurrency=1, idle_s=30.0).run())
    try:
        await until(lambda: len(jobs.list(status="done")) == 4)
        await asyncio.sleep(0.1)  # the claimer's turn once the slot came back empty-handed
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert sorted(intake.ran) == ["0", "1", "2", "3"]
    assert jobs.calls["complete_and_claim"] == 4 and jobs.calls["complete"] == 0
    # the first job's claim, and one after the last completion found nothing more due (was: one per job, and that)
    assert jobs.calls["claim"] == 2


async def test_a_failed_job_gives_its_slot_back_to_the_claimer(tmp_path: Path) -> None:
    jobs = counting_queue(tmp_path)
    for i in range(3):
        jobs.enqueue(JOB_KIND, {"psa": "local", "ticket_id": str(i)}, dedupe_key=f"local:{i}")
    intake = RecordingIntake(jobs, fail={"0"})
    task = asyncio.get_running_loop().create_task(Worker(intake, concurrency=1, idle_s=30.0).run())
    try:
        await until(lambda: len(jobs.list(status="done")) == 2)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert sorted(intake.ran) == ["0", "1", "2"]
    assert jobs.list(status="dead")[0].payload["ticket_id"] == "0"
    assert jobs.calls["claim"] >= 2 and jobs.calls["complete_and_claim"] == 2
