"""``POST /api/escalations/{id}/take|hand-over|close`` against the real server (uvicorn, SQLite), called with
technicians' access tokens from a password login: the state each leaves, the 409 that names who holds or
closed it, the list's filters, another client's technician and a viewer refused, the resolution on the PSA
ticket (the in-memory PSA the package ships)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import Live, live_server
from tests.roster import put_roster

from mspclaw.connectors.base import PSATicket
from mspclaw.connectors.local import LocalPSA

pytestmark = pytest.mark.anyio
PASSWORD = "correct horse battery staple"
TECHS: list[dict[str, Any]] = [
    {"name": "Dana Scully", "email": "dana@msp.example", "role": "tech", "clients": ["Acme Dental"]},
    {"name": "Fox Mulder", "email": "fox@msp.example", "role": "tech", "clients": ["Acme Dental"]},
    {"name": "Eve Other", "email": "eve@beta.example", "role": "tech", "clients": ["Beta Law"]},
    {"name": "Vic Viewer", "email": "vic@msp.example", "role": "viewer", "clients": ["Acme Dental"]},
]


async def token(live: Live, email: str) -> dict[str, str]:
    live.services.staff.logins.set_password(email, PASSWORD)
    async with httpx.AsyncClient(base_url=live.url) as anon:
        r = await anon.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def escalated(live: Live, psa: LocalPSA, client_id: str, external_id: str) -> str:
    svc = live.services
    psa.add(PSATicket(id=external_id, company=client_id, requester="maria@acme.example", subject="printer jams",
                      body=""))
    ticket, session = svc.store.open_ticket(client_id=client_id, subject="printer jams", body="",
                                            requester="maria@acme.example", device_id=None, psa="local",
                                            external_id=external_id)
    recorded = await svc.staff.escalations.record(ticket, session_id=session.id, kind="failed",
                                                reason="step print_test failed", device=None)
    return recorded.row.id


async def test_take_hand_over_close_over_the_api(tmp_path: Path) -> None:
    psa = LocalPSA()
    async with live_server(tmp_path, connectors={"local": psa}, workers=0) as live:
        put_roster(live.services, {"techs": TECHS})
        acme = await live.client("Acme Dental")
        await live.client("Beta Law")
        es = await escalated(live, psa, acme, "T-1")
        dana, fox = await token(live, "dana@msp.example"), await token(live, "fox@msp.example")
        eve, vic = await token(live, "eve@beta.example"), await token(live, "vic@msp.example")
        base = f"/api/escalations/{es}"
        http = live.http

        # another client's technician: it does not exist, by any route; a viewer may read, not act
        for path, body in ((f"{base}/take", None), (f"{base}/hand-over", {"to": "fox@msp.example", "note": "x"}),
                           (f"{base}/close", {"resolution": "x"})):
            assert (await http.post(path, json=body, headers=eve)).status_code == 404, path
            assert (await http.post(path, json=body, headers=vic)).status_code == 403, path
        assert (await http.get(base, headers=vic)).json()["state"] == "open"

        # two technicians at once: one holds it, the other is told who
        first, second = await asyncio.gather(http.post(f"{base}/take", headers=dana),
                                             http.post(f"{base}/take", headers=fox))
        assert sorted((first.status_code, second.status_code)) == [200, 409], (first.text, second.text)
        won, lost = (first, second) if first.status_code == 200 else (second, first)
        holder = won.json()
        assert holder["state"] == "taken" and holder["taken_at"]
        assert lost.json()["detail"]["code"] == "conflict" and holder["held_by"] in lost.json()["detail"]["message"]
        me, other = (dana, fox) if holder["held_by"] == "dana@msp.example" else (fox, dana)
        other_email = "fox@msp.example" if me is dana else "dana@msp.example"

        # the list: state and "mine" filters
        mine = (await http.get("/api/escalations", params={"mine": "true"}, headers=me)).json()
        assert [e["id"] for e in mine] == [es]
        assert (await http.get("/api/escalations", params={"mine": "true"}, headers=other)).json() == []
        assert (await http.get("/api/escalations", params={"state": "open"}, headers=me)).json() == []
        assert (await http.get("/api/escalations", params={"state": "bogus"}, headers=me)).status_code == 422

        # a hand-over: a note is needed, and only to a technician of this client
        r = await http.post(f"{base}/hand-over", json={"to": other_email, "note": ""}, headers=me)
        assert r.status_code == 422
        r = await http.post(f"{base}/hand-over", json={"to": "eve@beta.example", "note": "yours"}, headers=me)
        assert r.status_code == 403 and "serves" in r.json()["detail"]["message"]
        r = await http.post(f"{base}/hand-over", json={"to": other_email, "note": "tray sensor next"}, headers=me)
        assert r.status_code == 200, r.text
        assert (r.json()["state"], r.json()["held_by"], r.json()["handover_note"]) == \
            ("handed_over", other_email, "tray sensor next")
        assert (await http.post(f"{base}/close", json={"resolution": "x"}, headers=me)).status_code == 409

        # closing: the resolution goes to the PSA ticket as an internal note; a second close is a 409
        r = await http.post(f"{base}/close", json={"resolution": "replaced the tray sensor"}, headers=other)
        assert r.status_code == 200, r.text
        assert (r.json()["state"], r.json()["closed_by"]) == ("closed", other_email)
        (note,) = (await psa.get_ticket("T-1")).notes
        assert not note.public and "replaced the tray sensor" in note.text
        again = await http.post(f"{base}/close", json={"resolution": "again"}, headers=other)
        assert again.status_code == 409 and f"closed by {other_email}" in again.json()["detail"]["message"]
        r = await http.post(f"{base}/close", json={"resolution": "x" * 5000}, headers=other)
        assert r.status_code == 422  # bounded before anything is read

        events = [e for e in live.services.audit.query() if e.kind.startswith("escalation_")]
        assert [e.kind for e in events] == ["escalation_taken", "escalation_handed_over", "escalation_closed"]
        assert all(e.data["via"] == "api" and e.data["escalation_id"] == es for e in events)
