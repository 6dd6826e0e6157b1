"""The console's escalation pages over HTTP against the real server (uvicorn, SQLite), signed in with a
password and a TOTP second factor as a browser's forms would: the list (open first, who holds each), the
structured hand-off, Take / Hand over / Close, the questions waiting for users; a form without its CSRF token,
two technicians taking at once, another client's technician and a viewer."""

from __future__ import annotations

import asyncio
import html
import re
from datetime import timedelta
from pathlib import Path

import pytest
from tests.conftest import Live, live_server
from tests.console.signing_in import DANA, EVE, VIC, csrf_of, register, signed_in
from tests.console.test_pages import FOX

from mspclaw.store.tables import utcnow

pytestmark = pytest.mark.anyio


async def escalate(live: Live, client_id: str, subject: str) -> str:
    """An escalated ticket with one failed step, as a run leaves it."""
    svc = live.services
    ticket, session = svc.store.open_ticket(client_id=client_id, subject=subject, body="",
                                            requester="maria@acme.example", device_id=None)
    svc.store.add_step(session.id, title="Print a test page", tool="print_test_page", args={}, ok=False,
                       observation={"output": None, "error": "tool_failed: the printer is offline", "skipped": False})
    recorded = await svc.staff.escalations.record(ticket, session_id=session.id, kind="failed",
                                                reason="step print_test_page failed", device=None)
    return recorded.row.id


def text(page: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


async def test_take_hand_over_close_in_the_console(tmp_path: Path) -> None:
    async with live_server(tmp_path, workers=0) as live:
        register(live, DANA, EVE, VIC, FOX)
        acme = await live.client("Acme Dental")
        beta = await live.client("Beta Law")
        first = await escalate(live, acme, "printer jams on the 2nd floor")
        second = await escalate(live, acme, "scanner sends nothing")
        theirs = await escalate(live, beta, "Beta's VPN drops")
        dana, _ = await signed_in(live, DANA["email"])
        fox, _ = await signed_in(live, FOX["email"])
        eve, _ = await signed_in(live, EVE["email"])
        vic, _ = await signed_in(live, VIC["email"])
        try:
            # the list: both of Acme's, open, nobody holds them; nothing of Beta's
            listing = (await dana.get("/escalations")).text
            assert "printer jams on the 2nd floor" in listing and "scanner sends nothing" in listing
            assert "Beta's VPN drops" not in html.unescape(listing) and theirs not in listing
            assert listing.count("nobody yet") == 2 and "step print_test_page failed" in listing
            assert "You hold no escalation" in (await dana.get("/escalations?show=mine")).text

            # the detail: the structured hand-off and a link to the ticket page
            page = (await dana.get(f"/escalations/{first}")).text
            assert 'id="tried"' in page and "print_test_page" in page and "the printer is offline" in page
            assert re.search(r'href="/tickets/tk[^"]+" id="ticket-link"', page)
            assert 'id="take"' in page and 'id="hand-over-to"' in page and 'id="close"' in page
            # the select offers the technicians of this client only
            options = re.findall(r'<option value="([^"]+)"', page)
            assert set(options) == {DANA["email"], FOX["email"]}

            # another client's technician: not found by any URL, list or form
            eve_page = (await eve.get("/escalations")).text
            assert "printer jams" not in eve_page and "Beta&#x27;s VPN drops" in eve_page
            eve_csrf = csrf_of(eve_page)
            assert (await eve.get(f"/escalations/{first}")).status_code == 404
            for action, extra in (("take", {}), ("hand-over", {"to": EVE["email"], "note": "mine"}),
                                  ("close", {"resolution": "done"})):
                r = await eve.post(f"/escalations/{first}/{action}", data={"csrf": eve_csrf, **extra})
                assert r.status_code == 404, (action, r.text[:300])

            # a viewer reads, no forms; acting anyway is refused
            viewed = await vic.get(f"/escalations/{first}")
            assert viewed.status_code == 200 and 'id="take"' not in viewed.text and 'id="read-only"' in viewed.text
            r = await vic.post(f"/escalations/{first}/take", data={"csrf": csrf_of(viewed.text)})
            assert r.status_code == 403

            # a form without its CSRF token changes nothing
            assert (await dana.post(f"/escalations/{first}/take", data={})).status_code == 403
            assert (await dana.post(f"/escalations/{first}/close", data={"resolution": "x"})).status_code == 403
            assert live.services.staff.escalation_store.get(first, None).state == "open"

            # two technicians take at once: the first wins, the other sees who holds it
            fox_page = (await fox.get(f"/escalations/{first}")).text
            results = await asyncio.gather(
                dana.post(f"/escalations/{first}/take", data={"csrf": csrf_of(page)}),
                fox.post(f"/escalations/{first}/take", data={"csrf": csrf_of(fox_page)}))
            assert sorted(r.status_code for r in results) == [303, 409], [r.text[:300] for r in results]
            row = live.services.staff.escalation_store.get(first, None)
            loser = next(r for r in results if r.status_code == 409)
            assert f"{row.held_by_name} <{row.held_by}> holds this escalation" in html.unescape(loser.text)
            holder, other, other_tech = (dana, fox, FOX) if row.held_by == DANA["email"] else (fox, dana, DANA)
            held = (await other.get(f"/escalations/{first}")).text
            assert 'id="take"' not in held and 'id="held-note"' in held  # nothing to press for the other one

            # the list puts the open one first and names the holder of the taken one
            listing = text((await holder.get("/escalations")).text)
            assert listing.index("scanner sends nothing") < listing.index("printer jams on the 2nd floor")
            assert f"{row.held_by_name} <{row.held_by}>" in listing
            assert "printer jams" in (await holder.get("/escalations?show=mine")).text

            # hand it over: a note is needed; then it is the other technician's, who is shown the note
            csrf = csrf_of((await holder.get(f"/escalations/{first}")).text)
            r = await holder.post(f"/escalations/{first}/hand-over",
                                  data={"csrf": csrf, "to": other_tech["email"], "note": " "})
            assert r.status_code == 400 and "empty" in r.text
            r = await holder.post(f"/escalations/{first}/hand-over",
                                  data={"csrf": csrf, "to": other_tech["email"], "note": "the tray sensor is next"})
            assert r.status_code == 303 and r.headers["location"] == f"/escalations/{first}"
            now_held = (await other.get(f"/escalations/{first}")).text
            assert "the tray sensor is next" in now_held and 'id="handed-over"' in now_held
            assert 'id="close"' in now_held

            # close it with the resolution; closing again says who did
            r = await other.post(f"/escalations/{first}/close",
                                 data={"csrf": csrf_of(now_held), "resolution": "replaced the tray sensor"})
            assert r.status_code == 303
            closed = (await other.get(f"/escalations/{first}")).text
            assert 'data-state="closed"' in closed and "replaced the tray sensor" in closed
            assert 'id="close"' not in closed
            r = await other.post(f"/escalations/{first}/close",
                                 data={"csrf": csrf_of(closed), "resolution": "again"})
            assert r.status_code == 409 and f"closed by {other_tech['email']}" in r.text
            assert "printer jams" not in (await holder.get("/escalations")).text  # "not closed" by default
            assert "printer jams" in (await holder.get("/escalations?show=all")).text

            events = [(e.kind, e.actor, e.data["via"]) for e in live.services.audit.query()
                      if e.kind.startswith("escalation_")]
            assert [k for k, _, _ in events] == ["escalation_taken", "escalation_handed_over", "escalation_closed"]
            assert {via for _, _, via in events} == {"console"}
            assert second and live.services.staff.escalation_store.get(second, None).state == "open"
        finally:
            for c in (dana, fox, eve, vic):
                await c.aclose()


async def test_questions_waiting_for_users(tmp_path: Path) -> None:
    async with live_server(tmp_path, workers=0) as live:
        register(live, DANA, EVE)
        acme = await live.client("Acme Dental")
        beta = await live.client("Beta Law")
        dana, _ = await signed_in(live, DANA["email"])
        eve, _ = await signed_in(live, EVE["email"])
        try:
            assert "No question waits for a user" in (await dana.get("/questions")).text
            svc = live.services
            asked = {}
            for client, words in ((acme, "Which printer do you print to?"), (beta, "Which VPN profile?")):
                ticket, session = svc.store.open_ticket(client_id=client, subject="help", body="",
                                                        requester="maria@acme.example", device_id=None)
                asked[client] = (ticket.id, svc.tickets.runs.add_question(
                    session_id=session.id, client_id=client, call_id=None, text=words, choices=None,
                    channel="agent", deadline=utcnow() + timedelta(minutes=5)).id)
            page = (await dana.get("/questions")).text
            ticket_id, question_id = asked[acme]
            assert "Which printer do you print to?" in page and "Which VPN profile?" not in page
            assert f'href="/tickets/{ticket_id}"' in page and 'class="countdown"' in page
            assert f'action="/questions/{question_id}/answer"' in page
            assert "Which VPN profile?" in (await eve.get("/questions")).text
            r = await dana.post(f"/questions/{question_id}/answer",
                                data={"csrf": csrf_of(page), "answer": "the one by the door", "by": "Maria, by phone",
                                      "back": f"/tickets/{ticket_id}"})
            assert r.status_code == 303 and r.headers["location"] == f"/tickets/{ticket_id}"
            assert "Which printer" not in (await dana.get("/questions")).text
        finally:
            await dana.aclose()
            await eve.aclose()
