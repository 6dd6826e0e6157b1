"""``/admin/psa`` in a real browser: Playwright driving Debian's Chromium (``executable_path``) against the real
server on loopback. An admin of every client adds a ConnectWise account from the form (the local ConnectWise
test server, which follows ConnectWise's documented API) and a local PSA account (the shipped simulator),
tests both sets of credentials and reads the PSAs' answers in plain words, disables one, all with
JavaScript off, as the pages must work without it. With ``MSPCLAW_SCREENSHOTS=1`` the list and the add form
are saved as docs/console/psa-accounts.png and docs/console/psa-account-add.png.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import async_playwright
from tests.browser import chromium_or_skip
from tests.conftest import live_server
from tests.connectors.connectwise_server import run_connectwise
from tests.console.signing_in import register
from tests.console.test_console_browser import ARGS, shot, sign_in_enrolling, watch_errors

from mspclaw.simulators.local_psa import run_local_psa

pytestmark = pytest.mark.anyio
ADA: dict[str, Any] = {"name": "Ada Admin", "email": "ada@msp.example", "role": "admin", "clients": ["*"]}


async def test_an_admin_adds_and_tests_psa_accounts_in_a_browser(tmp_path: Path) -> None:
    executable = chromium_or_skip()
    errors: list[str] = []
    async with run_connectwise() as cw, run_local_psa(api_token="lpsa-token-4d2a") as psa, \
            live_server(tmp_path, workers=0) as live, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=executable, args=ARGS, headless=True)
        try:
            register(live, ADA)
            signing = await browser.new_context(viewport={"width": 1280, "height": 860})
            page = await sign_in_enrolling(signing, live, ADA["email"])
            cookies = await signing.cookies()
            plain = await browser.new_context(viewport={"width": 1280, "height": 860}, java_script_enabled=False)
            # the same signed-in session, in a context with JavaScript off
            await plain.add_cookies([{"name": c["name"], "value": c["value"], "url": live.url} for c in cookies])
            plain.on("page", lambda p: watch_errors(p, errors))
            page = await plain.new_page()

            await page.goto(f"{live.url}/admin/psa")
            assert "No PSA accounts yet" in await page.inner_text("#psa-accounts")
            await page.click("#add-connectwise")
            await page.wait_for_selector("#psa-form")
            await page.fill("#field-name", "connectwise")
            await page.fill("#field-site", cw.url)
            await page.fill("#field-company", cw.company)
            await page.fill("#field-client_id", cw.client_id)
            await page.fill("#field-public_key", cw.public_key)
            await page.fill("#field-private_key", "a-private-key-that-is-wrong")
            await page.fill("#field-poll", "0")
            await shot(page, "psa-account-add")
            await page.click("#add-account-button")
            await page.wait_for_selector("#notice")
            assert "Paste its webhook URL into the PSA" in await page.inner_text("#notice")

            await page.click("#add-local")
            await page.fill("#field-name", "local-psa")
            await page.fill("#field-base_url", psa.base_url)
            await page.fill("#field-token", "lpsa-token-4d2a")
            await page.fill("#field-poll", "0")
            await page.select_option("#field-start", "disabled")
            await page.click("#add-account-button")
            await page.wait_for_selector("#notice")

            await page.click("#test-connectwise")
            await page.wait_for_selector("#test-result")
            said = await page.inner_text("#test-result")
            assert "the PSA refused the credentials: check the API key" in said, said
            await page.click("#test-local-psa")
            await page.wait_for_selector("#test-result")
            assert "the local PSA accepted the API token" in await page.inner_text("#test-result")
            await page.click("#enable-local-psa")
            await page.wait_for_selector("#disable-local-psa")
            assert "local-psa" in live.services.intake.connectors
            row = await page.inner_text("#account-connectwise")
            assert f"{live.url}/webhooks/connectwise" in row and "Failed" in row
            await shot(page, "psa-accounts")

            await page.click("#remove-connectwise")
            await page.wait_for_selector("#confirm")
            await page.click("#confirm-button")
            await page.wait_for_selector("#psa-accounts")
            assert await page.locator("#account-connectwise").count() == 0
            assert "a-private-key-that-is-wrong" not in await page.content()
        finally:
            await browser.close()
    assert errors == []
    assert cw.violations == []
