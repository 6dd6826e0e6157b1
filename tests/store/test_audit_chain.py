"""The audit chain on its own: sealing, hashing and verification as plain functions, no database, no files."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import PurePath

import pytest

from mspclaw.errors import AuditIntegrityError
from mspclaw.store.audit import chain
from mspclaw.store.audit.chain import GENESIS_HASH, START, AuditRecord, Link, VerifyReport
from mspclaw.store.audit_checkpoint import Checkpoint
from mspclaw.store.redact import REDACTED

T0 = datetime(2026, 11, 23, 23, 59, 58, tzinfo=UTC)


class Clock:
    def __init__(self, *times: datetime) -> None:
        self.times = list(times)

    def __call__(self) -> datetime:
        return self.times.pop(0) if len(self.times) > 1 else self.times[0]


def sealed(n: int, *, start: datetime = T0, step: timedelta = timedelta(seconds=1)) -> tuple[list[AuditRecord],
                                                                                                list[bytes]]:
    items = [chain.entry("ticket.note", "tech:alice", "cl_acme", None, {"n": i}) for i in range(n)]
    return chain.extend(START, items, Clock(*[start + step * i for i in range(n)]))


def days_of(records: list[AuditRecord], lines: list[bytes]) -> list[tuple[str, list[bytes]]]:
    by_day: dict[str, list[bytes]] = {}
    for record, line in zip(records, lines, strict=True):
        by_day.setdefault(chain.day_file_name(record), []).append(line)
    return sorted(by_day.items())


def rows(records: list[AuditRecord]) -> Iterator[AuditRecord]:
    return iter(records)


# --- sealing -------------------------------------------------------------------------------------


def test_sealed_lines_are_the_records_canonical_json_and_hash_by_the_documented_rule() -> None:
    records, lines = sealed(3)
    assert [r.seq for r in records] == [1, 2, 3]
    assert records[0].prev_hash == GENESIS_HASH
    assert [r.prev_hash for r in records[1:]] == [r.hash for r in records[:-1]]
    for record, line in zip(records, lines, strict=True):
        assert line == (record.line() + "\n").encode("ascii")
        assert record.hash == record.computed_hash()
        fields = json.loads(line)
        claimed = fields.pop("hash")
        body = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        assert claimed == hashlib.sha256((fields["prev_hash"] + body).encode()).hexdigest()


def test_a_chain_goes_on_from_the_end_it_is_given() -> None:
    first, _ = sealed(2)
    end = Link(first[-1].seq, first[-1].hash, first[-1].ts)
    more, _ = chain.extend(end, [chain.entry("next", "system", None, None, None)], Clock(T0 + timedelta(hours=1)))
    assert (more[0].seq, more[0].prev_hash) == (3, first[-1].hash)


def test_time_never_goes_back_and_is_stored_as_utc() -> None:
    behind = T0 - timedelta(minutes=5)
    records, _ = chain.extend(START, [chain.entry("a", "system", None, None, None),
                                      chain.entry("b", "system", None, None, None)],
                              Clock(T0.astimezone(timezone(timedelta(hours=2))), behind))
    assert records[0].ts == T0 and records[0].ts.utcoffset() == timedelta(0)
    assert records[1].ts == T0, "an event is never stamped before the one it follows"
    with pytest.raises(ValueError, match="aware"):
        chain.extend(START, [chain.entry("a", "system", None, None, None)], Clock(datetime(2026, 1, 1)))


def test_an_entry_is_checked_and_redacted_before_it_is_hashed() -> None:
    with pytest.raises(ValueError, match="kind must not be empty"):
        chain.entry("", "system", None, None, None)
    with pytest.raises(ValueError, match="actor longer than 255"):
        chain.entry("k", "x" * 256, None, None, None)
    with pytest.raises(ValueError, match="must be JSON"):
        chain.entry("k", "system", None, None, {"ratio": float("nan")})
    item = chain.entry("k", "system", None, None, {"password": "hunter2", "when": T0, "pair": (1, 2)})
    assert item.data == {"password": REDACTED, "when": str(T0), "pair": [1, 2]}
    records, lines = chain.extend(START, [item], Clock(T0))
    assert b"hunter2" not in lines[0] and records[0].data["password"] == REDACTED


def test_events_go_to_the_file_of_their_utc_day() -> None:
    records, _ = sealed(3)  # 23:59:58, 23:59:59, 00:00:00 the next day
    assert [chain.day_file_name(r) for r in records] == ["2026-11-23.jsonl", "2026-11-23.jsonl", "2026-11-24.jsonl"]


# --- verifying -----------------------------------------------------------------------------------


def test_an_intact_trail_over_two_days_verifies() -> None:
    records, lines = sealed(3)
    report = chain.check(days_of(records, lines), rows(records))
    assert report == VerifyReport(events=3, files=2, last_seq=3, last_hash=records[-1].hash)
    assert chain.check([], iter([])) == VerifyReport(events=0, files=0, last_seq=0, last_hash=GENESIS_HASH)


def test_an_altered_line_is_named_by_file_and_line() -> None:
    records, lines = sealed(2, step=timedelta(0))
    edited = lines[1].replace(b'"n":1', b'"n":7')
    with pytest.raises(AuditIntegrityError) as caught:
        chain.check([("2026-11-23.jsonl", [lines[0], edited])], rows(records))
    assert caught.value.location == "2026-11-23.jsonl:2" and "altered" in caught.value.message


@pytest.mark.parametrize(("lines_kept", "message"), [
    ([0, 2], "missing seq 2"),
    ([0, 1, 0, 2], "unexpected seq 1: expected seq 3"),
    ([1, 0, 2], "missing seq 1: the line is seq 2"),
])
def test_removed_or_reordered_lines_break_the_chain(lines_kept: list[int], message: str) -> None:
    records, lines = sealed(3, step=timedelta(0))
    with pytest.raises(AuditIntegrityError, match=message):
        chain.check([("2026-11-23.jsonl", [lines[i] for i in lines_kept])], rows(records))


def test_a_line_in_the_wrong_days_file_or_not_canonical_or_cut_fails() -> None:
    records, lines = sealed(1)
    with pytest.raises(AuditIntegrityError, match="not in this day's file"):
        chain.check([("2026-11-24.jsonl", lines)], rows(records))
    spaced = json.dumps(json.loads(lines[0]), sort_keys=True).encode() + b"\n"
    with pytest.raises(AuditIntegrityError, match="canonical form"):
        chain.check([("2026-11-23.jsonl", [spaced])], rows(records))
    with pytest.raises(AuditIntegrityError, match="no newline"):
        chain.check([("2026-11-23.jsonl", [lines[0][:-1]])], rows(records))
    with pytest.raises(AuditIntegrityError, match="bad JSON"):
        chain.check([("2026-11-23.jsonl", [b"{not json\n"])], rows(records))


def test_lines_and_rows_must_agree() -> None:
    records, lines = sealed(2, step=timedelta(0))
    day = "2026-11-23.jsonl"
    with pytest.raises(AuditIntegrityError, match="seq 2 is in the database but missing from the files"):
        chain.check([(day, lines[:1])], rows(records))
    with pytest.raises(AuditIntegrityError, match="extra line: seq 2"):
        chain.check([(day, lines)], rows(records[:1]))
    forged = records[1].model_copy(update={"actor": "mallory"})
    with pytest.raises(AuditIntegrityError, match="the row of seq 2 was altered") as caught:
        chain.check([(day, lines)], rows([records[0], forged]))
    assert caught.value.location == "db seq 2"


def test_a_chain_must_reach_the_newest_checkpoint_with_its_hash() -> None:
    records, lines = sealed(3, step=timedelta(0))
    day = "2026-11-23.jsonl"
    at = T0 + timedelta(minutes=1)
    cut = chain.check([(day, lines[:2])], rows(records[:2]))
    with pytest.raises(AuditIntegrityError, match="events 3 to 3 were cut") as caught:
        chain.check_sealed(cut, (Checkpoint(3, records[2].hash, at), "cp.jsonl:4"), require=False,
                           checkpoint_file=PurePath("/data/cp.jsonl"))
    assert caught.value.location == "cp.jsonl:4"
    whole = chain.check([(day, lines)], rows(records), Checkpoint(3, records[2].hash, at))
    assert chain.check_sealed(whole, (Checkpoint(3, records[2].hash, at), "cp.jsonl:4"), require=True,
                              checkpoint_file=PurePath("/data/cp.jsonl")).sealed == Checkpoint(3, records[2].hash, at)
    with pytest.raises(AuditIntegrityError, match="cut and written again"):
        chain.check([(day, lines)], rows(records), Checkpoint(2, "f" * 64, at))
    with pytest.raises(AuditIntegrityError, match="no checkpoint seals this trail"):
        chain.check_sealed(whole, None, require=True, checkpoint_file=PurePath("/data/cp.jsonl"))
    assert chain.check_sealed(whole, None, require=False, checkpoint_file=PurePath("/data/cp.jsonl")) == whole
