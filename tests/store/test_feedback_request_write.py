"""A resolved ticket's feedback request and the session event that announces it are stored together
(``FeedbackStore.open_announced``, ``TicketStore.add_event_with_row``), on SQLite and on the real
PostgreSQL at ``TEST_POSTGRES_URL``: both rows or neither, and on PostgreSQL one statement in autocommit
mode (one round trip), where they were two statements, each committed alone."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from tests.store.ticket_writes import Statements, opened

from mspclaw.errors import Conflict
from mspclaw.store.feedback import REQUEST_INSERT, FeedbackStore
from mspclaw.store.tables import FeedbackRow, Session, SessionEvent, utcnow
from mspclaw.store.tickets import TicketStore


def _count(engine: Engine, model: type[FeedbackRow] | type[SessionEvent], session_id: str) -> int:
    table = model.__table__
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)
                                .where(table.c.session_id == session_id)).scalar_one())


def _ask(store: FeedbackStore, tickets: TicketStore, session: Session, ticket_id: str) -> tuple[FeedbackRow, int]:
    now = utcnow()
    return store.open_announced(tickets, ticket_id=ticket_id, session_id=session.id,
                                client_id=session.client_id, resolved_at=now, deadline=now + timedelta(hours=1),
                                channel="agent+psa", event="feedback_requested",
                                data={"ticket_id": ticket_id, "question": "Did that fix it?"})


def test_the_request_and_its_event_are_stored_together(engine: Engine) -> None:
    db, tickets, session = opened(engine)
    feedback = FeedbackStore(db)
    with Statements(engine) as seen:
        row, seq = _ask(feedback, tickets, session, session.ticket_id)
    assert seq == 2  # after the session's "started"
    assert [e.event for e in tickets.events(session.id)] == ["started", "feedback_requested"]
    assert tickets.events(session.id)[1].data == {"ticket_id": session.ticket_id, "question": "Did that fix it?"}
    stored = feedback.for_ticket(session.ticket_id)
    assert (stored.id, stored.status, stored.channel, stored.session_id) == (row.id, "pending", "agent+psa",
                                                                               session.id)
    if db.dialect == "postgresql":  # one statement, committed by the server as it ran
        assert len(seen.sql) == 1 and seen.sql[0].startswith("WITH "), seen.sql
        assert seen.commits == 0
    else:  # SQLite: one transaction
        assert seen.commits == 1


def test_a_second_request_for_the_ticket_stores_neither_row(engine: Engine) -> None:
    """The request is unique per ticket: asking again is a Conflict, and no second event is left behind."""
    db, tickets, session = opened(engine)
    feedback = FeedbackStore(db)
    _ask(feedback, tickets, session, session.ticket_id)
    with pytest.raises(Conflict, match="already asked for feedback"):
        _ask(feedback, tickets, session, session.ticket_id)
    assert _count(engine, FeedbackRow, session.id) == 1
    assert [e.event for e in tickets.events(session.id)] == ["started", "feedback_requested"]


def test_an_event_that_cannot_be_stored_leaves_no_request(engine: Engine) -> None:
    """The other direction: the event's session does not exist (its foreign key fails), so the request
    written beside it is not kept either."""
    _db, tickets, session = opened(engine)
    now = utcnow()
    values = {"id": "fb_orphan", "ticket_id": session.ticket_id, "session_id": session.id,
              "client_id": session.client_id, "status": "pending", "channel": "api", "comment": "",
              "resolved_at": now, "deadline": now, "answered_by": None, "answered_at": None}
    with pytest.raises(IntegrityError):
        tickets.add_event_with_row("ss_missing", "feedback_requested", {}, REQUEST_INSERT, values)
    assert _count(engine, FeedbackRow, session.id) == 0


def test_another_integrity_error_is_not_taken_for_a_second_request(engine: Engine) -> None:
    """Only the one request per ticket is a Conflict: a request for a session that does not exist fails as the
    driver's IntegrityError (its foreign key), not as "already asked"."""
    db, tickets, session = opened(engine)
    now = utcnow()
    with pytest.raises(IntegrityError):
        FeedbackStore(db).open_announced(tickets, ticket_id=session.ticket_id, session_id="ss_missing",
                                         client_id=session.client_id, resolved_at=now, deadline=now, channel="api",
                                         event="feedback_requested", data={})
    assert _count(engine, FeedbackRow, session.id) == 0
