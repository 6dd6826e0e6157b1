"""The technician's approval page (``GET /ui/approvals/{id}``, what the Slack/Teams button opens),
loaded in a real headless Chromium (Debian's, driven over the DevTools protocol by tests/browser.py)
against the real server on loopback, with a real agent process and real Linux tools.

A disk-full ticket asks for approval; in the browser the page shows nothing of it before login, a
technician of another client logs in and sees nothing either, a wrong password is refused, then the
client's technician logs in through the form, sees the tool and the target, and clicks Approve: the
API says the approval is approved by that technician and the ticket resolves. A second ticket is
denied from the page with a reason: the API records the denial, the reason and the technician, and
the ticket escalates. The browser's JavaScript errors are collected and must be none.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from tests.browser import Page, chromium
from tests.conftest import Live, live_server, make_old_files
from tests.roster import put_roster

pytestmark = pytest.mark.anyio
DANA: dict[str, Any] = {"name": "Dana Scully", "email": "dana@msp.example", "role": "tech", "clients": ["Acme Dental"]}
EVE: dict[str, Any] = {"name": "Eve Other", "email": "eve@beta.example", "role": "tech", "clients": ["Beta Law"]}
PASSWORD = "correct horse battery staple"
DISK = {"subject": "disk almost full", "body": "I cannot save files, it says the disk is full",
        "requester": "maria@acme.example"}


async def _ticket_waiting_for_approval(live: Live, client: str, temp: Path) -> tuple[str, dict[str, Any]]:
    make_old_files(temp, 4, size=10_000)
    created = (await live.http.post("/api/tickets", json={"client": client, **DISK})).json()
    approval = await live.wait_approval()
    assert approval["session_id"] == created["session_id"]
    return str(created["ticket_id"]), approval


async def _log_in(page: Page, email: str, password: str) -> None:
    await page.type("#email", email)
    await page.type("#password", password)
    await page.press_enter()


async def _approval(live: Live, approval_id: str) -> dict[str, Any]:
    rows: list[dict[str, Any]] = (await live.http.get("/api/approvals", params={"status": ""})).json()
    return next(a for a in rows if a["id"] == approval_id)


async def test_technician_approves_and_denies_in_a_real_browser(tmp_path: Path) -> None:
    temp = tmp_path / "temp"
    async with live_server(tmp_path) as live, chromium() as browser:
        put_roster(live.services, {"techs": [DANA, EVE]})
        client = await live.client("Acme Dental")
        await live.client("Beta Law")
        for tech in (DANA, EVE):
            live.services.staff.logins.set_password(tech["email"], PASSWORD)  # as `mspclaw tech passwd`
        await live.start_agent(client, temp_root=temp)
        ticket_id, approval = await _ticket_waiting_for_approval(live, client, temp)
        url = f"{live.url}/ui/approvals/{approval['id']}"
        assert approval["tool"] == "clear_temp_files" and approval["target"]

        page = await browser.new_page()
        # 1. before login: the id in the heading, a login form, nothing of the approval
        await page.goto(url)
        before = await page.text()
        assert approval["id"] in before
        assert approval["tool"] not in before and approval["target"] not in before and "maria" not in before
        assert await page.visible("#login") and not await page.visible("#approve")

        # 2. a wrong password is refused, and still nothing is shown
        await _log_in(page, DANA["email"], "not the password")
        refused = await page.wait_for("document.getElementById('msg').textContent")
        assert "password" in refused.lower(), refused
        assert approval["tool"] not in await page.text() and not await page.visible("#approve")

        # 3. a technician of another client logs in and gets no access
        await page.goto(url)
        await _log_in(page, EVE["email"], PASSWORD)
        assert "no such approval" in await page.wait_for("document.getElementById('msg').textContent")
        assert approval["tool"] not in await page.text() and not await page.visible("#approve")
        assert (await _approval(live, approval["id"]))["status"] == "pending"

        # 4. the client's technician logs in, sees tool and target, approves
        await page.goto(url)
        await _log_in(page, DANA["email"], PASSWORD)
        await page.wait_for("document.getElementById('detail').textContent")
        shown = await page.text()
        assert approval["tool"] in shown and approval["target"] in shown and "pending" in shown
        assert await page.visible("#approve") and await page.visible("#deny")
        await page.click("#approve")
        done = await page.wait_for("document.getElementById('msg').textContent.startsWith('approved')")
        assert done
        assert "approved by Dana Scully <dana@msp.example>" in await page.text("#msg")
        decided = await _approval(live, approval["id"])
        assert decided["status"] == "approved" and decided["approver"] == "Dana Scully <dana@msp.example>"
        assert not await page.visible("#approve"), "a decided approval offers no second decision"
        ticket = await live.wait_ticket(ticket_id)
        assert ticket["status"] == "resolved" and "approved by Dana Scully <dana@msp.example>" in ticket["note"]

        # 5. a second ticket: denied from the page, with a reason
        ticket_id, approval = await _ticket_waiting_for_approval(live, client, temp)
        page = await browser.new_page()  # a fresh tab: logged out again
        await page.goto(f"{live.url}/ui/approvals/{approval['id']}")
        assert approval["target"] not in await page.text()
        await _log_in(page, DANA["email"], PASSWORD)
        await page.wait_for("document.getElementById('detail').textContent")
        await page.type("#reason", "the user is presenting, not now")
        await page.click("#deny")
        await page.wait_for("document.getElementById('msg').textContent.startsWith('denied')")
        decided = await _approval(live, approval["id"])
        assert decided["status"] == "denied" and decided["approver"] == "Dana Scully <dana@msp.example>"
        assert decided["decision_reason"] == "the user is presenting, not now"
        ticket = await live.wait_ticket(ticket_id)
        assert ticket["status"] == "escalated"

        # the tech of the other client cannot decide it through the API either
        r = await live.http.post("/auth/login", json={"email": EVE["email"], "password": PASSWORD})
        eve = {"Authorization": f"Bearer {r.json()['access_token']}"}
        r = await live.http.post(f"/api/approvals/{approval['id']}/approve", json={}, headers=eve)
        assert r.status_code == 404, r.text
        assert browser.errors == [], browser.errors
        failed = [f for f in browser.failed_requests if not f.startswith(f"{live.url}/favicon.ico:")]
        assert failed == [f"{live.url}/auth/login: Failed to load resource: the server responded with a status of "
                          "401 (Unauthorized)"], "only the wrong password failed"


async def test_an_id_in_the_link_cannot_break_or_script_the_page(tmp_path: Path) -> None:
    """The id comes from the URL and is written into the page's inline script: a crafted link
    (``<!--<script>`` would swallow the script, ``</script>`` end it) must stay inert text."""
    hostile = "<!--<script>x'\"&amp;"
    async with live_server(tmp_path, workers=0) as live, chromium() as browser:
        page = await browser.new_page()
        await page.goto(f"{live.url}/ui/approvals/{quote(hostile, safe='')}")
        assert await page.eval("id") == hostile, "the script ran and holds the id as plain text"
        assert hostile in await page.text("h1")
        assert await page.eval("typeof document.getElementById('login').onsubmit") == "function"
        assert browser.errors == [], browser.errors
