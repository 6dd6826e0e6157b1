"""Announcing, approving, feedback and escalation on the whole loop: real server, real agent process,
real Linux tools; Slack and Teams are a local webhook server checking the Block Kit and Adaptive Card shapes.

A disk-full ticket is announced to the on-duty technician, approved by a registered technician,
resolved, and its user asked whether it worked; "no" reopens it with a structured escalation.
A denied one escalates with what was tried, why, next steps, evidence and device facts.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.conftest import live_server, make_old_files
from tests.roster import put_roster
from tests.webhook_sink import check_adaptive_card, check_block_kit, webhook_sink

from mspclaw.agent.tools import ToolContext
from mspclaw.agent.tools.linux import system_info
from mspclaw.pipeline.memory import facts_from_tool
from mspclaw.tools.catalogue import NoArgs

pytestmark = pytest.mark.anyio
DISK = {"subject": "disk almost full", "body": "I cannot save files, it says the disk is full",
        "requester": "maria@acme.example"}


async def test_approval_feedback_no_and_denial_escalate_with_the_whole_story(tmp_path: Path) -> None:
    temp = tmp_path / "temp"
    make_old_files(temp, 4, size=10_000)
    async with webhook_sink() as sink, live_server(tmp_path, notify_backoff_s=0.01) as live:
        put_roster(live.services, {
            "techs": [{"name": "Dana Scully", "email": "dana@msp.example", "slack_id": "U0DANA",
                       "teams_id": "dana@msp.example", "clients": ["Acme Dental"]}],
            "channels": [{"name": "ops", "kind": "slack", "url": sink.hook("slack")},
                         {"name": "ops-teams", "kind": "teams", "url": sink.hook("teams")}]})
        client = await live.client("Acme Dental")
        await live.start_agent(client, temp_root=temp)

        # 1. approval request -> Slack and Teams, with the on-duty technician and a link
        created = (await live.http.post("/api/tickets", json={"client": client, **DISK})).json()
        approval = await live.wait_approval()
        (announce,) = await sink.wait_for("slack")
        check_block_kit(announce)
        assert "<@U0DANA>" in str(announce["blocks"]) and approval["id"] in str(announce["blocks"])
        card = check_adaptive_card((await sink.wait_for("teams"))[0])
        assert card["actions"][0]["url"].endswith(f"/ui/approvals/{approval['id']}")
        page = await live.http.get(f"/ui/approvals/{approval['id']}")
        assert page.status_code == 200 and "maria" not in page.text, "the page shows nothing before login"

        # 2. an unregistered name cannot approve; the registered technician can
        r = await live.http.post(f"/api/approvals/{approval['id']}/approve", json={"approver": "Bob"})
        assert r.status_code == 403
        r = await live.http.post(f"/api/approvals/{approval['id']}/approve", json={"approver": "dana@msp.example"})
        assert r.status_code == 200
        ticket = await live.wait_ticket(created["ticket_id"])
        assert ticket["status"] == "resolved" and "Did this fix your problem?" in ticket["reply"]
        assert "approved by Dana Scully <dana@msp.example>" in ticket["note"]

        # 3. the user was asked; device memory learned who uses the device
        fb = (await live.http.get(f"/api/tickets/{ticket['id']}/feedback")).json()
        assert fb["status"] == "pending"
        device = (await live.http.get(f"/api/devices/{ticket['device_id']}")).json()
        known = {f["key"]: f["value"] for f in device["known"]}
        assert known.items() >= {"email": "maria@acme.example", "primary_user": "maria@acme.example"}.items()
        assert device["primary_user"] == "maria@acme.example"

        # 4. "no": reopened for a technician, with the history, sent to Dana
        r = await live.http.post(f"/api/tickets/{ticket['id']}/feedback",
                                 json={"answer": "no", "comment": "still cannot save"})
        assert r.status_code == 200 and r.json()["status"] == "failed"
        again = await live.http.post(f"/api/tickets/{ticket['id']}/feedback", json={"answer": "yes"})
        assert again.status_code == 409
        assert (await live.http.get(f"/api/tickets/{ticket['id']}")).json()["status"] == "reopened"
        (esc,) = (await live.http.get(f"/api/escalations?ticket={ticket['id']}")).json()
        assert esc["kind"] == "user_said_no" and esc["assigned_to"] == "dana@msp.example"
        assert [s["tool"] for s in esc["body"]["tried"]] == ["disk_usage", "clear_temp_files", "clear_temp_files",
                                                             "disk_usage", "large_files"]
        assert esc["body"]["device"]["email"] == "maria@acme.example"
        messages = await sink.wait_for("slack", 2)
        check_block_kit(messages[1])
        assert "still cannot save" in str(messages[1]["blocks"])

        # 5. a denied step: structured escalation in the note, stored, sent
        make_old_files(temp, 2)
        created2 = (await live.http.post("/api/tickets", json={"client": client, **DISK})).json()
        while True:
            pending = [a for a in (await live.http.get("/api/approvals")).json()]
            if pending:
                break
            await asyncio.sleep(0.1)
        r = await live.http.post(f"/api/approvals/{pending[0]['id']}/deny",
                                 json={"approver": "Dana Scully", "reason": "user is mid-export"})
        assert r.status_code == 200
        ticket2 = await live.wait_ticket(created2["ticket_id"])
        assert ticket2["status"] == "escalated"
        note = ticket2["note"]
        for part in ("ESCALATED (denied)", "What was checked", "Approval: clear_temp_files denied by Dana Scully",
                     "Measure disk usage", "Evidence:", "Next steps", "Assigned to: Dana Scully",
                     "email maria@acme.example"):
            assert part in note, (part, note.splitlines())
        (esc2,) = (await live.http.get(f"/api/escalations?ticket={ticket2['id']}")).json()
        assert esc2["kind"] == "denied" and esc2["body"]["evidence"]
        await live.services.staff.notifier.drain(10)
        assert len(sink.received["slack"]) == 4 and len(sink.received["teams"]) == 4
        for message in sink.received["teams"]:
            check_adaptive_card(message)
        notes = (await live.http.get("/api/notifications")).json()
        assert notes and all(n["status"] == "sent" for n in notes)

        # 6. stats count the "no" as failed and the denial as escalated, never as success
        stats = (await live.http.get("/api/stats?by=playbook")).json()
        (row,) = stats["rows"]
        assert (row["key"], row["tickets"], row["confirmed"], row["failed"], row["escalated"]) == \
            ("disk_full", 2, 0, 1, 1)
        assert row["median_ttr_s"] is not None and row["median_ttr_s"] > 0


def test_tool_output_becomes_device_facts() -> None:
    """The real system_info of this machine: host name, OS version, CPUs, memory become facts."""
    output = system_info(NoArgs(), ToolContext(temp_roots=()))
    facts = facts_from_tool("system_info", output)
    assert facts["hostname"] == output["hostname"] and facts["cpu_count"] >= 1
    assert facts["os_version"] and facts["memory_bytes"] > 0
    assert facts_from_tool("disk_usage", {"filesystems": []}) == {}
    assert facts_from_tool("jamf_inventory", {"hardware": {"model": "MacBookPro18,1", "serial_number": "C02X"}}) == {
        "model": "MacBookPro18,1", "serial": "C02X"}
