"""Escalations in a real browser: Playwright driving Debian's Chromium (``executable_path``; Playwright's own
browser download is never used) against the real server on loopback (uvicorn, SQLite).

Dana signs in with a password and a TOTP second factor, finds the escalation first in the list, opens its
structured hand-off, takes it from the keyboard and hands it over to Fox with a note; Fox, in a browser with
JavaScript off, sees it under "Mine" and closes it with the resolution. With ``MSPCLAW_SCREENSHOTS=1`` the list
and the escalation are saved as docs/console/escalations.png and docs/console/escalation.png.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import async_playwright
from tests.browser import chromium_or_skip
from tests.conftest import live_server
from tests.console.signing_in import DANA, register
from tests.console.test_console_browser import ARGS, shot, sign_in_enrolling, watch_errors
from tests.console.test_escalation_pages import escalate
from tests.console.test_pages import FOX

pytestmark = pytest.mark.anyio


async def test_take_hand_over_and_close_in_a_browser(tmp_path: Path) -> None:
    executable = chromium_or_skip()
    errors: list[str] = []
    async with live_server(tmp_path, workers=0) as live, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=executable, args=ARGS, headless=True)
        try:
            register(live, DANA, FOX)
            acme = await live.client("Acme Dental")
            older = await escalate(live, acme, "scanner sends nothing")
            es = await escalate(live, acme, "printer jams on the 2nd floor")
            fox_tech = live.services.staff.techs.find(FOX["email"])
            assert fox_tech is not None
            await live.services.staff.handling.take(older, live.services.staff.access.principal_for(fox_tech))

            dana_ctx = await browser.new_context(viewport={"width": 1280, "height": 860})
            dana_ctx.on("page", lambda p: watch_errors(p, errors))
            page = await sign_in_enrolling(dana_ctx, live, DANA["email"])
            await page.click('nav a[href="/escalations"]')
            await page.wait_for_selector("#escalations")
            rows = page.locator("#escalations tbody tr")
            assert await rows.count() == 2
            assert await rows.nth(0).get_attribute("data-id") == es  # open first, the taken one after it
            assert "Fox Mulder" in await rows.nth(1).inner_text()
            await shot(page, "escalations")

            await page.click(f'a[href="/escalations/{es}"]')
            await page.wait_for_selector("#escalation")
            assert "the printer is offline" in await page.inner_text("#evidence")
            assert await page.get_attribute("#ticket-link", "href") == \
                f"/tickets/{live.services.staff.escalation_store.get(es, None).ticket_id}"
            await page.focus("#take")
            await page.keyboard.press("Enter")
            await page.wait_for_selector('#escalation[data-state="taken"]')
            assert "Dana Scully" in await page.inner_text("#held-by")
            await page.select_option("#hand-over-to", FOX["email"])
            await page.fill("#hand-over-note", "driver reinstalled; the tray sensor is next")
            await shot(page, "escalation")
            await page.click("#hand-over")
            await page.wait_for_selector('#escalation[data-state="handed_over"]')
            assert "Fox Mulder" in await page.inner_text("#held-by")
            assert await page.locator("#close").count() == 0  # Fox's now; Dana is no admin

            plain = await browser.new_context(java_script_enabled=False)
            fox = await sign_in_enrolling(plain, live, FOX["email"])
            await fox.goto(f"{live.url}/escalations?show=mine")
            mine = fox.locator("#escalations tbody tr")
            assert await mine.count() == 2
            await fox.click(f'a[href="/escalations/{es}"]')
            assert "the tray sensor is next" in await fox.inner_text("#handed-over")
            await fox.fill("#resolution", "replaced the tray sensor")
            await fox.click("#close")
            await fox.wait_for_selector('#escalation[data-state="closed"]')
            assert "replaced the tray sensor" in await fox.inner_text("#resolution-text")
            assert live.services.staff.escalation_store.get(es, None).closed_by == FOX["email"]
            assert not errors, errors
        finally:
            await browser.close()
