"""Operator stores on SQLite and PostgreSQL: device memory, API keys, one-time tokens, feedback, stats."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from mspclaw.errors import AuthError, Conflict, NotFound
from mspclaw.store.database import Database
from mspclaw.store.devices import DeviceMemory
from mspclaw.store.feedback import FeedbackStore
from mspclaw.store.keys import ApiKeys
from mspclaw.store.logins import Logins
from mspclaw.store.registry import Registry
from mspclaw.store.stats import StatsQuery, UsageLog, aggregate
from mspclaw.store.tables import utcnow
from mspclaw.store.tickets import TicketStore


def _device(engine: Engine, client_name: str = "Acme") -> tuple[str, str]:
    reg = Registry(Database(engine))
    client = reg.add_client(client_name)
    code = reg.issue_code(client.id, ttl=timedelta(hours=1))
    agent = reg.enroll(code.code, hostname="pc-1", os="linux", os_version="", agent_version="", tools=[]).agent
    return client.id, next(d.id for d in reg.devices(client.id) if d.agent_id == agent.id)


def test_device_memory_remembers_with_source_scopes_and_forgets(engine: Engine) -> None:
    mem = DeviceMemory(Database(engine))
    a, dev = _device(engine)
    b, other = _device(engine, "Beta")
    assert mem.remember(dev, {"department": "Billing", "location": "", "primary_user": "Maria@acme.example"},
                        source="answer:department") == ["department", "primary_user"]
    assert mem.remember(dev, {"department": "Billing"}, source="tool:x") == [], "unchanged facts are not rewritten"
    assert mem.remember(dev, {"department": "Sales"}, source="answer:department") == ["department"]
    shown = mem.device(dev, [a])
    assert {f.key: (f.value, f.source) for f in shown.facts} == {
        "department": ("Sales", "answer:department"), "primary_user": ("Maria@acme.example", "answer:department")}
    assert shown.device.primary_user == "maria@acme.example"
    with pytest.raises(NotFound):
        mem.device(dev, [b])
    with pytest.raises(NotFound):
        mem.forget(dev, [b])
    assert [d.id for d, _ in mem.devices([b])] == [other]
    assert dict((d.id, n) for d, n in mem.devices(None)) == {dev: 2, other: 0}
    assert sorted(mem.forget(dev, [a])) == ["department", "primary_user"]
    assert mem.facts(dev) == {} and mem.device(dev, None).device.primary_user is None


def test_api_keys_authenticate_only_while_live(engine: Engine) -> None:
    keys = ApiKeys(Database(engine))
    row, key = keys.create("bridge", role="tech", clients=["cl_a"], all_clients=False, created_by="t")
    assert key.startswith("mck_") and row.secret_hash not in key
    assert keys.authenticate(key).name == "bridge"
    for wrong in (key + "x", key.replace(row.id, "nosuchid"), "mck_", "mck__"):
        with pytest.raises(AuthError):
            keys.authenticate(wrong)
    with pytest.raises(Conflict):
        keys.create("bridge", role="viewer", clients=["cl_a"], all_clients=False, created_by="t")
    with pytest.raises(Conflict):
        keys.create("x", role="root", clients=["cl_a"], all_clients=False, created_by="t")
    keys.revoke("bridge")
    with pytest.raises(AuthError, match="revoked"):
        keys.authenticate(key)
    with pytest.raises(Conflict):
        keys.revoke(row.id)


def _race(logins: Logins, token: str, n: int) -> tuple[int, list[str]]:
    won: list[str] = []
    lost: list[str] = []
    barrier = threading.Barrier(n)

    def spend() -> None:
        barrier.wait()
        try:
            logins.spend("login_link", token)
            won.append("x")
        except AuthError as exc:
            lost.append(exc.message)

    threads = [threading.Thread(target=spend) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(won), lost


def test_a_one_time_token_is_spent_once_even_when_raced(engine: Engine) -> None:
    logins = Logins(Database(engine))
    for _ in range(3):
        token, _ = logins.issue("login_link", "dana@msp.example", timedelta(minutes=5))
        won, lost = _race(logins, token, 4)
        assert won == 1 and len(lost) == 3, (won, lost)
    with pytest.raises(AuthError, match="unknown"):
        logins.spend("refresh", token)  # a link is not a refresh token


def test_feedback_is_answered_once_and_expires_unconfirmed(engine: Engine) -> None:
    store_db = Database(engine)
    a, _ = _device(engine)
    store, tickets = FeedbackStore(store_db), TicketStore(store_db)
    t1, s1 = tickets.open_ticket(client_id=a, subject="x", body="", requester="", device_id=None)
    t2, s2 = tickets.open_ticket(client_id=a, subject="y", body="", requester="", device_id=None)
    now = utcnow()
    store.open(ticket_id=t1.id, session_id=s1.id, client_id=a, resolved_at=now, deadline=now + timedelta(hours=1),
               channel="api")
    store.open(ticket_id=t2.id, session_id=s2.id, client_id=a, resolved_at=now,
               deadline=now - timedelta(seconds=1), channel="api")
    with pytest.raises(Conflict):
        store.open(ticket_id=t1.id, session_id=s1.id, client_id=a, resolved_at=now, deadline=now, channel="api")
    with pytest.raises(NotFound):
        store.answer(t1.id, "yes", by="u", comment="", scope=["cl_other"])
    with pytest.raises(Conflict, match="yes, no or partial"):
        store.answer(t1.id, "maybe", by="u", comment="", scope=None)
    assert store.answer(t1.id, "partial", by="u", comment="printer ok, scanner not", scope=[a]).status == "partial"
    with pytest.raises(Conflict, match="already partial"):
        store.answer(t1.id, "yes", by="u", comment="", scope=None)
    with pytest.raises(Conflict, match="time to answer has passed"):
        store.answer(t2.id, "yes", by="u", comment="", scope=None)
    assert [r.ticket_id for r in store.expire_due()] == [t2.id]
    assert store.for_ticket(t2.id).status == "unconfirmed" and store.expire_due() == []


def test_stats_count_each_ticket_once_and_never_unconfirmed_as_success(engine: Engine) -> None:
    store_db = Database(engine)
    a, _ = _device(engine)
    b, _ = _device(engine, "Beta")
    tickets, feedback = TicketStore(store_db), FeedbackStore(store_db)

    def ticket(client: str, playbook: str | None, outcome: str, answer: str | None, minutes: float,
               model: str = "playbook", tokens: int = 0) -> None:
        t, s = tickets.open_ticket(client_id=client, subject="s", body="", requester="", device_id=None)
        tickets.update_session(s.id, playbook=playbook, outcome=outcome, status=outcome)
        if outcome == "resolved":
            created = t.created_at
            feedback.open(ticket_id=t.id, session_id=s.id, client_id=client,
                          resolved_at=created + timedelta(minutes=minutes),
                          deadline=utcnow() + timedelta(hours=1), channel="api")
            if answer:
                feedback.answer(t.id, answer, by="u", comment="", scope=None)
        if tokens:  # the run's totals (two model calls of half each); recorded twice, as a resumed run does
            for _ in range(2):
                UsageLog(store_db).record(s.id, model=model, input_tokens=tokens, output_tokens=tokens // 2,
                                          cost_usd=tokens / 1e6)

    ticket(a, "disk_full", "resolved", "yes", 2)
    ticket(a, "disk_full", "resolved", "no", 4)
    ticket(a, "disk_full", "resolved", None, 6)  # pending: unconfirmed, not success
    ticket(a, "disk_full", "escalated", None, 0)
    ticket(b, "printer", "resolved", "partial", 10, model="openai:gpt-4.1-mini", tokens=1000)
    ticket(b, None, "escalated", None, 0)
    stats = StatsQuery(store_db)
    rows = {r.key: r for r in stats.by("playbook", None)}
    disk = rows["disk_full"]
    assert (disk.tickets, disk.confirmed, disk.failed, disk.unconfirmed, disk.escalated) == (4, 1, 1, 1, 1)
    assert disk.median_ttr_s == pytest.approx(240, abs=1)
    assert (rows["printer"].partial, rows["printer"].tokens, rows["printer"].cost_usd) == (1, 1500, 0.001)
    assert rows["(none)"].escalated == 1
    assert {r.key for r in stats.by("client", [b])} == {"Beta"}
    assert {r.key: r.tickets for r in stats.by("model", None)} == {"playbook": 5, "openai:gpt-4.1-mini": 1}
    (total,) = aggregate(stats.outcomes(None), None)
    assert total.tickets == 6 and total.confirmed == 1
    with pytest.raises(ValueError):
        stats.by("weather", None)
