"""The playbook builder in a real browser: Playwright driving Debian's Chromium (``executable_path``; Playwright's
own browser download is never used) against the real server on loopback, with a real agent process.

An admin builds a playbook in the form (choosing a tool shows its argument inputs; validation says a destructive
tool must be approved), watches the live match box say why a ticket matches as the subject is typed, dry-runs it
against the recorded Linux snapshot (each step and the reply), saves it, and the running server reloads its
playbook directory: a ticket submitted through the API then matches the new playbook, as its console page shows.
The same editor also works with JavaScript off. With ``MSPCLAW_SCREENSHOTS=1`` the editor is saved as
docs/console/playbook-builder.png.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import yaml
from playwright.async_api import Page, async_playwright, expect
from tests.browser import chromium_or_skip
from tests.conftest import live_server
from tests.console.signing_in import register
from tests.console.test_console_browser import ARGS, shot, sign_in_enrolling, watch_errors
from tests.console.test_playbook_builder import ADA, seeded

from mspclaw.playbooks.schema import Playbook

pytestmark = pytest.mark.anyio


async def fill_step(page: Page, index: int, step_id: str, title: str, tool: str) -> None:
    await page.fill(f"#s{index}-id", step_id)
    await page.fill(f"#s{index}-title", title)
    async with page.expect_navigation():  # choosing a tool redraws the form with its arguments
        await page.select_option(f"#s{index}-tool", tool)


async def test_build_dry_run_save_and_match_in_a_browser(tmp_path: Path) -> None:
    executable = chromium_or_skip()
    ours = seeded(tmp_path)
    errors: list[str] = []
    async with live_server(tmp_path, playbook_dirs=[ours], playbook_reload_s=0.5) as live, \
            async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=executable, args=ARGS, headless=True)
        try:
            register(live, ADA)
            acme = await live.client("Acme Dental")
            await live.start_agent(acme, temp_root=tmp_path / "temp")
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            page = await sign_in_enrolling(context, live, ADA["email"])
            watch_errors(page, errors)

            await page.goto(f"{live.url}/playbooks")
            await expect(page.locator('#playbooks tr[data-id="acme_scanner"]')).to_contain_text("ours")
            # the seed was never signed: under the default MSPCLAW_PLAYBOOK_TRUST=enforce the server left it out,
            # and the page says which file, why, and the command that signs it with the server's own key
            await expect(page.locator('#playbooks tr[data-id="acme_scanner"]')).to_contain_text("refused")
            await expect(page.locator("#untrusted")).to_contain_text("acme_scanner 1.0.0: unsigned")
            await expect(page.locator("#untrusted")).to_contain_text(
                f"mspclaw playbooks sign {ours / 'acme_scanner.yaml'} --key")
            await page.click("#new")
            await page.wait_for_url("**/playbooks/new")
            await page.fill("#id", "acme_kiosk")
            await page.fill("#name", "Lobby kiosk browser")
            await page.select_option("#category", "browser")
            await page.fill("#description", "The lobby kiosk shows a browser error instead of the visitor sign-in.")
            await page.uncheck('#about input[name="os"][value="macos"]')
            await page.fill("#keywords", "kiosk")
            await page.fill("#phrases", "kiosk screen frozen\nkiosk shows an error")
            await fill_step(page, 0, "web", "Test the way out", "check_connectivity")
            await expect(page.locator("#s0-arg-host")).to_be_visible()  # the tool's argument form
            await page.fill("#s0-arg-host", "www.msftconnecttest.com")
            await page.fill("#s0-arg-timeout_s", "5")
            async with page.expect_navigation():
                await page.click("#add-step")
            await fill_step(page, 1, "renew", "Ask the router for a fresh address", "renew_dhcp")
            await page.fill("#s1-reason", "A fresh address fixes a kiosk that is connected but passes no traffic.")
            await page.fill("#success_check", "web.reachable")
            await page.fill("#reply_resolved", "the kiosk shows the sign-in page again.")
            await page.fill("#reply_escalated", "a technician will come to the lobby.")
            async with page.expect_navigation():
                await page.click("#update")
            # validation speaks first: the destructive tool must wait for a technician
            await expect(page.locator("#problems")).to_contain_text("renew_dhcp")
            await expect(page.locator("#problems")).to_contain_text("requires_approval")
            await page.check('#approvals input[name="approve"][value="renew_dhcp"]')
            async with page.expect_navigation():
                await page.click("#update")
            await expect(page.locator("#valid")).to_be_visible()

            # the live match box answers as the ticket is typed (no button pressed)
            await page.fill("#t_subject", "kiosk screen frozen")
            await page.select_option("#t_os", "linux")
            await expect(page.locator("#verdict")).to_contain_text("No playbook would take it", timeout=15_000)
            await expect(page.locator("#why")).to_contain_text("next best: app_crash")  # 'frozen' is a crash word
            await page.fill("#weights", "kiosk: 3")  # the triggers are live too
            await expect(page.locator("#verdict")).to_contain_text("Matches this playbook", timeout=15_000)
            await expect(page.locator("#why")).to_contain_text('"kiosk screen frozen" +3')
            await page.fill("#t_subject", "my printer is offline")
            await expect(page.locator("#verdict")).to_contain_text("Goes to printer", timeout=15_000)
            await page.fill("#t_subject", "kiosk screen frozen")
            await expect(page.locator("#verdict")).to_contain_text("Matches this playbook", timeout=15_000)

            # the dry-run against the recorded Linux device: each step, the approval, the reply
            await page.select_option("#snap_os", "linux")
            async with page.expect_navigation():
                await page.click("#run-dry")
            await expect(page.locator("#dry-steps tbody tr")).to_have_count(2)
            await expect(page.locator("#dry-steps tbody tr").nth(0)).to_contain_text("check_connectivity")
            await expect(page.locator("#dry-steps tbody tr").nth(1)).to_contain_text("ok (approved)")
            await expect(page.locator("#outcome")).to_have_text("resolved")
            await expect(page.locator("#dry-reply")).to_have_text("the kiosk shows the sign-in page again.")
            await expect(page.locator("#verdict")).to_contain_text("Matches this playbook")  # typed ticket kept
            await shot(page, "playbook-builder")

            async with page.expect_navigation():
                await page.click("#save")
            assert page.url.endswith("/playbooks/acme_kiosk/edit?saved=1")
            await expect(page.locator("#note")).to_contain_text("Saved to")
            book = Playbook.model_validate(yaml.safe_load((ours / "acme_kiosk.yaml").read_text()))
            assert book.requires_approval == ["renew_dhcp"] and book.os == ["linux", "windows"]

            # saved with no signing settings: signed with the key the server made, so the enforcing server picks
            # the file up, and a ticket through the API gets the new playbook
            deadline = time.monotonic() + 20
            while "acme_kiosk" not in {b.id for b in live.services.tickets.playbooks}:
                assert time.monotonic() < deadline, "the server did not reload the playbook directory"
                await asyncio.sleep(0.2)
            created = (await live.http.post("/api/tickets", json={
                "client": acme, "subject": "kiosk screen frozen", "body": "The lobby kiosk shows an error page.",
                "requester": "front.desk@acme.example"})).json()
            deadline = time.monotonic() + 30
            while (ticket := (await live.http.get(f"/api/tickets/{created['ticket_id']}")).json())["playbook"] is None:
                assert time.monotonic() < deadline, ticket
                await asyncio.sleep(0.3)
            assert ticket["playbook"] == "acme_kiosk"
            await page.goto(f"{live.url}/tickets/{created['ticket_id']}")
            await expect(page.locator("#playbook")).to_contain_text("acme_kiosk")

            # with JavaScript off the same editor works as plain forms
            plain_ctx = await browser.new_context(java_script_enabled=False)
            await plain_ctx.add_cookies([{"name": c["name"], "value": c["value"], "url": live.url}
                                         for c in await context.cookies()])
            plain = await plain_ctx.new_page()
            await plain.goto(f"{live.url}/playbooks/acme_kiosk/edit")
            await plain.fill("#t_subject", "kiosk shows an error")
            await plain.click("#check-match")
            await expect(plain.locator("#verdict")).to_contain_text("Matches this playbook")
            await plain_ctx.close()
            assert errors == []
        finally:
            await browser.close()
