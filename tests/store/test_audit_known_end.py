"""An audit batch on PostgreSQL continues from where the log's own last batch left the chain: one statement,
the insert that takes the advisory lock itself, no read of the chain's head, unless another process appended
lately."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url

from mspclaw.store.audit import GENESIS_HASH, PG_LOCK_KEY, AuditLog, AuditRecord
from mspclaw.store.audit import log as audit_log
from mspclaw.store.database import Database
from mspclaw.store.db import migrate

if TYPE_CHECKING:
    from tests.store.conftest import TestDatabase


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        seen.append(" ".join(sql.split()))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def heads(seen: list[str]) -> int:
    return sum(1 for sql in seen if sql.startswith("SELECT") and "FROM audit_events" in sql)


def whole_chain(log: AuditLog, count: int) -> None:
    records = log.query(limit=count + 10)
    assert [r.seq for r in records] == list(range(1, count + 1))
    assert [r.prev_hash for r in records] == [GENESIS_HASH] + [r.hash for r in records[:-1]]
    report = log.verify()  # raises at a fault
    assert (report.events, report.last_seq) == (count, count)


@pytest.fixture
def pg(blank_postgres: TestDatabase) -> Engine:
    engine = blank_postgres.new_engine()
    migrate(engine)
    return engine


def test_a_logs_next_batch_on_postgresql_reads_no_head(pg: Engine, tmp_path: Path) -> None:
    log = AuditLog(Database(pg), tmp_path / "audit")
    with statements(pg) as first:
        log.append("first")
    with statements(pg) as later:
        log.append("second")
        log.append("third")
    assert heads(first) == 1
    assert heads(later) == 0 and len(later) == 2, later  # per batch: the insert, which takes the advisory lock
    whole_chain(log, 3)


def test_after_another_writer_the_stale_end_collides_and_the_head_is_read_for_a_while(
        pg: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mine, other = AuditLog(Database(pg), tmp_path / "audit"), AuditLog(Database(pg), tmp_path / "audit")
    mine.append("a")
    other.append("b")
    with statements(pg) as seen:
        stale = mine.append("c")  # its end says seq 1, but seq 2 is the other's: collides, reads the head
        mine.append("d")  # another process appended lately: the head is read again
    assert (stale.seq, heads(seen)) == (3, 2)
    monkeypatch.setattr(audit_log, "OTHERS_QUIET_S", 0.0)  # the others have been quiet long enough
    mine.append("e")
    with statements(pg) as seen:
        mine.append("f")
    assert heads(seen) == 0
    assert [r.kind for r in mine.query()] == ["a", "b", "c", "d", "e", "f"]
    whole_chain(mine, 6)


def test_a_batch_after_a_known_end_waits_for_the_lock_and_chains_onto_what_its_holder_wrote(
        pg: Engine, blank_postgres: TestDatabase, tmp_path: Path) -> None:
    """Another process holds the audit lock and appends seq 2 while this log's next batch (its end says seq 1)
    waits: the batch neither goes ahead under the other's lock nor forks the chain; it collides, reads the head
    and follows seq 2."""
    log = AuditLog(Database(pg), tmp_path / "audit")
    first = log.append("first")
    outcome: list[AuditRecord | BaseException] = []

    def run() -> None:
        try:
            outcome.append(log.append("waiting"))
        except BaseException as exc:  # reported below
            outcome.append(exc)

    libpq = make_url(blank_postgres.url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq) as other:
        other.execute("SELECT pg_advisory_xact_lock(%s)", (PG_LOCK_KEY,))
        worker = threading.Thread(target=run)
        worker.start()
        time.sleep(0.5)
        assert worker.is_alive() and not outcome, "the batch went ahead while another writer held the lock"
        other.execute("INSERT INTO audit_events (seq, ts, kind, actor, data, prev_hash, hash) VALUES "
                      "(2, %s, 'other', 'system', '{}', %s, %s)", (first.ts, first.hash, "b" * 64))
    worker.join(timeout=30)
    assert len(outcome) == 1 and isinstance(outcome[0], AuditRecord), outcome
    assert (outcome[0].seq, outcome[0].prev_hash) == (3, "b" * 64)
