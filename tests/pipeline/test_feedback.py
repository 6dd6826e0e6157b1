"""Resolution feedback: no answer in time is unconfirmed (never success); an answer from the
device through the engine's ask_user port is recorded; 'partial' and 'no' reach the technician."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mspclaw.pipeline.feedback import FeedbackService
from mspclaw.settings import Settings
from mspclaw.store.tables import Ticket
from mspclaw.wiring import Services, build

pytestmark = pytest.mark.anyio


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    svc = build(Settings(data_dir=tmp_path / "data", api_key="k" * 20, feedback_timeout_s=0.3))
    yield svc
    await svc.staff.feedback.aclose()
    await svc.staff.notifier.aclose()
    svc.close()


def resolved(svc: Services) -> tuple[Ticket, str]:
    client = svc.registry.add_client("Acme Dental")
    ticket, session = svc.store.open_ticket(client_id=client.id, subject="disk", body="",
                                            requester="maria@acme.example", device_id=None)
    svc.store.update_session(session.id, status="resolved", outcome="resolved", playbook="disk_full")
    svc.store.set_ticket_status(ticket.id, "resolved")
    return ticket, session.id


async def test_no_answer_in_time_counts_as_unconfirmed(services: Services) -> None:
    feedback = services.staff.feedback
    ticket, session = resolved(services)
    row = await feedback.ask(ticket, session, None)
    assert row.status == "pending" and row.channel == "api"
    runner = asyncio.create_task(feedback.run(max_sleep_s=0.05))
    try:
        for _ in range(500):  # the status changes first, then the audit record is written
            if services.audit.query(kind="feedback_unconfirmed"):
                break
            await asyncio.sleep(0.02)
    finally:
        runner.cancel()
    assert feedback.store.for_ticket(ticket.id).status == "unconfirmed"
    (event,) = services.audit.query(kind="feedback_unconfirmed")
    assert event.data["ticket_id"] == ticket.id
    (stats,) = services.staff.stats.by("playbook", None)
    assert (stats.unconfirmed, stats.confirmed) == (1, 0)
    kinds = [e.event for e in services.events.history(session)]
    assert kinds == ["feedback_requested"]


async def test_an_answer_on_the_device_through_the_ask_port(services: Services) -> None:
    asked: list[tuple[str, tuple[str, ...]]] = []

    async def ask_user(client_id: str, agent_id: str, question_id: str, text: str,
                       choices: tuple[str, ...]) -> str | None:
        asked.append((text, choices))
        return "Partly"

    staff = services.staff
    feedback = FeedbackService(store=staff.feedback.store, tickets=services.store, escalations=staff.escalations,
                               hub=services.hub, registry=services.registry, connectors={}, events=services.events,
                               audit=services.audit, timeout_s=0.3, notifier=staff.notifier, techs=staff.techs,
                               ask_port=ask_user)
    ticket, session = resolved(services)
    await feedback.ask(ticket, session, "ag_1")
    for _ in range(100):
        if feedback.store.for_ticket(ticket.id).status != "pending":
            break
        await asyncio.sleep(0.01)
    row = feedback.store.for_ticket(ticket.id)
    assert (row.status, row.answered_by) == ("partial", "end user (device)")
    assert asked == [(feedback.question, ("yes", "no", "partial"))]
    await feedback.aclose()


async def test_no_reopens_with_an_escalation(services: Services) -> None:
    ticket, session = resolved(services)
    services.store.add_step(session, title="Measure disk usage", tool="disk_usage", args={}, ok=True,
                            observation={"output": {"filesystems": [{"mount_point": "/", "percent_used": 97.0,
                                                                     "free_bytes": 1000}]}})
    await services.staff.feedback.ask(ticket, session, None)
    row = await services.staff.feedback.answer(ticket.id, "no", by="maria", comment="still full", scope=None)
    assert row.status == "failed"
    assert services.store.ticket(ticket.id).status == "reopened"
    (esc,) = services.staff.escalation_store.escalations(None, ticket_id=ticket.id)
    assert esc.kind == "user_said_no" and "still full" in esc.reason
    assert esc.body["tried"][0]["result"] == "/ 97% used, 1000 B free"
    assert [e.event for e in services.events.history(session)][-2:] == ["feedback", "escalation"]


@pytest.mark.parametrize(("text", "answer"), [
    ("Yes, thank you!", "yes"), ("Yes, no problem now", "yes"), ("still cannot save anything", "no"),
    ("No.", "no"), ("partly - the printer works, the scanner not", "partial"), ("see you tomorrow", None)])
def test_reading_a_free_text_reply(text: str, answer: str | None) -> None:
    from mspclaw.pipeline.feedback import read_answer

    assert read_answer(text) == answer


async def test_a_reply_on_the_psa_ticket_answers_and_no_reopens_it_there(tmp_path: Path) -> None:
    """The in-process PSA (connectors/local.py) holds the ticket's notes as a PSA would."""
    from mspclaw.connectors.base import PSANote, PSATicket
    from mspclaw.connectors.local import LocalPSA

    psa = LocalPSA()
    svc = build(Settings(data_dir=tmp_path / "data", api_key="k" * 20), connectors={"local": psa})
    try:
        client = svc.registry.add_client("Acme Dental")
        ticket, session = svc.store.open_ticket(client_id=client.id, subject="disk", body="",
                                                requester="maria@acme.example", device_id=None, psa="local",
                                                external_id="501")
        reply = f"Hi Maria, we freed space.\n\n{svc.staff.feedback.question}"
        svc.store.update_session(session.id, status="resolved", outcome="resolved", reply=reply)
        psa.add(PSATicket(id="501", company="acme", requester="maria@acme.example", subject="disk", body="",
                          notes=[PSANote("MSPclaw: RESOLVED", False), PSANote("an older public note: no", True),
                                 PSANote(reply, True)]))
        await svc.staff.feedback.ask(svc.store.ticket(ticket.id), session.id, None)
        assert await svc.staff.feedback.check_psa_replies() == 0, "nothing after our reply yet"
        await psa.add_note("501", "Still cannot save, sorry", public=True)
        assert await svc.staff.feedback.check_psa_replies() == 1
        row = svc.staff.feedback.store.for_ticket(ticket.id)
        assert (row.status, row.answered_by) == ("failed", "end user (reply on local)")
        assert svc.store.ticket(ticket.id).status == "reopened"
        psa_ticket = await psa.get_ticket("501")
        assert psa_ticket.status == "escalated"
        assert "ESCALATED (user said no)" in psa_ticket.notes[-1].text and not psa_ticket.notes[-1].public
        assert await svc.staff.feedback.check_psa_replies() == 0
    finally:
        await svc.staff.notifier.aclose()
        svc.close()


async def test_psa_replies_are_read_in_turns(tmp_path: Path) -> None:
    """Many tickets waiting: each call reads at most ``limit`` of them, and the next call the next ones."""
    from mspclaw.connectors.base import PSANote, PSATicket
    from mspclaw.connectors.local import LocalPSA

    psa = LocalPSA()
    svc = build(Settings(data_dir=tmp_path / "data", api_key="k" * 20), connectors={"local": psa})
    try:
        client = svc.registry.add_client("Acme Dental")
        ids = []
        for n in range(5):
            ticket, session = svc.store.open_ticket(client_id=client.id, subject="disk", body="", requester="m@a.b",
                                                    device_id=None, psa="local", external_id=str(n))
            svc.store.update_session(session.id, status="resolved", outcome="resolved", reply="Did it work?")
            psa.add(PSATicket(id=str(n), company="acme", requester="m@a.b", subject="disk", body="",
                              notes=[PSANote("Did it work?", True), PSANote("yes thanks", True)]))
            await svc.staff.feedback.ask(svc.store.ticket(ticket.id), session.id, None)
            ids.append(ticket.id)
        assert await svc.staff.feedback.check_psa_replies(limit=2) == 2
        assert await svc.staff.feedback.check_psa_replies(limit=2) == 2
        assert await svc.staff.feedback.check_psa_replies(limit=2) == 1
        assert {svc.staff.feedback.store.for_ticket(t).status for t in ids} == {"confirmed"}
    finally:
        await svc.staff.notifier.aclose()
        svc.close()
