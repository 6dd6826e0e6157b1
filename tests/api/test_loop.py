"""The whole loop on embedded defaults: a ticket travels from intake to a note, on a real agent.

Real server (uvicorn, SQLite), real agent process, real tools on this Linux machine.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import live_server, make_old_files

from mspclaw.connectors.base import PSATicket
from mspclaw.connectors.local import LocalPSA

pytestmark = pytest.mark.anyio

DISK = {"subject": "disk almost full", "body": "I cannot save files, it says the disk is full",
        "requester": "maria@acme.example"}


async def test_disk_full_with_approval_is_resolved_and_files_are_deleted(tmp_path: Path) -> None:
    temp = tmp_path / "temp"
    old = make_old_files(temp, 5, size=10_000)
    fresh = temp / "fresh.tmp"
    fresh.write_text("keep me")
    async with live_server(tmp_path) as live:
        client = await live.client()
        await live.start_agent(client, temp_root=temp)
        created = (await live.http.post("/api/tickets", json={"client": client, **DISK})).json()
        approval = await live.wait_approval()
        assert approval["tool"] == "clear_temp_files" and approval["args"]["dry_run"] is False
        assert all(p.exists() for p in old), "nothing may be deleted before the approval"
        r = await live.http.post(f"/api/approvals/{approval['id']}/approve", json={"approver": "Dana"})
        assert r.status_code == 200 and r.json()["status"] == "approved"
        ticket = await live.wait_ticket(created["ticket_id"])
        assert ticket["status"] == "resolved" and ticket["playbook"] == "disk_full"
        assert [s["tool"] for s in ticket["steps"]] == ["disk_usage", "clear_temp_files", "clear_temp_files",
                                                        "disk_usage", "large_files"]
        assert "deleted 5 old temp files" in ticket["note"]
        assert "approved by Dana" in ticket["note"]
        assert ticket["reply"].startswith("Hello, "), "no PSA contact name: no name guessed from the address"
        assert not any(p.exists() for p in old) and fresh.exists()
        kinds = [e.kind for e in live.services.audit.query(session_id=created["session_id"])]
        assert kinds.count("tool_call") == 5 and kinds.count("tool_result") == 5
        assert {"approval_requested", "approval_decided", "note_written", "status_changed"} <= set(kinds)
        assert live.services.audit.verify().events >= len(kinds)


async def test_denied_step_is_not_run_and_the_ticket_is_escalated(tmp_path: Path) -> None:
    temp = tmp_path / "temp"
    old = make_old_files(temp, 3)
    async with live_server(tmp_path) as live:
        client = await live.client()
        await live.start_agent(client, temp_root=temp)
        created = (await live.http.post("/api/tickets", json={"client": client, **DISK})).json()
        approval = await live.wait_approval()
        r = await live.http.post(f"/api/approvals/{approval['id']}/deny",
                                 json={"approver": "Sam", "reason": "user is mid-export"})
        assert r.json()["status"] == "denied"
        ticket = await live.wait_ticket(created["ticket_id"])
        assert ticket["status"] == "escalated"
        assert "clear_temp_files denied by Sam: user is mid-export" in ticket["reason"]
        assert all(p.exists() for p in old)
        calls = live.services.store.calls(created["session_id"])
        assert [c.args.get("dry_run") for c in calls if c.tool == "clear_temp_files"] == [True]
        again = await live.http.post(f"/api/approvals/{approval['id']}/approve", json={"approver": "Dana"})
        assert again.status_code == 409 and "already denied" in again.json()["detail"]["message"]


async def test_no_decision_in_time_is_a_deny(tmp_path: Path) -> None:
    temp = tmp_path / "temp"
    old = make_old_files(temp, 2)
    async with live_server(tmp_path, approval_timeout_s=1.0) as live:
        client = await live.client()
        await live.start_agent(client, temp_root=temp)
        created = (await live.http.post("/api/tickets", json={"client": client, **DISK})).json()
        ticket = await live.wait_ticket(created["ticket_id"])
        assert ticket["status"] == "escalated"
        assert "no technician decided on clear_temp_files" in ticket["reason"]
        assert ticket["approvals"][0]["status"] == "expired"
        assert all(p.exists() for p in old)


async def test_unmatched_ticket_escalates_without_running_tools(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live:
        client = await live.client()
        await live.start_agent(client)
        created = (await live.http.post("/api/tickets", json={
            "client": client, "subject": "printer jammed", "body": "paper stuck on floor 2"})).json()
        ticket = await live.wait_ticket(created["ticket_id"])
        assert ticket["status"] == "escalated" and ticket["playbook"] is None
        assert "no playbook fits" in ticket["reason"]
        assert live.services.store.calls(created["session_id"]) == []


async def test_ticket_for_a_client_without_devices_escalates(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live:
        client = await live.client()
        created = (await live.http.post("/api/tickets", json={"client": client, **DISK})).json()
        ticket = await live.wait_ticket(created["ticket_id"])
        assert ticket["status"] == "escalated" and "no enrolled device" in ticket["reason"]


async def test_note_and_reply_go_back_to_the_psa_once(tmp_path: Path) -> None:
    psa = LocalPSA()
    async with live_server(tmp_path, connectors={"local": psa}) as live:
        client = await live.client()
        await live.start_agent(client)
        psa.add(PSATicket(id="77", company="acme", requester="tom@acme.example", subject="computer very slow",
                          body="it freezes"))
        sub = await live.services.tickets.submit(client=client, subject="computer very slow", body="it freezes",
                                                 requester="tom@acme.example", device=None, psa="local",
                                                 external_id="77")
        ticket = await live.wait_ticket(sub.ticket.id)
        await live.services.tickets.wait(sub.session.id)  # the status is stored before the PSA write-back
        psa_ticket = await psa.get_ticket("77")
        assert [n.public for n in psa_ticket.notes] == [False, True]
        assert psa_ticket.notes[0].text == ticket["note"] and psa_ticket.notes[1].text == ticket["reply"]
        assert psa_ticket.status == ticket["status"]
        assert [s["tool"] for s in ticket["steps"]] == ["system_info", "top_processes", "top_processes",
                                                        "disk_usage"]


async def test_arguments_that_fail_the_schema_are_refused_before_dispatch_and_audited(tmp_path: Path) -> None:
    """A playbook edited on disk after loading cannot smuggle bad arguments to the agent."""
    from mspclaw.playbooks.loader import load_dir

    books = load_dir()
    disk = next(b for b in books if b.id == "disk_full")
    bad_step = disk.steps[0].model_copy(update={"args": {"paths": "not-a-list"}})
    broken = disk.model_copy(update={"steps": [bad_step, *disk.steps[1:]]})
    async with live_server(tmp_path) as live:
        live.services.tickets.playbooks = [broken]
        client = await live.client()
        await live.start_agent(client)
        created = (await live.http.post("/api/tickets", json={"client": client, **DISK})).json()
        ticket = await live.wait_ticket(created["ticket_id"])
        assert ticket["status"] == "escalated" and "paths" in ticket["reason"]
        assert live.services.store.calls(created["session_id"]) == []
        (failed,) = live.services.audit.query(kind="step_failed")
        assert "invalid_args" in failed.data["error"]
