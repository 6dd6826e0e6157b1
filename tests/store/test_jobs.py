"""The durable job queue on SQLite and PostgreSQL: one job per event, one worker per job, nothing lost."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import Engine, func, insert, select

from mspclaw.errors import Conflict, NotFound
from mspclaw.store.database import Database
from mspclaw.store.db import make_engine, migrate, sqlite_url
from mspclaw.store.jobs import Job, JobQueue, PSAAccounts
from mspclaw.store.secretbox import SecretBox
from mspclaw.store.tables import JobRow

if TYPE_CHECKING:
    from tests.store.conftest import TestDatabase

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand, shared by every queue of one test."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def row_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(JobRow)).scalar_one()


# --- enqueue ---------------------------------------------------------------------------------------


def test_the_same_dedupe_key_makes_one_job(engine: Engine) -> None:
    queue = JobQueue(Database(engine))
    first, created = queue.enqueue("psa_ticket", {"ticket_id": "42"}, dedupe_key="superops:42", client_id="cl_1")
    again, created_again = queue.enqueue("psa_ticket", {"ticket_id": "42", "source": "poll"}, dedupe_key="superops:42")

    assert created and not created_again
    assert again == first
    assert first.payload == {"ticket_id": "42"} and first.client_id == "cl_1"
    assert (first.status, first.attempts, first.max_attempts) == ("queued", 0, 5)
    assert queue.get(first.id) == first
    # Finished jobs keep their key: a webhook redelivered a day later is still the same event.
    claimed = queue.claim("w1")
    assert claimed is not None and queue.complete(claimed.id, "w1")
    assert queue.enqueue("psa_ticket", {}, dedupe_key="superops:42") == (queue.get(first.id), False)
    # Jobs without a key never collide.
    assert queue.enqueue("psa_ticket", {})[1] and queue.enqueue("psa_ticket", {})[1]
    assert row_count(engine) == 3


def test_concurrent_enqueues_of_one_key_make_one_job(database: TestDatabase) -> None:
    engines = [database.new_engine() for _ in range(8)]
    start = threading.Barrier(len(engines))

    def deliver(engine: Engine) -> tuple[Job, bool]:
        start.wait()
        return JobQueue(Database(engine)).enqueue("psa_ticket", {"ticket_id": "7"}, dedupe_key="superops:7")

    with ThreadPoolExecutor(len(engines)) as pool:
        results = list(pool.map(deliver, engines))

    assert sum(created for _, created in results) == 1
    assert len({job.id for job, _ in results}) == 1
    assert row_count(engines[0]) == 1


def test_enqueue_refuses_what_the_table_cannot_hold(engine: Engine) -> None:
    queue = JobQueue(Database(engine))
    with pytest.raises(ValueError, match="max_attempts"):
        queue.enqueue("k", {}, max_attempts=0)
    with pytest.raises(ValueError, match="dedupe key longer than 200"):
        queue.enqueue("k", {}, dedupe_key="x" * 201)
    with pytest.raises(ValueError, match="JSON"):
        queue.enqueue("k", {"when": datetime.now(UTC)})
    with pytest.raises(ValueError, match="aware"):
        queue.enqueue("k", {}, run_after=datetime(2026, 1, 1))  # naive, on purpose
    assert row_count(engine) == 0


# --- claiming --------------------------------------------------------------------------------------


def test_claim_takes_the_oldest_due_job_of_the_asked_kinds(engine: Engine) -> None:
    clock = Clock()
    queue = JobQueue(Database(engine), clock=clock)
    later, _ = queue.enqueue("psa_ticket", {"n": 0}, run_after=T0 + timedelta(minutes=5))
    ids = []
    for n in range(3):
        ids.append(queue.enqueue("psa_ticket", {"n": n})[0].id)
        clock.advance(1)
    other, _ = queue.enqueue("report", {})

    assert queue.claim("w", kinds=["nothing"]) is None
    assert queue.claim("w", kinds=[]) is None
    got = [queue.claim("w", kinds=["psa_ticket"], lease_s=3600) for _ in range(3)]
    assert [job.id for job in got if job] == ids
    assert queue.claim("w", kinds=["psa_ticket"]) is None  # ``later`` is not due yet
    first = got[0]
    assert first is not None and first.status == "running" and first.worker == "w" and first.attempts == 1
    assert first.lease_until == clock.now + timedelta(seconds=3600)
    assert queue.get(first.id) == first

    claimed_other = queue.claim("w", lease_s=3600)
    assert claimed_other is not None and claimed_other.id == other.id
    clock.advance(300)
    claimed_later = queue.claim("w")
    assert claimed_later is not None and claimed_later.id == later.id


def test_a_claim_waiting_for_the_sqlite_write_lock_takes_the_job_committed_meanwhile(tmp_path: Path) -> None:
    # A claim that read its clock before waiting for the lock judged "due" by a time already past,
    # so a job enqueued during the wait looked not due yet and the worker went back to sleep.
    engine = make_engine(sqlite_url(tmp_path))
    migrate(engine)
    clock = Clock()
    queue = JobQueue(Database(engine), clock=clock)
    holder = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    holder.exec_driver_sql("BEGIN IMMEDIATE")
    with ThreadPoolExecutor(1) as pool:
        claim = pool.submit(queue.claim, "w", kinds=["psa_ticket"])
        time.sleep(0.3)  # the claim is now waiting for the write lock
        clock.advance(1)
        holder.execute(insert(JobRow).values(
            id="jb_enqueued_meanwhile", kind="psa_ticket", payload={}, status="queued", attempts=0, max_attempts=5,
            run_after=clock.now, created_at=clock.now, updated_at=clock.now))
        holder.exec_driver_sql("COMMIT")
        job = claim.result(timeout=30)
    holder.close()
    engine.dispose()
    assert job is not None and job.id == "jb_enqueued_meanwhile"


def test_two_workers_never_run_one_job(database: TestDatabase) -> None:
    """Four workers, each on its own connection pool, drain 200 jobs; each job runs exactly once.

    Without ``FOR UPDATE SKIP LOCKED`` (PostgreSQL) or ``BEGIN IMMEDIATE`` (SQLite) workers read
    the same due row and both claim it: this test then records a job claimed twice, or fails
    on SQLite's "database is locked" when two readers race to write.
    """
    jobs = 200
    engines = [database.new_engine() for _ in range(4)]
    queue = JobQueue(Database(engines[0]))
    expected = {queue.enqueue("psa_ticket", {"n": n})[0].id for n in range(jobs)}
    claims: list[tuple[str, str, int, bool]] = []  # job, worker, attempt, completed
    start = threading.Barrier(len(engines))

    def work(index: int) -> None:
        mine = JobQueue(Database(engines[index]))
        name = f"worker-{index}"
        start.wait()
        while (job := mine.claim(name, lease_s=120)) is not None:
            # the job's work, with no lock held: without it one worker can drain the queue before the
            # others' first wake-up from SQLite's busy wait (claim and complete take ~0.1 ms each)
            time.sleep(0.002)
            claims.append((job.id, name, job.attempts, mine.complete(job.id, name)))

    with ThreadPoolExecutor(len(engines)) as pool:
        for future in [pool.submit(work, i) for i in range(len(engines))]:
            future.result()

    twice = sorted(job_id for job_id, n in Counter(claim[0] for claim in claims).items() if n > 1)
    assert twice == [], f"{len(twice)} jobs claimed more than once, e.g. {[c for c in claims if c[0] == twice[0]]}"
    assert {claim[0] for claim in claims} == expected
    assert all(attempts == 1 and completed for _, _, attempts, completed in claims)
    assert len({claim[1] for claim in claims}) > 1, "the workers did not run concurrently"
    assert queue.stats() == {"queued": 0, "running": 0, "done": jobs, "dead": 0, "cancelled": 0}


CHILD = """
import sys, time
from mspclaw.store.db import make_engine
from mspclaw.store.jobs import JobQueue
from mspclaw.store.database import Database

job = JobQueue(Database(make_engine(sys.argv[1]))).claim("doomed-worker", lease_s=float(sys.argv[2]))
print(job.id if job else "none", flush=True)
time.sleep(600)
"""


def test_a_killed_workers_job_is_picked_up_after_its_lease(database: TestDatabase) -> None:
    engine = database.engines[0]
    queue = JobQueue(Database(engine))
    victim = queue.enqueue("psa_ticket", {"n": 0})[0]
    others = [queue.enqueue("psa_ticket", {"n": n})[0] for n in (1, 2)]

    child = subprocess.Popen([sys.executable, "-c", CHILD, database.url, "1.0"], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == victim.id
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=10)
        if child.stdout is not None:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL

    survivor = JobQueue(Database(database.new_engine()))
    # While the dead worker's lease runs, only the other jobs are handed out.
    for expected in others:
        job = survivor.claim("survivor", lease_s=30)
        assert job is not None and job.id == expected.id
        assert survivor.complete(job.id, "survivor")
    held = queue.get(victim.id)
    assert (held.status, held.worker, held.attempts) == ("running", "doomed-worker", 1)

    deadline = time.monotonic() + 15
    while (taken := survivor.claim("survivor", lease_s=30)) is None:
        assert time.monotonic() < deadline, "the dead worker's job was never picked up again"
        time.sleep(0.1)
    assert (taken.id, taken.attempts, taken.worker) == (victim.id, 2, "survivor")
    assert taken.last_error is not None and "doomed-worker" in taken.last_error
    assert survivor.complete(taken.id, "survivor")
    assert queue.stats() == {"queued": 0, "running": 0, "done": 3, "dead": 0, "cancelled": 0}


def test_a_lost_worker_on_its_last_attempt_dead_letters_the_job(engine: Engine) -> None:
    clock = Clock()
    queue = JobQueue(Database(engine), clock=clock)
    job = queue.enqueue("psa_ticket", {}, max_attempts=1)[0]
    assert queue.claim("w1", lease_s=10) is not None
    clock.advance(11)

    assert queue.claim("w2") is None
    dead = queue.get(job.id)
    assert (dead.status, dead.attempts, dead.finished_at) == ("dead", 1, clock.now)
    assert dead.last_error is not None and dead.last_error.startswith("worker lost: w1")
    assert not queue.complete(job.id, "w1")


# --- leases ----------------------------------------------------------------------------------------


def test_heartbeat_keeps_the_lease_and_a_lost_lease_is_refused(engine: Engine) -> None:
    clock = Clock()
    queue = JobQueue(Database(engine), clock=clock)
    job = queue.enqueue("psa_ticket", {})[0]
    assert queue.claim("w1", lease_s=10) is not None

    clock.advance(8)
    assert queue.heartbeat(job.id, "w1", lease_s=10)
    clock.advance(7)  # past the first lease (t+10), inside the extended one (t+18)
    assert queue.claim("w2") is None
    assert queue.get(job.id).lease_until == T0 + timedelta(seconds=18)

    clock.advance(4)  # t+19: the lease ran out and w2 takes the job over
    taken = queue.claim("w2", lease_s=10)
    assert taken is not None and (taken.worker, taken.attempts) == ("w2", 2)
    assert not queue.heartbeat(job.id, "w1")
    assert not queue.complete(job.id, "w1")
    with pytest.raises(Conflict, match="not held by w1"):
        queue.fail(job.id, "w1", "boom")
    assert queue.get(job.id).worker == "w2"
    assert queue.complete(job.id, "w2")
    assert not queue.heartbeat(job.id, "w2")  # a finished job has no lease to keep
    assert not queue.heartbeat("jb_missing", "w2")


# --- failing, retrying, cancelling -----------------------------------------------------------------


def test_failures_back_off_exponentially_then_dead_letter(engine: Engine) -> None:
    clock = Clock()
    queue = JobQueue(Database(engine), clock=clock, backoff_base_s=10, backoff_max_s=25)
    job = queue.enqueue("psa_ticket", {}, max_attempts=4)[0]

    # attempt n waits min(25, 10 * 2**(n-1)) seconds times a jitter in [0.5, 1]
    for attempt, full_delay in [(1, 10.0), (2, 20.0), (3, 25.0)]:
        claimed = queue.claim("w")
        assert claimed is not None and claimed.attempts == attempt
        failed = queue.fail(job.id, "w", f"PSA timeout {attempt}")
        assert (failed.status, failed.worker, failed.last_error) == ("queued", None, f"PSA timeout {attempt}")
        delay = (failed.run_after - clock.now).total_seconds()
        assert full_delay * 0.5 <= delay <= full_delay
        assert queue.get(job.id) == failed
        clock.now = failed.run_after - timedelta(milliseconds=1)
        assert queue.claim("w") is None, "claimed before its backoff ended"
        clock.now = failed.run_after

    assert queue.claim("w") is not None
    dead = queue.fail(job.id, "w", "still failing")
    assert (dead.status, dead.attempts, dead.last_error, dead.finished_at) == ("dead", 4, "still failing", clock.now)
    clock.advance(3600)
    assert queue.claim("w") is None

    revived = queue.retry(job.id)
    assert (revived.status, revived.attempts, revived.run_after, revived.finished_at) == ("queued", 0, clock.now, None)
    again = queue.claim("w")
    assert again is not None and again.id == job.id and again.attempts == 1


def test_a_non_retryable_failure_is_dead_at_once(engine: Engine) -> None:
    queue = JobQueue(Database(engine))
    job = queue.enqueue("psa_ticket", {})[0]
    assert queue.claim("w") is not None
    dead = queue.fail(job.id, "w", "psa_auth: token refused", retryable=False)
    assert (dead.status, dead.attempts) == ("dead", 1)
    assert queue.list(status="dead") == [dead]
    with pytest.raises(NotFound):
        queue.fail("jb_missing", "w", "x")


def test_cancel_stops_a_job_for_good_and_retry_brings_it_back(engine: Engine) -> None:
    clock = Clock()
    queue = JobQueue(Database(engine), clock=clock)
    queued = queue.enqueue("psa_ticket", {"n": 1})[0]
    running = queue.enqueue("psa_ticket", {"n": 2})[0]

    cancelled = queue.cancel(queued.id)
    assert (cancelled.status, cancelled.finished_at) == ("cancelled", clock.now)
    assert queue.cancel(queued.id) == cancelled  # cancelling twice changes nothing
    claimed = queue.claim("w", lease_s=10)
    assert claimed is not None and claimed.id == running.id
    with pytest.raises(Conflict, match="running"):
        queue.retry(running.id)
    assert queue.cancel(running.id).status == "cancelled"
    assert not queue.heartbeat(running.id, "w") and not queue.complete(running.id, "w")

    clock.advance(3600)
    assert queue.claim("w") is None, "a cancelled job was claimed"
    assert queue.stats()["cancelled"] == 2

    assert queue.retry(queued.id).status == "queued"
    again = queue.claim("w")
    assert again is not None and again.id == queued.id and queue.complete(again.id, "w")
    with pytest.raises(Conflict, match="already done"):
        queue.cancel(queued.id)
    with pytest.raises(NotFound, match="mspclaw jobs list"):
        queue.cancel("jb_missing")
    with pytest.raises(NotFound):
        queue.get("jb_missing")


def test_list_and_stats(engine: Engine) -> None:
    clock = Clock()
    queue = JobQueue(Database(engine), clock=clock)
    made = []
    for kind in ("psa_ticket", "psa_ticket", "report"):
        made.append(queue.enqueue(kind, {})[0])
        clock.advance(1)
    assert queue.claim("w", kinds=["report"]) is not None

    assert [job.id for job in queue.list()] == [job.id for job in reversed(made)]
    assert [job.id for job in queue.list(kind="psa_ticket", limit=1)] == [made[1].id]
    assert [job.id for job in queue.list(status="running")] == [made[2].id]
    assert queue.list(status="done") == []
    assert queue.stats() == {"queued": 2, "running": 1, "done": 0, "dead": 0, "cancelled": 0}


# --- cursors and PSA accounts ----------------------------------------------------------------------


def test_cursors_round_trip(engine: Engine, database: TestDatabase) -> None:
    queue = JobQueue(Database(engine))
    assert queue.get_cursor("poll:superops") is None
    queue.set_cursor("poll:superops", "2026-11-24T09:00:00+00:00")
    queue.set_cursor("poll:local", "a")
    queue.set_cursor("poll:superops", "2026-11-24T10:00:00+00:00")

    other = JobQueue(Database(database.new_engine()))
    assert other.get_cursor("poll:superops") == "2026-11-24T10:00:00+00:00"
    assert other.get_cursor("poll:local") == "a"


def test_psa_accounts_round_trip_and_never_show_secrets(engine: Engine) -> None:
    accounts = PSAAccounts(Database(engine), SecretBox.ephemeral())
    token, hook = "sk-live-0123456789abcdef", "whsec-fedcba9876543210"
    added = accounts.add("superops", "superops", {"subdomain": "acme", "region": "eu"},
                         {"token": token, "webhook_secret": hook})
    accounts.add("lab", "local", {"base_url": "http://127.0.0.1:9000"}, {"token": "t"}, enabled=False)

    got = accounts.get("superops")
    assert got == added
    assert (got.kind, got.config, got.enabled) == ("superops", {"subdomain": "acme", "region": "eu"}, True)
    assert got.secret_values() == {"token": token, "webhook_secret": hook}
    assert [(a.name, a.enabled) for a in accounts.list()] == [("lab", False), ("superops", True)]
    for shown in (repr(got), str(got), got.model_dump_json(), repr(accounts.list()), str(got.model_dump())):
        assert token not in shown and hook not in shown

    with pytest.raises(Conflict, match="already exists"):
        accounts.add("superops", "superops", {}, {"token": "x"})
    accounts.remove("superops")
    with pytest.raises(NotFound, match="mspclaw psa list"):
        accounts.get("superops")
    with pytest.raises(NotFound):
        accounts.remove("superops")
    assert [a.name for a in accounts.list()] == ["lab"]
