"""Registry and ticket store on SQLite and PostgreSQL: single-use codes, scoping, decide-once."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from mspclaw.errors import AuthError, Conflict, EnrollmentError, NotFound
from mspclaw.store.database import Database
from mspclaw.store.registry import Registry
from mspclaw.store.tables import Client, utcnow
from mspclaw.store.tickets import TicketStore

HELLO: dict[str, Any] = {"hostname": "PC-01", "os": "linux", "os_version": "12", "agent_version": "0.1",
                         "tools": ["disk_usage"]}


def test_clients_are_unique_and_found_by_id_or_name(engine: Engine) -> None:
    reg = Registry(Database(engine))
    acme = reg.add_client("Acme Dental", {"superops": "4521"})
    assert reg.client(acme.id).name == "Acme Dental" and reg.client("Acme Dental").id == acme.id
    with pytest.raises(Conflict, match="already exists"):
        reg.add_client("Acme Dental")
    with pytest.raises(NotFound, match="mspclaw clients list"):
        reg.client("Nope Inc")


def test_a_psa_company_finds_its_client_and_only_its_client(engine: Engine) -> None:
    store_db = Database(engine)
    sessions = store_db.sessions
    reg = Registry(store_db)
    acme = reg.add_client("Acme", {"superops": "4521", "local": "1"})
    reg.add_client("Beta", {"superops": "45210", "autotask": "4521"})
    reg.add_client("Gamma", {})
    found = reg.client_by_psa_ref("superops", "4521")
    assert found is not None and found.id == acme.id and found.psa_refs == {"superops": "4521", "local": "1"}
    assert reg.client_by_psa_ref("superops", "452") is None  # no prefix match
    assert reg.client_by_psa_ref("halo", "4521") is None  # another PSA's company ids do not count
    local = reg.client_by_psa_ref("local", "1")
    assert local is not None and local.id == acme.id
    # references stored as JSON numbers or booleans (not through add_client) match as their str(), as always
    with sessions.begin() as db:
        db.add(Client(id="cl_num", name="Delta", psa_refs={"cw": 77, "flag": True}))
    num = reg.client_by_psa_ref("cw", "77")
    assert num is not None and num.id == "cl_num"
    flag = reg.client_by_psa_ref("flag", "True")
    assert flag is not None and flag.id == "cl_num"


def test_enrollment_is_single_use_even_under_a_race(engine: Engine) -> None:
    reg = Registry(Database(engine))
    client = reg.add_client("Acme")
    issued = reg.issue_code(client.id, ttl=timedelta(hours=1))
    results: list[object] = []

    def attempt() -> None:
        try:
            results.append(reg.enroll(issued.code, **HELLO))
        except EnrollmentError as exc:
            results.append(exc)

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if not isinstance(r, Exception)]
    assert len(winners) == 1 and len(reg.agents(client.id)) == 1
    assert len(reg.devices(client.id)) == 1 and reg.find_device(client.id, "pc-01") is not None


def test_expired_code_and_credentials(engine: Engine) -> None:
    reg = Registry(Database(engine))
    client = reg.add_client("Acme")
    expired = reg.issue_code(client.id, ttl=timedelta(seconds=-1))
    with pytest.raises(EnrollmentError, match="expired"):
        reg.enroll(expired.code, **HELLO)
    enrolled = reg.enroll(reg.issue_code(client.id, ttl=timedelta(hours=1)).code, **HELLO)
    bearer = f"{enrolled.agent.id}.{enrolled.credential}"
    assert reg.authenticate(bearer).id == enrolled.agent.id
    with pytest.raises(AuthError):
        reg.authenticate(f"{enrolled.agent.id}.wrong")
    with pytest.raises(AuthError):
        reg.authenticate("garbage")
    reg.revoke(enrolled.agent.id)
    with pytest.raises(AuthError, match="revoked"):
        reg.authenticate(bearer)


def test_ticket_reads_are_scoped_to_the_callers_clients(engine: Engine) -> None:
    store_db = Database(engine)
    reg, store = Registry(store_db), TicketStore(store_db)
    a, b = reg.add_client("A"), reg.add_client("B")
    ticket, session = store.open_ticket(client_id=a.id, subject="s", body="", requester="", device_id=None)
    assert store.ticket(ticket.id, [a.id]).id == ticket.id
    with pytest.raises(NotFound):
        store.ticket(ticket.id, [b.id])
    with pytest.raises(NotFound):
        store.session(session.id, [])
    assert [t.id for t in store.tickets([b.id])] == []
    approval = store.request_approval(session_id=session.id, client_id=a.id, tool="clear_temp_files", args={},
                                      target="pc", reason="r", deadline=utcnow() + timedelta(minutes=5))
    assert store.approvals([b.id]) == [] and [x.id for x in store.approvals([a.id])] == [approval.id]
    with pytest.raises(NotFound):
        store.approval(approval.id, [b.id])


def test_an_approval_is_decided_once(engine: Engine) -> None:
    store_db = Database(engine)
    reg, store = Registry(store_db), TicketStore(store_db)
    a = reg.add_client("A")
    _, session = store.open_ticket(client_id=a.id, subject="s", body="", requester="", device_id=None)
    row = store.request_approval(session_id=session.id, client_id=a.id, tool="clear_temp_files", args={},
                                 target="pc", reason="r", deadline=utcnow() + timedelta(minutes=5))
    outcomes: list[object] = []

    def decide(status: str) -> None:
        try:
            outcomes.append(store.decide(row.id, status=status, approver=status))
        except Conflict as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=decide, args=(s,)) for s in ("approved", "denied", "expired") * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(not isinstance(o, Exception) for o in outcomes) == 1
    final = store.approval(row.id)
    assert final.status in ("approved", "denied", "expired") and final.approver == final.status


def test_events_and_steps_are_numbered_in_order(engine: Engine) -> None:
    store_db = Database(engine)
    reg, store = Registry(store_db), TicketStore(store_db)
    a = reg.add_client("A")
    _, session = store.open_ticket(client_id=a.id, subject="s", body="", requester="", device_id=None)
    for i in range(3):
        store.add_event(session.id, "step", {"i": i})
        store.add_step(session.id, title=f"t{i}", tool="disk_usage", args={}, ok=True, observation={})
    assert [e.seq for e in store.events(session.id)] == [1, 2, 3]
    assert [e.data["i"] for e in store.events(session.id, after_seq=1)] == [1, 2]
    assert [s.index for s in store.steps(session.id)] == [1, 2, 3]
