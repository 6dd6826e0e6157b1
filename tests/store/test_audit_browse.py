"""Reading the audit trail newest first (the console's audit page), on SQLite and on the PostgreSQL server on
loopback: the cursor pages without gaps or repeats, every filter narrows, the scope rule for events of no client
holds, the time range includes its start and excludes its end."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from mspclaw.store.audit import AuditLog, AuditRecord, browse
from mspclaw.store.database import Database

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def db(engine: Engine) -> Database:
    return Database(engine)


@pytest.fixture
def trail(db: Database, tmp_path: Path) -> Iterator[AuditLog]:
    """23 events, one a minute: acme and beta alternate ticket notes, every 5th is a sign-in of no client."""
    clock = Clock()
    audit = AuditLog(db, tmp_path / "audit", clock=clock)
    for i in range(23):
        if i % 5 == 4:
            audit.append("console_signed_in", actor="dana@msp.example", data={"n": i})
        else:
            client = "cl_acme" if i % 2 == 0 else "cl_beta"
            audit.append("ticket.note", actor=f"tech:{client}", client_id=client,
                         session_id="ss_one" if i < 10 else "ss_two", data={"n": i})
        clock.now += timedelta(minutes=1)
    yield audit
    audit.close()


def ns(records: list[AuditRecord]) -> list[int]:
    return [int(r.data["n"]) for r in records]


def test_pages_backwards_with_a_cursor(db: Database, trail: AuditLog) -> None:
    seen: list[int] = []
    before = None
    pages = 0
    while True:
        page = browse.newest_first(db, browse.AuditFilter(), before=before, limit=5)
        if not page:
            break
        pages += 1
        assert [r.seq for r in page] == sorted((r.seq for r in page), reverse=True)
        seen += ns(page)
        before = page[-1].seq
    assert pages == 5 and seen == list(range(22, -1, -1))
    assert browse.last_seq(db) == 23
    newest = browse.event(db, 23)
    assert newest is not None and newest.data == {"n": 22} and newest.ts == START + timedelta(minutes=22)
    assert browse.event(db, 99) is None


def test_filters_and_scope(db: Database, trail: AuditLog) -> None:
    every = browse.AuditFilter()
    assert len(browse.newest_first(db, every, limit=100)) == 23
    acme = browse.newest_first(db, browse.AuditFilter(client_ids=["cl_acme"]), limit=100)
    assert ns(acme) == [22, 20, 18, 16, 12, 10, 8, 6, 2, 0] and {r.client_id for r in acme} == {"cl_acme"}
    # a scope of clients never includes events of no client; an empty scope reads nothing
    both = browse.newest_first(db, browse.AuditFilter(client_ids=["cl_acme", "cl_beta"]), limit=100)
    assert len(both) == 19 and all(r.client_id for r in both)
    assert browse.newest_first(db, browse.AuditFilter(client_ids=[]), limit=100) == []
    signins = browse.newest_first(db, browse.AuditFilter(kind="console_signed_in"), limit=100)
    assert ns(signins) == [19, 14, 9, 4] and all(r.client_id is None for r in signins)
    assert ns(browse.newest_first(db, browse.AuditFilter(actor="dana@msp.example"), limit=100)) == [19, 14, 9, 4]
    one = browse.newest_first(db, browse.AuditFilter(session_id="ss_one", client_ids=["cl_beta"]), limit=100)
    assert ns(one) == [7, 5, 3, 1]
    assert browse.kinds(db) == ["console_signed_in", "ticket.note"]


def test_time_range_includes_its_start_and_excludes_its_end(db: Database, trail: AuditLog) -> None:
    window = browse.AuditFilter(since=START + timedelta(minutes=3), until=START + timedelta(minutes=6))
    assert ns(browse.newest_first(db, window, limit=100)) == [5, 4, 3]
    later = browse.AuditFilter(since=START + timedelta(minutes=20), kind="ticket.note")
    assert ns(browse.newest_first(db, later, before=23, limit=100)) == [21, 20]


def test_bad_arguments_are_refused(db: Database, trail: AuditLog) -> None:
    with pytest.raises(ValueError, match="limit must be 1 to 500"):
        browse.newest_first(db, browse.AuditFilter(), limit=501)
    with pytest.raises(ValueError, match="aware"):
        browse.newest_first(db, browse.AuditFilter(since=datetime(2026, 1, 1)))
    with pytest.raises(TypeError, match="not one id"):
        browse.newest_first(db, browse.AuditFilter(client_ids="cl_acme"))
