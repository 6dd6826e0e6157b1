"""The console in a real browser: Playwright driving Debian's Chromium (``executable_path``; Playwright's own
browser download is never used) against the real server on loopback, with a real agent process and real
Linux tools.

A technician signs in with a password and enrols a TOTP second factor from the QR page; a disk-full ticket
waits for approval on the home page with its deadline counting down; the ticket page is open while the
approval is given with the ``a`` key in another tab, and the ticket page follows the run to its end on its
own. A second ticket: a form stripped of its CSRF token is refused, a deny without a reason is held back,
then a double click on Deny with a reason decides once. With JavaScript off, a third is approved from the
plain pages. A technician of another client finds nothing by
any URL; a one-time login link lands in the console once and is refused when replayed. With
``MSPCLAW_SCREENSHOTS=1`` the main pages are saved under docs/console/.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Page, async_playwright, expect
from tests.browser import chromium_or_skip
from tests.conftest import Live, live_server
from tests.console.signing_in import DANA, EVE, PASSWORD, register
from tests.console.test_pages import DISK, FOX, waiting_ticket

from mspclaw.console import totp

pytestmark = pytest.mark.anyio
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
SHOTS = Path(__file__).parents[2] / "docs" / "console"


async def shot(page: Page, name: str) -> None:
    if os.environ.get("MSPCLAW_SCREENSHOTS") == "1":
        SHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def watch_errors(page: Page, errors: list[str]) -> None:
    page.on("pageerror", lambda exc: errors.append(f"{page.url}: {exc}"))


async def sign_in_enrolling(context: BrowserContext, live: Live, email: str, *, screenshots: bool = False) -> Page:
    page = await context.new_page()
    await page.goto(f"{live.url}/")
    assert page.url.endswith("/login")
    if screenshots:
        await shot(page, "sign-in")
    await page.fill("#email", email)
    await page.fill("#password", PASSWORD)
    await page.press("#password", "Enter")
    await page.wait_for_url("**/login/enrol")
    assert await page.locator(".qr svg").count() == 1
    if screenshots:
        await shot(page, "second-factor-enrolment")
    secret = (await page.inner_text("#secret")).replace(" ", "")
    await page.fill("#code", totp.code_at(secret, time.time()))
    await page.press("#code", "Enter")
    await page.wait_for_selector("#recovery-codes")
    assert await page.locator("#recovery-codes li").count() == 10
    await page.click("#continue")
    await page.wait_for_selector("#waiting")
    return page


async def test_the_console_in_a_real_browser(tmp_path: Path) -> None:
    temp = tmp_path / "temp"
    executable = chromium_or_skip()
    errors: list[str] = []
    async with live_server(tmp_path) as live, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=executable, args=ARGS, headless=True)
        try:
            register(live, DANA, EVE, FOX)
            acme = await live.client("Acme Dental")
            await live.client("Beta Law")
            await live.start_agent(acme, temp_root=temp)
            dana_ctx = await browser.new_context(viewport={"width": 1280, "height": 860})
            dana_ctx.on("page", lambda p: watch_errors(p, errors))

            # 1. sign in with a password and a TOTP second factor, enrolled from the QR page
            home = await sign_in_enrolling(dana_ctx, live, DANA["email"], screenshots=True)

            # 2. a ticket waits for approval: first on the home page, its deadline counting down
            ticket_id, approval = await waiting_ticket(live, acme, temp)
            await home.reload()
            waiting = home.locator(f'#waiting a[href="/approvals/{approval["id"]}"]')
            assert await waiting.count() == 1
            first = await home.inner_text("#waiting time.countdown")
            await expect(home.locator("#waiting time.countdown")).not_to_have_text(first, timeout=5000)
            await shot(home, "home")

            # 3. the ticket page is open while the approval is given in another tab with the `a` key
            ticket = await dana_ctx.new_page()
            await ticket.goto(f"{live.url}/tickets/{ticket_id}")
            assert DISK["subject"] in await ticket.inner_text("#subject")
            assert DISK["requester"] in await ticket.inner_text("#requester")
            assert "awaiting_approval" in await ticket.inner_text("#status")
            await shot(ticket, "ticket-waiting")
            decide = await dana_ctx.new_page()
            await decide.goto(f"{live.url}/approvals/{approval['id']}")
            for fact in (approval["tool"], approval["target"], DISK["requester"]):
                assert fact in await decide.inner_text("#approval"), fact
            await shot(decide, "approval")
            await decide.keyboard.press("a")
            await decide.wait_for_selector("#state.approved")
            assert "Dana Scully" in await decide.inner_text("#decided-by")

            # ... and the ticket page follows the run to its end without being told to
            await expect(ticket.locator("#status")).to_have_text(re.compile(r"^resolved"), timeout=60_000)
            assert await ticket.locator("#timeline li.final_answer").count() == 1
            assert await ticket.locator("#calls tbody tr").count() >= 2
            await shot(ticket, "ticket-resolved")

            # 4. a second ticket: no CSRF token, refused; a deny wants a reason; a double click decides once
            second_id, second = await waiting_ticket(live, acme, temp)
            await decide.goto(f"{live.url}/approvals/{second['id']}")
            await decide.evaluate("document.querySelector('#decide input[name=csrf]').remove()")
            await decide.click("#approve")
            await decide.wait_for_selector("#error-message")
            assert "did not come from this console" in await decide.inner_text("#error-message")
            await decide.goto(f"{live.url}/approvals/{second['id']}")
            await decide.click("#deny")  # no reason yet: held back in the page, the reason field focused
            assert await decide.evaluate("document.activeElement.id") == "reason"
            assert await decide.get_attribute("#approval", "data-status") == "pending"
            await decide.fill("#reason", "the user is copying a large file right now")
            await decide.dblclick("#deny")
            await decide.wait_for_selector("#state.denied")
            assert "copying a large file" in await decide.inner_text("#state")
            rows = (await live.http.get("/api/approvals", params={"status": ""})).json()
            denied = next(a for a in rows if a["id"] == second["id"])
            assert denied["status"] == "denied" and denied["approver"].startswith("Dana Scully")
            assert denied["decision_reason"] == "the user is copying a large file right now"
            audit = (await live.http.get("/api/audit", params={"kind": "approval_decided"})).json()
            assert [a["data"]["approval_id"] for a in audit].count(second["id"]) == 1
            assert (await live.wait_ticket(second_id))["status"] == "escalated"

            # 4b. without JavaScript the console still works: sign in with TOTP, see the ticket wait, approve it
            plain = await browser.new_context(java_script_enabled=False)
            fox = await sign_in_enrolling(plain, live, FOX["email"])
            third_id, third = await waiting_ticket(live, acme, temp)
            await fox.reload()
            await fox.click(f'#waiting a[href="/approvals/{third["id"]}"]')
            await fox.wait_for_selector("#approve")
            await fox.click("#approve")
            await fox.wait_for_selector("#state.approved")
            assert "Fox Mulder" in await fox.inner_text("#decided-by")
            assert (await live.wait_ticket(third_id))["status"] == "resolved"
            await fox.goto(f"{live.url}/tickets/{third_id}")
            assert (await fox.inner_text("#status")).startswith("resolved")

            # 5. a technician of another client: nothing of Acme's by any URL
            eve_ctx = await browser.new_context()
            eve_ctx.on("page", lambda p: watch_errors(p, errors))
            eve = await sign_in_enrolling(eve_ctx, live, EVE["email"])
            assert DISK["subject"] not in await eve.inner_text("main")
            for path in (f"/tickets/{ticket_id}", f"/approvals/{approval['id']}", f"/tickets/{second_id}",
                         f"/approvals/{second['id']}"):
                response = await eve.goto(f"{live.url}{path}")
                assert response is not None and response.status == 404, path
                assert DISK["subject"] not in await eve.inner_text("main")
            stream = await eve_ctx.request.get(f"{live.url}/tickets/{ticket_id}/events")  # with Eve's cookie
            assert stream.status == 404

            # 6. a one-time login link lands in the console once; replayed, it is refused
            made = (await live.http.post(f"/api/techs/{DANA['email']}/login-link")).json()
            link_ctx = await browser.new_context()
            link = await link_ctx.new_page()
            await link.goto(made["url"])
            await link.click("#use-link")
            await link.wait_for_url("**/login/code")
            await link.fill("#code", totp.code_at(await _secret_of(live, DANA["email"]), time.time() + 30))
            await link.press("#code", "Enter")
            await link.wait_for_selector("#waiting")
            replay_ctx = await browser.new_context()
            replay = await replay_ctx.new_page()
            await replay.goto(made["url"])
            await replay.click("#use-link")
            await replay.wait_for_selector("#error-message")
            assert "already used" in await replay.inner_text("#error-message")

            # 7. sign out
            await home.goto(f"{live.url}/")
            await home.click("#sign-out")
            await home.wait_for_url("**/login")
            await home.goto(f"{live.url}/tickets/{ticket_id}")
            assert home.url.endswith("/login")
            assert errors == []
        finally:
            await browser.close()


async def _secret_of(live: Live, email: str) -> str:
    """The enrolled TOTP secret, as the technician's authenticator app holds it."""
    from mspclaw.store.console_logins import SecondFactors
    from mspclaw.store.database import Database
    from mspclaw.wiring import secret_box

    secret = SecondFactors(Database(live.services.engine), secret_box(live.services.settings)).secret(email)
    assert secret is not None
    return secret
