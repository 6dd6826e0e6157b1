"""The console's administration pages over HTTP against the real server on loopback (PostgreSQL or SQLite as the
suite is configured, the real audit trail): clients, agents (enrolled through the real ``POST /enroll``),
enrollment codes, technicians (the roster written by the server) and API keys.

Each create and revoke works and is audited with the signed-in admin; a technician or a viewer is refused (403)
every admin form, a form without its CSRF token too; a secret (an enrollment code, an API key, a login link) is
on the one page that answers its form and nowhere else: not on a later page, not in the audit trail, not in a
log; an admin of some clients sees and touches only theirs (another client's agent or code is 404).

The last test drives Debian's Chromium through Playwright (``executable_path``; Playwright's own browser download is
never used) with a real agent process online: an admin revokes an agent after its confirmation page and creates an
enrollment code; with ``MSPCLAW_SCREENSHOTS=1`` it saves docs/console/admin-agents.png and admin-enrollment.png.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from playwright.async_api import async_playwright
from tests.browser import chromium_or_skip
from tests.conftest import Live, live_server
from tests.console.signing_in import DANA, VIC, csrf_of, register, signed_in
from tests.console.test_console_browser import ARGS, shot, sign_in_enrolling, watch_errors

pytestmark = pytest.mark.anyio
ADA: dict[str, Any] = {"name": "Ada Admin", "email": "ada@msp.example", "role": "admin", "clients": ["*"]}
ANN: dict[str, Any] = {"name": "Ann Acme", "email": "ann@msp.example", "role": "admin", "clients": ["Acme Dental"]}
HELLO = {"hostname": "reception-pc", "os": "linux", "os_version": "Debian 12", "agent_version": "1.2.3", "tools": []}


def everything_audited(live: Live) -> str:
    """The whole audit trail, as stored in the database and in the day files."""
    rows = [json.dumps({"kind": r.kind, "actor": r.actor, "data": r.data}, default=str)
            for r in live.services.audit.query(limit=10_000)]
    files = [p.read_text(errors="replace") for p in Path(live.services.audit.audit_dir).rglob("*") if p.is_file()]
    return "\n".join(rows + files)


def audited(live: Live, kind: str) -> list[Any]:
    return list(live.services.audit.query(kind=kind, limit=1000))


async def post(client: httpx.AsyncClient, page: str, action: str, data: dict[str, str]) -> httpx.Response:
    """Open ``page`` for its CSRF token, then send the form to ``action``."""
    token = csrf_of((await client.get(page)).text)
    return await client.post(action, data={"csrf": token, **data})


async def enroll(live: Live, code: str, hostname: str = "reception-pc") -> httpx.Response:
    return await live.http.post("/enroll", json={**HELLO, "hostname": hostname, "code": code})


def issued_code(page: str) -> tuple[str, str]:
    code = re.search(r'id="enrollment-code">(enr_[A-Za-z0-9_-]+)<', page)
    code_id = re.search(r'id="code-id">(en_[0-9a-f]+)<', page)
    assert code and code_id, page[:3000]
    return code.group(1), code_id.group(1)


async def test_admin_creates_and_revokes_everything_audited_and_secrets_shown_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with live_server(tmp_path) as live:
        register(live, ADA, DANA)
        acme = await live.client("Acme Dental")
        ada, _ = await signed_in(live, ADA["email"])
        try:
            overview = await ada.get("/admin")
            assert overview.status_code == 200 and 'id="admin-counts"' in overview.text
            for href in ("/admin/clients", "/admin/agents", "/admin/enrollment", "/admin/techs", "/admin/keys"):
                assert f'href="{href}"' in overview.text, href

            # a client, with its PSA mapping; a bad one is refused with what to do
            r = await post(ada, "/admin/clients", "/admin/clients",
                           {"name": "Gamma Ops", "psa": "superops", "company": "4521"})
            assert r.status_code == 303
            gamma = live.services.registry.client("Gamma Ops")
            assert gamma.psa_refs == {"superops": "4521"}
            (made,) = [a for a in audited(live, "client_created") if a.client_id == gamma.id]
            assert made.actor == "Ada Admin"
            r = await post(ada, "/admin/clients", "/admin/clients", {"name": "Delta", "psa": "superops"})
            assert r.status_code == 400 and "company" in r.text and 'value="Delta"' in r.text
            r = await post(ada, "/admin/clients", "/admin/clients", {"name": "Gamma Ops"})
            assert r.status_code == 400 and "already exists" in r.text
            listed = (await ada.get("/admin/clients")).text
            assert "Gamma Ops" in listed and "superops: 4521" in listed

            # an enrollment code: shown once with the install commands, listed after by its id only
            r = await post(ada, "/admin/enrollment", "/admin/enrollment",
                           {"client": acme, "role": "device", "hours": "4"})
            assert r.status_code == 200, r.text
            code, code_id = issued_code(r.text)
            assert f"--enroll {code}" in r.text and f"-EnrollmentCode {code}" in r.text
            (issued,) = audited(live, "enrollment_issued")
            assert (issued.actor, issued.client_id, issued.data["code_id"]) == ("Ada Admin", acme, code_id)
            codes = (await ada.get("/admin/enrollment")).text
            assert code_id in codes and code not in codes
            r = await post(ada, "/admin/enrollment", "/admin/enrollment", {"client": acme, "hours": "999"})
            assert r.status_code == 400 and "expiries" in r.text

            # the agent enrolls with it; the agents page shows it; revoking asks first, then is audited
            enrolled = await enroll(live, code)
            assert enrolled.status_code == 200, enrolled.text
            agent_id, credential = enrolled.json()["agent_id"], enrolled.json()["credential"]
            page = (await ada.get(f"/admin/agents?client={acme}")).text
            row = page[page.index(f'data-agent="{agent_id}"'):]
            row = row[:row.index("</tr>")]
            for fact in ("reception-pc", "device", "offline", "1.2.3", "Revoke…"):
                assert fact in row, fact
            assert code_id not in (await ada.get("/admin/enrollment")).text  # spent: no longer open
            confirm = await ada.get(f"/admin/agents/{agent_id}/revoke")
            assert confirm.status_code == 200 and "reception-pc" in confirm.text and 'name="confirm"' in confirm.text
            r = await ada.post(f"/admin/agents/{agent_id}/revoke", data={"csrf": csrf_of(confirm.text)})
            assert r.status_code == 303 and r.headers["location"].endswith("/revoke")  # not confirmed: asks again
            assert live.services.registry.agent(agent_id).revoked_at is None
            r = await ada.post(f"/admin/agents/{agent_id}/revoke", data={"csrf": csrf_of(confirm.text),
                                                                         "confirm": "yes"})
            assert r.status_code == 303
            assert live.services.registry.agent(agent_id).revoked_at is not None
            (revoked,) = audited(live, "agent_revoked")
            assert (revoked.actor, revoked.data["agent_id"]) == ("Ada Admin", agent_id)
            assert "revoked" in (await ada.get("/admin/agents")).text

            # a second code, revoked before use: audited, and the agent installed with it is refused
            r = await post(ada, "/admin/enrollment", "/admin/enrollment", {"client": acme, "role": "site",
                                                                             "hours": "24"})
            second, second_id = issued_code(r.text)
            confirm = await ada.get(f"/admin/enrollment/{second_id}/revoke")
            r = await ada.post(f"/admin/enrollment/{second_id}/revoke", data={"csrf": csrf_of(confirm.text),
                                                                              "confirm": "yes"})
            assert r.status_code == 303
            (gone,) = audited(live, "enrollment_revoked")
            assert (gone.actor, gone.data["code_id"]) == ("Ada Admin", second_id)
            assert (await enroll(live, second, "late-pc")).status_code == 401
            r = await ada.post(f"/admin/enrollment/{second_id}/revoke", data={"csrf": csrf_of(confirm.text),
                                                                              "confirm": "yes"})
            assert r.status_code == 409

            # an API key: shown once, works, listed without its secret, revoked after a confirmation
            r = await post(ada, "/admin/keys", "/admin/keys", {"name": "psa-bridge", "role": "viewer",
                                                                "clients": "Acme Dental"})
            assert r.status_code == 200, r.text
            found = re.search(r'id="api-key">(mck_[A-Za-z0-9_-]+)<', r.text)
            assert found, r.text[:2000]
            key = found.group(1)
            as_key = {"Authorization": f"Bearer {key}"}
            seen = await live.http.get("/api/clients", headers=as_key)
            assert [c["name"] for c in seen.json()] == ["Acme Dental"]
            keys_page = (await ada.get("/admin/keys")).text
            assert "psa-bridge" in keys_page and key not in keys_page and key.split("_", 2)[2] not in keys_page
            (created,) = audited(live, "api_key_created")
            assert created.actor == "Ada Admin" and created.data["name"] == "psa-bridge"
            row_id = live.services.staff.keys.get("psa-bridge").id
            r = await post(ada, f"/admin/keys/{row_id}/revoke", f"/admin/keys/{row_id}/revoke", {"confirm": "yes"})
            assert r.status_code == 303
            assert (await live.http.get("/api/clients", headers=as_key)).status_code == 401
            (key_revoked,) = audited(live, "api_key_revoked")
            assert key_revoked.actor == "Ada Admin"
            r = await post(ada, "/admin/keys", "/admin/keys", {"name": "x", "role": "viewer", "clients": "Nowhere"})
            assert r.status_code == 400 and "Nowhere" in r.text

            # technicians: add (written to the roster in the database), change, login link, second-factor reset, remove
            r = await post(ada, "/admin/techs", "/admin/techs", {
                "name": "Fox Mulder", "email": "fox@msp.example", "role": "tech", "clients": "Acme Dental, Gamma Ops",
                "on_duty": "mon-fri 08:00-18:00", "timezone": "Europe/Berlin"})
            assert r.status_code == 303, r.text
            stored = yaml.safe_load(live.services.staff.techs.export())
            fox = next(t for t in stored["techs"] if t["email"] == "fox@msp.example")
            assert fox["clients"] == ["Acme Dental", "Gamma Ops"] and fox["timezone"] == "Europe/Berlin"
            assert audited(live, "tech_added")[0].actor == "Ada Admin"
            r = await post(ada, "/admin/techs", "/admin/techs", {"name": "Bad", "email": "not-an-address",
                                                                  "clients": "Acme Dental", "timezone": "Mars/Base"})
            assert r.status_code == 400 and "email" in r.text and "Mars/Base" in r.text
            r = await post(ada, "/admin/techs/fox@msp.example", "/admin/techs/fox@msp.example/edit",
                           {"name": "Fox Mulder", "role": "viewer", "clients": "Acme Dental", "timezone": "UTC"})
            assert r.status_code == 303, r.text
            assert live.services.staff.techs.find("fox@msp.example").role == "viewer"  # type: ignore[union-attr]
            changed = audited(live, "tech_changed")[0]
            assert changed.actor == "Ada Admin" and "role" in changed.data["changed"]
            r = await post(ada, "/admin/techs", "/admin/techs/fox@msp.example/link", {})
            link = re.search(r'id="login-link">([^<]+)<', r.text)
            assert r.status_code == 200 and link and "/auth/link/" in link.group(1)
            assert link.group(1) not in (await ada.get("/admin/techs")).text
            assert audited(live, "login_link_issued")[0].data == {"email": "fox@msp.example"}

            dana, _ = await signed_in(live, DANA["email"])  # Dana enrols a second factor
            await dana.aclose()
            techs_page = (await ada.get("/admin/techs")).text
            dana_row = techs_page[techs_page.index('data-tech="dana@msp.example"'):]
            assert "reset-2fa" in dana_row[:dana_row.index("</tr>")]
            r = await post(ada, "/admin/techs", "/admin/techs/dana@msp.example/reset-2fa", {})
            assert r.status_code == 200 and "second factor is reset" in r.text
            (reset,) = audited(live, "tech_second_factor_reset")
            assert (reset.actor, reset.data) == ("Ada Admin", {"email": "dana@msp.example", "had_one": True})

            r = await post(ada, "/admin/techs/ada@msp.example/remove", "/admin/techs/ada@msp.example/remove",
                           {"confirm": "yes"})
            assert r.status_code == 409 and "yourself" in r.text
            r = await post(ada, "/admin/techs/ada@msp.example", "/admin/techs/ada@msp.example/edit",
                           {"name": "Ada Admin", "role": "tech", "clients": "*", "timezone": "UTC"})
            assert r.status_code == 400 and "your own role" in r.text and 'id="tech-edit"' in r.text
            assert live.services.staff.techs.find("ada@msp.example").role == "admin"  # type: ignore[union-attr]
            r = await post(ada, "/admin/techs/fox@msp.example/remove", "/admin/techs/fox@msp.example/remove",
                           {"confirm": "yes"})
            assert r.status_code == 303
            assert live.services.staff.techs.find("fox@msp.example") is None
            assert audited(live, "tech_removed")[0].data == {"email": "fox@msp.example"}

            # no secret in the audit trail or a log
            trail = everything_audited(live)
            for secret in (code, second, key, link.group(1).rsplit("/", 1)[1], credential):
                assert secret not in trail
                assert secret not in caplog.text
        finally:
            await ada.aclose()


async def test_technicians_viewers_and_forged_forms_are_refused(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live:
        register(live, ADA, DANA, VIC)
        acme = await live.client("Acme Dental")
        code = await live.code(acme)
        agent_id = (await enroll(live, code)).json()["agent_id"]
        ada, _ = await signed_in(live, ADA["email"])
        dana, _ = await signed_in(live, DANA["email"])
        vic, _ = await signed_in(live, VIC["email"])
        try:
            # a technician reads their clients and agents, without the admin's buttons
            assert (await dana.get("/admin")).status_code == 200
            page = await dana.get("/admin/agents")
            assert page.status_code == 200 and "reception-pc" in page.text and "Revoke…" not in page.text
            assert (await dana.get("/admin/clients")).status_code == 200
            token = csrf_of(page.text)
            for path in ("/admin/enrollment", "/admin/techs", "/admin/keys", f"/admin/agents/{agent_id}/revoke"):
                assert (await dana.get(path)).status_code == 403, path
            forms: list[tuple[str, dict[str, str]]] = [
                ("/admin/clients", {"name": "Sneaky"}),
                ("/admin/enrollment", {"client": acme, "role": "device", "hours": "24"}),
                (f"/admin/agents/{agent_id}/revoke", {"confirm": "yes"}),
                ("/admin/keys", {"name": "mine", "role": "admin", "all_clients": "yes"}),
                ("/admin/techs", {"name": "Me", "email": "me@x.example", "clients": "*", "role": "admin"}),
                ("/admin/techs/dana@msp.example/edit", {"name": "Dana", "role": "admin", "clients": "*"}),
                ("/admin/techs/ada@msp.example/remove", {"confirm": "yes"}),
                ("/admin/techs/ada@msp.example/reset-2fa", {}),
                ("/admin/techs/ada@msp.example/link", {}),
            ]
            for path, data in forms:
                r = await dana.post(path, data={"csrf": token, **data})
                assert r.status_code == 403, (path, r.status_code)
            # a viewer: nothing here at all
            viewer_token = csrf_of((await vic.get("/")).text)
            for path in ("/admin", "/admin/clients", "/admin/agents"):
                assert (await vic.get(path)).status_code == 403, path
            for path, data in forms:
                assert (await vic.post(path, data={"csrf": viewer_token, **data})).status_code == 403, path
            # an admin's form without its CSRF token, or from another site
            r = await ada.post("/admin/keys", data={"name": "forged", "role": "admin", "all_clients": "yes"})
            assert r.status_code == 403
            ada_token = csrf_of((await ada.get("/admin/keys")).text)
            r = await ada.post("/admin/keys", data={"csrf": ada_token, "name": "forged", "role": "admin",
                                                    "all_clients": "yes"}, headers={"Origin": "https://evil.example"})
            assert r.status_code == 403
            r = await ada.post(f"/admin/agents/{agent_id}/revoke", data={"confirm": "yes"})
            assert r.status_code == 403
            # nothing of it happened
            assert live.services.staff.keys.list() == []
            assert live.services.registry.agent(agent_id).revoked_at is None
            assert [c.name for c in live.services.registry.clients()] == ["Acme Dental"]
            assert live.services.staff.techs.find("dana@msp.example").role == "tech"  # type: ignore[union-attr]
            assert audited(live, "api_key_created") == [] and audited(live, "agent_revoked") == []
            # signed out: to the sign-in page
            anonymous = httpx.AsyncClient(base_url=live.url)
            r = await anonymous.get("/admin/keys")
            assert r.status_code == 303 and r.headers["location"] == "/login"
            await anonymous.aclose()
        finally:
            for c in (ada, dana, vic):
                await c.aclose()


async def test_an_admin_of_some_clients_sees_and_touches_only_theirs(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live:
        register(live, ANN)
        acme = await live.client("Acme Dental")
        beta = await live.client("Beta Law")
        beta_agent = (await enroll(live, await live.code(beta), "beta-pc")).json()["agent_id"]
        acme_agent = (await enroll(live, await live.code(acme), "acme-pc")).json()["agent_id"]
        beta_code = (await live.http.post("/api/enrollments", json={"client": beta})).json()["id"]
        ann, _ = await signed_in(live, ANN["email"])
        try:
            listed = (await ann.get("/admin/clients")).text
            assert "Acme Dental" in listed and "Beta Law" not in listed and 'id="new-client"' not in listed
            agents = (await ann.get("/admin/agents")).text
            assert "acme-pc" in agents and "beta-pc" not in agents
            assert (await ann.get(f"/admin/agents?client={beta}")).status_code == 404
            page = (await ann.get("/admin/enrollment")).text
            assert f'value="{acme}"' in page and beta not in page and beta_code not in page
            token = csrf_of(page)
            # another client's records do not exist for her
            assert (await ann.get(f"/admin/agents/{beta_agent}/revoke")).status_code == 404
            r = await ann.post(f"/admin/agents/{beta_agent}/revoke", data={"csrf": token, "confirm": "yes"})
            assert r.status_code == 404
            assert (await ann.get(f"/admin/enrollment/{beta_code}/revoke")).status_code == 404
            r = await ann.post(f"/admin/enrollment/{beta_code}/revoke", data={"csrf": token, "confirm": "yes"})
            assert r.status_code == 404
            r = await ann.post("/admin/enrollment", data={"csrf": token, "client": beta, "role": "device",
                                                          "hours": "24"})
            assert r.status_code == 404 and "enr_" not in r.text
            # clients, technicians and keys are for an admin of every client
            for path in ("/admin/techs", "/admin/keys"):
                assert (await ann.get(path)).status_code == 403, path
            r = await ann.post("/admin/clients", data={"csrf": token, "name": "Mine Now"})
            assert r.status_code == 403
            # her own client's agent and codes: hers to manage
            r = await ann.post("/admin/enrollment", data={"csrf": token, "client": acme, "role": "device",
                                                          "hours": "1"})
            assert r.status_code == 200 and "enr_" in r.text
            r = await ann.post(f"/admin/agents/{acme_agent}/revoke", data={"csrf": token, "confirm": "yes"})
            assert r.status_code == 303
            assert live.services.registry.agent(acme_agent).revoked_at is not None
            assert live.services.registry.agent(beta_agent).revoked_at is None
            overview = (await ann.get("/admin")).text
            assert "/admin/techs" not in overview and "/admin/keys" not in overview
        finally:
            await ann.aclose()


async def test_the_api_lists_and_revokes_codes_and_edits_technicians(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live:
        register(live, ADA)
        acme = await live.client("Acme Dental")
        made = (await live.http.post("/api/enrollments", json={"client": acme, "role": "site"})).json()
        listed = (await live.http.get("/api/enrollments")).json()
        assert [c["id"] for c in listed] == [made["id"]] and "code" not in listed[0]
        r = await live.http.post(f"/api/enrollments/{made['id']}/revoke")
        assert r.status_code == 200
        assert (await live.http.get("/api/enrollments")).json() == []
        assert (await live.http.post(f"/api/enrollments/{made['id']}/revoke")).status_code == 409
        assert (await live.http.post("/api/enrollments/en_nothing/revoke")).status_code == 404

        r = await live.http.post("/api/techs", json={"name": "Fox Mulder", "email": "Fox@MSP.example",
                                                     "clients": ["Acme Dental"]})
        assert r.status_code == 201 and r.json()["email"] == "fox@msp.example"
        r = await live.http.post("/api/techs", json={"name": "Fox", "email": "fox@msp.example", "clients": ["*"]})
        assert r.status_code == 409
        r = await live.http.patch("/api/techs/fox@msp.example", json={"role": "admin", "on_duty": ["nonsense"]})
        assert r.status_code == 409 and "on_duty" in r.text
        r = await live.http.patch("/api/techs/fox@msp.example", json={"role": "admin"})
        assert r.status_code == 200 and r.json()["role"] == "admin" and r.json()["clients"] == ["Acme Dental"]
        r = await live.http.post("/api/techs/fox@msp.example/reset-2fa")
        assert r.json() == {"email": "fox@msp.example", "had_one": False}
        assert (await live.http.delete("/api/techs/fox@msp.example")).status_code == 204
        assert (await live.http.delete("/api/techs/fox@msp.example")).status_code == 404
        kinds = [a.kind for a in live.services.audit.query(limit=1000)]
        for kind in ("enrollment_revoked", "tech_added", "tech_changed", "tech_second_factor_reset", "tech_removed"):
            assert kind in kinds, kind


async def test_an_admin_in_a_real_browser_revokes_an_agent_and_creates_a_code(tmp_path: Path) -> None:
    executable = chromium_or_skip()
    errors: list[str] = []
    async with live_server(tmp_path) as live, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=executable, args=ARGS, headless=True)
        try:
            register(live, ADA)
            acme = await live.client("Acme Dental")
            await live.client("Beta Law")
            online = await live.start_agent(acme, temp_root=tmp_path / "temp")
            old = (await enroll(live, await live.code(acme), "old-laptop")).json()["agent_id"]
            context = await browser.new_context(viewport={"width": 1280, "height": 760})
            context.on("page", lambda p: watch_errors(p, errors))
            page = await sign_in_enrolling(context, live, ADA["email"])

            # the agents: one online, one that never connected; the admin revokes the old one after confirming
            await page.click('header nav a[href="/admin"]')
            await page.wait_for_selector("#admin-counts")
            await page.click('nav.admin-nav a[href="/admin/agents"]')
            await page.wait_for_selector("#agents")
            assert "online" in await page.inner_text(f'tr[data-agent="{online}"]')
            assert "offline" in await page.inner_text(f'tr[data-agent="{old}"]')
            await shot(page, "admin-agents")
            await page.click(f'tr[data-agent="{old}"] a.button')
            await page.wait_for_selector("#confirm")
            assert "old-laptop" in await page.inner_text("#question")
            await page.click("#confirm-button")
            await page.wait_for_selector(f'tr[data-agent="{old}"] .status.revoked')
            assert live.services.registry.agent(old).revoked_at is not None
            assert live.services.registry.agent(online).revoked_at is None

            # an enrollment code for a site agent, shown once with the install commands
            await page.goto(f"{live.url}/admin/enrollment")
            await page.select_option("#code-client", acme)
            await page.select_option("#code-role", "site")
            await page.select_option("#code-hours", "72")
            await page.click("#create-code")
            await page.wait_for_selector("#code-issued")
            code = await page.inner_text("#enrollment-code")
            code_id = await page.inner_text("#code-id")
            assert code.startswith("enr_") and code in await page.inner_text("#code-issued pre.command")
            await shot(page, "admin-enrollment")
            await page.click("#done")
            await page.wait_for_selector("#codes")
            listed = await page.inner_text("#codes")
            assert code_id in listed and code not in listed and "site" in listed
            assert errors == []
        finally:
            await browser.close()
