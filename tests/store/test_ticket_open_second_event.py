"""A new session's second event stored with its open (``open_ticket(then=...)``): numbered 2 after ``started``,
its session columns set on the new session, all in the open's one statement on PostgreSQL (one transaction
on SQLite), redacted like any event, and nothing of it stored when the open fails."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from tests.store.ticket_writes import Statements, ticket_store

from mspclaw.store.tables import SessionEvent
from mspclaw.store.tickets import OpeningEvent


def test_the_second_event_is_stored_with_the_open_in_one_statement(engine: Engine) -> None:
    db, store, client = ticket_store(engine)
    given: list[tuple[str, str]] = []

    def then(subject: str, body: str) -> OpeningEvent:
        given.append((subject, body))
        return OpeningEvent("matched", {"playbook": "password_reset", "explanation": "password: Hunter2xyz!"},
                            {"playbook": "password_reset", "model": "playbook", "status": "resolved"})

    with Statements(engine) as seen:
        ticket, session = store.open_ticket(client_id=client.id, subject="my password is Hunter2xyz! please",
                                            body="b", requester="u@x", device_id=None, started=True, then=then)
    assert given == [("my password is [redacted] please", "b")]  # the text as stored, redacted once
    assert [(e.seq, e.event) for e in store.events(session.id)] == [(1, "started"), (2, "matched")]
    assert store.events(session.id)[1].data == {"playbook": "password_reset", "explanation": "password: [redacted]"}
    stored = store.session(session.id)
    assert (stored.playbook, stored.model, stored.status) == ("password_reset", "playbook", "running")  # not status
    assert (session.playbook, session.model) == ("password_reset", "playbook")
    assert store.ticket(ticket.id).status == "in_progress"
    assert store.add_event(session.id, "step", {}).seq == 3  # numbering goes on after it
    if db.dialect == "postgresql":
        assert len(seen.sql) == 1 and seen.commits == 0, seen.sql
    else:
        assert seen.commits == 1


def test_no_second_event_when_then_gives_none_or_the_session_is_not_started(engine: Engine) -> None:
    _, store, client = ticket_store(engine)
    calls: list[str] = []

    def nothing(subject: str, _body: str) -> None:
        calls.append(subject)

    _, session = store.open_ticket(client_id=client.id, subject="s", body="", requester="", device_id=None,
                                   started=True, then=nothing)
    assert [e.event for e in store.events(session.id)] == ["started"] and session.playbook is None
    _, quiet = store.open_ticket(client_id=client.id, subject="t", body="", requester="", device_id=None,
                                 then=lambda *_: OpeningEvent("matched", {}, {"playbook": "x"}))
    assert store.events(quiet.id) == [] and quiet.playbook is None  # no "started", no second event either
    assert calls == ["s"]


def test_a_failed_open_stores_no_second_event(engine: Engine) -> None:
    _, store, _ = ticket_store(engine)
    with pytest.raises(IntegrityError):
        store.open_ticket(client_id="cl_missing", subject="s", body="", requester="", device_id=None, started=True,
                          then=lambda *_: OpeningEvent("matched", {"playbook": "x"}, {"playbook": "x"}))
    with engine.connect() as conn:
        rows: list[Any] = list(conn.execute(select(SessionEvent.__table__)))
    assert rows == []
