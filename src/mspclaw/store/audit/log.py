"""The audit log: appends events to the database and the day files, reads them, verifies and seals them.

Each event is stored twice, as a row of ``audit_events`` and as a line of its UTC day's file
(:mod:`.files`), chained by hash (:mod:`.chain`). Appends are group-committed (:mod:`.batcher`):
one transaction, one write and one fsync per batch, while each caller waits until its own event
is durable. Two doors, one per colour of caller: :meth:`AuditLog.append` blocks its thread (and
refuses to run on a thread that runs an event loop), :meth:`AuditLog.record` is awaited.

Writers are serialised so the chain never forks: a :class:`threading.Lock` within the process and,
across processes and replicas, the database: ``pg_advisory_xact_lock`` on PostgreSQL, a
``BEGIN IMMEDIATE`` transaction (the single SQLite write lock) on SQLite. Every process that
appends must see the same ``audit_dir`` (one host, or a shared volume), or the files of each will
miss the others' lines and :meth:`AuditLog.verify` will say so.

Given :class:`~mspclaw.store.audit_checkpoint.Checkpoints`, the log seals its head (a signed
checkpoint) every ``seal_interval_s`` while events come in and on :meth:`AuditLog.close`, and
:meth:`AuditLog.verify` fails when the chain does not reach the newest checkpoint with the hash it
sealed: removing the *last* events would otherwise leave a shorter chain that is intact.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import BigInteger, Row, Table, bindparam, func, insert, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from mspclaw.errors import ConfigError, StoreError
from mspclaw.observability.metrics import timed_audit_record, timed_audit_write
from mspclaw.store.audit import chain
from mspclaw.store.audit.batcher import GroupCommit
from mspclaw.store.audit.chain import AuditRecord, Entry, Link, VerifyReport
from mspclaw.store.audit.files import Copies, DayFiles, Written, lines, sync_copies
from mspclaw.store.audit_checkpoint import Checkpoint, Checkpoints
from mspclaw.store.database import Database
from mspclaw.store.tables import AuditEvent

_log = logging.getLogger("mspclaw.store.audit")

OTHERS_QUIET_S = 60.0
"""On PostgreSQL, how long after finding another process's events a log reads the chain's tail for every batch
instead of continuing from its own last batch (see ``AuditLog._end``)."""

PG_LOCK_KEY = int.from_bytes(b"mspaudit", "big")
"""Key of the PostgreSQL advisory lock that serialises appends: the bytes ``mspaudit`` as a bigint."""

_EVENTS = cast("Table", AuditEvent.__table__)
_COLUMNS = ("seq", "ts", "kind", "actor", "client_id", "session_id", "data", "prev_hash", "hash")
_TAIL = select(_EVENTS.c.seq, _EVENTS.c.hash, _EVENTS.c.ts).order_by(_EVENTS.c.seq.desc()).limit(1)
_INSERT = insert(_EVENTS).values({name: bindparam(name, type_=_EVENTS.c[name].type) for name in _COLUMNS})
"""Built once and prepared on the database's fast path: a batch is these two statements."""
_INSERT_LOCKED = insert(_EVENTS).from_select(_COLUMNS, select(
    *(bindparam(name, type_=_EVENTS.c[name].type).label(name) for name in _COLUMNS)).select_from(
    select(func.pg_advisory_xact_lock(bindparam("lock_key", PG_LOCK_KEY, type_=BigInteger))).subquery("audit_lock")))
"""PostgreSQL, after a known end: each row's insert takes the advisory lock first (held, again, until the commit),
so the batch needs no statement of its own for it."""

BLOCKING_ON_LOOP = ("append() blocks; use `await audit.record(...)` from async code "
                    "(AuditLog.append was called on a thread that runs an event loop)")


class AuditLog:
    """Appends to, reads and verifies the audit trail. One instance per process is enough."""

    def __init__(
        self,
        db: Database,
        audit_dir: Path,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        checkpoints: Checkpoints | None = None,
        seal_interval_s: float = 5.0,
    ) -> None:
        if db.dialect not in ("sqlite", "postgresql"):
            raise ConfigError(f"the audit log supports SQLite and PostgreSQL, not {db.dialect}")
        self._db = db
        self._tail, self._insert = db.fast.prepare(_TAIL), db.fast.prepare(_INSERT)
        self._insert_locked = db.fast.prepare(_INSERT_LOCKED) if db.dialect == "postgresql" else None
        self._files = DayFiles(audit_dir)
        self._clock = clock
        self._mutex = threading.Lock()
        """Serialises this process's batches and verifications (the database serialises processes)."""
        self._sync_after_commit = db.is_sqlite
        """fsync the day files after the commit (see :meth:`_write_batch`)."""
        self._batches: GroupCommit[Entry, AuditRecord, Copies] = GroupCommit(
            self._write_batch, sync_copies, loop_writes=self._sync_after_commit, name="audit-writer")
        self.checkpoints = checkpoints
        self._head_seq = 0
        """The ``seq`` of the last event this instance committed; the sealer compares it with the last sealed."""
        self._end: Link | None = None
        """Where this instance's last batch left the chain (``None``: read the tail). On PostgreSQL it is kept
        only while no other process appended for :data:`OTHERS_QUIET_S`: with several replicas appending in
        turn, a known end would be stale at nearly every batch, and a stale one costs a failed insert."""
        self._others_appended_at: float | None = None
        """When a batch last found another process's events after this instance's known end (monotonic)."""
        self._sealed_seq = 0
        self._stop_sealer = threading.Event()
        if checkpoints is not None:
            weakref.finalize(self, self._stop_sealer.set)
            threading.Thread(target=_seal_loop, args=(weakref.ref(self), self._stop_sealer, seal_interval_s),
                             name="audit-sealer", daemon=True).start()

    @property
    def audit_dir(self) -> Path:
        return self._files.directory

    # --- writing ---------------------------------------------------------------------------------

    @timed_audit_write  # how long a write takes its caller, for /metrics
    def append(
        self,
        kind: str,
        *,
        actor: str = "system",
        client_id: str | None = None,
        session_id: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> AuditRecord:
        """Record one event and return it with its ``seq`` and hashes, once it is durable.

        Blocks the calling thread until the event's batch is committed and synced: for threads
        (sync routes, CLI commands, workers). On a thread that runs an event loop it raises
        :class:`RuntimeError` instead of stalling every coroutine of the loop for a disk sync:
        coroutines ``await`` :meth:`record`."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError(BLOCKING_ON_LOOP)
        return self._batches.submit(chain.entry(kind, actor, client_id, session_id, data)).result()

    @timed_audit_record  # how long a write takes its caller, for /metrics
    async def record(
        self,
        kind: str,
        *,
        actor: str = "system",
        client_id: str | None = None,
        session_id: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> AuditRecord:
        """:meth:`append` for coroutines: returns once the event is durable, and the event loop runs
        meanwhile, so the events of concurrent tickets share one transaction and one fsync.

        On SQLite the batches of a loop are written by a task on that loop (statements on the
        loop's thread, which holds the GIL anyway; only the fsync goes to a thread), not by the
        writer thread: that would have the loop and the writer trade the GIL and SQLite's write
        lock back and forth. On PostgreSQL, whose fsync is inside the transaction, the writer
        thread does it all."""
        return await self._batches.record(chain.entry(kind, actor, client_id, session_id, data))

    def _write_batch(self, batch: list[Entry]) -> tuple[list[AuditRecord], Copies]:
        """Append a batch of events: one transaction, one write and one fsync per day file.

        Order of work, all under the append lock: read the tail (one indexed query, only
        when this instance does not know where its last batch left the chain, see
        :meth:`_append`), insert the rows, append the file lines, fsync them, commit. The file is written *inside* the
        transaction, before the commit, because the lock is only held until the commit: a line
        written afterwards could land in the file after a later event of another process.

        On SQLite the fsync comes right *after* the commit instead (the batcher does it with the
        descriptor copies returned, before it hands out the records), once the database's single
        write lock is released: held through an fsync, that lock stalls every other write of the
        process (the event loop's included) for as long as the disk takes. The lines are in the
        file, in order, before the commit either way, and no caller proceeds before the fsync;
        what SQLite gives up is only the order of the two syncs on power loss, which its own
        ``synchronous=NORMAL`` commit never promised (a commit is on disk at the next checkpoint).

        * A row insert or the file write fails: the transaction rolls back and the files are
          cut back to their previous length, so neither copy holds any event of the batch.
          :class:`StoreError`.
        * The commit fails after the lines were written: the lines are cut off again and
          :class:`StoreError` is raised. Should the database have committed after all (a
          connection lost during COMMIT), the trail is not silently wrong: :meth:`verify`
          reports the events as missing from the files.
        * The fsync after a SQLite commit fails: the events stand in both copies, but the
          callers get a :class:`StoreError` saying their lines may not be on disk.
        """
        with self._mutex:
            try:
                try:
                    records, written = self._append(batch, self._end)
                except IntegrityError:
                    if self._end is None:
                        raise
                    self._end = None  # another process appended since this one's last batch: read the tail
                    self._others_appended_at = time.monotonic()
                    records, written = self._append(batch, None)
            except SQLAlchemyError as exc:
                self._end = None
                raise StoreError(f"cannot append to the audit trail: {exc}") from exc
            except BaseException:
                self._end = None
                raise
            copies = self._files.copies(written) if self._sync_after_commit else []
            self._head_seq = records[-1].seq
            others = self._others_appended_at
            if self._sync_after_commit or others is None or time.monotonic() - others >= OTHERS_QUIET_S:
                self._end = Link(records[-1].seq, records[-1].hash, records[-1].ts)
            self._files.keep_only(written)  # the batch's last day: records come in ts order
        return records, copies

    def _append(self, batch: list[Entry], end: Link | None) -> tuple[list[AuditRecord], list[Written]]:
        """The batch's transaction, after the chain's ``end`` if known, else after the tail it reads.

        Reading the tail takes the lock first (``BEGIN IMMEDIATE``, the advisory lock). With a known
        end (where this instance's last batch left the chain) there is no read, and the insert takes the lock
        itself: SQLite's write lock, PostgreSQL's advisory lock (:data:`_INSERT_LOCKED`, each row's insert
        takes it before it writes, so the batch is one round trip); either way the insert's first ``seq`` is
        taken if another process appended meanwhile (``seq`` is the primary key; the check sees every
        committed row, whatever the statement's snapshot), and the :class:`IntegrityError` that follows
        makes the caller read the tail and try again."""
        insert = self._insert
        if end is not None and self._insert_locked is not None:
            insert = self._insert_locked  # takes the advisory lock itself: one round trip for the batch
        with self._db.fast.transaction(immediate=end is None,
                                       pg_advisory_key=PG_LOCK_KEY if insert is self._insert else None) as tx:
            if end is None:
                end = _link(tx.first(self._tail, {}))
            records, lines_ = chain.extend(end, batch, self._clock)
            tx.execute_many(insert, [_row(record) for record in records])
            written = self._files.append(records, lines_)
            try:
                if not self._sync_after_commit:
                    self._files.sync(written)
                tx.connection.commit()
            except BaseException:
                self._files.undo(written)
                raise
        return records, written

    # --- sealing ---------------------------------------------------------------------------------

    def seal(self) -> Checkpoint | None:
        """Write a signed checkpoint of the chain's head as the database holds it now (every
        process's events), unless it is already sealed; ``None`` then, or without checkpoints."""
        if self.checkpoints is None:
            return None
        try:
            rows = self._db.fast.read(self._tail, {})
            tail = _link(rows[0] if rows else None)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read the audit trail's head to seal it: {exc}") from exc
        self._sealed_seq = max(self._sealed_seq, tail.seq)
        return self.checkpoints.write(tail.seq, tail.hash) if tail.seq else None

    def close(self) -> None:
        """Stop the periodic sealing and seal the head a last time (at shutdown)."""
        self._stop_sealer.set()
        self.seal()

    def seal_if_moved(self) -> None:
        """Seal the head if this log appended since the last seal (the sealer thread's round)."""
        if self._head_seq > self._sealed_seq:
            self.seal()

    # --- reading ---------------------------------------------------------------------------------

    def query(
        self,
        *,
        client_ids: Collection[str] | None = None,
        session_id: str | None = None,
        kind: str | None = None,
        since: datetime | None = None,
        after_seq: int = 0,
        limit: int = 1000,
    ) -> list[AuditRecord]:
        """Events in ``seq`` order, filtered by every argument given.

        ``client_ids=None`` means every client (and events with no client); an empty collection
        means none. ``since`` (aware) keeps events at or after that time; ``after_seq`` pages on
        from the last ``seq`` of a previous page.
        """
        if isinstance(client_ids, str):
            raise TypeError("client_ids is a collection of ids, not one id")
        if client_ids is not None and not client_ids:
            return []
        stmt = select(_EVENTS).where(_EVENTS.c.seq > after_seq).order_by(_EVENTS.c.seq).limit(limit)
        if client_ids is not None:
            stmt = stmt.where(_EVENTS.c.client_id.in_(list(client_ids)))
        if session_id is not None:
            stmt = stmt.where(_EVENTS.c.session_id == session_id)
        if kind is not None:
            stmt = stmt.where(_EVENTS.c.kind == kind)
        if since is not None:
            if since.tzinfo is None:
                raise ValueError("since must be an aware datetime")
            stmt = stmt.where(_EVENTS.c.ts >= since)
        try:
            with self._db.engine.connect() as conn:
                return [_from_row(row) for row in conn.execute(stmt)]
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read the audit trail: {exc}") from exc

    # --- verifying -------------------------------------------------------------------------------

    def verify(self, *, checkpoint: str | None = None, require_checkpoint: bool = False) -> VerifyReport:
        """Check every file line and every row; raise :class:`AuditIntegrityError` at the first fault.

        Files are read in day order and line order and checked by :func:`.chain.check`. The check
        covers the trail as it stood when it began: appends made meanwhile are left for the next run.

        With checkpoints, the chain must also reach the newest one (of the file, or ``checkpoint``:
        a checkpoint line kept elsewhere) and have its hash there: a trail cut at its end fails
        with the checkpoint's ``seq`` and time. ``require_checkpoint``: a trail with events but no
        checkpoint at all fails too (deleting the checkpoint file must not hide a cut); ``mspclaw
        audit verify`` asks for it, as the server seals at start and shutdown.
        """
        sealed: tuple[Checkpoint, str] | None = None
        if self.checkpoints is not None:
            given = [self.checkpoints.parse(checkpoint, "the checkpoint given")] if checkpoint else []
            sealed = self.checkpoints.newest(given)
        try:
            with self._mutex, self._db.transaction(immediate=True, pg_advisory_key=PG_LOCK_KEY) as conn:
                last_seq = _link(conn.execute(_TAIL).first()).seq
                files = self._files.snapshot()
            with self._db.engine.connect() as conn:
                rows = conn.execution_options(yield_per=500).execute(
                    select(_EVENTS).where(_EVENTS.c.seq <= last_seq).order_by(_EVENTS.c.seq)
                )
                try:
                    report = chain.check(((path.name, lines(path, size)) for path, size in files),
                                         _records(rows), sealed[0] if sealed else None)
                finally:
                    rows.close()  # a server-side cursor on PostgreSQL, left open when a check fails
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read the audit trail: {exc}") from exc
        if self.checkpoints is None:
            return report
        return chain.check_sealed(report, sealed, require=require_checkpoint, checkpoint_file=self.checkpoints.path)


def _seal_loop(ref: weakref.ref[AuditLog], stop: threading.Event, interval_s: float) -> None:
    """The sealer thread: every ``interval_s``, seal the head if this log appended since the last seal.
    Ends with :meth:`AuditLog.close` or when the log is garbage-collected."""
    while not stop.wait(interval_s):
        audit = ref()
        if audit is None:
            return
        try:
            audit.seal_if_moved()
        except Exception as exc:  # a full disk must not end the sealing: the next round tries again
            _log.warning("audit checkpoint not written: %s", exc)
        del audit


def _link(row: Sequence[Any] | None) -> Link:
    """The end of the chain from the row of :data:`_TAIL` (seq, hash, ts), or an empty chain's."""
    if row is None:
        return chain.START
    seq, hash_, ts = row
    return Link(seq, hash_, ts.astimezone(UTC))


def _row(record: AuditRecord) -> dict[str, Any]:
    return {"seq": record.seq, "ts": record.ts, "kind": record.kind, "actor": record.actor,
            "client_id": record.client_id, "session_id": record.session_id, "data": record.data,
            "prev_hash": record.prev_hash, "hash": record.hash}


def _records(rows: Iterator[Row[Any]]) -> Iterator[AuditRecord]:
    return (_from_row(row) for row in rows)


def _from_row(row: Row[Any]) -> AuditRecord:
    return AuditRecord(
        seq=row.seq,
        ts=row.ts.astimezone(UTC),
        kind=row.kind,
        actor=row.actor,
        client_id=row.client_id,
        session_id=row.session_id,
        data=row.data,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )
