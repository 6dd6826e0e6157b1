"""The ticket store's multi-row writes on SQLite and PostgreSQL (real servers: a SQLite file, the
PostgreSQL at ``TEST_POSTGRES_URL`` on loopback): what each stores, that each is all or nothing,
and that on PostgreSQL each is one statement with no transaction around it (one round trip).
Also :func:`~mspclaw.store.database.server_engine`'s pool: a dead idle connection is replaced."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from tests.store.ticket_writes import Statements, ticket_store

from mspclaw.errors import StoreError
from mspclaw.store.database import Database, server_engine
from mspclaw.store.devices import DeviceMemory
from mspclaw.store.leases import Leases
from mspclaw.store.registry import Registry
from mspclaw.store.session_leases import NEW_SESSION_TOKEN, HeldLease, NewSessionLease, session_lease
from mspclaw.store.tables import OwnershipLease, Session, SessionEvent, Step, Ticket
from mspclaw.store.tickets import ExternalTicketExists, TicketStore

if TYPE_CHECKING:
    from tests.store.conftest import TestDatabase


def rows(engine: Engine, model: Any, session_id: str) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(model.__table__).where(model.__table__.c.session_id == session_id)))


def test_a_tickets_writes_store_every_row_and_number_steps_and_events(engine: Engine) -> None:
    db, store, client = ticket_store(engine)
    with Statements(engine) as seen:
        ticket, session = store.open_ticket(client_id=client.id, subject="disk full", body="b", requester="u@x",
                                            device_id=None, started=True)
        step1, event1 = store.add_step_and_event(session.id, title="look", tool="disk_usage", args={"a": 1}, ok=True,
                                                 observation={"o": 1}, event="step", data={"i": 1})
        step2, event2 = store.add_step_and_event(session.id, title="again", tool=None, args={}, ok=None,
                                                 observation={}, event="step", data={"i": 2})
        matched = store.add_event(session.id, "matched", {"playbook": "disk_full"},
                                  session_values={"playbook": "disk_full", "model": "playbook"})
        seq = store.close_session(session.id, ticket.id, outcome="resolved", note="note", reply="reply",
                                  reason="done", event=("final_answer", {"outcome": "resolved"}))
    assert (step1.index, step2.index) == (1, 2)
    assert (event1.seq, event2.seq, matched.seq, seq) == (2, 3, 4, 5)
    assert [e.event for e in store.events(session.id)] == ["started", "step", "step", "matched", "final_answer"]
    assert store.events(session.id)[0].data == {"ticket_id": ticket.id, "subject": "disk full"}
    assert [s.title for s in store.steps(session.id)] == ["look", "again"]
    assert store.steps(session.id)[0].observation == {"o": 1}
    stored = store.session(session.id)
    assert (stored.playbook, stored.status, stored.outcome, stored.note, stored.reply) == (
        "disk_full", "resolved", "resolved", "note", "reply")
    assert store.ticket(ticket.id).status == "resolved"
    if db.dialect == "postgresql":  # five calls: five statements, each committed by the server as it ran
        assert len(seen.sql) == 5, seen.sql
        assert seen.commits == 0
        assert all(s.startswith("WITH ") for s in seen.sql), seen.sql
    else:  # SQLite: each call one transaction
        assert seen.commits == 5


def test_each_write_is_all_or_nothing(engine: Engine) -> None:
    """A step and event for a session that does not exist, a ticket of a client that does not exist:
    the foreign key fails and no row of the call stays."""
    db = Database(engine)
    store = TicketStore(db)
    with pytest.raises(IntegrityError):
        store.add_step_and_event("ss_missing", title="t", tool=None, args={}, ok=None, observation={},
                                 event="step", data={})
    assert rows(engine, Step, "ss_missing") == [] and rows(engine, SessionEvent, "ss_missing") == []
    with pytest.raises(IntegrityError):
        store.open_ticket(client_id="cl_missing", subject="s", body="", requester="", device_id=None, started=True)
    with engine.connect() as conn:
        assert conn.execute(select(Ticket.__table__)).all() == []
        assert conn.execute(select(Session.__table__)).all() == []
        assert conn.execute(select(SessionEvent.__table__)).all() == []


def test_a_new_sessions_lease_is_taken_in_the_tickets_write(engine: Engine) -> None:
    """``open_ticket(lease=...)``: the session's lease is stored with the ticket, its session and first event, in
    the same statement on PostgreSQL, with token 1; the lease then behaves as one taken by
    :meth:`Leases.acquire` (another holder is refused, the holder keeps its token, the fence passes). A
    ticket that cannot be stored leaves no lease."""
    db, store, client = ticket_store(engine)
    leases = Leases(db)
    with Statements(engine) as seen:
        _, session = store.open_ticket(client_id=client.id, subject="disk full", body="b", requester="u@x",
                                       device_id=None, started=True, lease=NewSessionLease("replica-a", 10.0))
    held = leases.current(session_lease(session.id))
    assert held is not None and (held.holder, held.token) == ("replica-a", NEW_SESSION_TOKEN)
    assert 9 <= (held.expires_at - session.created_at).total_seconds() <= 10
    if db.dialect == "postgresql":
        assert len(seen.sql) == 1 and seen.sql[0].startswith("WITH ") and seen.commits == 0, seen.sql
    else:
        assert seen.commits == 1
    assert leases.acquire(session_lease(session.id), "replica-b", 10.0) is None
    assert leases.acquire(session_lease(session.id), "replica-a", 10.0) == NEW_SESSION_TOKEN
    with leases.fenced(session_lease(session.id), NEW_SESSION_TOKEN):
        pass
    with pytest.raises(IntegrityError):
        store.open_ticket(client_id="cl_missing", subject="s", body="", requester="", device_id=None, started=True,
                          lease=NewSessionLease("replica-a", 10.0))
    with engine.connect() as conn:
        assert len(conn.execute(select(OwnershipLease.__table__)).all()) == 1


def test_a_psa_ticket_opened_again_names_its_ticket_and_writes_nothing(engine: Engine) -> None:
    """The PSA's ticket (``psa``, ``external_id``) opened a second time: :class:`ExternalTicketExists` with the
    first ticket's id, and no row of the second write (ticket, session, event, lease) stays; a PSA's other
    ticket opens as usual, and a failure that is not the PSA key stays an ``IntegrityError``."""
    _, store, client = ticket_store(engine)
    first, _ = store.open_ticket(client_id=client.id, subject="disk full", body="b", requester="u@x", device_id=None,
                                 psa="local", external_id="1001", started=True)
    with pytest.raises(ExternalTicketExists) as raised:
        store.open_ticket(client_id=client.id, subject="again", body="b", requester="u@x", device_id=None,
                          psa="local", external_id="1001", started=True, lease=NewSessionLease("replica-a", 10.0))
    assert raised.value.ticket_id == first.id and raised.value.code == "conflict"
    with engine.connect() as conn:
        assert [r.id for r in conn.execute(select(Ticket.__table__))] == [first.id]
        assert len(conn.execute(select(Session.__table__)).all()) == 1
        assert len(conn.execute(select(SessionEvent.__table__)).all()) == 1
        assert conn.execute(select(OwnershipLease.__table__)).all() == []
    other, _ = store.open_ticket(client_id=client.id, subject="s", body="", requester="", device_id=None,
                                 psa="local", external_id="1002")
    found = store.find_external("local", "1002")
    assert found is not None and found.id == other.id
    with pytest.raises(IntegrityError):
        store.open_ticket(client_id="cl_missing", subject="s", body="", requester="", device_id=None,
                          psa="local", external_id="1003", started=True)


def test_a_tickets_open_reads_its_devices_facts_in_the_same_statement(engine: Engine) -> None:
    """``open_ticket(facts_into=...)``: the device's known facts come back with the open (on PostgreSQL in its one
    statement), none for a device without any, and nothing is read for a ticket without a device."""
    db = Database(engine)
    store, reg = TicketStore(db), Registry(db)
    client = reg.add_client("Acme")
    code = reg.issue_code(client.id, ttl=timedelta(hours=1))
    agent = reg.enroll(code.code, hostname="pc-1", os="linux", os_version="", agent_version="", tools=[]).agent
    device = next(d.id for d in reg.devices(client.id) if d.agent_id == agent.id)
    blank: dict[str, str] = {}
    store.open_ticket(client_id=client.id, subject="s", body="", requester="", device_id=device, facts_into=blank)
    assert blank == {}
    DeviceMemory(db).remember(device, {"department": "Billing", "primary_user": "maria@acme.example"}, source="t")
    for started in (True, False):
        facts: dict[str, str] = {}
        with Statements(engine) as seen:
            store.open_ticket(client_id=client.id, subject="s", body="", requester="", device_id=device,
                              started=started, lease=NewSessionLease("replica-a", 10.0), facts_into=facts)
        assert facts == {"department": "Billing", "primary_user": "maria@acme.example"}
        if db.dialect == "postgresql":
            assert len(seen.sql) == 1 and seen.sql[0].startswith("WITH ") and seen.commits == 0, seen.sql
        else:
            assert seen.commits == 1
    none: dict[str, str] = {}
    with Statements(engine) as seen:
        store.open_ticket(client_id=client.id, subject="s", body="", requester="", device_id=None, facts_into=none)
    assert none == {} and not any("device_facts" in s for s in seen.sql), seen.sql


def test_a_sessions_end_deletes_its_lease_only_for_its_holder_with_its_token(engine: Engine) -> None:
    """``close_session(lease=...)``: the session's end and the delete of its lease are one write (one statement
    on PostgreSQL); a lease that changed hands since (another holder, a higher token) stays as it is."""
    db, store, client = ticket_store(engine)
    leases = Leases(db)
    ticket, session = store.open_ticket(client_id=client.id, subject="disk full", body="b", requester="u@x",
                                        device_id=None, started=True, lease=NewSessionLease("replica-a", 10.0))
    name = session_lease(session.id)
    with Statements(engine) as seen:
        seq = store.close_session(session.id, ticket.id, outcome="resolved", note="n", reply="r", reason="done",
                                  event=("final_answer", {}), lease=HeldLease(name, "replica-a", NEW_SESSION_TOKEN))
    assert seq == 2 and leases.current(name) is None and store.session(session.id).status == "resolved"
    if db.dialect == "postgresql":
        assert len(seen.sql) == 1 and seen.sql[0].startswith("WITH ") and seen.commits == 0, seen.sql
        assert "DELETE FROM ownership_leases" in seen.sql[0]
    else:
        assert seen.commits == 1

    ticket, session = store.open_ticket(client_id=client.id, subject="vpn", body="b", requester="u@x",
                                        device_id=None, started=True, lease=NewSessionLease("replica-a", 10.0))
    name = session_lease(session.id)
    assert leases.release(name, "replica-a", NEW_SESSION_TOKEN)
    assert leases.acquire(name, "replica-b", 10.0) == NEW_SESSION_TOKEN + 1  # taken over
    for stale in (HeldLease(name, "replica-a", NEW_SESSION_TOKEN), HeldLease(name, "replica-a", NEW_SESSION_TOKEN + 1),
                  HeldLease(name, "replica-b", NEW_SESSION_TOKEN)):
        store.close_session(session.id, ticket.id, outcome="escalated", note="n", reply="r", reason="done",
                            event=("escalation", {}), lease=stale)
        held = leases.current(name)
        assert held is not None and (held.holder, held.token) == ("replica-b", NEW_SESSION_TOKEN + 1)


def test_an_event_and_its_session_update_stand_or_fall_together(engine: Engine) -> None:
    """:meth:`TicketStore.add_event` with session columns: the UPDATE fails (a client that does not
    exist) after the event's INSERT: the event is not stored either."""
    _, store, client = ticket_store(engine)
    _, session = store.open_ticket(client_id=client.id, subject="s", body="", requester="", device_id=None)
    with pytest.raises(IntegrityError):
        store.add_event(session.id, "matched", {}, session_values={"client_id": "cl_missing"})
    assert store.events(session.id) == []
    assert store.session(session.id).client_id == client.id


def test_the_server_pool_replaces_a_dead_idle_connection(blank_postgres: TestDatabase) -> None:
    """PostgreSQL ends the backend of a pooled connection while it is idle (a restart, an idle
    timeout): the next checkout pings it, finds it dead and hands out a fresh one."""
    engine = server_engine(blank_postgres.url, ping_after_idle_s=0.0)
    try:
        with engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        admin = blank_postgres.new_engine()
        with admin.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
        with engine.connect() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
    finally:
        engine.dispose()


def test_a_connection_in_steady_use_is_not_pinged(blank_postgres: TestDatabase) -> None:
    """Without the idle time, the dead connection is handed out as it is: the statement fails (this is
    what the ping costs nothing for), and the pool recovers on the next checkout."""
    engine = server_engine(blank_postgres.url, ping_after_idle_s=3600.0)
    try:
        with engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with blank_postgres.new_engine().connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(DBAPIError) as raised, engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        assert raised.value.connection_invalidated  # SQLAlchemy saw a dropped connection
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()


def test_the_server_pool_prepares_a_statement_at_its_second_execution(blank_postgres: TestDatabase) -> None:
    """psycopg's server-side prepared statements (``pg_prepared_statements`` of the connection)."""
    engine = server_engine(blank_postgres.url)
    try:
        with engine.connect() as conn:
            prepared = text("SELECT count(*) FROM pg_prepared_statements WHERE statement = :probe")
            probe = "SELECT 40 + 2"
            assert conn.exec_driver_sql(probe).scalar_one() == 42
            assert conn.execute(prepared, {"probe": probe}).scalar_one() == 0
            conn.exec_driver_sql(probe)
            assert conn.execute(prepared, {"probe": probe}).scalar_one() == 1
    finally:
        engine.dispose()


def test_a_bad_url_is_a_store_error_without_the_password() -> None:
    with pytest.raises(StoreError, match=r"postgresql\+nodriver://u:\*\*\*@h/db") as raised:
        server_engine("postgresql+nodriver://u:secret@h/db")
    assert "secret" not in str(raised.value)
