"""The console's pages against the real server, a real agent process and real Linux tools: what a
technician sees of a ticket waiting for approval, scoped to their clients, and deciding it once."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import Live, live_server, make_old_files
from tests.console.signing_in import DANA, EVE, VIC, csrf_of, register, signed_in

pytestmark = pytest.mark.anyio
FOX: dict[str, Any] = {"name": "Fox Mulder", "email": "fox@msp.example", "role": "tech", "clients": ["Acme Dental"]}
DISK = {"subject": "disk almost full", "body": "I cannot save files, it says the disk is full",
        "requester": "maria@acme.example"}


async def waiting_ticket(live: Live, client: str, temp: Path) -> tuple[str, dict[str, Any]]:
    make_old_files(temp, 4, size=10_000)
    created = (await live.http.post("/api/tickets", json={"client": client, **DISK})).json()
    approval = await live.wait_approval()
    assert approval["session_id"] == created["session_id"]
    return str(created["ticket_id"]), approval


async def test_pages_scoped_and_one_decision(tmp_path: Path) -> None:
    temp = tmp_path / "temp"
    async with live_server(tmp_path) as live:
        register(live, DANA, EVE, VIC, FOX)
        acme = await live.client("Acme Dental")
        await live.client("Beta Law")
        await live.start_agent(acme, temp_root=temp)
        ticket_id, approval = await waiting_ticket(live, acme, temp)
        aid = approval["id"]
        dana, _ = await signed_in(live, DANA["email"])
        eve, _ = await signed_in(live, EVE["email"])
        vic, _ = await signed_in(live, VIC["email"])
        fox, _ = await signed_in(live, FOX["email"])
        try:
            # the home page: the approval first, with its deadline; the client's agent online
            home = (await dana.get("/")).text
            waiting = home[home.index('id="waiting"'):home.index('id="running"')]
            assert f"/approvals/{aid}" in waiting and DISK["subject"] in waiting and 'class="countdown"' in waiting
            assert re.search(r"Acme Dental</th><td class=\"online\">1</td>", home)

            # the ticket page: subject, requester, client, device, playbook and why, the timeline so far
            page = (await dana.get(f"/tickets/{ticket_id}")).text
            for fact in (DISK["subject"], DISK["requester"], "Acme Dental", approval["tool"], "matched playbook"):
                assert fact in page, fact
            playbook = re.search(r'id="playbook">([^<( ]+)', page)
            assert playbook and playbook.group(1) not in ("none", ""), page[:2000]
            assert re.search(r'id="why">[^<]+<', page)
            assert 'id="audit"' in page and "approval_requested" in page

            # the approval view: who asked, what exactly, what a deny does
            view = (await dana.get(f"/approvals/{aid}")).text
            for fact in (DISK["requester"], approval["tool"], approval["target"], "On deny", 'id="arguments"',
                         'id="approve"', 'id="deny"'):
                assert fact in view, fact

            # another client's technician: none of it exists, by any URL
            for path in (f"/tickets/{ticket_id}", f"/tickets/{ticket_id}/events", f"/approvals/{aid}"):
                assert (await eve.get(path)).status_code == 404, path
            eve_home = await eve.get("/")
            assert DISK["subject"] not in eve_home.text and aid not in eve_home.text
            r = await eve.post(f"/approvals/{aid}/decide", data={"csrf": csrf_of(eve_home.text),
                                                                 "decision": "approve"})
            assert r.status_code == 404

            # a viewer reads but does not decide
            viewed = await vic.get(f"/approvals/{aid}")
            assert viewed.status_code == 200 and 'id="approve"' not in viewed.text
            r = await vic.post(f"/approvals/{aid}/decide", data={"csrf": csrf_of(viewed.text),
                                                                 "decision": "approve"})
            assert r.status_code == 403
            assert 'id="audit"' not in (await vic.get(f"/tickets/{ticket_id}")).text  # viewers read no audit

            # a form without its CSRF token decides nothing; a deny needs a reason
            assert (await dana.post(f"/approvals/{aid}/decide", data={"decision": "approve"})).status_code == 403
            r = await dana.post(f"/approvals/{aid}/decide", data={"csrf": csrf_of(view), "decision": "deny"})
            assert r.status_code == 400 and "Say why" in r.text
            assert (await live.http.get("/api/approvals")).json()[0]["status"] == "pending"

            # two technicians at once (and a double click): the first wins, the other sees who decided
            fox_view = (await fox.get(f"/approvals/{aid}")).text
            results = await asyncio.gather(
                dana.post(f"/approvals/{aid}/decide", data={"csrf": csrf_of(view), "decision": "approve"}),
                fox.post(f"/approvals/{aid}/decide", data={"csrf": csrf_of(fox_view), "decision": "deny",
                                                           "reason": "not now"}),
                dana.post(f"/approvals/{aid}/decide", data={"csrf": csrf_of(view), "decision": "approve"}))
            codes = sorted(r.status_code for r in results)
            assert codes == [303, 409, 409], [(r.status_code, r.text[:200]) for r in results]
            rows = (await live.http.get("/api/approvals", params={"status": ""})).json()
            decided = next(a for a in rows if a["id"] == aid)
            loser = next(r for r in results if r.status_code == 409)
            assert decided["approver"] and decided["approver"] in loser.text.replace("&lt;", "<").replace("&gt;", ">")
            audit = (await live.http.get("/api/audit", params={"kind": "approval_decided"})).json()
            assert [a["data"]["approval_id"] for a in audit].count(aid) == 1
            assert audit[0]["data"]["via"] == "console"

            done = await live.wait_ticket(ticket_id)
            assert done["status"] in ("resolved", "escalated")
            finished = (await dana.get(f"/tickets/{ticket_id}")).text
            assert 'data-finished="true"' in finished

            # what MSPclaw remembers about the device, and forgetting it (technicians; scoped; audited)
            memory = finished[finished.index('id="memory"'):]
            assert DISK["requester"] in memory and 'id="forget-device"' in memory
            device_id = re.search(r'action="/devices/([^/"]+)/forget"', finished)
            assert device_id
            forget = f"/devices/{device_id.group(1)}/forget"
            assert 'id="forget-device"' not in (await vic.get(f"/tickets/{ticket_id}")).text
            assert (await vic.post(forget, data={"csrf": csrf_of(viewed.text)})).status_code == 403
            assert (await eve.post(forget, data={"csrf": csrf_of(eve_home.text)})).status_code == 404
            assert (await dana.post(forget, data={})).status_code == 403
            assert (await live.http.get(f"/api/devices/{device_id.group(1)}")).json()["known"]
            r = await dana.post(forget, data={"csrf": csrf_of(finished), "back": f"/tickets/{ticket_id}"})
            assert r.status_code == 303 and r.headers["location"] == f"/tickets/{ticket_id}"
            assert (await live.http.get(f"/api/devices/{device_id.group(1)}")).json()["known"] == []
            assert "Nothing remembered." in (await dana.get(f"/tickets/{ticket_id}")).text
            forgotten = (await live.http.get("/api/audit", params={"kind": "device_forgotten"})).json()
            assert forgotten and forgotten[0]["actor"] == DANA["email"] and forgotten[0]["data"]["via"] == "console"
        finally:
            for c in (dana, eve, vic, fox):
                await c.aclose()


async def test_live_timeline_streams_the_sessions_events(tmp_path: Path) -> None:
    """``/tickets/{id}/events``: the session's events as server-sent events, from where the page left off."""
    temp = tmp_path / "temp"
    async with live_server(tmp_path) as live:
        register(live, DANA)
        acme = await live.client("Acme Dental")
        await live.start_agent(acme, temp_root=temp)
        ticket_id, approval = await waiting_ticket(live, acme, temp)
        dana, _ = await signed_in(live, DANA["email"])
        seen: list[str] = []
        try:
            async with dana.stream("GET", f"/tickets/{ticket_id}/events", params={"after": 0}) as stream:
                assert stream.headers["content-type"].startswith("text/event-stream")
                decided = False
                async for line in stream.aiter_lines():
                    if line.startswith("data: "):
                        seen.append(line)
                        if '"approval_request"' in line and not decided:
                            view = (await dana.get(f"/approvals/{approval['id']}")).text
                            r = await dana.post(f"/approvals/{approval['id']}/decide",
                                                data={"csrf": csrf_of(view), "decision": "approve"})
                            assert r.status_code == 303
                            decided = True
                        if '"final_answer"' in line or '"escalation"' in line:
                            break
        finally:
            await dana.aclose()
        text = "\n".join(seen)
        for event in ("matched", "approval_request", "approval_decision", "step"):
            assert f'"event": "{event}"' in text, event
        assert "approval approved by Dana Scully" in text
