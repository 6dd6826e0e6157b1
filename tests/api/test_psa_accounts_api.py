"""``/api/psa-accounts`` on the real server (uvicorn, SQLite): an admin adds accounts, tests their credentials
against the PSA, disables, enables and removes them, with no restart; secrets never come back out and
never reach the audit trail or the logs.

The PSA is the local ConnectWise test server (``tests/connectors/connectwise_server.py``, which follows
ConnectWise's documented API and fails the test on a request ConnectWise would refuse).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import Live, live_server
from tests.connectors.connectwise_server import FakeConnectWise, run_connectwise

pytestmark = pytest.mark.anyio


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[Live, FakeConnectWise]]:
    async with run_connectwise() as cw, live_server(tmp_path, workers=0) as live:
        yield live, cw
        assert cw.violations == []


def _body(cw: FakeConnectWise, name: str, private_key: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "kind": "connectwise", "poll_interval_s": 0,
            "fields": {"site": cw.url, "company": cw.company, "client_id": cw.client_id,
                       "public_key": cw.public_key, "private_key": private_key}, **extra}


async def test_an_admin_adds_tests_disables_enables_and_removes_an_account(
        world: tuple[Live, FakeConnectWise], caplog: pytest.LogCaptureFixture) -> None:
    live, cw = world
    caplog.set_level(logging.DEBUG)
    r = await live.http.post("/api/psa-accounts", json=_body(cw, "cw", cw.private_key))
    assert r.status_code == 201, r.text
    added = r.json()
    assert added["enabled"] is True and added["last_test"] is None
    assert added["webhook_url"] == f"{live.url}/webhooks/cw"
    assert added["config"] == {"poll_interval_s": 0.0, "site": cw.url, "company": cw.company,
                               "client_id": cw.client_id}
    assert "cw" in live.services.intake.connectors  # served at once, no restart

    good = await live.http.post("/api/psa-accounts/cw/test")
    assert good.status_code == 200 and good.json()["ok"] is True, good.text
    assert "accepted the API member's keys" in good.json()["message"]

    r = await live.http.post("/api/psa-accounts", json=_body(cw, "cw-wrong", "not-the-key"))
    assert r.status_code == 201, r.text
    bad = (await live.http.post("/api/psa-accounts/cw-wrong/test")).json()
    assert bad["ok"] is False and bad["message"].startswith("the PSA refused the credentials: check the API key")

    listed = {a["name"]: a for a in (await live.http.get("/api/psa-accounts")).json()}
    assert listed["cw"]["last_test"]["ok"] is True and listed["cw-wrong"]["last_test"]["ok"] is False

    off = await live.http.post("/api/psa-accounts/cw/disable")
    assert off.status_code == 200 and off.json()["enabled"] is False
    assert "cw" not in live.services.intake.connectors
    assert [a.enabled for a in live.services.accounts if a.name == "cw"] == [False]  # what /readyz reads
    on = await live.http.post("/api/psa-accounts/cw/enable")
    assert on.status_code == 200 and on.json()["enabled"] is True and "cw" in live.services.intake.connectors

    assert (await live.http.delete("/api/psa-accounts/cw-wrong")).status_code == 204
    assert (await live.http.post("/api/psa-accounts/cw-wrong/test")).status_code == 404
    assert [a["name"] for a in (await live.http.get("/api/psa-accounts")).json()] == ["cw"]

    kinds = [e.kind for e in live.services.audit.query() if e.kind.startswith("psa_account")]
    assert kinds == ["psa_account_added", "psa_account_tested", "psa_account_added", "psa_account_tested",
                     "psa_account_disabled", "psa_account_enabled", "psa_account_removed"]
    trail = json.dumps([e.data for e in live.services.audit.query()])
    pages = json.dumps(listed) + r.text + good.text
    for secret in (cw.private_key, cw.public_key, "not-the-key"):
        assert secret not in trail and secret not in pages and secret not in caplog.text


async def test_bad_input_is_refused_with_what_to_fix(world: tuple[Live, FakeConnectWise]) -> None:
    live, cw = world
    missing = await live.http.post("/api/psa-accounts", json={"name": "cw", "kind": "connectwise",
                                                              "fields": {"site": cw.url}})
    assert missing.status_code == 400
    assert missing.json()["detail"]["message"] == ("connectwise needs company, public_key, client_id "
                                                   "(see docs/psa/connectwise.md)")
    unknown = await live.http.post("/api/psa-accounts", json={"name": "cw", "kind": "connectwise",
                                                              "fields": {"subdomain": "x"}})
    assert unknown.status_code == 400 and "connectwise has no field 'subdomain'" in unknown.text
    for name in ("../x", "with space", ""):
        r = await live.http.post("/api/psa-accounts", json=_body(cw, name, cw.private_key))
        assert r.status_code in (400, 422), (name, r.text)
    odd = _body(cw, "cw", cw.private_key)
    odd["fields"]["site"] = "api-na.myconnectwise.net/some/path"
    wrong_site = await live.http.post("/api/psa-accounts", json=odd)
    assert wrong_site.status_code == 400 and "is not a host name" in wrong_site.text
    assert (await live.http.get("/api/psa-accounts")).json() == []  # nothing kept of it
    huge = await live.http.post("/api/psa-accounts", json=_body(cw, "cw", "k" * 5000))
    assert huge.status_code == 422
    assert (await live.http.post("/api/psa-accounts", json=_body(cw, "cw", cw.private_key))).status_code == 201
    taken = await live.http.post("/api/psa-accounts", json=_body(cw, "cw", cw.private_key))
    assert taken.status_code == 409 and "already exists" in taken.text
    assert (await live.http.post("/api/psa-accounts/nope/enable")).status_code == 404


async def test_only_an_admin_of_every_client_manages_accounts(world: tuple[Live, FakeConnectWise]) -> None:
    live, cw = world
    client = await live.client()
    for role, clients, all_clients in (("tech", [], True), ("admin", [client], False)):
        key = (await live.http.post("/api/keys", json={"name": f"{role}-key", "role": role, "clients": clients,
                                                       "all_clients": all_clients})).json()["key"]
        async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {key}"}) as other:
            assert (await other.get("/api/psa-accounts")).status_code == 403
            assert (await other.post("/api/psa-accounts", json=_body(cw, "cw", cw.private_key))).status_code == 403
    async with httpx.AsyncClient(base_url=live.url) as anonymous:
        assert (await anonymous.get("/api/psa-accounts")).status_code == 401
    assert (await live.http.get("/api/psa-accounts")).json() == []
