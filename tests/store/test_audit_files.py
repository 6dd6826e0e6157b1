"""The audit trail's write path: lines put together from parts, day files kept open between batches.

The lines and rows must be exactly what :meth:`AuditRecord.line` and :func:`chain_hash` say, for
any data; a day file deleted, rotated or replaced while the log keeps it open must be handled as a
fresh open of its path would; a failed batch leaves no trace in a kept file.
"""

from __future__ import annotations

import asyncio
import enum
import json
import math
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import Engine, insert, select, text

from mspclaw.errors import AuditIntegrityError, StoreError
from mspclaw.store.audit import AuditLog, AuditRecord, canonical_json, chain_hash
from mspclaw.store.database import Database
from mspclaw.store.redact import REDACTED, redact, redact_plain
from mspclaw.store.tables import AuditEvent

if TYPE_CHECKING:
    from tests.store.conftest import TestDatabase

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
DAY = "2026-11-23"


class Colour(enum.StrEnum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Clock:
    """A clock that moves ``step`` forward on every reading (each event of a batch reads it once)."""

    def __init__(self, now: datetime = START, step: timedelta = timedelta(0)) -> None:
        self.now, self.step = now, step

    def __call__(self) -> datetime:
        now = self.now
        self.now += self.step
        return now


@pytest.fixture
def audit_dir(tmp_path: Path) -> Path:
    return tmp_path / "audit"


def lines_of(audit_dir: Path, day: str = DAY) -> list[str]:
    return (audit_dir / f"{day}.jsonl").read_text("ascii").splitlines(keepends=True)


DATA: list[dict[Any, Any] | None] = [  # non-string keys too
    None,
    {},
    {"call_id": "call_1", "args": {"path": "/", "depth": 2}, "approval_id": None, "ok": True, "pct": 97.5},
    {"text": "Grüße, 東京 \"quoted\" \\ back\nslash \u2028", "emoji": "🚀", "nested": [[1, [2, {"x": []}]]]},
    {"tuple": (1, "two", (3,)), "big": 2**70, "neg": -0.0, "tiny": 1e-300},
    {"colour": Colour.RED, "level": Level.HIGH, "when": datetime(2026, 1, 2, tzinfo=UTC), "path": Path("/tmp")},
    {1: "int key", 2: "another"},
    {"password": "hunter2", "nested": {"apiKey": ["k1"], "note": "Authorization: Bearer abc.def"}},
]


@pytest.mark.parametrize("data", DATA, ids=range(len(DATA)))
def test_lines_are_the_records_canonical_json(engine: Engine, audit_dir: Path, data: dict[Any, Any] | None) -> None:
    """The line and hash put together from parts equal the documented rule, for plain and odd data;
    the data is what one JSON round trip of the redacted data gives; the row reads back the same."""
    audit = AuditLog(Database(engine), audit_dir, clock=Clock())
    record = audit.append("kind \"q\" é", actor="tech:zoë", client_id=None, session_id="se_1", data=data)

    (line,) = lines_of(audit_dir)
    assert line == record.line() + "\n"
    assert record.hash == record.computed_hash()
    fields = json.loads(line)
    assert fields.pop("hash") == record.hash == chain_hash(record.prev_hash, fields)
    expected = json.loads(json.dumps(redact(dict(data or {})), sort_keys=True, default=str))
    assert record.data == expected == fields["data"]
    assert audit.query() == [record]
    assert audit.verify().events == 1


def test_redact_plain_matches_redact_on_plain_data() -> None:
    data = {"user": "alice", "token": "t0k", "list": [{"secret": 1, "x": None}, ("a", "password=pw")],
            "usage": {"input_tokens": 3}, "n": 1.5, "b": False}
    plain = redact_plain(data)
    assert plain == json.loads(json.dumps(redact(data)))
    assert plain is not None and plain["token"] == REDACTED
    odds: tuple[dict[Any, Any], ...] = ({1: "x"}, {"e": Colour.RED}, {"d": datetime.now(UTC)}, {"s": {1, 2}})
    for odd in odds:
        assert redact_plain(odd) is None  # left to the general path


@pytest.mark.parametrize("bad", [{"x": math.nan}, {"x": [math.inf]}, {1: "a", "b": 2}])
def test_data_that_is_not_json_is_refused(engine: Engine, audit_dir: Path, bad: dict[Any, Any]) -> None:
    audit = AuditLog(Database(engine), audit_dir)
    with pytest.raises(ValueError, match="audit data must be JSON"):
        audit.append("bad", data=bad)
    assert audit.verify().events == 0


def test_rows_are_stored_as_sqlalchemy_stores_them(engine: Engine, audit_dir: Path) -> None:
    """The batch's statements bypass SQLAlchemy: ``ts`` must be stored in the column's own format."""
    audit = AuditLog(Database(engine), audit_dir, clock=Clock(START.replace(microsecond=123456)))
    record = audit.append("a", data={"k": 1})
    with engine.begin() as conn:
        conn.execute(insert(AuditEvent).values(seq=99, ts=record.ts, kind="copy", actor="system", data={"k": 1},
                                               prev_hash=record.hash, hash="f" * 64))
        rows = conn.execute(text("SELECT seq, ts, data FROM audit_events ORDER BY seq")).all()
    (_, ts_audit, data_audit), (_, ts_orm, _) = rows
    assert ts_audit == ts_orm
    assert (json.loads(data_audit) if isinstance(data_audit, str) else data_audit) == {"k": 1}
    with engine.connect() as conn:
        assert conn.execute(select(AuditEvent.ts).where(AuditEvent.seq == 1)).scalar_one() == record.ts


# --- day files kept open ---------------------------------------------------------------------------


def test_a_day_file_deleted_while_kept_open_is_created_again(engine: Engine, audit_dir: Path) -> None:
    audit = AuditLog(Database(engine), audit_dir, clock=Clock())
    audit.append("first")
    (audit_dir / f"{DAY}.jsonl").unlink()
    audit.append("second")

    assert [json.loads(line)["seq"] for line in lines_of(audit_dir)] == [2]
    with pytest.raises(AuditIntegrityError, match="missing seq 1"):
        audit.verify()  # the deletion is caught, as it would have been before


def test_a_day_file_rotated_while_kept_open_gets_no_more_lines(engine: Engine, audit_dir: Path) -> None:
    audit = AuditLog(Database(engine), audit_dir, clock=Clock())
    audit.append("one")
    audit.append("two")
    rotated = audit_dir / f"{DAY}.jsonl.1"
    (audit_dir / f"{DAY}.jsonl").rename(rotated)
    audit.append("three")

    assert [json.loads(line)["seq"] for line in rotated.read_text("ascii").splitlines()] == [1, 2]
    assert [json.loads(line)["seq"] for line in lines_of(audit_dir)] == [3]
    # put back together, the trail is whole: no line was lost or written twice
    whole = rotated.read_text("ascii") + (audit_dir / f"{DAY}.jsonl").read_text("ascii")
    (audit_dir / f"{DAY}.jsonl").write_text(whole, "ascii")
    rotated.unlink()
    assert audit.verify().events == 3


def test_a_day_file_replaced_by_a_copy_gets_the_next_line(engine: Engine, audit_dir: Path) -> None:
    """An editor or a restore writes a new file over the old name: the next line goes to the new file."""
    audit = AuditLog(Database(engine), audit_dir, clock=Clock())
    audit.append("one")
    path = audit_dir / f"{DAY}.jsonl"
    copy = audit_dir / "copy.tmp"
    shutil.copyfile(path, copy)
    os.replace(copy, path)
    audit.append("two")

    assert [json.loads(line)["seq"] for line in lines_of(audit_dir)] == [1, 2]
    assert audit.verify().events == 2


def test_another_instance_appending_to_the_kept_file_is_not_overwritten(engine: Engine, audit_dir: Path) -> None:
    """Two logs (two processes, say) each keep the same day file open: appends stay in seq order."""
    first = AuditLog(Database(engine), audit_dir, clock=Clock())
    second = AuditLog(Database(engine), audit_dir, clock=Clock())
    for i in range(6):
        (first if i % 2 else second).append("turn", data={"i": i})
    assert [json.loads(line)["seq"] for line in lines_of(audit_dir)] == [1, 2, 3, 4, 5, 6]
    assert first.verify().events == 6


def test_a_day_file_that_cannot_be_opened_again_fails_the_batch_without_trace(
    engine: Engine, audit_dir: Path
) -> None:
    audit = AuditLog(Database(engine), audit_dir, clock=Clock())
    audit.append("one")
    path = audit_dir / f"{DAY}.jsonl"
    kept = path.read_bytes()
    path.unlink()
    path.mkdir()  # the name now holds a directory: the kept file is not it, and it cannot be opened
    with pytest.raises(StoreError, match="cannot write audit file"):
        audit.append("lost")

    path.rmdir()
    path.write_bytes(kept)
    assert audit.append("two").seq == 2
    assert [json.loads(line)["kind"] for line in lines_of(audit_dir)] == ["one", "two"]
    assert audit.verify().events == 2


def test_a_failed_insert_cuts_the_kept_file_back(database: TestDatabase, engine: Engine, audit_dir: Path) -> None:
    """The batch's rows are refused after the tail was read (a trigger stands in for any failing insert):
    nothing of the batch stays in the kept file or the table, and the next batch appends normally."""
    with engine.begin() as conn:
        if database.kind == "sqlite":
            conn.execute(text("CREATE TRIGGER refuse BEFORE INSERT ON audit_events WHEN NEW.kind = 'boom' "
                              "BEGIN SELECT RAISE(ABORT, 'refused'); END"))
        else:
            conn.execute(text("CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                              "IF NEW.kind = 'boom' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$"))
            conn.execute(text("CREATE TRIGGER refuse BEFORE INSERT ON audit_events FOR EACH ROW "
                              "EXECUTE FUNCTION refuse()"))
    audit = AuditLog(Database(engine), audit_dir, clock=Clock())
    audit.append("one")
    with pytest.raises(StoreError, match="refused"):
        audit.append("boom")
    assert audit.append("two").seq == 2
    assert [json.loads(line)["kind"] for line in lines_of(audit_dir)] == ["one", "two"]
    assert audit.verify().events == 2


@pytest.mark.anyio
async def test_a_new_day_starting_mid_batch_splits_the_batch_over_two_files(engine: Engine, audit_dir: Path) -> None:
    """One batch whose events straddle midnight: each line in its own day's file, both synced, and
    the next day's file is the one kept open afterwards."""
    clock = Clock(datetime(2026, 11, 23, 23, 59, 59, 999_998, tzinfo=UTC), step=timedelta(microseconds=1))
    audit = AuditLog(Database(engine), audit_dir, clock=clock)
    records = await asyncio.gather(*(audit.record("tick", data={"i": i}) for i in range(4)))

    assert [r.ts.date().isoformat() for r in records] == [DAY, DAY, "2026-11-24", "2026-11-24"]
    assert [json.loads(line)["seq"] for line in lines_of(audit_dir)] == [1, 2]
    assert [json.loads(line)["seq"] for line in lines_of(audit_dir, "2026-11-24")] == [3, 4]
    await audit.record("later")
    assert [json.loads(line)["seq"] for line in lines_of(audit_dir, "2026-11-24")] == [3, 4, 5]
    report = audit.verify()
    assert (report.events, report.files) == (5, 2)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_canonical_json_is_unchanged() -> None:
    """The rule the files were written with: changing it would break every chain on disk."""
    assert canonical_json({"b": [1, 2.5, None, True], "a": "é"}) == '{"a":"\\u00e9","b":[1,2.5,null,true]}'
    record = AuditRecord(seq=1, ts=START, kind="k", actor="system", client_id=None, session_id=None,
                         data={}, prev_hash="0" * 64, hash="x")
    assert record.line() == ('{"actor":"system","client_id":null,"data":{},"hash":"x","kind":"k",'
                             f'"prev_hash":"{"0" * 64}","seq":1,"session_id":null,"ts":"2026-11-23T09:00:00+00:00"}}')
