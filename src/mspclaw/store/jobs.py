"""The durable job queue, the pollers' cursors and the PSA accounts.

A job lives in the ``jobs`` table from the moment it is enqueued until it is done, dead or
cancelled; a process that dies loses no job, only the lease on the one it was running.

* **Enqueue** is idempotent per ``dedupe_key`` (UNIQUE in the table): the same key again, from
  another thread, process or replica, returns the job that already has it while that job is
  queued or running, and for ``dedupe_for`` (:data:`DEDUPE_KEEP`, a day) after it finished; then
  the old job gives the key up (its ``dedupe_key`` becomes NULL) and a new job is queued. The
  key outlives the PSA webhooks' replay window (``mspclaw.connectors.freshness``), so a replayed
  delivery that is still fresh finds its job. The insert is ``ON CONFLICT (dedupe_key) DO
  NOTHING``: one statement queues the first delivery, and one that inserts nothing means
  "already queued" (that job is then read).
  On PostgreSQL the insert and the ``NOTIFY`` that wakes idle workers are one statement (a
  ``pg_notify`` over the CTE of the insert: nothing is notified when nothing was inserted, and
  the notification leaves at the statement's commit, as ``NOTIFY``'s does).
* **Claim** takes the oldest due job: queued with ``run_after`` reached, or running with its
  lease expired (its worker died). On PostgreSQL the claim is one statement in autocommit mode,
  ``UPDATE jobs SET ... WHERE id = (SELECT id ... FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING
  ...``: the subquery locks the candidate row (concurrent claimers each lock a different row and
  never wait for each other) and the update takes it under that lock. On SQLite the claim reads
  then updates in a ``BEGIN IMMEDIATE`` transaction, which holds the database's single write
  lock from the read to the commit. Either way one job is held by one worker at a time. A job
  whose lease expired on its last allowed attempt goes to ``dead`` (on PostgreSQL the same
  statement does that, from the row's values before it, and the claim tries again).
* The holder keeps its lease alive with :meth:`JobQueue.heartbeat` and ends the job with
  :meth:`JobQueue.complete` or :meth:`JobQueue.fail`; each checks that the caller still holds the
  job, so a worker that was taken over cannot finish someone else's attempt. Worker names must
  therefore be unique per running worker (host, process and slot, say).
* :meth:`JobQueue.fail` re-queues with exponential backoff and jitter, or dead-letters the job
  after ``max_attempts`` attempts or a non-retryable error. :meth:`JobQueue.retry` and
  :meth:`JobQueue.cancel` are the operator's levers.

Every time comes from the injected ``clock`` (aware UTC), so tests move time instead of sleeping.
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, cast, get_args

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from sqlalchemy import (
    Connection,
    Row,
    Select,
    String,
    Table,
    Update,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    true,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from mspclaw.errors import Conflict, NotFound, StoreError
from mspclaw.store.clock import aware_now
from mspclaw.store.database import Database
from mspclaw.store.fastsql import Transaction
from mspclaw.store.secretbox import SecretBox, open_map, seal_map
from mspclaw.store.tables import JobRow, PSAAccountRow, PSACursor, UTCDateTime, new_id, utcnow
from mspclaw.store.wakeups import JOBS_CHANNEL

JobStatus = Literal["queued", "running", "done", "dead", "cancelled"]
JOB_STATUSES: tuple[JobStatus, ...] = get_args(JobStatus)

DEDUPE_KEEP: Final = timedelta(days=1)
"""How long a finished job keeps its dedupe key: later deliveries of the key make a new job."""
_FINISHED: Final = ("done", "dead", "cancelled")

_JOBS = cast("Table", JobRow.__table__)
_ACCOUNTS = cast("Table", PSAAccountRow.__table__)
_MAX_ERROR = 10_000

# Built once: the statements every job runs (building one per call cost more than running it on SQLite),
# prepared once (FastSQL, the database's fast path).
_BY_DEDUPE_KEY = select(_JOBS).where(_JOBS.c.dedupe_key == bindparam("dedupe_key"))
_DUE = select(_JOBS).where(or_(
    and_(_JOBS.c.status == "queued", _JOBS.c.run_after <= bindparam("now")),
    and_(_JOBS.c.status == "running", _JOBS.c.lease_until < bindparam("now")),
))
_ORDER = (_JOBS.c.run_after, _JOBS.c.created_at, _JOBS.c.id)
# SKIP LOCKED on PostgreSQL; SQLite renders no FOR UPDATE and relies on BEGIN IMMEDIATE.
_CLAIM_ANY = _DUE.order_by(*_ORDER).limit(1).with_for_update(skip_locked=True)


@functools.lru_cache(maxsize=16)
def _claim_kinds(count: int) -> Select[Any]:
    """The claim among ``count`` kinds, bound as ``:kind_0`` ... (one statement per number of kinds)."""
    kinds: list[Any] = [bindparam(f"kind_{i}") for i in range(count)]
    return _DUE.where(_JOBS.c.kind.in_(kinds)).order_by(*_ORDER).limit(1).with_for_update(skip_locked=True)


# PostgreSQL: the claim as one statement. Every column named in SET or in a CASE is the row's value
# before the update; RETURNING gives the row after it. A running job (its lease expired) whose attempts
# are used up goes to dead instead, with the same last_error the SQLite path writes.
_c = _JOBS.c
_LOST = _c.status == "running"
_USED_UP = and_(_LOST, _c.attempts >= _c.max_attempts)
_LOST_ERROR = (literal("worker lost: ", String) + func.coalesce(_c.worker, "")
               + " let its lease expire during attempt " + sql_cast(_c.attempts, String))


@functools.lru_cache(maxsize=16)
def _claim_pg(count: int | None, skip_done: bool = False) -> Update:
    """``UPDATE jobs ... WHERE id = (the claim's SELECT ... FOR UPDATE SKIP LOCKED) RETURNING *``; ``count``:
    the number of kinds (``None``: any kind); ``skip_done``: never the job ``p_id`` (the one completed beside it)."""
    candidate = (_CLAIM_ANY if count is None else _claim_kinds(count)).with_only_columns(_c.id).correlate(None)
    if skip_done:
        candidate = candidate.where(_c.id != bindparam("p_id"))
    pick = candidate.scalar_subquery()
    now = bindparam("p_now", type_=UTCDateTime())
    return update(_JOBS).where(_c.id == pick).values(
        status=case((_USED_UP, "dead"), else_="running"),
        worker=case((_USED_UP, _c.worker), else_=bindparam("p_worker", type_=String())),
        lease_until=case((_USED_UP, None), else_=bindparam("p_lease_until", type_=UTCDateTime())),
        attempts=case((_USED_UP, _c.attempts), else_=_c.attempts + 1),
        finished_at=case((_USED_UP, now), else_=_c.finished_at),
        updated_at=now,
        last_error=case((_USED_UP, _LOST_ERROR + ", the last of " + sql_cast(_c.max_attempts, String)),
                        (_LOST, _LOST_ERROR), else_=_c.last_error),
    ).returning(*_JOBS.c)


def _lost_error(worker: str | None, attempts: int) -> str:
    """The ``last_error`` of a job taken over from a worker whose lease expired (as ``_LOST_ERROR``)."""
    return f"worker lost: {worker or ''} let its lease expire during attempt {attempts}"


_DEAD = update(_JOBS).where(_JOBS.c.id == bindparam("p_id")).values(
    status="dead", lease_until=None, finished_at=bindparam("p_now"), updated_at=bindparam("p_now"),
    last_error=bindparam("p_last_error"))
_TAKE = update(_JOBS).where(_JOBS.c.id == bindparam("p_id")).values(
    status="running", worker=bindparam("p_worker"), lease_until=bindparam("p_lease_until"),
    attempts=bindparam("p_attempts"), updated_at=bindparam("p_now"), last_error=bindparam("p_last_error"))
# A finished job (not queued, not running) gives its dedupe key up once it finished before ``p_before``.
_RELEASE_KEY = update(_JOBS).where(
    _JOBS.c.id == bindparam("p_id"), _JOBS.c.dedupe_key == bindparam("p_key"), _JOBS.c.status != "queued",
    _JOBS.c.status != "running", _JOBS.c.finished_at <= bindparam("p_before"),
).values(dedupe_key=None, updated_at=bindparam("p_now"))
_HELD = and_(_JOBS.c.id == bindparam("p_id"), _JOBS.c.worker == bindparam("p_worker"), _JOBS.c.status == "running")
_HEARTBEAT = update(_JOBS).where(_HELD).values(lease_until=bindparam("p_lease_until"), updated_at=bindparam("p_now"))
_COMPLETE = update(_JOBS).where(_HELD).values(status="done", lease_until=None, finished_at=bindparam("p_now"),
                                              updated_at=bindparam("p_now"))
_NOTIFY = select(func.pg_notify(bindparam("p_channel"), bindparam("p_kind")))


@functools.lru_cache(maxsize=16)
def _complete_and_claim_pg(count: int | None) -> Select[Any]:
    """PostgreSQL: :data:`_COMPLETE` (``p_id``, ``p_worker``) and the claim of the next due job for the same
    worker (:func:`_claim_pg`) as one statement: one row, ``completed`` (1 when the job was held and is now
    done, else 0) and the claimed job's columns (all ``NULL`` when nothing was due). Both sub-statements
    see the snapshot from before the statement, where the completed job is still running: the claim skips
    it by its id, in case its lease had expired (a row may not be updated twice in one statement)."""
    done = _COMPLETE.returning(_c.id).cte("completed_job")
    claimed = _claim_pg(count, skip_done=True).cte("claimed_job")
    completed = select(func.count()).select_from(done).scalar_subquery().label("completed")
    one_row = select(literal_column("1").label("one")).subquery("one_row")
    return select(completed, *claimed.c).select_from(one_row.outerjoin(claimed, true()))


def _insert_new_key(dialect: Any) -> Any:
    """``INSERT ... ON CONFLICT (dedupe_key) DO NOTHING RETURNING id`` (a NULL key never conflicts)."""
    return dialect.insert(_JOBS).on_conflict_do_nothing(index_elements=[_c.dedupe_key]).returning(_c.id)


# PostgreSQL: the insert and the wake-up of idle workers in one statement; a row only when one was inserted.
_NEW_JOB = _insert_new_key(postgresql).cte("new_job")
_ENQUEUE = {"postgresql": select(_NEW_JOB.c.id, func.pg_notify(bindparam("p_channel", type_=String()),
                                                               bindparam("p_kind", type_=String())))
            .select_from(_NEW_JOB),
            "sqlite": _insert_new_key(sqlite)}


class Job(BaseModel):
    """One row of ``jobs``, detached from any database session."""

    model_config = ConfigDict(frozen=True)

    id: str
    kind: str
    payload: dict[str, Any]
    dedupe_key: str | None
    client_id: str | None
    status: JobStatus
    attempts: int
    """Claims so far, the running one included."""
    max_attempts: int
    run_after: datetime
    """Not claimed before this time (the backoff of a failed attempt)."""
    lease_until: datetime | None
    worker: str | None
    """Who holds the job while running; afterwards, who ran it last."""
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


@contextmanager
def _store_errors(action: str) -> Iterator[None]:
    try:
        yield
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot {action}: {exc}") from exc


def _job(row: Row[Any] | Mapping[str, Any]) -> Job:
    return Job.model_validate(dict(row._mapping) if isinstance(row, Row) else dict(row))


def _plain_json(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The payload as the database will hand it back (tuples become lists); ValueError if not JSON."""
    try:
        plain: dict[str, Any] = json.loads(json.dumps(dict(payload), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"a job payload must be JSON: {exc}") from exc
    return plain


def _check_lease(lease_s: float) -> None:
    if not lease_s > 0:
        raise ValueError(f"a lease must be longer than 0 seconds, not {lease_s}")


def _claim_args(worker: str, kinds: Collection[str] | None, lease_s: float) -> tuple[str, ...] | None:
    """A claim's arguments checked; its kinds in a fixed order (``None``: any kind, ``()``: none at all)."""
    if isinstance(kinds, str):
        raise TypeError("kinds is a collection of kinds, not one kind")
    if not worker:
        raise ValueError("a worker needs a name")
    _check_length("worker name", worker, 100)
    _check_lease(lease_s)
    return tuple(sorted(set(kinds))) if kinds is not None else None


def _check_length(what: str, value: str | None, limit: int) -> None:
    if value is not None and len(value) > limit:
        raise ValueError(f"{what} longer than {limit} characters: {value[:80]!r}")


class JobQueue:
    """Enqueue, claim and settle jobs; read and move pollers' cursors."""

    def __init__(
        self,
        db: Database,
        *,
        clock: Callable[[], datetime] = utcnow,
        backoff_base_s: float = 5.0,
        backoff_max_s: float = 600.0,
    ) -> None:
        if backoff_base_s < 0 or backoff_max_s < 0:
            raise ValueError("backoff times must not be negative")
        self._db = db
        self._clock = clock
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._fast = fast = db.fast
        self._pg = db.dialect == "postgresql"
        # PostgreSQL wakes idle workers on every replica (store/wakeups.py), notified by the insert
        # itself; SQLite's wake in-process.
        self._insert_new_key = fast.prepare(_ENQUEUE["postgresql" if self._pg else "sqlite"])
        self._by_key = fast.prepare(_BY_DEDUPE_KEY)
        self._release_key = fast.prepare(_RELEASE_KEY)
        self._claim_any, self._take, self._dead = fast.prepare(_CLAIM_ANY), fast.prepare(_TAKE), fast.prepare(_DEAD)
        self._heartbeat, self._complete = fast.prepare(_HEARTBEAT), fast.prepare(_COMPLETE)
        self._notify = fast.prepare(_NOTIFY) if self._pg else None

    @property
    def commits_wait_for_server(self) -> bool:
        """Whether a commit waits for a database server (PostgreSQL) rather than a local file write."""
        return self._db.commits_wait_for_server

    def _now(self) -> datetime:
        return aware_now(self._clock, "the job queue's clock")

    # --- producing -------------------------------------------------------------------------------

    def enqueue(
        self,
        kind: str,
        payload: Mapping[str, Any],
        *,
        dedupe_key: str | None = None,
        client_id: str | None = None,
        max_attempts: int = 5,
        run_after: datetime | None = None,
        dedupe_for: timedelta = DEDUPE_KEEP,
    ) -> tuple[Job, bool]:
        """Queue a job; return it and whether it was created.

        With a ``dedupe_key`` that some job already has, nothing is queued and that job is
        returned with ``False``, unless that job finished more than ``dedupe_for`` ago: then it
        gives the key up and the new job is queued.
        """
        if not kind:
            raise ValueError("a job needs a kind")
        _check_length("job kind", kind, 50)
        _check_length("dedupe key", dedupe_key, 200)
        _check_length("client id", client_id, 32)
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if run_after is not None and run_after.tzinfo is None:
            raise ValueError("run_after must be an aware datetime")
        now = self._now()
        values: dict[str, Any] = {
            "id": new_id("jb"), "kind": kind, "payload": _plain_json(payload), "dedupe_key": dedupe_key,
            "client_id": client_id, "status": "queued", "attempts": 0, "max_attempts": max_attempts,
            "run_after": run_after.astimezone(UTC) if run_after is not None else now, "lease_until": None,
            "worker": None, "last_error": None, "created_at": now, "updated_at": now, "finished_at": None,
        }
        inserting = {**values, "p_channel": JOBS_CHANNEL, "p_kind": kind} if self._pg else values
        with _store_errors("enqueue a job"):
            # One statement: the key's first job is inserted (and, on PostgreSQL, idle workers notified), a
            # later one does nothing (no read before it). A job without a key is always inserted.
            inserted = bool(self._fast.read(self._insert_new_key, inserting, immediate=True))
            if not inserted and dedupe_key is not None:
                existing = self._by_dedupe_key(dedupe_key)
                if existing is not None and not self._expired(existing, now, dedupe_for):
                    return existing, False
                if existing is not None:
                    self._fast.run(self._release_key, {"p_id": existing.id, "p_key": dedupe_key, "p_now": now,
                                                       "p_before": now - dedupe_for}, immediate=True)
                # The key was free, or given up just now (or by a concurrent enqueue): one more try.
                if not self._fast.read(self._insert_new_key, inserting, immediate=True):
                    existing = self._by_dedupe_key(dedupe_key)
                    if existing is None:
                        raise StoreError(f"job with dedupe key {dedupe_key!r} was neither inserted nor found")
                    return existing, False
            elif not inserted:
                raise StoreError(f"job {values['id']} was not inserted")
        return _job(values), True

    def _wake_workers(self, kind: str) -> None:
        """``NOTIFY mspclaw_jobs`` on PostgreSQL, once the new job is committed (nothing on SQLite)."""
        if self._notify is not None:
            self._fast.read(self._notify, {"p_channel": JOBS_CHANNEL, "p_kind": kind})

    @staticmethod
    def _expired(job: Job, now: datetime, dedupe_for: timedelta) -> bool:
        return job.status in _FINISHED and job.finished_at is not None and now - job.finished_at >= dedupe_for

    def _by_dedupe_key(self, dedupe_key: str) -> Job | None:
        with _store_errors("read the job queue"):
            row = self._fast.mapping(self._by_key, {"dedupe_key": dedupe_key})
        return _job(row) if row is not None else None

    # --- working ---------------------------------------------------------------------------------

    def claim(self, worker: str, *, kinds: Collection[str] | None = None, lease_s: float = 30.0) -> Job | None:
        """Take the oldest due job for ``worker``, or ``None`` when nothing is due.

        Due means queued with ``run_after`` reached, or running with an expired lease (a lost
        worker's job, taken over). The job becomes running, held by ``worker`` until
        ``now + lease_s``, with one more attempt. A lost worker's job that has no attempt left
        goes to ``dead`` with ``last_error`` saying so, and the search goes on.
        """
        ordered = _claim_args(worker, kinds, lease_s)
        if ordered == ():
            return None
        params: dict[str, Any] = {f"kind_{i}": kind for i, kind in enumerate(ordered or ())}
        if self._pg:
            return self._claim_pg(worker, ordered, params, lease_s)
        with _store_errors("claim a job"), self._fast.transaction(immediate=True) as tx:
            return self._claim_in(tx, worker, ordered, params, lease_s)

    def _claim_in(self, tx: Transaction, worker: str, kinds: tuple[str, ...] | None, params: dict[str, Any],
                  lease_s: float) -> Job | None:
        """:meth:`claim` on SQLite, in ``tx`` (a ``BEGIN IMMEDIATE`` transaction)."""
        stmt = self._claim_any if kinds is None else self._fast.prepare(_claim_kinds(len(kinds)))
        # "now" is read once the write lock is held: read before waiting for it, it would miss a
        # job enqueued (and committed) during the wait, whose run_after is later than that "now".
        now = params["now"] = self._now()
        while True:
            row = tx.mapping(stmt, params)
            if row is None:
                return None
            last_error = row["last_error"]
            if row["status"] == "running":
                last_error = _lost_error(row["worker"], row["attempts"])
                if row["attempts"] >= row["max_attempts"]:
                    tx.execute(self._dead, {"p_id": row["id"], "p_now": now,
                                            "p_last_error": f"{last_error}, the last of {row['max_attempts']}"})
                    continue
            values = {"status": "running", "worker": worker, "lease_until": now + timedelta(seconds=lease_s),
                      "attempts": row["attempts"] + 1, "updated_at": now, "last_error": last_error}
            tx.execute(self._take, {"p_id": row["id"], "p_worker": worker, "p_lease_until": values["lease_until"],
                                    "p_attempts": values["attempts"], "p_now": now, "p_last_error": last_error})
            return _job({**row, **values})

    def _claim_pg(self, worker: str, kinds: tuple[str, ...] | None, params: dict[str, Any],
                  lease_s: float) -> Job | None:
        """:meth:`claim` on PostgreSQL: one statement in autocommit mode per job looked at (one, unless a lost
        worker's job on its last attempt is dead-lettered on the way)."""
        stmt = self._fast.prepare(_claim_pg(len(kinds) if kinds is not None else None))
        with _store_errors("claim a job"):
            while True:
                now = self._now()
                row = self._fast.mapping(stmt, {**params, "now": now, "p_now": now, "p_worker": worker,
                                                "p_lease_until": now + timedelta(seconds=lease_s)})
                if row is None:
                    return None
                if row["status"] == "running":
                    return _job(row)
                # dead-lettered: its worker was lost on its last attempt; look for the next due job

    def complete_and_claim(self, job_id: str, worker: str, *, kinds: Collection[str] | None = None,
                           lease_s: float = 30.0) -> tuple[bool, Job | None]:
        """:meth:`complete` the job, then :meth:`claim` the next one for the same ``worker``, in one trip: whether
        the job was completed (``False``: ``worker`` no longer held it, and it is unchanged) and the job claimed.

        A worker whose slot frees as its job ends claims with the same write that ends it: on PostgreSQL
        one statement in autocommit mode (both or neither), on SQLite one ``BEGIN IMMEDIATE`` transaction.
        The next job is claimed whether or not the completion counted (the slot is free either way), and it is
        never the job just completed."""
        ordered = _claim_args(worker, kinds, lease_s)
        params: dict[str, Any] = {f"kind_{i}": kind for i, kind in enumerate(ordered or ())}
        if ordered == ():
            return self.complete(job_id, worker), None
        if self._pg:
            with _store_errors("complete a job and claim the next"):
                now = self._now()
                stmt = self._fast.prepare(_complete_and_claim_pg(len(ordered) if ordered is not None else None))
                row = self._fast.mapping(stmt, {
                    **params, "now": now, "p_now": now, "p_id": job_id, "p_worker": worker,
                    "p_lease_until": now + timedelta(seconds=lease_s)})
            assert row is not None  # the statement's one row
            completed = bool(row.pop("completed"))
            if row["id"] is None:
                return completed, None
            if row["status"] == "running":
                return completed, _job(row)
            # dead-lettered on the way (a lost worker's job on its last attempt): claim on, as claim() does
            return completed, self._claim_pg(worker, ordered, params, lease_s)
        with _store_errors("complete a job and claim the next"), self._fast.transaction(immediate=True) as tx:
            changed = tx.execute(self._complete, {"p_id": job_id, "p_worker": worker, "p_now": self._now()}).rowcount
            return changed == 1, self._claim_in(tx, worker, ordered, params, lease_s)

    def heartbeat(self, job_id: str, worker: str, *, lease_s: float = 30.0) -> bool:
        """Extend the lease to ``now + lease_s``; ``False`` when ``worker`` no longer holds the job.

        It no longer holds it once another worker took it over, or it was cancelled or settled.
        A lease that expired but that nobody took over yet is still held, and is extended.
        """
        _check_lease(lease_s)
        now = self._now()
        with _store_errors("extend a job's lease"):
            changed = self._fast.run(self._heartbeat, {"p_id": job_id, "p_worker": worker,
                                                       "p_lease_until": now + timedelta(seconds=lease_s),
                                                       "p_now": now}, immediate=True)
        return changed == 1

    def complete(self, job_id: str, worker: str) -> bool:
        """Mark the job done; ``False`` (and no change) when ``worker`` no longer holds it."""
        now = self._now()
        with _store_errors("complete a job"):
            changed = self._fast.run(self._complete, {"p_id": job_id, "p_worker": worker, "p_now": now},
                                     immediate=True)
        return changed == 1

    def fail(self, job_id: str, worker: str, error: str, *, retryable: bool = True) -> Job:
        """Record a failed attempt: queue the job again after a backoff, or dead-letter it.

        The backoff is ``min(backoff_max_s, backoff_base_s * 2 ** (attempts - 1))`` seconds times a
        random factor between 0.5 and 1 (so failed jobs do not all come back at once). The job is
        dead instead when it is not ``retryable`` or has had ``max_attempts`` attempts.
        :class:`Conflict` when ``worker`` no longer holds the job (its attempt no longer counts).
        """
        now = self._now()
        error = error[:_MAX_ERROR]
        with _store_errors("record a failed job"), self._db.transaction(immediate=True) as conn:
            row = self._locked_row(conn, job_id)
            if row.status != "running" or row.worker != worker:
                raise Conflict(f"job {job_id} is not held by {worker} (it is {row.status}, worker {row.worker})")
            values: dict[str, Any]
            if not retryable or row.attempts >= row.max_attempts:
                values = {"status": "dead", "lease_until": None, "finished_at": now, "updated_at": now,
                          "last_error": error}
            else:
                exponent = min(max(row.attempts - 1, 0), 60)
                delay = min(self._backoff_max_s, self._backoff_base_s * 2**exponent) * random.uniform(0.5, 1.0)
                values = {"status": "queued", "worker": None, "lease_until": None, "updated_at": now,
                          "run_after": now + timedelta(seconds=delay), "last_error": error}
            conn.execute(update(_JOBS).where(_JOBS.c.id == job_id).values(**values))
            return _job({**row._mapping, **values})

    @staticmethod
    def _locked_row(conn: Connection, job_id: str) -> Row[Any]:
        row = conn.execute(select(_JOBS).where(_JOBS.c.id == job_id).with_for_update()).first()
        if row is None:
            raise NotFound(f"no job {job_id!r}; list them with `mspclaw jobs list`")
        return row

    # --- operating -------------------------------------------------------------------------------

    def get(self, job_id: str) -> Job:
        with _store_errors("read the job queue"), self._db.engine.connect() as conn:
            row = conn.execute(select(_JOBS).where(_JOBS.c.id == job_id)).first()
        if row is None:
            raise NotFound(f"no job {job_id!r}; list them with `mspclaw jobs list`")
        return _job(row)

    def list(self, *, status: str | None = None, kind: str | None = None, limit: int = 100) -> list[Job]:
        """Jobs newest first, filtered by ``status`` and ``kind`` when given."""
        stmt = select(_JOBS).order_by(_JOBS.c.created_at.desc(), _JOBS.c.id.desc()).limit(limit)
        if status is not None:
            stmt = stmt.where(_JOBS.c.status == status)
        if kind is not None:
            stmt = stmt.where(_JOBS.c.kind == kind)
        with _store_errors("read the job queue"), self._db.engine.connect() as conn:
            return [_job(row) for row in conn.execute(stmt)]

    def stats(self) -> dict[str, int]:
        """How many jobs have each status (every status is present, zero or not)."""
        stmt = select(_JOBS.c.status, func.count()).group_by(_JOBS.c.status)
        with _store_errors("read the job queue"), self._db.engine.connect() as conn:
            counts: dict[str, int] = dict.fromkeys(JOB_STATUSES, 0)
            for status, count in conn.execute(stmt):
                counts[status] = count
        return counts

    def retry(self, job_id: str) -> Job:
        """Queue a job again now with a fresh set of attempts, whatever it ended as.

        A queued job waiting out a backoff is made due now. :class:`Conflict` for a running job
        (cancel it first).
        """
        now = self._now()
        with _store_errors("retry a job"), self._db.transaction(immediate=True) as conn:
            row = self._locked_row(conn, job_id)
            if row.status == "running":
                raise Conflict(f"job {job_id} is running on {row.worker}; cancel it before retrying it")
            values = {"status": "queued", "attempts": 0, "run_after": now, "lease_until": None, "worker": None,
                      "finished_at": None, "updated_at": now}
            conn.execute(update(_JOBS).where(_JOBS.c.id == job_id).values(**values))
            job = _job({**row._mapping, **values})
        self._wake_workers(job.kind)
        return job

    def cancel(self, job_id: str) -> Job:
        """Stop a job: it is never claimed again, and a worker running it loses its lease.

        Queued, running and dead jobs become cancelled; a cancelled one stays as it is.
        :class:`Conflict` for a job that is already done.
        """
        now = self._now()
        with _store_errors("cancel a job"), self._db.transaction(immediate=True) as conn:
            row = self._locked_row(conn, job_id)
            if row.status == "done":
                raise Conflict(f"job {job_id} is already done")
            if row.status == "cancelled":
                return _job(row)
            values = {"status": "cancelled", "lease_until": None, "finished_at": now, "updated_at": now}
            conn.execute(update(_JOBS).where(_JOBS.c.id == job_id).values(**values))
            return _job({**row._mapping, **values})

    # --- cursors ---------------------------------------------------------------------------------

    def get_cursor(self, name: str) -> str | None:
        """The stored value of a poller's cursor, ``None`` before the first :meth:`set_cursor`."""
        with _store_errors("read a cursor"), self._db.engine.connect() as conn:
            value: str | None = conn.execute(select(PSACursor.value).where(PSACursor.name == name)).scalar()
        return value

    def set_cursor(self, name: str, value: str) -> None:
        """Create or move a cursor (one atomic upsert)."""
        _check_length("cursor name", name, 100)
        _check_length("cursor value", value, 100)
        now = self._now()
        dialect = postgresql if self._db.dialect == "postgresql" else sqlite
        stmt = dialect.insert(PSACursor).values(name=name, value=value, updated_at=now)
        stmt = stmt.on_conflict_do_update(index_elements=[PSACursor.name], set_={"value": value, "updated_at": now})
        with _store_errors("store a cursor"), self._db.engine.begin() as conn:
            conn.execute(stmt)


def account_context(account_id: str) -> str:
    """What a PSA account's sealed secrets are bound to: decrypting them in another row fails."""
    return f"psa_accounts.secrets of {account_id}"


class PSAAccount(BaseModel):
    """A configured PSA account. Its secrets never show in ``repr``, ``str`` or JSON dumps."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    kind: str
    config: dict[str, Any]
    secrets: dict[str, SecretStr] = Field(repr=False)
    enabled: bool
    created_at: datetime

    def secret_values(self) -> dict[str, str]:
        """The secrets in clear, for the connector that needs them and nothing else."""
        return {key: value.get_secret_value() for key, value in self.secrets.items()}


class PSAAccounts:
    """Add, read and remove PSA accounts. Secrets are stored here and nowhere else, encrypted by ``box``
    (``store/secretbox.py``; ``store/account_secrets.py`` encrypts old rows and re-encrypts on rotation)."""

    def __init__(self, db: Database, box: SecretBox) -> None:
        self._db = db
        self._box = box

    def _account(self, row: Row[Any]) -> PSAAccount:
        values = dict(row._mapping)
        values["secrets"] = open_map(self._box, values["secrets"] or {}, context=account_context(values["id"]))
        return PSAAccount.model_validate(values)

    def add(self, name: str, kind: str, config: Mapping[str, Any], secrets: Mapping[str, str], *,
            enabled: bool = True) -> PSAAccount:
        """Store a new account; :class:`Conflict` if the name is taken."""
        name = name.strip()
        if not name:
            raise ValueError("a PSA account needs a non-empty name")
        _check_length("PSA account name", name, 100)
        _check_length("PSA kind", kind, 32)
        if not all(isinstance(value, str) for value in secrets.values()):
            raise TypeError("PSA account secrets must be strings")
        values: dict[str, Any] = {"id": new_id("pa"), "name": name, "kind": kind, "config": dict(config),
                                  "secrets": dict(secrets), "enabled": enabled, "created_at": utcnow()}
        with _store_errors("add a PSA account"):
            try:
                with self._db.engine.begin() as conn:
                    conn.execute(insert(_ACCOUNTS).values(**{**values, "secrets": seal_map(
                        self._box, secrets, context=account_context(values["id"]))}))
            except IntegrityError as exc:
                raise Conflict(f"a PSA account named {name!r} already exists") from exc
        return PSAAccount.model_validate(values)

    def get(self, name: str) -> PSAAccount:
        with _store_errors("read PSA accounts"), self._db.engine.connect() as conn:
            row = conn.execute(select(_ACCOUNTS).where(_ACCOUNTS.c.name == name)).first()
        if row is None:
            raise NotFound(f"no PSA account {name!r}; list them with `mspclaw psa list`")
        return self._account(row)

    def list(self) -> list[PSAAccount]:
        with _store_errors("read PSA accounts"), self._db.engine.connect() as conn:
            rows = conn.execute(select(_ACCOUNTS).order_by(_ACCOUNTS.c.name)).all()
        return [self._account(row) for row in rows]

    def remove(self, name: str) -> None:
        """Delete an account and its secrets; :class:`NotFound` if there is none of that name."""
        with _store_errors("remove a PSA account"), self._db.engine.begin() as conn:
            result = conn.execute(delete(_ACCOUNTS).where(_ACCOUNTS.c.name == name))
        if result.rowcount != 1:
            raise NotFound(f"no PSA account {name!r}; list them with `mspclaw psa list`")
