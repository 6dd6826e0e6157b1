"""The job queue's hot path on PostgreSQL: a claim and an enqueue are one statement each, run in autocommit
mode, and concurrent claimers still never share a job (on SQLite too, where the claim is its own transaction).

``tests/store/test_jobs.py`` holds the queue's behaviour; this file what the one-statement forms must keep.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import psycopg
import pytest
from sqlalchemy import Engine
from tests.store.statement_log import statements_counted

from mspclaw.store.database import Database
from mspclaw.store.db import migrate
from mspclaw.store.jobs import Job, JobQueue
from mspclaw.store.wakeups import JOBS_CHANNEL, listen_conninfo

if TYPE_CHECKING:
    from tests.store.conftest import TestDatabase

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def pg(blank_postgres: TestDatabase) -> Engine:
    engine = blank_postgres.new_engine()
    migrate(engine)
    return engine


def test_a_claim_on_postgresql_is_one_statement_and_no_transaction(pg: Engine) -> None:
    queue = JobQueue(Database(pg))
    queued = [queue.enqueue("psa_ticket", {"n": n})[0] for n in range(2)]
    with statements_counted(pg) as counts:
        job = queue.claim("w1", kinds=["psa_ticket"], lease_s=60)
        other = queue.claim("w1", lease_s=60)
        none = queue.claim("w1", kinds=["psa_ticket"])
    assert job is not None and other is not None and none is None
    assert [job.id, other.id] == [j.id for j in queued]
    assert (counts["statements"], counts["UPDATE"], counts["commits"]) == (3, 3, 0)
    assert queue.get(job.id) == job and (job.status, job.worker, job.attempts) == ("running", "w1", 1)


def test_an_enqueue_on_postgresql_is_one_statement_that_notifies_only_a_new_job(pg: Engine) -> None:
    queue = JobQueue(Database(pg))
    conninfo = listen_conninfo(pg)
    assert conninfo is not None
    with psycopg.connect(conninfo, autocommit=True) as listener:
        listener.execute(f"LISTEN {JOBS_CHANNEL}")
        with statements_counted(pg) as counts:
            job, created = queue.enqueue("psa_ticket", {"n": 1}, dedupe_key="local:1")
            keyless, keyless_created = queue.enqueue("report", {})
        assert created and keyless_created
        assert (counts["statements"], counts["WITH"], counts["commits"]) == (2, 2, 0)
        heard = [n.payload for n in listener.notifies(timeout=5, stop_after=2)]
        assert sorted(heard) == ["psa_ticket", "report"]

        with statements_counted(pg) as counts:
            again, created_again = queue.enqueue("psa_ticket", {"n": 1}, dedupe_key="local:1")
        assert (again, created_again) == (job, False)
        assert counts["statements"] == 2  # the insert that inserted nothing, then the read of the job there
        # no notification for the duplicate: the next one heard is the next new job's
        queue.enqueue("later", {})
        assert [n.payload for n in listener.notifies(timeout=5, stop_after=1)] == ["later"]
    assert queue.get(job.id) == job and queue.get(keyless.id) == keyless


def test_a_lost_workers_job_is_taken_over_or_dead_lettered_with_the_same_words_on_both_databases(
        engine: Engine) -> None:
    clock = Clock()
    queue = JobQueue(Database(engine), clock=clock)
    last = queue.enqueue("psa_ticket", {}, max_attempts=1)[0]
    clock.now += timedelta(seconds=1)
    retried = queue.enqueue("psa_ticket", {}, max_attempts=3)[0]
    assert queue.claim("w1", lease_s=10) is not None and queue.claim("w1", lease_s=10) is not None
    clock.now += timedelta(seconds=11)

    taken = queue.claim("w2", lease_s=10)  # the first due one is dead-lettered on the way
    assert taken is not None and taken.id == retried.id
    assert (taken.status, taken.worker, taken.attempts, taken.finished_at) == ("running", "w2", 2, None)
    assert taken.last_error == "worker lost: w1 let its lease expire during attempt 1"
    assert queue.get(taken.id) == taken
    dead = queue.get(last.id)
    assert (dead.status, dead.worker, dead.attempts, dead.lease_until, dead.finished_at) == (
        "dead", "w1", 1, None, clock.now)
    assert dead.last_error == "worker lost: w1 let its lease expire during attempt 1, the last of 1"
    assert queue.claim("w2") is None


@pytest.mark.parametrize("jobs", [0, 3, 8, 13])
def test_concurrent_claimers_never_get_the_same_job(database: TestDatabase, jobs: int) -> None:
    """Eight claimers, each on its own connection pool, claim at once: each due job goes to exactly one of
    them, and as many claimers get a job as there are jobs (a row is only skipped while another claimer holds
    it, and that one takes it); with no job, none gets one."""
    claimers = 8
    engines = [database.new_engine() for _ in range(claimers)]
    queue = JobQueue(Database(engines[0]))
    for _ in range(5):  # rounds: each starts the claimers together again
        queued = {queue.enqueue("psa_ticket", {"n": n})[0].id for n in range(jobs)}
        start = threading.Barrier(claimers)

        def claim(index: int, start: threading.Barrier = start) -> tuple[str, Job | None]:
            mine = JobQueue(Database(engines[index]))
            start.wait()
            return f"w{index}", mine.claim(f"w{index}", kinds=["psa_ticket"], lease_s=600)

        with ThreadPoolExecutor(claimers) as pool:
            results = list(pool.map(claim, range(claimers)))
        got = [(worker, job) for worker, job in results if job is not None]
        ids = [job.id for _, job in got]
        assert len(ids) == len(set(ids)), f"a job was claimed twice: {sorted(ids)}"
        assert set(ids) == queued if jobs <= claimers else (len(ids) == claimers and set(ids) <= queued)
        for worker, job in got:
            assert (queue.get(job.id).worker, queue.get(job.id).status) == (worker, "running")
        for job_id in ids:  # done, so the next round claims only its own jobs
            assert queue.complete(job_id, next(w for w, j in got if j.id == job_id))
        for job_id in queued - set(ids):
            queue.cancel(job_id)
