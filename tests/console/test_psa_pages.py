"""``/admin/psa`` against the real server over HTTP, signed in with password and TOTP as a browser's forms
would: an admin of every client adds PSA accounts, tests their credentials against the PSA, disables,
enables and removes them; nobody else may; every form needs its CSRF token; a secret typed into a form
never shows in a page, the audit trail or the log.

The PSA is MSPclaw's shipped local PSA simulator on loopback (its API token checked on every request).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import Live, live_server
from tests.console.signing_in import DANA, csrf_of, register, signed_in

from mspclaw.simulators.local_psa import run_local_psa

pytestmark = pytest.mark.anyio
ADA: dict[str, Any] = {"name": "Ada Admin", "email": "ada@msp.example", "role": "admin", "clients": ["*"]}
ANN: dict[str, Any] = {"name": "Ann Acme", "email": "ann@msp.example", "role": "admin", "clients": ["Acme Dental"]}
TOKEN, WRONG, HOOK = "lpsa-right-token-5f1c", "lpsa-wrong-token-9a2e", "hook-secret-77b3d"


async def _add(client: httpx.AsyncClient, kind: str, **fields: str) -> httpx.Response:
    form = await client.get(f"/admin/psa/new?kind={kind}")
    assert form.status_code == 200, form.text
    return await client.post("/admin/psa", data={"csrf": csrf_of(form.text), "kind": kind, **fields})


async def _press(client: httpx.AsyncClient, action: str) -> httpx.Response:
    page = await client.get("/admin/psa")
    return await client.post(action, data={"csrf": csrf_of(page.text)})


def _row(page: str, name: str) -> str:
    found = re.search(rf'<tr id="account-{name}".*?</tr>', page)
    assert found, page[:3000]
    return found.group(0)


async def test_an_admin_adds_tests_toggles_and_removes_accounts(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    async with run_local_psa(api_token=TOKEN) as psa, live_server(tmp_path, workers=0) as live:
        register(live, ADA)
        ada, _ = await signed_in(live, ADA["email"])
        try:
            empty = await ada.get("/admin/psa")
            assert "No PSA accounts yet: add one below" in empty.text
            assert 'href="/admin/psa/new?kind=connectwise"' in empty.text

            # a form missing what the kind needs says so, and does not echo the secret typed into it
            refused = await _add(ada, "local", name="lpsa", base_url="", token=WRONG, poll_interval_s="0")
            seen.append(refused.text)
            assert refused.status_code == 400 and "local needs base_url" in refused.text
            assert 'value="lpsa"' in refused.text

            added = await _add(ada, "local", name="lpsa", base_url=psa.base_url, token=WRONG,
                               webhook_secret=HOOK, poll_interval_s="0", start="enabled")
            assert added.status_code == 303 and added.headers["location"] == "/admin/psa?added=lpsa"
            page = (await ada.get(added.headers["location"])).text
            seen.append(page)
            row = _row(page, "lpsa")
            assert f"{live.url}/webhooks/lpsa" in row and "not tested yet" in row and ">enabled<" in row
            assert "lpsa" in live.services.intake.connectors  # no restart

            tested = await _press(ada, "/admin/psa/lpsa/test")
            assert tested.status_code == 303
            page = (await ada.get(tested.headers["location"])).text
            seen.append(page)
            result = re.search(r'id="test-result">([^<]+)<', page)
            assert result and "the PSA refused the credentials: check the API key" in result.group(1)

            good = await _add(ada, "local", name="lpsa-2", base_url=psa.base_url, token=TOKEN,
                              poll_interval_s="0", start="disabled")
            assert good.status_code == 303
            assert "lpsa-2" not in live.services.intake.connectors
            page = (await ada.get((await _press(ada, "/admin/psa/lpsa-2/test")).headers["location"])).text
            seen.append(page)
            assert "The PSA accepted the credentials (lpsa-2): the local PSA accepted the API token" in page
            assert ">disabled<" in _row(page, "lpsa-2")
            assert (await _press(ada, "/admin/psa/lpsa-2/enable")).status_code == 303
            assert "lpsa-2" in live.services.intake.connectors
            assert (await _press(ada, "/admin/psa/lpsa/disable")).status_code == 303
            page = (await ada.get("/admin/psa")).text
            seen.append(page)
            assert ">disabled<" in _row(page, "lpsa") and ">enabled<" in _row(page, "lpsa-2")

            # a name taken, a form without its CSRF token: refused, nothing changed
            taken = await _add(ada, "local", name="lpsa", base_url=psa.base_url, token=TOKEN)
            assert taken.status_code == 400 and "already exists" in taken.text
            forged = await ada.post("/admin/psa/lpsa-2/disable", data={"csrf": "forged"})
            assert forged.status_code == 403 and "lpsa-2" in live.services.intake.connectors
            assert (await ada.post("/admin/psa", data={"kind": "local", "name": "x", "base_url": psa.base_url,
                                                       "token": TOKEN})).status_code == 403

            # removing asks first; then the account is gone
            confirm = await ada.get("/admin/psa/lpsa/remove")
            assert confirm.status_code == 200 and "Remove the account" in confirm.text
            gone = await ada.post("/admin/psa/lpsa/remove", data={"csrf": csrf_of(confirm.text), "confirm": "yes"})
            assert gone.status_code == 303
            assert "account-lpsa\"" not in (await ada.get("/admin/psa")).text
            assert (await ada.get("/admin/psa/lpsa/remove")).status_code == 404
        finally:
            await ada.aclose()

        kinds = [e.kind for e in live.services.audit.query() if e.kind.startswith("psa_account")]
        assert kinds == ["psa_account_added", "psa_account_tested", "psa_account_added", "psa_account_tested",
                         "psa_account_enabled", "psa_account_disabled", "psa_account_removed"]
        trail = json.dumps([e.data for e in live.services.audit.query()])
        for secret in (TOKEN, WRONG, HOOK):
            assert secret not in trail and secret not in caplog.text
            assert all(secret not in text for text in seen)


async def test_only_an_admin_of_every_client_sees_or_changes_accounts(tmp_path: Path) -> None:
    async with live_server(tmp_path, workers=0) as live:
        await live.client("Acme Dental")
        register(live, ADA, ANN, DANA)
        await live.http.post("/api/psa-accounts", json={"name": "lpsa", "kind": "local", "poll_interval_s": 0,
                                                         "fields": {"base_url": "http://127.0.0.1:9", "token": "t"}})
        for who in (ANN, DANA):
            client, _ = await signed_in(live, who["email"])
            try:
                page = await client.get("/admin/psa")
                assert page.status_code == 403 and "lpsa" not in page.text
                assert (await client.get("/admin/psa/new?kind=local")).status_code == 403
                r = await client.post("/admin/psa/lpsa/disable", data={"csrf": csrf_of(page.text)})
                assert r.status_code == 403
            finally:
                await client.aclose()
        assert "lpsa" in live.services.intake.connectors
        async with httpx.AsyncClient(base_url=live.url) as anonymous:
            r = await anonymous.get("/admin/psa")
            assert r.status_code == 303 and r.headers["location"] == "/login"
        assert (await _live_ok(live))


async def _live_ok(live: Live) -> bool:
    return (await live.http.get("/api/psa-accounts")).json()[0]["enabled"] is True
