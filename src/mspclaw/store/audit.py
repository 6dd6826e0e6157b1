"""The append-only, hash-chained audit trail.

Each event is stored twice: as a row of ``audit_events`` and as one line of
``<audit_dir>/YYYY-MM-DD.jsonl`` (the UTC day of its timestamp). The line is the canonical JSON
(sorted keys, compact separators, ASCII only) of the whole record. Every record carries

* ``seq``: 1 for the first event, then previous + 1, with no gaps;
* ``prev_hash``: the ``hash`` of the previous event (:data:`GENESIS_HASH` for the first);
* ``hash``: ``sha256(prev_hash + canonical JSON of every other field)`` in hex,

so changing, removing or inserting any event breaks the chain from that point on, and
:meth:`AuditLog.verify` names the first place where it breaks. Removing the *last* events leaves a
shorter chain that is intact: given :class:`~mspclaw.store.audit_checkpoint.Checkpoints`, the log
seals its head (a signed checkpoint) every ``seal_interval_s`` while events come in and on
:meth:`AuditLog.close`, and :meth:`AuditLog.verify` fails when the chain does not reach the newest
checkpoint with the hash it sealed. Event data passes through
:func:`mspclaw.store.redact.redact` before it is hashed, so secrets are never written anywhere.

Appends are group-committed: each :class:`AuditLog` has one writer thread, which takes every event
queued since its last batch and appends them together (one transaction, one write and one fsync),
while each caller waits until its own event is durable: :meth:`AuditLog.append` blocks its thread,
:meth:`AuditLog.record` awaits without blocking the event loop, so concurrent tickets share a batch.
A batch costs little beyond the database's own work: its statements go straight to the DB-API
connection, each event's data is serialised once (its canonical JSON is part of both the hashed
text and the line), and the current day's file stays open between batches (a ``stat`` per batch
notices it deleted, rotated or replaced, and it is then opened by name again).

Writers are serialised so the chain never forks: a :class:`threading.Lock` within the process and,
across processes and replicas, the database: ``pg_advisory_xact_lock`` on PostgreSQL, a
``BEGIN IMMEDIATE`` transaction (the single SQLite write lock) on SQLite. Every process that
appends must see the same ``audit_dir`` (one host, or a shared volume), or the files of each will
miss the others' lines and ``verify`` will say so.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import json.encoder
import logging
import os
import re
import threading
import weakref
from collections.abc import Callable, Collection, Iterator, Mapping
from concurrent.futures import Future
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError
from sqlalchemy import Connection, Engine, Row, select
from sqlalchemy.exc import SQLAlchemyError

from mspclaw.errors import AuditIntegrityError, ConfigError, StoreError
from mspclaw.store.audit_checkpoint import Checkpoint, Checkpoints
from mspclaw.store.locking import locked_transaction
from mspclaw.store.redact import redact, redact_plain
from mspclaw.store.tables import AuditEvent

_log = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
"""``prev_hash`` of the first event."""

PG_LOCK_KEY = int.from_bytes(b"mspaudit", "big")
"""Key of the PostgreSQL advisory lock that serialises appends: the bytes ``mspaudit`` as a bigint."""

_FILE_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})\.jsonl$")
_EVENTS = AuditEvent.__table__
_TAIL = select(AuditEvent.seq, AuditEvent.hash, AuditEvent.ts).order_by(AuditEvent.seq.desc()).limit(1)
"""Built once: a statement built per call costs more than the round trip to SQLite."""

_RAW_TAIL = "SELECT seq, hash, ts FROM audit_events ORDER BY seq DESC LIMIT 1"
_RAW_INSERT = {  # the row's ``data`` is the canonical JSON text of the line, not a second serialisation
    "sqlite": "INSERT INTO audit_events (seq, ts, kind, actor, client_id, session_id, data, prev_hash, hash) "
              "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "postgresql": "INSERT INTO audit_events (seq, ts, kind, actor, client_id, session_id, data, prev_hash, hash) "
                  "VALUES (%s, %s, %s, %s, %s, %s, %s::json, %s, %s)",
}
"""The batch's statements, run on the DB-API connection: through SQLAlchemy's ``Connection`` a
transaction cost about 140 µs of Python against 58 µs on the driver (SQLite, session 4 profile)."""

_json_str = json.encoder.encode_basestring_ascii
"""What :func:`canonical_json` writes for a ``str`` (a C function), without the call around it."""


_WRITER_IDLE_S = 2.0
"""A writer thread with nothing to write for this long ends; the next append starts another."""

_LIMITS = {"kind": 64, "actor": 255, "client_id": 32, "session_id": 32}


class AuditRecord(BaseModel):
    """One event of the trail, exactly as hashed, stored and written to its JSONL line."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    seq: int
    ts: AwareDatetime
    kind: str
    actor: str
    client_id: str | None
    session_id: str | None
    data: dict[str, Any]
    prev_hash: str
    hash: str

    def line(self) -> str:
        """The record's JSONL line, without the newline."""
        return canonical_json({**_hashed_fields(self), "hash": self.hash})

    def computed_hash(self) -> str:
        """The hash the record's other fields call for (equal to ``hash`` unless tampered with)."""
        return chain_hash(self.prev_hash, _hashed_fields(self))


@dataclass(frozen=True)
class VerifyReport:
    """What :meth:`AuditLog.verify` checked: all of it was intact."""

    events: int
    files: int
    last_seq: int
    last_hash: str
    sealed: Checkpoint | None = None
    """The newest checkpoint, which the chain reaches (``None``: the log keeps no checkpoints)."""


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, ASCII only, no NaN: the same text for the same data everywhere."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def chain_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    """``sha256(prev_hash + canonical_json(fields))`` as 64 hex digits."""
    return hashlib.sha256((prev_hash + canonical_json(fields)).encode("ascii")).hexdigest()


def _hashed_fields(record: AuditRecord) -> dict[str, Any]:
    return {
        "seq": record.seq,
        "ts": record.ts.astimezone(UTC).isoformat(),
        "kind": record.kind,
        "actor": record.actor,
        "client_id": record.client_id,
        "session_id": record.session_id,
        "data": record.data,
        "prev_hash": record.prev_hash,
    }


def _json_data(data: Mapping[str, Any] | None) -> tuple[dict[str, Any], str]:
    """Redacted, then reduced to plain JSON (tuples → lists, other objects → ``str``), with its
    canonical JSON text.

    What is hashed is then exactly what the database hands back and what the file holds. Data made
    of JSON's own types only (the usual case) takes one pass of :func:`redact_plain` and one
    ``dumps``; anything else is converted by a JSON round trip first.
    """
    plain = redact_plain(data) if data else {}
    if plain is None:
        try:
            text = json.dumps(redact(dict(data or {})), sort_keys=True, ensure_ascii=True, allow_nan=False,
                              default=str)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"audit data must be JSON (string keys, no NaN or infinity): {exc}") from exc
        plain = json.loads(text)
    try:
        return plain, canonical_json(plain)
    except ValueError as exc:  # NaN or infinity
        raise ValueError(f"audit data must be JSON (string keys, no NaN or infinity): {exc}") from exc


def _json_text(value: str | None) -> str:
    return "null" if value is None else _json_str(value)


@dataclass(frozen=True, slots=True)
class _Entry:
    """An event waiting for its batch, checked and redacted, with the parts of its line that do not
    depend on its place in the chain already in canonical JSON (:func:`_seal` adds the rest)."""

    kind: str
    actor: str
    client_id: str | None
    session_id: str | None
    data: dict[str, Any]
    data_json: str
    head: str
    """``{"actor":…,"client_id":…,"data":…,``: the keys before ``hash`` in sorted order."""
    kind_part: str
    """``"kind":…,``"""
    session_part: str
    """``"session_id":…,``"""


def _seal(seq: int, ts: datetime, entry: _Entry, prev_hash: str) -> tuple[AuditRecord, bytes]:
    """The record of ``entry`` at ``seq``, hashed, and its line with the newline.

    The canonical JSON of the hashed fields and the line are put together from the entry's parts:
    sorted keys ``actor, client_id, data, [hash,] kind, prev_hash, seq, session_id, ts``, so the
    data is serialised once per event; ``test_lines_are_the_records_canonical_json`` holds them to
    :meth:`AuditRecord.line` and :func:`chain_hash`. The record is built without validation: every
    field is ours."""
    rest = (f'"prev_hash":{_json_str(prev_hash)},"seq":{seq:d},{entry.session_part}'
            f'"ts":{_json_str(ts.isoformat())}}}')
    digest = hashlib.sha256(f"{prev_hash}{entry.head}{entry.kind_part}{rest}".encode("ascii")).hexdigest()
    record = AuditRecord.model_construct(seq=seq, ts=ts, kind=entry.kind, actor=entry.actor, client_id=entry.client_id,
                                         session_id=entry.session_id, data=entry.data, prev_hash=prev_hash,
                                         hash=digest)
    return record, f'{entry.head}"hash":"{digest}",{entry.kind_part}{rest}\n'.encode("ascii")


@dataclass(slots=True)
class _DayFile:
    """A day file kept open for appending, and the file it was opened as (to notice a rotation)."""

    path: Path
    fd: int
    dev: int
    ino: int


@dataclass(frozen=True, slots=True)
class _Written:
    """A day file a batch wrote to: its length before, and whether the batch created it."""

    file: _DayFile
    size: int
    created: bool


def _fdatasync(fd: int) -> None:
    """``fdatasync``: enough for an appended line (the file's new length is flushed with the data)
    and cheaper than ``fsync``, which also flushes the modification time (on the bench VM, ext4:
    49 against 79 µs of CPU, 0.13 against 0.49 ms median wall). macOS has no ``fdatasync``:
    ``fsync`` there."""
    if hasattr(os, "fdatasync"):
        os.fdatasync(fd)
    else:
        os.fsync(fd)


def _same(value: Any) -> Any:
    return value


def _close_files(files: dict[Path, _DayFile]) -> None:
    for day_file in files.values():
        with suppress(OSError):
            os.close(day_file.fd)
    files.clear()


@dataclass(frozen=True)
class _Tail:
    seq: int
    hash: str
    ts: datetime | None


class AuditLog:
    """Appends to, reads and verifies the audit trail. One instance per process is enough."""

    def __init__(
        self,
        engine: Engine,
        audit_dir: Path,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        checkpoints: Checkpoints | None = None,
        seal_interval_s: float = 5.0,
    ) -> None:
        if engine.dialect.name not in ("sqlite", "postgresql"):
            raise ConfigError(f"the audit log supports SQLite and PostgreSQL, not {engine.dialect.name}")
        self._engine = engine
        self._dir = Path(audit_dir)
        self._clock = clock
        self._mutex = threading.Lock()
        self._files: dict[Path, _DayFile] = {}
        """Day files kept open between batches (the current day's), used under ``_mutex`` only."""
        weakref.finalize(self, _close_files, self._files)
        dialect = engine.dialect
        self._dbapi_error: type[Exception] = dialect.loaded_dbapi.Error
        self._insert_sql = _RAW_INSERT[dialect.name]
        ts_type = _EVENTS.c.ts.type.dialect_impl(dialect)
        self._ts_bind: Callable[[datetime], Any] = ts_type.bind_processor(dialect) or _same
        self._ts_result: Callable[[Any], Any] = ts_type.result_processor(dialect, None) or _same
        self._pending: list[tuple[_Entry, Future[AuditRecord]]] = []  # for the writer thread
        self._loop_pending: list[tuple[_Entry, asyncio.Future[AuditRecord]]] = []  # for the flusher task
        self._flusher: asyncio.Task[None] | None = None
        self._pending_ready = threading.Condition(threading.Lock())
        self._writer: threading.Thread | None = None
        self._writer_waiting = False
        self._sync_after_commit = engine.dialect.name == "sqlite"
        """fsync the day files after the commit (see :meth:`_write_batch`)."""
        self.checkpoints = checkpoints
        self._head_seq = 0
        """The ``seq`` of the last event this instance committed; the sealer compares it with the last sealed."""
        self._sealed_seq = 0
        self._stop_sealer = threading.Event()
        if checkpoints is not None:
            weakref.finalize(self, self._stop_sealer.set)
            threading.Thread(target=_seal_loop, args=(weakref.ref(self), self._stop_sealer, seal_interval_s),
                             name="audit-sealer", daemon=True).start()

    @property
    def audit_dir(self) -> Path:
        return self._dir

    # --- sealing ---------------------------------------------------------------------------------

    def seal(self) -> Checkpoint | None:
        """Write a signed checkpoint of the chain's head as the database holds it now (every
        process's events), unless it is already sealed; ``None`` then, or without checkpoints."""
        if self.checkpoints is None:
            return None
        try:
            with self._engine.connect() as conn:
                tail = self._tail(conn)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read the audit trail's head to seal it: {exc}") from exc
        self._sealed_seq = max(self._sealed_seq, tail.seq)
        return self.checkpoints.write(tail.seq, tail.hash) if tail.seq else None

    def close(self) -> None:
        """Stop the periodic sealing and seal the head a last time (at shutdown)."""
        self._stop_sealer.set()
        self.seal()

    def _seal_if_moved(self) -> None:
        if self._head_seq > self._sealed_seq:
            self.seal()

    # --- writing ---------------------------------------------------------------------------------

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

        Blocks the calling thread until the event's batch is committed (see :meth:`record` for the
        same without blocking an event loop). The work itself is the writer's (:meth:`_write_batch`).
        """
        return self._submit(self._entry(kind, actor, client_id, session_id, data)).result()

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
        entry = self._entry(kind, actor, client_id, session_id, data)
        loop = asyncio.get_running_loop()
        if not self._sync_after_commit or (self._flusher is not None and self._flusher.get_loop() is not loop
                                           and not self._flusher.done()):
            return await asyncio.wrap_future(self._submit(entry))
        waiter: asyncio.Future[AuditRecord] = loop.create_future()
        self._loop_pending.append((entry, waiter))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush_loop(), name="audit batches")
        return await waiter

    async def _flush_loop(self) -> None:
        """Write the batches queued on this loop one after the other, until none is left."""
        loop = asyncio.get_running_loop()
        while self._loop_pending:
            batch, self._loop_pending = self._loop_pending, []
            try:
                records, written = self._write_batch([entry for entry, _ in batch])
                await loop.run_in_executor(None, _sync_copies, written)
            except asyncio.CancelledError:
                for _, waiter in batch + self._loop_pending:
                    waiter.cancel()
                self._loop_pending = []
                raise
            except Exception as exc:  # every caller of the batch gets the failure
                for _, waiter in batch:
                    if not waiter.done():
                        waiter.set_exception(exc)
                continue
            for (_, waiter), record in zip(batch, records, strict=True):
                if not waiter.done():
                    waiter.set_result(record)

    @staticmethod
    def _entry(kind: str, actor: str, client_id: str | None, session_id: str | None,
               data: Mapping[str, Any] | None) -> _Entry:
        """Check and redact an event in the caller's thread: a bad one never reaches a batch."""
        given = {"kind": kind, "actor": actor, "client_id": client_id, "session_id": session_id}
        for name, value in given.items():
            if value is not None and len(value) > _LIMITS[name]:
                raise ValueError(f"audit {name} longer than {_LIMITS[name]} characters: {value[:80]!r}")
        if not kind:
            raise ValueError("audit kind must not be empty")
        plain, text = _json_data(data)
        return _Entry(kind, actor, client_id, session_id, plain, text,
                      f'{{"actor":{_json_str(actor)},"client_id":{_json_text(client_id)},"data":{text},',
                      f'"kind":{_json_str(kind)},', f'"session_id":{_json_text(session_id)},')

    def _submit(self, entry: _Entry) -> Future[AuditRecord]:
        done: Future[AuditRecord] = Future()
        with self._pending_ready:
            self._pending.append((entry, done))
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_loop, name="audit-writer", daemon=True)
                self._writer.start()
            elif self._writer_waiting:  # a busy writer looks at the queue again when its batch is done
                self._pending_ready.notify()
        return done

    def _write_loop(self) -> None:
        """The single writer of this instance: takes every event queued so far as one batch.

        Exits after :data:`_WRITER_IDLE_S` without work; :meth:`_submit` starts a new one."""
        while True:
            with self._pending_ready:
                while not self._pending:
                    self._writer_waiting = True
                    woken = self._pending_ready.wait(_WRITER_IDLE_S)
                    self._writer_waiting = False
                    if not woken and not self._pending:
                        self._writer = None
                        return
                batch, self._pending = self._pending, []
            try:
                records, written = self._write_batch([entry for entry, _ in batch])
                _sync_copies(written)
            except BaseException as exc:  # every caller of the batch gets the failure
                for _, done in batch:
                    done.set_exception(exc)
            else:
                for (_, done), record in zip(batch, records, strict=True):
                    done.set_result(record)

    def _write_batch(self, batch: list[_Entry]) -> tuple[list[AuditRecord], list[tuple[int, Path | None]]]:
        """Append a batch of events: one transaction, one write and one fsync per day file.

        Order of work, all under the append lock: read the tail (one indexed query), insert
        the rows, append the file lines, fsync them, commit. The file is written *inside* the
        transaction, before the commit, because the lock is only held until the commit: a line
        written afterwards could land in the file after a later event of another process.

        On SQLite the fsync comes right *after* the commit instead (the caller does it with the
        file descriptors returned, copies it must hand to :func:`_sync_copies`, before it hands out
        the records), once the database's single write lock is released: held through an fsync,
        that lock stalls every other write of the process (the event loop's included) for as long
        as the disk takes. The lines are in the file, in order, before the commit either way, and
        no caller proceeds before the fsync; what SQLite gives up is only the order of the two
        syncs on power loss, which its own ``synchronous=NORMAL`` commit never promised (a commit
        is on disk at the next checkpoint).

        The statements go straight to the DB-API connection (:data:`_RAW_INSERT`), with the column
        types' own processors for ``ts``, so the rows are what SQLAlchemy would have written.

        * A row insert or the file write fails: the transaction rolls back and the files are
          cut back to their previous length, so neither copy holds any event of the batch.
          :class:`StoreError`.
        * The commit fails after the lines were written: the lines are cut off again and
          :class:`StoreError` is raised. Should the database have committed after all (a
          connection lost during COMMIT), the trail is not silently wrong: :meth:`verify`
          reports the events as missing from the files.
        * The fsync after a SQLite commit fails: the events stand in both copies, but the
          callers get a :class:`StoreError` saying their lines may not be on disk.

        ``ts`` never goes back: an event is stamped no earlier than the previous one, so day
        files stay in ``seq`` order even when clocks of different writers disagree.
        """
        with self._mutex:
            try:
                raw = self._engine.raw_connection()
            except SQLAlchemyError as exc:
                raise StoreError(f"cannot append to the audit trail: {exc}") from exc
            try:
                cur = raw.cursor()
                if self._sync_after_commit:  # SQLite: the write lock from the first statement on
                    cur.execute("BEGIN IMMEDIATE")
                else:  # PostgreSQL: psycopg opens the transaction, unless in autocommit (not the pool's
                    # default, but then the advisory lock would end with its own statement)
                    if raw.driver_connection.autocommit:  # type: ignore[union-attr]
                        raw.driver_connection.autocommit = False  # type: ignore[union-attr]
                    cur.execute("SELECT pg_advisory_xact_lock(%s)", (PG_LOCK_KEY,))
                cur.execute(_RAW_TAIL)
                row = cur.fetchone()
                if row is None:
                    seq, prev_hash, last_ts = 0, GENESIS_HASH, None
                else:
                    seq, prev_hash, last_ts = row[0], row[1], self._ts_result(row[2]).astimezone(UTC)
                records: list[AuditRecord] = []
                lines: list[bytes] = []
                for entry in batch:
                    now = self._clock()
                    if now.tzinfo is None:
                        raise ValueError("the audit clock must return aware datetimes")
                    ts = now.astimezone(UTC)
                    if last_ts is not None and last_ts > ts:
                        ts = last_ts
                    seq += 1
                    record, line = _seal(seq, ts, entry, prev_hash)
                    records.append(record)
                    lines.append(line)
                    prev_hash, last_ts = record.hash, ts
                params = [(r.seq, self._ts_bind(r.ts), r.kind, r.actor, r.client_id, r.session_id, e.data_json,
                           r.prev_hash, r.hash) for r, e in zip(records, batch, strict=True)]
                if len(params) == 1:
                    cur.execute(self._insert_sql, params[0])
                else:
                    cur.executemany(self._insert_sql, params)
                cur.close()
                with self._file_lines(records, lines) as written:
                    if not self._sync_after_commit:
                        for item in written:
                            self._sync_fd(item.file.fd, item.file.path, item.created)
                    raw.commit()
                copies = self._copies(written) if self._sync_after_commit else []
                self._head_seq = seq
                self._keep_only(written[-1].file.path)  # the batch's last day: records come in ts order
            except BaseException as exc:
                try:
                    raw.rollback()
                except Exception:  # the connection is unusable: the pool drops it
                    raw.invalidate()
                if isinstance(exc, self._dbapi_error):
                    raise StoreError(f"cannot append to the audit trail: {exc}") from exc
                raise
            finally:
                raw.close()
        return records, copies

    def _locked(self) -> AbstractContextManager[Connection]:
        """A transaction holding the cross-process audit lock; the body must ``COMMIT`` it."""
        return locked_transaction(self._engine, pg_advisory_key=PG_LOCK_KEY)

    @staticmethod
    def _tail(conn: Connection) -> _Tail:
        row = conn.execute(_TAIL).first()
        if row is None:
            return _Tail(0, GENESIS_HASH, None)
        return _Tail(row.seq, row.hash, row.ts.astimezone(UTC))

    def _day_file(self, path: Path) -> tuple[_DayFile, int, bool]:
        """The open day file ``path``, its length now and whether it was just created.

        A file kept open from an earlier batch is used only if ``path`` still names it: deleted,
        or renamed away (log rotation) and perhaps replaced, it is closed and ``path`` opened (or
        created) again, as a fresh open per batch would. One ``stat`` per batch."""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            st = None
        kept = self._files.get(path)
        if kept is not None:
            if st is not None and (st.st_dev, st.st_ino) == (kept.dev, kept.ino):
                return kept, st.st_size, False
            del self._files[path]
            with suppress(OSError):
                os.close(kept.fd)
        if st is None:
            self._dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            opened = os.fstat(fd)
        except OSError:
            os.close(fd)
            raise
        day_file = self._files[path] = _DayFile(path, fd, opened.st_dev, opened.st_ino)
        return day_file, opened.st_size, st is None

    @contextmanager
    def _file_lines(self, records: list[AuditRecord], lines: list[bytes]) -> Iterator[list[_Written]]:
        """Append the records' lines, each to its day's file (written, not yet fsynced), and run the
        body (the commit) with the files written; undo the lines if anything fails."""
        by_file: dict[Path, list[bytes]] = {}
        for record, line in zip(records, lines, strict=True):
            by_file.setdefault(self._dir / f"{record.ts.date().isoformat()}.jsonl", []).append(line)
        written: list[_Written] = []
        try:
            for path, chunk in by_file.items():
                day_file, size, created = self._day_file(path)
                written.append(_Written(day_file, size, created))
                _write_all(day_file.fd, b"".join(chunk))
        except OSError as exc:
            for item in written:
                _truncate(item.file.fd, item.size)
            _close_files(self._files)
            raise StoreError(f"cannot write audit file {path}: {exc}") from exc
        try:
            yield written
        except BaseException:
            for item in written:
                _truncate(item.file.fd, item.size)
            _close_files(self._files)
            raise

    def _keep_only(self, path: Path) -> None:
        """Close the kept day files other than ``path`` (yesterday's, once today's is written)."""
        for other in [other for other in self._files if other != path]:
            with suppress(OSError):
                os.close(self._files.pop(other).fd)

    def _copies(self, written: list[_Written]) -> list[tuple[int, Path | None]]:
        """Copies of the written files' descriptors for a sync after the lock is released (the
        originals may be closed by the next batch meanwhile), each with the directory to sync too
        when the file is new."""
        copies: list[tuple[int, Path | None]] = []
        try:
            for item in written:
                copies.append((os.dup(item.file.fd), self._dir if item.created else None))
        except OSError as exc:
            for fd, _ in copies:
                os.close(fd)
            raise StoreError(f"audit events were committed, but cannot sync their file: {exc}") from exc
        return copies

    def _sync_fd(self, fd: int, path: Path, created: bool) -> None:
        """fsync a day file just written (and the directory, for a file just created)."""
        try:
            _fdatasync(fd)
        except OSError as exc:
            _close_files(self._files)
            raise StoreError(f"cannot write audit file {path}: {exc}") from exc
        if created:
            _fsync_dir(self._dir)

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
            stmt = stmt.where(AuditEvent.client_id.in_(list(client_ids)))
        if session_id is not None:
            stmt = stmt.where(AuditEvent.session_id == session_id)
        if kind is not None:
            stmt = stmt.where(AuditEvent.kind == kind)
        if since is not None:
            if since.tzinfo is None:
                raise ValueError("since must be an aware datetime")
            stmt = stmt.where(AuditEvent.ts >= since)
        try:
            with self._engine.connect() as conn:
                return [_from_row(row) for row in conn.execute(stmt)]
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read the audit trail: {exc}") from exc

    # --- verifying -------------------------------------------------------------------------------

    def verify(self, *, checkpoint: str | None = None, require_checkpoint: bool = False) -> VerifyReport:
        """Check every file line and every row; raise :class:`AuditIntegrityError` at the first fault.

        Files are read in day order and line order. Each line must be canonical JSON of a
        record whose ``seq`` follows the previous one, whose ``prev_hash`` is the previous
        ``hash``, whose ``hash`` matches its content and whose day is its file's. Each line is
        then matched against the row of the same ``seq``, whose own hash is recomputed too; rows
        left over are events missing from the files. The check covers the trail as it stood
        when it began: appends made meanwhile are left for the next run.

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
            with self._mutex, self._locked() as conn:
                last_seq = self._tail(conn).seq
                files = self._snapshot_files()
                conn.exec_driver_sql("COMMIT")
            with self._engine.connect() as conn:
                rows = conn.execution_options(yield_per=500).execute(
                    select(_EVENTS).where(_EVENTS.c.seq <= last_seq).order_by(_EVENTS.c.seq)
                )
                try:
                    report = self._check(files, (_from_row(row) for row in rows), sealed[0] if sealed else None)
                finally:
                    rows.close()  # a server-side cursor on PostgreSQL, left open when a check fails
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read the audit trail: {exc}") from exc
        if self.checkpoints is None:
            return report
        if sealed is None:
            if report.last_seq and require_checkpoint:
                raise AuditIntegrityError(
                    f"no checkpoint seals this trail ({self.checkpoints.path} is missing or empty), so a cut at "
                    f"its end (seq {report.last_seq}) would go unnoticed; if the trail predates checkpoints, "
                    "start the server once to seal it, else the checkpoints were deleted",
                    self.checkpoints.path.name)
            return report
        cp, where = sealed
        if report.last_seq < cp.seq:
            raise AuditIntegrityError(
                f"the chain ends at seq {report.last_seq} but checkpoint says seq {cp.seq} was sealed at "
                f"{cp.sealed_at.isoformat()}: events {report.last_seq + 1} to {cp.seq} were cut from both the "
                "database and the files", where)
        return dataclasses.replace(report, sealed=cp)

    def _snapshot_files(self) -> list[tuple[Path, int]]:
        if not self._dir.is_dir():
            return []
        found = [p for p in self._dir.iterdir() if _FILE_NAME.match(p.name) and p.is_file()]
        return [(p, p.stat().st_size) for p in sorted(found, key=lambda p: p.name)]

    def _check(self, files: list[tuple[Path, int]], rows: Iterator[AuditRecord],
               sealed: Checkpoint | None = None) -> VerifyReport:
        prev = _Tail(0, GENESIS_HASH, None)
        sealed_seq = sealed.seq if sealed is not None else -1
        for path, size in files:
            day = date.fromisoformat(path.name.removesuffix(".jsonl"))
            for lineno, raw in enumerate(_lines(path, size), start=1):
                where = f"{path.name}:{lineno}"
                record = _parse_line(raw, where)
                expected = prev.seq + 1
                if record.seq > expected:
                    raise AuditIntegrityError(f"missing seq {expected}: the line is seq {record.seq}", where)
                if record.seq < expected:
                    raise AuditIntegrityError(f"unexpected seq {record.seq}: expected seq {expected}", where)
                if record.prev_hash != prev.hash:
                    raise AuditIntegrityError(
                        f"broken link: prev_hash of seq {record.seq} is not the hash of seq {prev.seq}", where
                    )
                if record.computed_hash() != record.hash:
                    raise AuditIntegrityError(f"hash mismatch: seq {record.seq} was altered", where)
                if record.ts.astimezone(UTC).date() != day:
                    raise AuditIntegrityError(
                        f"seq {record.seq} is dated {record.ts.isoformat()}, not in this day's file", where
                    )
                _match_row(record, next(rows, None), where)
                if record.seq == sealed_seq and sealed is not None and record.hash != sealed.hash:
                    raise AuditIntegrityError(
                        f"seq {record.seq} is not the event sealed at {sealed.sealed_at.isoformat()}: the trail "
                        "was cut and written again from there", where)
                prev = _Tail(record.seq, record.hash, record.ts)
        leftover = next(rows, None)
        if leftover is not None:
            raise _missing_from_files(leftover.seq)
        return VerifyReport(events=prev.seq, files=len(files), last_seq=prev.seq, last_hash=prev.hash)


def _seal_loop(ref: weakref.ref[AuditLog], stop: threading.Event, interval_s: float) -> None:
    """The sealer thread: every ``interval_s``, seal the head if this log appended since the last seal.
    Ends with :meth:`AuditLog.close` or when the log is garbage-collected."""
    while not stop.wait(interval_s):
        audit = ref()
        if audit is None:
            return
        try:
            audit._seal_if_moved()
        except Exception as exc:  # a full disk must not end the sealing: the next round tries again
            _log.warning("audit checkpoint not written: %s", exc)
        del audit


def _match_row(record: AuditRecord, row: AuditRecord | None, where: str) -> None:
    if row is None or row.seq > record.seq:
        raise AuditIntegrityError(f"extra line: seq {record.seq} is not in the database", where)
    if row.seq < record.seq:
        raise _missing_from_files(row.seq)
    at = f"db seq {row.seq}"
    if row.computed_hash() != row.hash:
        raise AuditIntegrityError(f"hash mismatch: the row of seq {row.seq} was altered", at)
    if row.hash != record.hash:
        raise AuditIntegrityError(f"the row of seq {row.seq} differs from its line {where}", at)


def _missing_from_files(seq: int) -> AuditIntegrityError:
    message = f"event seq {seq} is in the database but missing from the files"
    return AuditIntegrityError(message, f"db seq {seq}")


def _parse_line(raw: bytes, where: str) -> AuditRecord:
    if not raw.endswith(b"\n"):
        raise AuditIntegrityError("incomplete line (no newline at the end)", where)
    text = raw[:-1].decode("utf-8", errors="replace")
    try:
        record = AuditRecord.model_validate_json(text)
    except ValidationError as exc:
        if any(err["type"] == "json_invalid" for err in exc.errors()):
            raise AuditIntegrityError("bad JSON", where) from exc
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'line'}: {e['msg']}" for e in exc.errors())
        raise AuditIntegrityError(f"malformed event: {problems}", where) from exc
    if record.line() != text:
        raise AuditIntegrityError(f"seq {record.seq} is not in canonical form (the line was edited)", where)
    return record


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


def _lines(path: Path, size: int) -> Iterator[bytes]:
    """The lines among the first ``size`` bytes of ``path`` (the length it had at the snapshot)."""
    try:
        with path.open("rb") as fh:
            remaining = size
            for raw in fh:
                if remaining <= 0:
                    return
                yield raw[:remaining]
                remaining -= len(raw)
    except OSError as exc:
        raise StoreError(f"cannot read audit file {path}: {exc}") from exc


def _truncate(fd: int, size: int) -> None:
    """Cut the file back to ``size`` bytes, its length before a failed append."""
    with suppress(OSError):
        os.ftruncate(fd, size)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _sync_copies(copies: list[tuple[int, Path | None]]) -> None:
    """fsync and close the descriptor copies :meth:`AuditLog._write_batch` returned (every one, even
    when one fails), and the directory of a file just created."""
    failure: OSError | None = None
    for fd, directory in copies:
        try:
            _fdatasync(fd)
        except OSError as exc:
            failure = failure or exc
        finally:
            os.close(fd)
        if directory is not None:
            _fsync_dir(directory)
    if failure is not None:
        raise StoreError(f"cannot write audit file: {failure} (the events were committed)") from failure


def _fsync_dir(directory: Path) -> None:
    with suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
