"""The hash chain itself, with no I/O: canonical JSON, sealing events into records, verifying a trail.

Every record carries

* ``seq``: 1 for the first event, then previous + 1, with no gaps;
* ``prev_hash``: the ``hash`` of the previous event (:data:`GENESIS_HASH` for the first);
* ``hash``: ``sha256(prev_hash + canonical JSON of every other field)`` in hex,

and its line in a day file is the canonical JSON (sorted keys, compact separators, ASCII only) of
the whole record. Changing, removing or inserting any event breaks the chain from that point on;
:func:`check` names the first place where it breaks, given the lines of the day files and the
rows of the database, and :func:`check_sealed` fails a chain that stops short of the newest
signed checkpoint. Event data passes through :func:`mspclaw.store.redact.redact` in
:func:`entry`, before anything is hashed, so secrets are never written anywhere.

Tested like ``protocol/``: plain synchronous tests, no database and no files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import json.encoder
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import PurePath
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

from mspclaw.errors import AuditIntegrityError
from mspclaw.store.audit_checkpoint import Checkpoint
from mspclaw.store.clock import aware_now
from mspclaw.store.redact import redact, redact_plain

GENESIS_HASH = "0" * 64
"""``prev_hash`` of the first event."""

LIMITS = {"kind": 64, "actor": 255, "client_id": 32, "session_id": 32}
"""The longest ``kind``, ``actor``, ``client_id`` and ``session_id`` an event may have (the columns' sizes)."""

_json_str = json.encoder.encode_basestring_ascii
"""What :func:`canonical_json` writes for a ``str`` (a C function), without the call around it."""


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
        return canonical_json({**hashed_fields(self), "hash": self.hash})

    def computed_hash(self) -> str:
        """The hash the record's other fields call for (equal to ``hash`` unless tampered with)."""
        return chain_hash(self.prev_hash, hashed_fields(self))


@dataclass(frozen=True)
class VerifyReport:
    """What a verification checked: all of it was intact."""

    events: int
    files: int
    last_seq: int
    last_hash: str
    sealed: Checkpoint | None = None
    """The newest checkpoint, which the chain reaches (``None``: the log keeps no checkpoints)."""


@dataclass(frozen=True, slots=True)
class Link:
    """The end of a chain: the last event's ``seq``, ``hash`` and time (``0``, genesis, ``None``: empty)."""

    seq: int
    hash: str
    ts: datetime | None


START = Link(0, GENESIS_HASH, None)
"""The end of an empty chain."""


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, ASCII only, no NaN: the same text for the same data everywhere."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def chain_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    """``sha256(prev_hash + canonical_json(fields))`` as 64 hex digits."""
    return hashlib.sha256((prev_hash + canonical_json(fields)).encode("ascii")).hexdigest()


def hashed_fields(record: AuditRecord) -> dict[str, Any]:
    """Every field of the record but ``hash``, as hashed."""
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


# --- sealing -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    """An event waiting for its place in the chain, checked and redacted, with the parts of its line
    that do not depend on that place already in canonical JSON (:func:`seal` adds the rest)."""

    kind: str
    actor: str
    client_id: str | None
    session_id: str | None
    data: dict[str, Any]
    head: str
    """``{"actor":…,"client_id":…,"data":…,``: the keys before ``hash`` in sorted order."""
    kind_part: str
    """``"kind":…,``"""
    session_part: str
    """``"session_id":…,``"""


def entry(kind: str, actor: str, client_id: str | None, session_id: str | None,
          data: Mapping[str, Any] | None) -> Entry:
    """Check and redact an event (``ValueError`` for a bad one), and serialise its data once."""
    given = {"kind": kind, "actor": actor, "client_id": client_id, "session_id": session_id}
    for name, value in given.items():
        if value is not None and len(value) > LIMITS[name]:
            raise ValueError(f"audit {name} longer than {LIMITS[name]} characters: {value[:80]!r}")
    if not kind:
        raise ValueError("audit kind must not be empty")
    plain, text = _json_data(data)
    return Entry(kind, actor, client_id, session_id, plain,
                 f'{{"actor":{_json_str(actor)},"client_id":{_json_text(client_id)},"data":{text},',
                 f'"kind":{_json_str(kind)},', f'"session_id":{_json_text(session_id)},')


def seal(seq: int, ts: datetime, item: Entry, prev_hash: str) -> tuple[AuditRecord, bytes]:
    """The record of ``item`` at ``seq``, hashed, and its line with the newline.

    The canonical JSON of the hashed fields and the line are put together from the entry's parts:
    sorted keys ``actor, client_id, data, [hash,] kind, prev_hash, seq, session_id, ts``, so the
    data is serialised once per event; ``test_lines_are_the_records_canonical_json`` holds them to
    :meth:`AuditRecord.line` and :func:`chain_hash`. The record is built without validation: every
    field is ours."""
    rest = (f'"prev_hash":{_json_str(prev_hash)},"seq":{seq:d},{item.session_part}'
            f'"ts":{_json_str(ts.isoformat())}}}')
    digest = hashlib.sha256(f"{prev_hash}{item.head}{item.kind_part}{rest}".encode("ascii")).hexdigest()
    record = AuditRecord.model_construct(seq=seq, ts=ts, kind=item.kind, actor=item.actor, client_id=item.client_id,
                                         session_id=item.session_id, data=item.data, prev_hash=prev_hash,
                                         hash=digest)
    return record, f'{item.head}"hash":"{digest}",{item.kind_part}{rest}\n'.encode("ascii")


def extend(end: Link, items: Iterable[Entry], clock: Callable[[], datetime]) -> tuple[list[AuditRecord], list[bytes]]:
    """Seal ``items`` after the chain's ``end``, each stamped with ``clock()`` (aware): their records and lines.

    ``ts`` never goes back: an event is stamped no earlier than the one before it, so day files
    stay in ``seq`` order even when the clocks of different writers disagree."""
    seq, prev_hash, last_ts = end.seq, end.hash, end.ts
    records: list[AuditRecord] = []
    lines: list[bytes] = []
    for item in items:
        ts = aware_now(clock, "the audit clock")
        if last_ts is not None and last_ts > ts:
            ts = last_ts
        seq += 1
        record, line = seal(seq, ts, item, prev_hash)
        records.append(record)
        lines.append(line)
        prev_hash, last_ts = record.hash, ts
    return records, lines


def day_file_name(record: AuditRecord) -> str:
    """The name of the day file a record's line belongs in: its UTC day, ``YYYY-MM-DD.jsonl``."""
    return f"{record.ts.astimezone(UTC).date().isoformat()}.jsonl"


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


# --- verifying -----------------------------------------------------------------------------------


def check(days: Iterable[tuple[str, Iterable[bytes]]], rows: Iterator[AuditRecord],
          sealed: Checkpoint | None = None) -> VerifyReport:
    """Check the day files' lines against each other and against the database's rows.

    ``days``: each day file's name (``YYYY-MM-DD.jsonl``) and raw lines, in day order. Each line
    must be canonical JSON of a record whose ``seq`` follows the previous one, whose ``prev_hash``
    is the previous ``hash``, whose ``hash`` matches its content and whose day is its file's. Each
    line is then matched against the row of the same ``seq`` (``rows``, in ``seq`` order), whose
    own hash is recomputed too; rows left over are events missing from the files. With ``sealed``,
    the event of the checkpoint's ``seq`` must have its hash. :class:`AuditIntegrityError` at the
    first fault."""
    prev = START
    sealed_seq = sealed.seq if sealed is not None else -1
    files = 0
    for name, lines in days:
        files += 1
        day = date.fromisoformat(name.removesuffix(".jsonl"))
        for lineno, raw in enumerate(lines, start=1):
            where = f"{name}:{lineno}"
            record = parse_line(raw, where)
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
            prev = Link(record.seq, record.hash, record.ts)
    leftover = next(rows, None)
    if leftover is not None:
        raise _missing_from_files(leftover.seq)
    return VerifyReport(events=prev.seq, files=files, last_seq=prev.seq, last_hash=prev.hash)


def check_sealed(report: VerifyReport, sealed: tuple[Checkpoint, str] | None, *, require: bool,
                 checkpoint_file: PurePath) -> VerifyReport:
    """The chain of ``report`` must reach the newest checkpoint (``sealed``: it and where it was read).

    ``require``: a chain with events but no checkpoint at all fails too (deleting the checkpoint
    file must not hide a cut at the end)."""
    if sealed is None:
        if report.last_seq and require:
            raise AuditIntegrityError(
                f"no checkpoint seals this trail ({checkpoint_file} is missing or empty), so a cut at "
                f"its end (seq {report.last_seq}) would go unnoticed; if the trail predates checkpoints, "
                "start the server once to seal it, else the checkpoints were deleted",
                checkpoint_file.name)
        return report
    cp, where = sealed
    if report.last_seq < cp.seq:
        raise AuditIntegrityError(
            f"the chain ends at seq {report.last_seq} but checkpoint says seq {cp.seq} was sealed at "
            f"{cp.sealed_at.isoformat()}: events {report.last_seq + 1} to {cp.seq} were cut from both the "
            "database and the files", where)
    return dataclasses.replace(report, sealed=cp)


def parse_line(raw: bytes, where: str) -> AuditRecord:
    """One raw line of a day file (with its newline) as a record; it must be canonical JSON."""
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
