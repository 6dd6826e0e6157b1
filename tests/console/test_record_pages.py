"""The console's audit trail, stats and devices pages against the real server on loopback (SQLite data directory,
a real agent process on real Linux tools), signed in over HTTP with TOTP as a browser would: filters, paging and
the chain's status of the real audit store (tampered with as tests/store/test_audit.py does); scope by list and
by URL; stats equal to ``/api/stats``; a device's memory forgotten. One pass in Debian's Chromium (Playwright)
saves docs/console/audit.png, stats.png and device.png with ``MSPCLAW_SCREENSHOTS=1``."""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import async_playwright
from sqlalchemy import update
from tests.browser import chromium_or_skip
from tests.conftest import Live, live_server
from tests.console.signing_in import DANA, EVE, VIC, register, signed_in
from tests.console.test_console_browser import ARGS, shot, sign_in_enrolling, watch_errors
from tests.console.test_pages import waiting_ticket

from mspclaw.store.tables import AuditEvent

pytestmark = pytest.mark.anyio
ADA: dict[str, Any] = {"name": "Ada Admin", "email": "ada@msp.example", "role": "admin", "clients": ["*"]}
NS = {"s": "http://www.w3.org/2000/svg"}
ROBOT = "robot@msp.example"


@dataclass
class World:
    acme: str
    beta: str
    acme_ticket: str
    beta_ticket: str
    device_id: str
    hostname: str


async def populate(live: Live, temp: Path) -> World:
    """Two clients; Acme has an agent and a disk ticket approved and resolved; Beta a ticket with no agent."""
    register(live, DANA, EVE, VIC, ADA)
    acme = await live.client("Acme Dental")
    beta = await live.client("Beta Law")
    await live.start_agent(acme, temp_root=temp)
    acme_ticket, approval = await waiting_ticket(live, acme, temp)
    r = await live.http.post(f"/api/approvals/{approval['id']}/approve",
                             json={"approver": DANA["email"], "reason": "ok"})
    assert r.status_code == 200, r.text
    await live.wait_ticket(acme_ticket)
    created = await live.http.post("/api/tickets", json={"client": beta, "subject": "printer jammed",
                                                        "body": "the printer on floor 2 is jammed",
                                                        "requester": "lee@beta.example"})
    assert created.status_code == 202, created.text
    beta_ticket = str(created.json()["ticket_id"])
    await live.wait_ticket(beta_ticket)
    devices = (await live.http.get("/api/devices", params={"client": acme})).json()
    assert len(devices) == 1
    return World(acme, beta, acme_ticket, beta_ticket, devices[0]["id"], devices[0]["hostname"])


def seqs(page: str) -> list[int]:
    return [int(s) for s in re.findall(r'<tr data-seq="(\d+)"', page)]


def svg(page: str, chart_id: str) -> ET.Element:
    found = re.search(rf'<svg [^>]*id="{chart_id}".*?</svg>', page, re.S)
    assert found, f"no chart {chart_id}"
    return ET.fromstring(found.group(0))


def older_link(page: str) -> str | None:
    found = re.search(r'id="older" rel="next" href="([^"]+)"', page)
    return html.unescape(found.group(1)) if found else None


async def test_audit_trail_filters_pages_scope_and_a_broken_chain(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live:
        w = await populate(live, tmp_path / "temp")
        dana, _ = await signed_in(live, DANA["email"])
        eve, _ = await signed_in(live, EVE["email"])
        vic, _ = await signed_in(live, VIC["email"])
        ada, _ = await signed_in(live, ADA["email"])
        try:
            # the chain verified through its newest event; Dana's page holds Acme's events only
            page = (await dana.get("/audit")).text
            assert 'id="chain" data-ok="true"' in page and "Hash chain verified through" in page
            everything = (await live.http.get("/api/audit", params={"limit": 1000})).json()
            mine = {e["seq"] for e in everything if e["client_id"] == w.acme}
            others = {e["seq"] for e in everything if e["client_id"] != w.acme}
            shown = seqs(page)
            assert shown == sorted(shown, reverse=True) and set(shown) <= mine
            assert set(shown) == set(sorted(mine, reverse=True)[:50])
            assert f"/tickets/{w.acme_ticket}" in page and w.beta_ticket not in page and "Beta Law</td>" not in page
            no_client = {e["seq"] for e in everything if e["client_id"] is None}
            assert no_client and others & no_client  # sign-ins are events of no client
            admin_page = (await ada.get("/audit")).text
            assert set(seqs(admin_page)) & no_client  # shown to an admin of every client only

            # filters: kind, ticket, client, dates
            opened = (await dana.get("/audit", params={"kind": "ticket_opened"})).text
            assert len(seqs(opened)) == 1 and w.acme_ticket in opened
            by_ticket = (await dana.get("/audit", params={"ticket": w.acme_ticket})).text
            assert len(seqs(by_ticket)) >= 3 and "approval_decided" in by_ticket
            assert set(re.findall(r'href="/tickets/([^"]+)"', by_ticket)) == {w.acme_ticket}
            assert (await dana.get("/audit", params={"client": w.acme})).status_code == 200
            old = await dana.get("/audit", params={"since": "2001-01-01", "until": "2001-01-31"})
            assert old.status_code == 200 and seqs(old.text) == [] and "No event matches this filter" in old.text

            # another client's records do not exist, by any filter
            assert (await dana.get("/audit", params={"client": w.beta})).status_code == 404
            assert (await dana.get("/audit", params={"client": "Beta Law"})).status_code == 404
            assert (await dana.get("/audit", params={"ticket": w.beta_ticket})).status_code == 404
            beta_page = (await eve.get("/audit")).text
            assert w.acme_ticket not in beta_page and set(seqs(beta_page)).isdisjoint(mine)

            # bad input: a 400 page that says what is wrong, the form kept
            for params, words in (({"kind": "DROP TABLE"}, "lower-case letters"),
                                  ({"since": "2026-02-30"}, "use a date as YYYY-MM-DD"),
                                  ({"since": "2026-03-02", "until": "2026-03-01"}, "swap them"),
                                  ({"before": "abc"}, "start again from the first page"),
                                  ({"actor": "x" * 300}, "at most 255 characters"),
                                  ({"ticket": "../etc"}, "paste the id")):
                r = await dana.get("/audit", params=params)
                assert r.status_code == 400 and 'id="error"' in r.text and words in html.unescape(r.text), params
                assert seqs(r.text) == [] and 'id="audit-filter"' in r.text
            assert 'value="DROP TABLE"' in (await dana.get("/audit", params={"kind": "DROP TABLE"})).text
            assert (await dana.get("/audit?" + "kind=a&" * 600)).status_code == 400

            # viewers do not read the trail (as GET /api/audit)
            assert (await vic.get("/audit")).status_code == 403

            # paging: 60 events of one actor, newest first, 50 then 10 by the "older" link
            for n in range(60):
                await live.services.audit.record("test_marker", actor=ROBOT, client_id=w.acme, data={"n": n})
            first = (await dana.get("/audit", params={"actor": ROBOT})).text
            link = older_link(first)
            assert link and "actor=robot%40msp.example" in link
            second = (await dana.get(link)).text
            assert older_link(second) is None
            top, rest = seqs(first), seqs(second)
            assert len(top) == 50 and len(rest) == 10 and min(top) > max(rest)
            assert re.findall(r"n: (\d+)</td>", first)[0] == "59"
            assert (await eve.get("/audit", params={"actor": ROBOT})).text.count("<tr data-seq") == 0

            # tamper with a stored event (as tests/store/test_audit.py): the page says where, in red
            target = min(mine)
            with live.services.engine.begin() as conn:
                conn.execute(update(AuditEvent).where(AuditEvent.seq == target).values(data={"forged": True}))
            await live.services.audit.record("test_marker", actor=ROBOT, client_id=w.acme, data={"n": 60})
            broken = (await dana.get("/audit")).text
            assert 'id="chain" data-ok="false"' in broken and 'class="chain broken"' in broken
            assert f"db seq {target}" in broken and "mspclaw audit verify" in broken
        finally:
            for c in (dana, eve, vic, ada):
                await c.aclose()


async def test_stats_match_the_api_and_are_scoped(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live:
        w = await populate(live, tmp_path / "temp")
        dana, _ = await signed_in(live, DANA["email"])
        ada, _ = await signed_in(live, ADA["email"])
        try:
            api = (await live.http.get("/api/stats", params={"by": "playbook", "since": "30d"})).json()
            page = (await ada.get("/stats")).text
            assert 'aria-current="page" class="button">30 days' in page
            assert re.search(rf'id="total-tickets">{api["total"]["tickets"]}<', page)
            per_day = svg(page, "tickets-per-day")
            groups = per_day.findall("s:g[@class='bar-group']", NS)
            assert len(groups) == 30
            drawn_days = {g.get("data-label"): sum(float(r.get("data-value", "")) for r in g.findall("s:rect", NS))
                          for g in groups}
            api_days = {d["day"][5:]: d["tickets"] for d in api["daily"]}  # "2026-12-06" is drawn as "12-06"
            assert {k: v for k, v in drawn_days.items() if v} == api_days and sum(api_days.values()) == 2
            plot, top = float(per_day.get("data-plot-height", "")), float(per_day.get("data-max", ""))
            for r in per_day.findall(".//s:g[@class='bar-group']/s:rect", NS):
                assert float(r.get("height", "")) == pytest.approx(plot * float(r.get("data-value", "")) / top,
                                                                   abs=0.01)
            confirm = svg(page, "confirmation-per-playbook")
            drawn = {g.get("data-label"): float(g.find("s:rect", NS).get("data-value", ""))  # type: ignore[union-attr]
                     for g in confirm.findall("s:g[@class='bar-group']", NS)}
            expected = {r["key"]: round(100 * r["confirmed"] / r["tickets"], 1) for r in api["rows"]}
            assert drawn == expected
            for row in api["rows"]:
                assert f'<th scope="row">{html.escape(row["key"])}</th><td class="num">{row["tickets"]}<' in page

            # Dana: Acme only
            mine = (await dana.get("/stats", params={"days": "7"})).text
            assert 'aria-current="page" class="button">7 days' in mine
            clients = mine[mine.index('id="per-client"'):]
            assert "Acme Dental" in clients and "Beta Law" not in clients
            assert re.search(r'id="total-tickets">1<', mine)
            assert w.beta not in mine

            bad = await dana.get("/stats", params={"days": "14"})
            assert bad.status_code == 400 and "choose a window of 7, 30, 90 days" in html.unescape(bad.text)
        finally:
            await dana.aclose()
            await ada.aclose()


async def test_devices_scoped_with_memory_and_forgetting(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live:
        w = await populate(live, tmp_path / "temp")
        dana, _ = await signed_in(live, DANA["email"])
        eve, _ = await signed_in(live, EVE["email"])
        vic, _ = await signed_in(live, VIC["email"])
        try:
            listing = (await dana.get("/devices")).text
            assert f'href="/devices/{w.device_id}">{html.escape(w.hostname)}</a>' in listing
            assert '<td class="online">online</td>' in listing
            assert w.device_id not in (await eve.get("/devices")).text
            assert "No device yet" in (await eve.get("/devices")).text
            assert (await dana.get("/devices", params={"client": w.beta})).status_code == 404
            assert w.device_id in (await dana.get("/devices", params={"client": "Acme Dental"})).text

            page = (await dana.get(f"/devices/{w.device_id}")).text
            memory = page[page.index('id="memory"'):page.index('id="device-tickets"')]
            assert "maria@acme.example" in memory and 'id="forget-device"' in memory
            assert f'href="/tickets/{w.acme_ticket}"' in page[page.index('id="device-tickets"'):]
            assert (await eve.get(f"/devices/{w.device_id}")).status_code == 404
            assert (await dana.get("/devices/dv_nosuchdevice")).status_code == 404
            viewed = await vic.get(f"/devices/{w.device_id}")
            assert viewed.status_code == 200 and 'id="forget-device"' not in viewed.text

            csrf = re.search(r'name="csrf" value="([^"]+)"', page)
            assert csrf
            r = await dana.post(f"/devices/{w.device_id}/forget",
                                data={"csrf": csrf.group(1), "back": f"/devices/{w.device_id}"})
            assert r.status_code == 303 and r.headers["location"] == f"/devices/{w.device_id}"
            after = (await dana.get(f"/devices/{w.device_id}")).text
            assert "Nothing remembered yet" in after and "maria@acme.example" not in after[
                after.index('id="memory"'):after.index('id="device-tickets"')]
            r = await dana.post(f"/devices/{w.device_id}/forget",
                                data={"csrf": csrf.group(1), "back": "//evil.example"})
            assert r.headers["location"] == "/"
            forgotten = (await live.http.get("/api/audit", params={"kind": "device_forgotten"})).json()
            assert forgotten and forgotten[0]["data"]["device_id"] == w.device_id
        finally:
            for c in (dana, eve, vic):
                await c.aclose()


async def test_the_three_pages_in_a_real_browser(tmp_path: Path) -> None:
    executable = chromium_or_skip()
    errors: list[str] = []
    async with live_server(tmp_path) as live, async_playwright() as pw:
        w = await populate(live, tmp_path / "temp")
        browser = await pw.chromium.launch(executable_path=executable, args=ARGS, headless=True)
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            context.on("page", lambda p: watch_errors(p, errors))
            page = await sign_in_enrolling(context, live, DANA["email"])

            await page.click('nav a[href="/audit"]')
            await page.wait_for_selector("#chain.ok")
            assert "Hash chain verified" in await page.inner_text("#chain")
            await page.select_option("#f-client", w.acme)
            await page.fill("#f-ticket", w.acme_ticket)
            await page.press("#f-ticket", "Enter")
            await page.wait_for_url(re.compile(r"/audit\?client="))
            assert await page.locator("#events tbody tr").count() >= 3
            kinds = await page.locator("#events tbody tr td:nth-child(3)").all_inner_texts()
            assert "approval_decided" in kinds
            await page.goto(f"{live.url}/audit")
            await shot(page, "audit")
            await page.fill("#f-since", "2026-03-02")
            await page.fill("#f-until", "2026-03-01")
            await page.click("#audit-filter button[type=submit]")
            assert "swap them" in await page.inner_text("#error")

            await page.click('nav a[href="/stats"]')
            await page.wait_for_selector("svg#tickets-per-day")
            box = await page.locator("svg#tickets-per-day").bounding_box()
            assert box and box["width"] > 600 and box["height"] > 200
            assert await page.locator("svg#tickets-per-day g.bar-group rect").count() == 90  # 30 days, 3 series
            await shot(page, "stats")

            await page.click('nav a[href="/devices"]')
            await page.click(f'a[href="/devices/{w.device_id}"]')
            await page.wait_for_selector("#hostname")
            assert w.hostname == await page.inner_text("#hostname")
            assert "maria@acme.example" in await page.inner_text("#memory")
            await shot(page, "device")
            await page.click("#forget-device")
            await page.wait_for_url(f"**/devices/{w.device_id}")
            assert "Nothing remembered yet" in await page.inner_text("#memory")
            assert errors == []
        finally:
            await browser.close()
