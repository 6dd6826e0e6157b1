"""A worker's slot completes its job and claims the next in one trip (``JobQueue.complete_and_claim``): one
statement on PostgreSQL, one transaction on SQLite, with the guarantees of ``complete`` and ``claim`` apart."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import Engine
from tests.store.statement_log import statements_counted

from mspclaw.store.database import Database
from mspclaw.store.db import migrate
from mspclaw.store.jobs import Job, JobQueue

if TYPE_CHECKING:
    from tests.store.conftest import TestDatabase

T0 = datetime(2026, 12, 7, 7, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def test_completing_a_job_claims_the_next_due_one_of_the_kinds(engine: Engine) -> None:
    clock = Clock()
    queue = JobQueue(Database(engine), clock=clock)
    first = queue.enqueue("psa_ticket", {"n": 1})[0]
    clock.now += timedelta(seconds=1)
    queue.enqueue("report", {})
    clock.now += timedelta(seconds=1)
    second = queue.enqueue("psa_ticket", {"n": 2})[0]
    clock.now += timedelta(seconds=1)
    held = queue.claim("w1", kinds=["psa_ticket"], lease_s=60)
    assert held is not None and held.id == first.id

    clock.now += timedelta(seconds=5)
    completed, claimed = queue.complete_and_claim(first.id, "w1", kinds=["psa_ticket"], lease_s=60)

    assert completed and claimed is not None and claimed.id == second.id
    assert (claimed.status, claimed.worker, claimed.attempts, claimed.lease_until) == (
        "running", "w1", 1, clock.now + timedelta(seconds=60))
    assert queue.get(second.id) == claimed
    done = queue.get(first.id)
    assert (done.status, done.lease_until, done.finished_at) == ("done", None, clock.now)
    # the last of its kind: completed, and nothing claimed (the report is another kind)
    assert queue.complete_and_claim(second.id, "w1", kinds=["psa_ticket"]) == (True, None)
    assert queue.get(second.id).status == "done"
    assert queue.stats()["queued"] == 1


def test_a_job_whose_lease_expired_is_completed_and_never_claimed_again_by_its_own_completion(
        engine: Engine) -> None:
    """Its lease ran out (no heartbeat) but nobody took it over: the completion counts, and the claim beside it
    (which sees the job still running with an expired lease) does not take it back."""
    clock = Clock()
    queue = JobQueue(Database(engine), clock=clock)
    job = queue.enqueue("psa_ticket", {})[0]
    assert queue.claim("w1", lease_s=10) is not None
    clock.now += timedelta(seconds=30)

    assert queue.complete_and_claim(job.id, "w1", lease_s=10) == (True, None)
    done = queue.get(job.id)
    assert (done.status, done.attempts, done.worker) == ("done", 1, "w1")


def test_a_job_taken_over_is_not_completed_but_the_slot_still_claims(engine: Engine) -> None:
    clock = Clock()
    queue = JobQueue(Database(engine), clock=clock)
    job = queue.enqueue("psa_ticket", {})[0]
    assert queue.claim("w1", lease_s=10) is not None
    clock.now += timedelta(seconds=11)
    assert queue.claim("w2", lease_s=60) is not None  # w1 was lost: w2 runs it now
    other = queue.enqueue("psa_ticket", {})[0]

    completed, claimed = queue.complete_and_claim(job.id, "w1", lease_s=10)

    assert not completed and claimed is not None and claimed.id == other.id
    taken = queue.get(job.id)
    assert (taken.status, taken.worker, taken.attempts) == ("running", "w2", 2)


def test_a_lost_job_with_no_attempt_left_is_dead_lettered_on_the_way_to_the_next(engine: Engine) -> None:
    clock = Clock()
    queue = JobQueue(Database(engine), clock=clock)
    mine = queue.enqueue("psa_ticket", {})[0]
    clock.now += timedelta(seconds=1)
    lost = queue.enqueue("psa_ticket", {}, max_attempts=1)[0]
    clock.now += timedelta(seconds=1)
    after = queue.enqueue("psa_ticket", {})[0]
    assert queue.claim("w1", lease_s=600) is not None
    assert queue.claim("w2", lease_s=10) is not None
    clock.now += timedelta(seconds=11)  # w2's lease ran out on its only attempt

    completed, claimed = queue.complete_and_claim(mine.id, "w1", lease_s=600)

    assert completed and claimed is not None and claimed.id == after.id
    dead = queue.get(lost.id)
    assert (dead.status, dead.last_error) == ("dead", "worker lost: w2 let its lease expire during attempt 1, "
                                                       "the last of 1")


def test_no_kinds_completes_and_claims_nothing(engine: Engine) -> None:
    queue = JobQueue(Database(engine))
    job = queue.enqueue("psa_ticket", {})[0]
    queue.enqueue("psa_ticket", {})
    assert queue.claim("w1") is not None
    assert queue.complete_and_claim(job.id, "w1", kinds=[]) == (True, None)
    with pytest.raises(TypeError):
        queue.complete_and_claim(job.id, "w1", kinds="psa_ticket")


@pytest.fixture
def pg(blank_postgres: TestDatabase) -> Engine:
    engine = blank_postgres.new_engine()
    migrate(engine)
    return engine


def test_on_postgresql_the_completion_and_the_claim_are_one_statement_and_no_transaction(pg: Engine) -> None:
    clock = Clock()
    queue = JobQueue(Database(pg), clock=clock)
    jobs = []
    for n in range(2):
        jobs.append(queue.enqueue("psa_ticket", {"n": n})[0])
        clock.now += timedelta(seconds=1)
    held = queue.claim("w1", kinds=["psa_ticket"])
    assert held is not None and held.id == jobs[0].id

    with statements_counted(pg) as counts:
        completed, claimed = queue.complete_and_claim(jobs[0].id, "w1", kinds=["psa_ticket"])
        last = queue.complete_and_claim(jobs[1].id, "w1", kinds=["psa_ticket"])

    assert completed and claimed is not None and claimed.id == jobs[1].id and last == (True, None)
    assert (counts["statements"], counts["WITH"], counts["commits"]) == (2, 2, 0)
    assert [queue.get(job.id).status for job in jobs] == ["done", "done"]


def test_a_job_claimed_by_a_completion_is_taken_over_when_its_worker_dies(engine: Engine) -> None:
    clock = Clock()
    queue = JobQueue(Database(engine), clock=clock)
    first = queue.enqueue("psa_ticket", {"n": 1})[0]
    clock.now += timedelta(seconds=1)
    second = queue.enqueue("psa_ticket", {"n": 2})[0]
    held = queue.claim("w1", lease_s=10)
    assert held is not None and held.id == first.id
    _, claimed = queue.complete_and_claim(first.id, "w1", lease_s=10)
    assert claimed is not None and claimed.id == second.id
    clock.now += timedelta(seconds=11)  # w1 died with it: no heartbeat, no completion

    taken = queue.claim("w2", lease_s=10)
    assert taken is not None and (taken.id, taken.worker, taken.attempts) == (second.id, "w2", 2)
    assert taken.last_error == "worker lost: w1 let its lease expire during attempt 1"
    assert queue.complete_and_claim(second.id, "w1") == (False, None)  # too late: w2 holds it
    assert queue.complete_and_claim(second.id, "w2") == (True, None)


@pytest.mark.parametrize("queued", [0, 3, 8, 13])
def test_concurrent_completions_never_claim_the_same_job(database: TestDatabase, queued: int) -> None:
    """Eight workers, each on its own connection pool and holding a job, complete it at once: every completion
    counts, and each due job goes to exactly one of them (as many as there are jobs, up to eight)."""
    workers = 8
    engines = [database.new_engine() for _ in range(workers)]
    queue = JobQueue(Database(engines[0]))
    held = []
    for index in range(workers):
        queue.enqueue("psa_ticket", {"held": index})
        job = queue.claim(f"w{index}", kinds=["psa_ticket"], lease_s=600)
        assert job is not None
        held.append(job)
    waiting = {queue.enqueue("psa_ticket", {"n": n})[0].id for n in range(queued)}
    start = threading.Barrier(workers)

    def finish(index: int) -> tuple[bool, Job | None]:
        mine = JobQueue(Database(engines[index]))
        start.wait()
        return mine.complete_and_claim(held[index].id, f"w{index}", kinds=["psa_ticket"], lease_s=600)

    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(finish, range(workers)))
    assert all(completed for completed, _ in results)
    ids = [job.id for _, job in results if job is not None]
    assert len(ids) == len(set(ids)), f"a job was claimed twice: {sorted(ids)}"
    assert set(ids) == waiting if queued <= workers else (len(ids) == workers and set(ids) <= waiting)
    assert [queue.get(job.id).status for job in held] == ["done"] * workers
    for index, (_, job) in enumerate(results):
        if job is not None:
            assert (queue.get(job.id).worker, queue.get(job.id).status) == (f"w{index}", "running")
