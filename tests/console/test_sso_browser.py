"""Single sign-on in a real browser: Playwright driving Debian's Chromium against the real server on loopback
(127.0.0.1) and the local OpenID Connect provider (tests/console/oidc_provider.py) at ``localhost``, another site,
so the way back from the provider is a cross-site navigation as with Entra ID or Google.

A technician presses "Sign in with Google" on the sign-in page and lands on the home page, signed in, with no
password and no code asked; with JavaScript off, an address that is no registered technician is refused on the
sign-in page with what to do. With ``MSPCLAW_SCREENSHOTS=1`` both pages are saved under docs/console/.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import async_playwright
from tests.browser import chromium_or_skip
from tests.conftest import live_server
from tests.console.oidc_provider import GOOGLE_LIKE, running_provider
from tests.console.signing_in import DANA, register
from tests.console.test_console_browser import ARGS, shot, watch_errors
from tests.console.test_sso import configure

pytestmark = pytest.mark.anyio


async def test_the_sso_button_signs_in(tmp_path: Path) -> None:
    executable = chromium_or_skip()
    errors: list[str] = []
    async with (live_server(tmp_path) as live, running_provider(GOOGLE_LIKE, host="localhost") as google,
                async_playwright() as pw):
        browser = await pw.chromium.launch(executable_path=executable, args=ARGS, headless=True)
        try:
            register(live, DANA)
            configure(live, google, "google", "Google", ["msp.example"])
            context = await browser.new_context(viewport={"width": 1280, "height": 860})
            context.on("page", lambda p: watch_errors(p, errors))
            page = await context.new_page()
            await page.goto(f"{live.url}/")
            assert page.url.endswith("/login")
            await shot(page, "sso-sign-in")
            await page.focus("#sso-google")
            await page.keyboard.press("Enter")  # keyboard friendly: a link
            await page.wait_for_selector("#sign-out")
            assert page.url == f"{live.url}/"
            assert DANA["email"] in await page.inner_text("header") or DANA["name"] in await page.inner_text("header")
            assert google.tokens_issued == 1

            plain = await browser.new_context(java_script_enabled=False)
            google.user = GOOGLE_LIKE | {"email": "mallory@msp.example"}
            refused = await plain.new_page()
            await refused.goto(f"{live.url}/login")
            await refused.click("#sso-google")
            await refused.wait_for_selector("#error")
            assert "not a registered technician" in await refused.inner_text("#error")
            assert await refused.locator("#sso-google").count() == 1 and await refused.locator("#password").count()
            await shot(refused, "sso-refused")
            assert "/login/sso/callback" in refused.url and await plain.cookies() != []
            assert not any(c["name"] == "mspclaw_console" for c in await plain.cookies())
        finally:
            await browser.close()
    assert errors == []
