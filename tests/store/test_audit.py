"""The audit trail: hash chain, tamper detection, redaction, queries, serialised appends."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from sqlalchemy import Engine, delete, event, func, select, text, update
from sqlalchemy.engine import make_url

from mspclaw.errors import AuditIntegrityError, StoreError
from mspclaw.store.audit import GENESIS_HASH, PG_LOCK_KEY, AuditLog, AuditRecord
from mspclaw.store.database import Database
from mspclaw.store.redact import REDACTED, is_secret_key, redact, redact_text
from mspclaw.store.tables import AuditEvent

if TYPE_CHECKING:
    from tests.store.conftest import TestDatabase

DAY = "2026-11-23"
START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def audit_dir(tmp_path: Path) -> Path:
    return tmp_path / "audit"


@pytest.fixture
def audit(engine: Engine, audit_dir: Path, clock: FakeClock) -> AuditLog:
    return AuditLog(Database(engine), audit_dir, clock=clock)


def append_five(audit: AuditLog, clock: FakeClock) -> list[AuditRecord]:
    records = []
    for i, who in enumerate(["alice", "bob", "carol", "dave", "erin"], start=1):
        records.append(
            audit.append("ticket.note", actor=f"tech:{who}", client_id="cl_acme", data={"n": i, "user": who})
        )
        clock.advance(seconds=1)
    return records


def file_lines(audit_dir: Path, day: str = DAY) -> list[str]:
    return (audit_dir / f"{day}.jsonl").read_text("ascii").splitlines(keepends=True)


def write_lines(audit_dir: Path, lines: list[str], day: str = DAY) -> None:
    (audit_dir / f"{day}.jsonl").write_text("".join(lines), "ascii")


def assert_tampered(audit: AuditLog, location: str, *words: str) -> AuditIntegrityError:
    with pytest.raises(AuditIntegrityError) as info:
        audit.verify()
    assert info.value.location == location, info.value.message
    for word in words:
        assert word in info.value.message
    return info.value


# --- the chain -----------------------------------------------------------------------------------


def test_a_chain_of_events_verifies(audit: AuditLog, audit_dir: Path, clock: FakeClock) -> None:
    records = append_five(audit, clock)

    assert [r.seq for r in records] == [1, 2, 3, 4, 5]
    assert records[0].prev_hash == GENESIS_HASH == "0" * 64
    assert [r.prev_hash for r in records[1:]] == [r.hash for r in records[:-1]]
    assert records[2].ts == START + timedelta(seconds=2)

    lines = file_lines(audit_dir)
    assert len(lines) == 5
    for record, line in zip(records, lines, strict=True):
        event = json.loads(line)
        claimed = event.pop("hash")
        # the documented rule, computed here from the raw line without the library's help
        body = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        assert claimed == hashlib.sha256((event["prev_hash"] + body).encode()).hexdigest() == record.hash
        canonical = json.dumps({**event, "hash": claimed}, sort_keys=True, separators=(",", ":"))
        assert line == canonical + "\n"
        assert event["ts"] == record.ts.isoformat() and event["ts"].endswith("+00:00")
        assert event["seq"] == record.seq

    report = audit.verify()
    assert (report.events, report.files, report.last_seq, report.last_hash) == (5, 1, 5, records[-1].hash)


def test_an_empty_trail_verifies(audit: AuditLog) -> None:
    report = audit.verify()
    assert (report.events, report.files, report.last_seq, report.last_hash) == (0, 0, 0, GENESIS_HASH)


def test_the_chain_continues_across_instances(engine: Engine, audit_dir: Path, clock: FakeClock) -> None:
    first = AuditLog(Database(engine), audit_dir, clock=clock).append("a")
    second = AuditLog(Database(engine), audit_dir, clock=clock).append("b")
    assert (second.seq, second.prev_hash) == (2, first.hash)
    assert AuditLog(Database(engine), audit_dir).verify().events == 2


# --- tampering -----------------------------------------------------------------------------------


def test_altered_data_in_a_line_is_named(audit: AuditLog, audit_dir: Path, clock: FakeClock) -> None:
    append_five(audit, clock)
    lines = file_lines(audit_dir)
    lines[2] = lines[2].replace('"user":"carol"', '"user":"mallory"')
    write_lines(audit_dir, lines)

    assert_tampered(audit, f"{DAY}.jsonl:3", "hash mismatch")


def rehashed(line: str, **changes: Any) -> AuditRecord:
    """The event of ``line`` with ``changes`` and a hash that fits them: a careful forger's work."""
    record = AuditRecord.model_validate_json(line).model_copy(update=changes)
    return record.model_copy(update={"hash": record.computed_hash()})


def test_a_line_rewritten_with_a_fresh_hash_no_longer_matches_its_row(
    audit: AuditLog, audit_dir: Path, clock: FakeClock
) -> None:
    append_five(audit, clock)
    lines = file_lines(audit_dir)
    lines[1] = rehashed(lines[1], data={"n": 2, "user": "mallory"}).line() + "\n"
    write_lines(audit_dir, lines)

    assert_tampered(audit, "db seq 2", "differs from its line", f"{DAY}.jsonl:2")


def test_an_event_rewritten_in_both_copies_breaks_the_next_link(
    audit: AuditLog, audit_dir: Path, engine: Engine, clock: FakeClock
) -> None:
    append_five(audit, clock)
    lines = file_lines(audit_dir)
    forged = rehashed(lines[1], data={"n": 2, "user": "mallory"})
    lines[1] = forged.line() + "\n"
    write_lines(audit_dir, lines)
    with engine.begin() as conn:
        conn.execute(update(AuditEvent).where(AuditEvent.seq == 2).values(data=forged.data, hash=forged.hash))

    assert_tampered(audit, f"{DAY}.jsonl:3", "broken link")


def test_a_line_removed_from_the_middle_is_named(audit: AuditLog, audit_dir: Path, clock: FakeClock) -> None:
    append_five(audit, clock)
    lines = file_lines(audit_dir)
    del lines[2]
    write_lines(audit_dir, lines)

    assert_tampered(audit, f"{DAY}.jsonl:3", "missing seq 3")


def test_the_last_line_removed_is_caught(audit: AuditLog, audit_dir: Path, clock: FakeClock) -> None:
    append_five(audit, clock)
    write_lines(audit_dir, file_lines(audit_dir)[:-1])

    assert_tampered(audit, "db seq 5", "missing from the files")


def test_a_whole_day_file_removed_is_caught(audit: AuditLog, audit_dir: Path, clock: FakeClock) -> None:
    audit.append("day.one")
    clock.advance(days=1)
    audit.append("day.two")
    clock.advance(days=1)
    audit.append("day.three")
    (audit_dir / "2026-11-24.jsonl").unlink()

    assert_tampered(audit, "2026-11-25.jsonl:1", "missing seq 2")


def test_a_forged_line_at_the_end_is_caught(audit: AuditLog, audit_dir: Path, clock: FakeClock) -> None:
    records = append_five(audit, clock)
    last = records[-1]
    forged = last.model_copy(update={"seq": 6, "prev_hash": last.hash, "data": {"user": "mallory"}})
    forged = forged.model_copy(update={"hash": forged.computed_hash()})
    write_lines(audit_dir, [*file_lines(audit_dir), forged.line() + "\n"])

    assert_tampered(audit, f"{DAY}.jsonl:6", "extra line")


def test_a_bad_json_line_is_named(audit: AuditLog, audit_dir: Path, clock: FakeClock) -> None:
    append_five(audit, clock)
    lines = file_lines(audit_dir)
    lines[3] = lines[3][:40] + "\n"
    write_lines(audit_dir, lines)

    assert_tampered(audit, f"{DAY}.jsonl:4", "bad JSON")


def test_a_reformatted_line_is_caught(audit: AuditLog, audit_dir: Path, clock: FakeClock) -> None:
    append_five(audit, clock)
    lines = file_lines(audit_dir)
    lines[0] = json.dumps(json.loads(lines[0]), indent=None) + "\n"  # same content, with spaces
    write_lines(audit_dir, lines)

    assert_tampered(audit, f"{DAY}.jsonl:1", "canonical")


def test_an_altered_row_is_caught(audit: AuditLog, engine: Engine, clock: FakeClock) -> None:
    append_five(audit, clock)
    with engine.begin() as conn:
        conn.execute(update(AuditEvent).where(AuditEvent.seq == 2).values(data={"n": 2, "user": "mallory"}))

    assert_tampered(audit, "db seq 2", "hash mismatch")


def test_a_row_rewritten_with_a_fresh_hash_is_caught(
    audit: AuditLog, engine: Engine, clock: FakeClock
) -> None:
    records = append_five(audit, clock)
    forged = records[1].model_copy(update={"actor": "tech:mallory"})
    assert forged.computed_hash() != records[1].hash
    with engine.begin() as conn:
        conn.execute(
            update(AuditEvent)
            .where(AuditEvent.seq == 2)
            .values(actor="tech:mallory", hash=forged.computed_hash())
        )

    assert_tampered(audit, "db seq 2", "differs from its line")


def test_a_row_deleted_is_caught(audit: AuditLog, engine: Engine, clock: FakeClock) -> None:
    append_five(audit, clock)
    with engine.begin() as conn:
        conn.execute(delete(AuditEvent).where(AuditEvent.seq == 3))

    assert_tampered(audit, f"{DAY}.jsonl:3", "not in the database")


# --- secrets ---------------------------------------------------------------------------------------

SECRETS = {
    "password": "Hunter2-Pa55word",
    "new_token": "tok_9f8e7d6c5b4a",
    "headers": {"Authorization": "Basic dXNlcjpzM2NyZXQ=", "X-Api-Key": "sk-live-0123456789"},
    "steps": [{"args": {"user": "alice", "temporaryPassword": "Tmp!Pass-7788"}}],
    "observation": "curl -H 'Authorization: Bearer eyJhbGciOi.J9abc.def' returned 200",
    "cmd": "login --password=Sup3rS3cret! --user alice",
    "enrollment_code": "ENR-424242",
    "db": "postgresql://svc:DbPa55-xyz@db.acme.local/app",
}
SECRET_VALUES = [
    "Hunter2-Pa55word",
    "tok_9f8e7d6c5b4a",
    "dXNlcjpzM2NyZXQ=",
    "sk-live-0123456789",
    "Tmp!Pass-7788",
    "eyJhbGciOi",
    "Sup3rS3cret!",
    "ENR-424242",
    "DbPa55-xyz",
]


def test_secrets_never_reach_the_file_or_the_row(audit: AuditLog, audit_dir: Path, engine: Engine) -> None:
    record = audit.append(
        "tool.call",
        client_id="cl_acme",
        data={**SECRETS, "user": "alice", "usage": {"input_tokens": 812, "output_tokens": 64}},
    )

    raw_file = (audit_dir / f"{DAY}.jsonl").read_text("ascii")
    with engine.connect() as conn:
        raw_row = conn.execute(text("SELECT CAST(data AS TEXT) FROM audit_events")).scalar_one()
    for secret in SECRET_VALUES:
        assert secret not in raw_file
        assert secret not in raw_row
        assert secret not in json.dumps(record.data)
    assert REDACTED in raw_file and REDACTED in raw_row
    # what is not secret stays readable
    assert record.data["user"] == "alice"
    assert record.data["usage"] == {"input_tokens": 812, "output_tokens": 64}
    assert record.data["steps"][0]["args"]["user"] == "alice"
    assert record.data["cmd"] == "login --password=[redacted] --user alice"
    assert record.data["db"] == "postgresql://svc:[redacted]@db.acme.local/app"
    assert audit.verify().events == 1


@pytest.mark.parametrize(
    "key",
    ["password", "PASSWORD", "db_passwd", "clientSecret", "api_key", "apiKey", "X-Api-Key", "access_token",
     "refreshToken", "authorization", "Proxy-Authorization", "cookie", "Set-Cookie", "private_key",
     "signingKey", "server_key", "session_key", "credentials", "code", "enrollment_code", "pin", "otp"],
)
def test_secret_keys(key: str) -> None:
    assert is_secret_key(key)
    assert redact({key: "s3cr3t-value"}) == {key: REDACTED}


@pytest.mark.parametrize(
    "key",
    ["user", "session_id", "client_id", "input_tokens", "max_tokens", "hostname", "public_key", "kind",
     "error_code", "zip_code", "status"],
)
def test_ordinary_keys_are_kept(key: str) -> None:
    assert not is_secret_key(key)
    assert redact({key: "value"}) == {key: "value"}


def test_redact_copies_and_keeps_structure() -> None:
    data: dict[str, Any] = {"a": [{"token": "x", "ok": True}, ("t", 1)], "password": None, "n": 3.5}
    assert redact(data) == {"a": [{"token": REDACTED, "ok": True}, ["t", 1]], "password": None, "n": 3.5}
    assert data["a"][0]["token"] == "x"


@pytest.mark.parametrize(
    ("text_in", "text_out"),
    [
        ("Bearer abc.def-ghi", "Bearer [redacted]"),
        ("header authorization: Basic Zm9vOmJhcg== sent", "header authorization: Basic [redacted] sent"),
        ("https://u:p4ss@example.com/x", "https://u:[redacted]@example.com/x"),
        ("?user=a&token=abc123&x=1", "?user=a&token=[redacted]&x=1"),
        ("Your new password: Xy7#kLm9 (change it)", "Your new password: [redacted] (change it)"),
        ("used 812 tokens: fine", "used 812 tokens: fine"),
        ("password reset for alice", "password reset for alice"),
    ],
)
def test_redact_text(text_in: str, text_out: str) -> None:
    assert redact_text(text_in) == text_out


# --- queries ---------------------------------------------------------------------------------------


def test_query_filters(audit: AuditLog, clock: FakeClock) -> None:
    audit.append("ticket.created", client_id="cl_a", session_id="se_1")
    clock.advance(minutes=1)
    audit.append("tool.call", client_id="cl_a", session_id="se_1")
    clock.advance(minutes=1)
    audit.append("tool.call", client_id="cl_b", session_id="se_2")
    clock.advance(minutes=1)
    audit.append("server.started")
    clock.advance(minutes=1)
    audit.append("tool.call", client_id="cl_c", session_id="se_3")

    def seqs(**filters: Any) -> list[int]:
        return [r.seq for r in audit.query(**filters)]

    assert seqs() == [1, 2, 3, 4, 5]
    assert seqs(client_ids=["cl_a"]) == [1, 2]
    assert seqs(client_ids={"cl_a", "cl_c"}) == [1, 2, 5]
    assert seqs(client_ids=[]) == []
    assert seqs(client_ids=["cl_zzz"]) == []
    assert seqs(session_id="se_1") == [1, 2]
    assert seqs(kind="tool.call") == [2, 3, 5]
    assert seqs(kind="tool.call", client_ids=["cl_b", "cl_c"]) == [3, 5]
    assert seqs(since=START + timedelta(minutes=2)) == [3, 4, 5]
    assert seqs(since=START + timedelta(minutes=2), client_ids=["cl_a"]) == []
    assert seqs(limit=2) == [1, 2]
    assert seqs(after_seq=2, limit=2) == [3, 4]
    with pytest.raises(TypeError):
        audit.query(client_ids="cl_a")

    got = audit.query(session_id="se_2")[0]
    assert got.ts == START + timedelta(minutes=2) and got.ts.utcoffset() == timedelta(0)
    assert got.computed_hash() == got.hash


# --- days ----------------------------------------------------------------------------------------


def test_events_on_different_utc_days_go_to_different_files(
    audit: AuditLog, audit_dir: Path, clock: FakeClock
) -> None:
    clock.now = datetime(2026, 11, 23, 23, 59, 59, tzinfo=UTC)
    audit.append("late")
    # 01:00:01 in UTC+2 is still 23 November in UTC...
    clock.now = datetime(2026, 11, 24, 1, 0, 1, tzinfo=timezone(timedelta(hours=2)))
    audit.append("still the 23rd in UTC")
    clock.now = datetime(2026, 11, 24, 0, 0, 1, tzinfo=UTC)
    audit.append("early")

    assert sorted(p.name for p in audit_dir.iterdir()) == ["2026-11-23.jsonl", "2026-11-24.jsonl"]
    assert [json.loads(line)["kind"] for line in file_lines(audit_dir, "2026-11-23")] == [
        "late",
        "still the 23rd in UTC",
    ]
    assert [json.loads(line)["seq"] for line in file_lines(audit_dir, "2026-11-24")] == [3]
    report = audit.verify()
    assert (report.events, report.files) == (3, 2)


def test_a_clock_going_back_never_reorders_the_days(
    audit: AuditLog, audit_dir: Path, clock: FakeClock
) -> None:
    clock.now = datetime(2026, 11, 24, 0, 0, 5, tzinfo=UTC)
    first = audit.append("after midnight")
    clock.now = datetime(2026, 11, 23, 23, 59, 58, tzinfo=UTC)  # another writer's clock lags
    second = audit.append("lagging clock")

    assert second.ts == first.ts
    assert [p.name for p in audit_dir.iterdir()] == ["2026-11-24.jsonl"]
    assert audit.verify().events == 2


def test_a_line_in_the_wrong_day_file_is_caught(audit: AuditLog, audit_dir: Path, clock: FakeClock) -> None:
    audit.append("one")
    clock.advance(days=1)
    audit.append("two")
    moved = file_lines(audit_dir, "2026-11-24")
    (audit_dir / "2026-11-24.jsonl").unlink()
    write_lines(audit_dir, file_lines(audit_dir) + moved)

    assert_tampered(audit, f"{DAY}.jsonl:2", "dated")


# --- failures --------------------------------------------------------------------------------------


def test_a_failed_file_write_leaves_no_trace(engine: Engine, tmp_path: Path, clock: FakeClock) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    with pytest.raises(StoreError, match="cannot write audit file"):
        AuditLog(Database(engine), blocked, clock=clock).append("lost")

    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(AuditEvent)).scalar_one() == 0
    audit = AuditLog(Database(engine), tmp_path / "audit", clock=clock)
    assert audit.append("kept").seq == 1
    assert audit.verify().events == 1


def test_oversized_fields_are_refused_on_every_database(audit: AuditLog) -> None:
    with pytest.raises(ValueError, match="kind"):
        audit.append("k" * 65)
    with pytest.raises(ValueError, match="client_id"):
        audit.append("ok", client_id="c" * 33)
    assert audit.verify().events == 0


# --- serialised appends --------------------------------------------------------------------------


def run_threads(workers: list[tuple[AuditLog, int]], tag: str) -> list[AuditRecord]:
    """Each (log, n) appends n events from its own thread; all threads start together."""
    barrier = threading.Barrier(len(workers))
    results: list[AuditRecord] = []
    errors: list[BaseException] = []
    guard = threading.Lock()

    def work(index: int, log: AuditLog, count: int) -> None:
        try:
            barrier.wait()
            for i in range(count):
                record = log.append(f"{tag}.{index}", data={"i": i})
                with guard:
                    results.append(record)
        except BaseException as exc:  # reported below
            with guard:
                errors.append(exc)

    threads = [threading.Thread(target=work, args=(n, log, count)) for n, (log, count) in enumerate(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[:3]
    return results


def assert_one_unbroken_chain(audit: AuditLog, total: int) -> None:
    report = audit.verify()
    assert (report.events, report.last_seq) == (total, total)
    records = audit.query(limit=total + 10)
    assert [r.seq for r in records] == list(range(1, total + 1))
    assert [r.prev_hash for r in records] == [GENESIS_HASH] + [r.hash for r in records[:-1]]


def test_the_chains_head_is_read_again_only_after_another_writer_moved_it(engine: Engine, audit_dir: Path) -> None:
    """A log continues from where its own last batch left the chain (no read of the head); another writer's
    events in between make its insert collide, and it reads the head and goes on."""
    heads: list[str] = []

    def count_heads(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if statement.lstrip().startswith("SELECT") and "FROM audit_events" in statement:
            heads.append(statement)

    first, second = AuditLog(Database(engine), audit_dir), AuditLog(Database(engine), audit_dir)
    event.listen(engine, "before_cursor_execute", count_heads)
    try:
        first.append("a")
        first.append("b")
        second.append("c")
        first.append("d")  # its known end (seq 2) is stale: seq 3 is taken
    finally:
        event.remove(engine, "before_cursor_execute", count_heads)
    assert len(heads) == 3, heads
    assert [r.kind for r in first.query()] == ["a", "b", "c", "d"]
    assert_one_unbroken_chain(first, 4)


def test_concurrent_threads_form_one_chain(engine: Engine, audit_dir: Path) -> None:
    audit = AuditLog(Database(engine), audit_dir)
    results = run_threads([(audit, 50)] * 4, "thread")

    assert sorted(r.seq for r in results) == list(range(1, 201))
    assert_one_unbroken_chain(audit, 200)


def test_two_instances_on_separate_engines_form_one_chain(database: TestDatabase, audit_dir: Path) -> None:
    """Two AuditLogs share no Python lock: only the database lock keeps their chain whole."""
    first = AuditLog(Database(database.new_engine()), audit_dir)
    second = AuditLog(Database(database.new_engine()), audit_dir)
    results = run_threads([(first, 50), (second, 50), (first, 50), (second, 50)], "instance")

    assert sorted(r.seq for r in results) == list(range(1, 201))
    assert_one_unbroken_chain(first, 200)


CHILD = """
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from mspclaw.store.audit import AuditLog
from mspclaw.store.db import make_engine
from mspclaw.store.database import Database
log = AuditLog(Database(make_engine(sys.argv[1])), Path(sys.argv[2]))
sys.stdin.readline()
for i in range(int(sys.argv[3])):
    log.append("process", data={"i": i})
"""


def test_two_processes_form_one_chain(database: TestDatabase, audit_dir: Path) -> None:
    """The same across real processes (whether they interleave is up to the OS; the test below
    forces the interleaving that a missing lock gets wrong)."""
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, database.url, str(audit_dir), "100"],
            stdin=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for child in children:  # release both at once
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    for child in children:
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err

    assert_one_unbroken_chain(AuditLog(Database(database.new_engine()), audit_dir), 200)


def test_the_tail_is_read_only_under_the_lock(
    database: TestDatabase, engine: Engine, audit_dir: Path
) -> None:
    """While another writer holds the audit lock, append waits before reading the tail.

    The other writer adds seq 1 while append is waiting; append must then chain onto it. Had it
    read the tail before taking the lock (pysqlite's deferred BEGIN, or no advisory lock), it
    would collide on seq 1 instead.
    """
    outcome: list[AuditRecord | BaseException] = []

    def run() -> None:
        try:
            outcome.append(AuditLog(Database(engine), audit_dir).append("waiting"))
        except BaseException as exc:  # reported below
            outcome.append(exc)

    with hold_audit_lock(database) as execute:
        worker = threading.Thread(target=run)
        worker.start()
        time.sleep(0.5)
        assert worker.is_alive() and not outcome, "append went ahead while another writer held the lock"
        execute(
            "INSERT INTO audit_events (seq, ts, kind, actor, data, prev_hash, hash) VALUES "
            f"(1, '2026-11-23 09:00:00', 'other', 'system', '{{}}', '{GENESIS_HASH}', '{'a' * 64}')"
        )
    worker.join(timeout=30)

    assert len(outcome) == 1 and isinstance(outcome[0], AuditRecord), outcome
    assert (outcome[0].seq, outcome[0].prev_hash) == (2, "a" * 64)


@contextmanager
def hold_audit_lock(database: TestDatabase) -> Iterator[Callable[[str], object]]:
    """Hold the audit lock the way another process would; commit what ``execute`` ran on exit."""
    url = make_url(database.url)
    if database.kind == "sqlite":
        lite = sqlite3.connect(str(url.database), isolation_level=None, timeout=30)
        try:
            lite.execute("BEGIN IMMEDIATE")
            yield lite.execute
            lite.execute("COMMIT")
        finally:
            lite.close()
        return
    libpq_url = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq_url) as pg:
        pg.execute("SELECT pg_advisory_xact_lock(%s)", (PG_LOCK_KEY,))
        yield pg.execute  # leaving the block commits, which releases the lock


def test_verify_during_appends_sees_no_false_tampering(engine: Engine, audit_dir: Path) -> None:
    audit = AuditLog(Database(engine), audit_dir)
    stop, appending = threading.Event(), threading.Event()

    def writer() -> None:
        while not stop.is_set():
            audit.append("busy")
            appending.set()

    other = AuditLog(Database(engine), audit_dir)
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        # verified while the writer appends, not before its first event (a loaded machine may start it late)
        assert appending.wait(30)
        reports = [other.verify() for _ in range(20)]
    finally:
        stop.set()
        thread.join(timeout=30)
    assert [r.last_seq for r in reports] == sorted(r.last_seq for r in reports)
    assert reports[-1].last_seq > 0
    assert other.verify().events == audit.query(limit=10**6)[-1].seq


# --- group commit (AuditLog.record) ----------------------------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_concurrent_records_share_fsyncs_and_form_one_chain(
    engine: Engine, audit_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forty coroutines record at once: every record is in the file when its await returns, the chain
    is whole, and the events went to disk in batches (fewer file syncs than events)."""
    fsyncs = []
    real_fdatasync = os.fdatasync

    def counting_fdatasync(fd: int) -> None:
        fsyncs.append(fd)
        real_fdatasync(fd)

    monkeypatch.setattr(os, "fdatasync", counting_fdatasync)
    audit = AuditLog(Database(engine), audit_dir)

    async def one(i: int) -> AuditRecord:
        record = await audit.record("tool_call", client_id="cl_acme", data={"i": i})
        lines = [json.loads(line) for f in audit_dir.glob("*.jsonl") for line in f.read_text("ascii").splitlines()]
        assert record.hash in {line["hash"] for line in lines}, "record returned before its line was written"
        return record

    records = await asyncio.gather(*(one(i) for i in range(40)))

    assert sorted(r.seq for r in records) == list(range(1, 41))
    assert_one_unbroken_chain(audit, 40)
    assert 0 < len(fsyncs) < 40


@pytest.mark.anyio
async def test_records_and_appends_from_threads_interleave_into_one_chain(engine: Engine, audit_dir: Path) -> None:
    audit = AuditLog(Database(engine), audit_dir)
    thread = threading.Thread(target=lambda: [audit.append("from a thread", data={"i": i}) for i in range(30)])
    thread.start()
    await asyncio.gather(*(audit.record("from the loop", data={"i": i}) for i in range(30)))
    await asyncio.to_thread(thread.join, 60)

    assert_one_unbroken_chain(audit, 60)


@pytest.mark.anyio
async def test_a_failed_batch_fails_every_record_in_it_and_leaves_no_trace(engine: Engine, tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    audit = AuditLog(Database(engine), blocked)
    outcomes = await asyncio.gather(*(audit.record("lost", data={"i": i}) for i in range(5)), return_exceptions=True)

    assert all(isinstance(o, StoreError) and "cannot write audit file" in o.message for o in outcomes), outcomes
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(AuditEvent)).scalar_one() == 0
    later = AuditLog(Database(engine), tmp_path / "audit")
    assert (await later.record("kept")).seq == 1


@pytest.mark.anyio
async def test_records_gathered_together_keep_their_order(engine: Engine, audit_dir: Path) -> None:
    """The pipeline records a ticket's note and its status change with one gather: one batch, in order."""
    audit = AuditLog(Database(engine), audit_dir)
    for _ in range(5):
        note, status = await asyncio.gather(audit.record("note_written"), audit.record("status_changed"))
        assert status.seq == note.seq + 1
    assert_one_unbroken_chain(audit, 10)


@pytest.mark.anyio
async def test_a_blocking_append_on_a_running_loop_fails_loudly_and_writes_nothing(
        engine: Engine, audit_dir: Path) -> None:
    """``append`` waits for an fsync: on the event loop's thread it would stall every coroutine, so it
    refuses, naming what to call instead; a thread of the loop's executor may still append."""
    audit = AuditLog(Database(engine), audit_dir)
    with pytest.raises(RuntimeError, match=r"append\(\) blocks; use `await audit.record\(...\)` from async code"):
        audit.append("on_the_loop")
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(AuditEvent)).scalar_one() == 0

    from_thread = await asyncio.to_thread(audit.append, "from_a_worker_thread")
    awaited = await audit.record("awaited")
    assert (from_thread.seq, awaited.seq) == (1, 2)
    assert_one_unbroken_chain(audit, 2)
