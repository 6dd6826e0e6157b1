"""Escalations and approval requests reach Slack and Teams: right channel, right technician,
valid payloads, retries with backoff, every attempt recorded, and never a blocked ticket.

Slack and Teams cannot be reached from here: the webhooks are a local HTTP server
(tests/webhook_sink.py) that answers as the vendors document (Slack ``200 ok``, Teams ``202``)
and checks each payload against the Block Kit and Adaptive Card formats.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.roster import put_roster
from tests.webhook_sink import Sink, check_adaptive_card, check_block_kit, webhook_sink

from mspclaw.settings import Settings
from mspclaw.store.tables import utcnow
from mspclaw.wiring import Services, build

pytestmark = pytest.mark.anyio


def write_techs(services: Services, sink: Sink | None, *, channels: list[dict[str, Any]] | None = None) -> None:
    doc = {
        "techs": [
            {"name": "Dana Scully", "email": "dana@msp.example", "role": "tech", "slack_id": "U0DANA",
             "teams_id": "dana@msp.example", "clients": ["Acme Dental"]},
            {"name": "Fox Mulder", "email": "fox@msp.example", "role": "tech", "slack_id": "U0FOX",
             "clients": ["Beta Law"]},
        ],
        "channels": channels if channels is not None else [
            {"name": "acme-slack", "kind": "slack", "url": sink.hook("slack-acme") if sink else "", "clients":
             ["Acme Dental"]},
            {"name": "acme-teams", "kind": "teams", "url": sink.hook("teams-acme") if sink else "", "clients":
             ["Acme Dental"]},
            {"name": "global", "kind": "slack", "url": sink.hook("slack-global") if sink else ""},
        ],
    }
    put_roster(services, doc)


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    svc = build(Settings(data_dir=tmp_path / "data", api_key="k" * 20, notify_backoff_s=0.01, notify_retries=3))
    yield svc
    await svc.staff.notifier.aclose()
    svc.close()


async def escalate(svc: Services, client_name: str = "Acme Dental") -> str:
    client = svc.registry.add_client(client_name)
    ticket, session = svc.store.open_ticket(client_id=client.id, subject="printer jams", body="",
                                            requester="maria@acme.example", device_id=None)
    svc.store.add_step(session.id, title="Check disk", tool="disk_usage", args={}, ok=False,
                       observation={"output": None, "error": "tool_failed: df exited 1", "skipped": False})
    recorded = await svc.staff.escalations.record(ticket, session_id=session.id, kind="failed",
                                                reason="step disk_usage failed", device=None)
    return recorded.row.id


async def test_escalation_goes_to_the_clients_slack_and_teams_with_the_on_duty_tech(services: Services) -> None:
    async with webhook_sink() as sink:
        write_techs(services, sink)
        es_id = await escalate(services)
        await services.staff.notifier.drain(10)
        (slack,) = sink.received["slack-acme"]
        check_block_kit(slack)
        text = "\n".join(b["text"]["text"] for b in slack["blocks"] if "text" in b and b["type"] == "section")
        assert "<@U0DANA>" in text and "step disk_usage failed" in text
        assert "disk_usage" in slack["blocks"][-2]["text"]["text"] or "Check disk" in str(slack["blocks"])
        assert slack["blocks"][-1]["elements"][0]["url"].endswith("/api/tickets/" +
                                                                  services.staff.escalation_store.get(es_id, None)
                                                                  .ticket_id)
        card = check_adaptive_card(sink.received["teams-acme"][0])
        assert card["msteams"]["entities"][0]["mentioned"] == {"id": "dana@msp.example", "name": "Dana Scully"}
        assert "slack-global" not in sink.received, "a client with its own channels does not use the global one"
        rows = services.staff.escalation_store.notifications(None, ref_id=es_id)
        assert {(r.channel, r.status, r.attempts, r.recipient) for r in rows} == {
            ("acme-slack", "sent", 1, "dana@msp.example"), ("acme-teams", "sent", 1, "dana@msp.example")}
        assert all(sink.url not in str(r.payload) for r in rows)


async def test_a_client_without_channels_uses_the_global_one(services: Services) -> None:
    async with webhook_sink() as sink:
        write_techs(services, sink)
        await escalate(services, "Beta Law")
        await services.staff.notifier.drain(10)
        (msg,) = sink.received["slack-global"]
        check_block_kit(msg)
        assert "<@U0FOX>" in str(msg["blocks"])


async def test_retries_with_backoff_until_delivered_and_records_each_attempt(services: Services) -> None:
    async with webhook_sink() as sink:
        write_techs(services, sink)
        sink.script["slack-acme"] = [(500, {}), (429, {"Retry-After": "0"})]
        es_id = await escalate(services)
        await services.staff.notifier.drain(10)
        assert sink.attempts["slack-acme"] == 3
        row = next(r for r in services.staff.escalation_store.notifications(None, ref_id=es_id)
                   if r.channel == "acme-slack")
        assert (row.status, row.attempts, row.last_error) == ("sent", 3, None)


async def test_a_refusal_is_final_and_an_outage_gives_up_after_the_retries(services: Services) -> None:
    async with webhook_sink() as sink:
        write_techs(services, sink)
        sink.script["slack-acme"] = [(400, {})]
        sink.script["teams-acme"] = [(503, {})] * 5
        es_id = await escalate(services)
        await services.staff.notifier.drain(10)
        rows = {r.channel: r for r in services.staff.escalation_store.notifications(None, ref_id=es_id)}
        assert (rows["acme-slack"].status, rows["acme-slack"].attempts) == ("failed", 1)
        assert "400" in (rows["acme-slack"].last_error or "")
        assert (rows["acme-teams"].status, rows["acme-teams"].attempts) == ("failed", 3)
        failed = services.audit.query(kind="notify_failed")
        assert len(failed) == 2 and all(sink.url not in str(e.data) for e in failed)


async def test_an_unreachable_channel_never_blocks_the_escalation(services: Services, tmp_path: Path) -> None:
    from tests.conftest import free_port

    dead = f"http://127.0.0.1:{free_port()}/hook"
    write_techs(services, None, channels=[{"name": "dead", "kind": "slack", "url": dead}])
    es_id = await escalate(services)
    # record() returned with the escalation stored and the note written, before any delivery attempt
    (row,) = services.staff.escalation_store.notifications(None, ref_id=es_id)
    assert (row.status, row.attempts) == ("pending", 0)
    assert services.staff.escalation_store.get(es_id, None).kind == "failed"
    await services.staff.notifier.drain(10)
    (row,) = services.staff.escalation_store.notifications(None, ref_id=es_id)
    assert (row.status, row.attempts) == ("failed", 3) and "cannot reach" in (row.last_error or "")


async def test_approval_request_is_announced_with_a_link(services: Services) -> None:
    async with webhook_sink() as sink:
        write_techs(services, sink)
        client = services.registry.add_client("Acme Dental")
        ticket, session = services.store.open_ticket(client_id=client.id, subject="disk full", body="",
                                                     requester="maria@acme.example", device_id=None)
        row = services.store.request_approval(session_id=session.id, client_id=client.id, tool="clear_temp_files",
                                              args={"dry_run": False}, target="pc-1", reason="free space",
                                              deadline=utcnow() + timedelta(minutes=5))
        await services.staff.notifier.approval_requested(row, ticket.id)
        await services.staff.notifier.drain(10)
        (slack,) = sink.received["slack-acme"]
        check_block_kit(slack)
        button = slack["blocks"][-1]["elements"][0]
        assert button["url"].endswith(f"/ui/approvals/{row.id}") and "clear_temp_files" in slack["text"]
        card = check_adaptive_card(sink.received["teams-acme"][0])
        assert card["actions"][0]["url"].endswith(f"/ui/approvals/{row.id}")


async def test_messages_left_pending_by_a_stopped_process_are_sent_on_start(services: Services,
                                                                             tmp_path: Path) -> None:
    async with webhook_sink() as sink:
        write_techs(services, sink)
        es_id = await escalate(services)
        await services.staff.notifier.aclose()  # the process stops before any attempt
        rows = services.staff.escalation_store.notifications(None, ref_id=es_id)
        assert {(r.status, r.attempts) for r in rows} == {("pending", 0)}
        restarted = build(services.settings)
        try:
            assert await restarted.staff.notifier.resume() == 2
            await restarted.staff.notifier.drain(10)
        finally:
            await restarted.staff.notifier.aclose()
            restarted.close()
        rows = services.staff.escalation_store.notifications(None, ref_id=es_id)
        assert {(r.status, r.attempts) for r in rows} == {("sent", 1)}
        check_block_kit(sink.received["slack-acme"][0])


async def test_partial_feedback_tells_the_technician(services: Services) -> None:
    async with webhook_sink() as sink:
        write_techs(services, sink)
        client = services.registry.add_client("Acme Dental")
        ticket, session = services.store.open_ticket(client_id=client.id, subject="printer", body="",
                                                     requester="maria@acme.example", device_id=None)
        await services.staff.feedback.ask(ticket, session.id, None)
        await services.staff.feedback.answer(ticket.id, "partial", by="maria", comment="scanner still off", scope=None)
        await services.staff.notifier.drain(10)
        (slack,) = sink.received["slack-acme"]
        check_block_kit(slack)
        assert "scanner still off" in slack["text"] and "<@U0DANA>" in str(slack["blocks"])
