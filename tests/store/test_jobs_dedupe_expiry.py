"""A finished job keeps its dedupe key for ``dedupe_for``, then gives it up to a new job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from mspclaw.store.database import Database
from mspclaw.store.jobs import DEDUPE_KEEP, JobQueue


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_a_finished_jobs_key_expires_and_a_running_ones_never(engine: Engine) -> None:
    clock = Clock()
    queue = JobQueue(Database(engine), clock=clock)
    first, created = queue.enqueue("psa_ticket", {"n": 1}, dedupe_key="connectwise:7")
    assert created
    claimed = queue.claim("w1")
    assert claimed is not None and claimed.id == first.id
    clock.now += DEDUPE_KEEP * 3  # running (lease renewed by its worker): never a second job
    assert queue.heartbeat(first.id, "w1", lease_s=30)
    assert queue.enqueue("psa_ticket", {"n": 2}, dedupe_key="connectwise:7")[0].id == first.id
    assert queue.complete(first.id, "w1")
    clock.now += DEDUPE_KEEP - timedelta(seconds=1)  # finished, within the keep: the same job
    again, created = queue.enqueue("psa_ticket", {"n": 3}, dedupe_key="connectwise:7")
    assert (again.id, created) == (first.id, False)
    clock.now += timedelta(seconds=1)  # the keep is over: a new job takes the key
    second, created = queue.enqueue("psa_ticket", {"n": 4}, dedupe_key="connectwise:7")
    assert created and second.id != first.id and second.payload == {"n": 4}
    old = queue.get(first.id)
    assert old.status == "done" and old.dedupe_key is None
    assert queue.enqueue("psa_ticket", {"n": 5}, dedupe_key="connectwise:7") == (queue.get(second.id), False)


def test_a_shorter_keep_for_one_call(engine: Engine) -> None:
    clock = Clock()
    queue = JobQueue(Database(engine), clock=clock)
    first, _ = queue.enqueue("k", {}, dedupe_key="halo:1")
    assert queue.cancel(first.id) is not None
    clock.now += timedelta(minutes=10)
    assert queue.enqueue("k", {}, dedupe_key="halo:1", dedupe_for=timedelta(hours=1))[1] is False
    assert queue.enqueue("k", {}, dedupe_key="halo:1", dedupe_for=timedelta(minutes=10))[1] is True
