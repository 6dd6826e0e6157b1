"""The Jamf adapter against a local HTTPS Jamf Pro fake checked against Jamf's OpenAPI excerpt.

Spec-checked, not live: no real Jamf Pro server is called.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.site.jamf_server import CLIENT_ID, CLIENT_SECRET, JamfFake, computer, jamf_server

from mspclaw.agent.site.config import JamfConfig
from mspclaw.agent.site.jamf import Jamf
from mspclaw.agent.site.services import service_tools
from mspclaw.agent.tools import ToolContext
from mspclaw.errors import (
    ConfigError,
    IntegrationAuthFailed,
    IntegrationError,
    IntegrationThrottled,
    IntegrationUnreachable,
)
from mspclaw.tools.site_services import SITE_SERVICE_TOOLS

SPECS = {spec.name: spec for spec in SITE_SERVICE_TOOLS}
SERIAL = "C02XK1ZQJGH5"


OPEN: list[Jamf] = []


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JamfFake]:
    yield from jamf_server(tmp_path_factory.mktemp("jamf"), JamfFake())


@pytest.fixture
def fake(server: JamfFake) -> Iterator[JamfFake]:
    server.reset(computers=[computer("7", "Ann's MacBook", SERIAL, "ann.lee"),
                            computer("9", "Front desk iMac", "C02ZZ0001XYZ", "reception", managed=False)])
    yield server
    while OPEN:
        OPEN.pop().close()
    assert server.violations == []


def opened(jamf: Jamf) -> Jamf:
    OPEN.append(jamf)
    return jamf


def secret_file(tmp_path: Path, value: str = CLIENT_SECRET) -> Path:
    path = tmp_path / "jamf.secret"
    path.write_text(value + "\n")
    path.chmod(0o600)
    return path


def adapter(fake: JamfFake, tmp_path: Path, *, secret: str = CLIENT_SECRET, timeout: float = 5) -> Jamf:
    return opened(Jamf(JamfConfig(url=fake.url, client_id=CLIENT_ID, client_secret_file=secret_file(tmp_path, secret),
                                  ca_file=fake.ca_file, timeout_s=timeout)))


def call(jamf: Jamf, tool: str, args: dict[str, object]) -> dict[str, Any]:
    out = service_tools(jamf, None, None)[tool](SPECS[tool].validate(args), ToolContext(temp_roots=()))
    assert isinstance(out, dict)
    return out


def test_check_proves_the_client_and_read_permission(fake: JamfFake, tmp_path: Path) -> None:
    report = adapter(fake, tmp_path).check()
    assert report["ok"] is True and report["computers"] == 2 and report["inventory_api"] == "v4"
    token_call = fake.requests("POST", "/oauth/token")[0]
    assert "grant_type=client_credentials" in token_call.body and "client_secret=" in token_call.body


def test_mac_lookup_by_serial_and_by_user(fake: JamfFake, tmp_path: Path) -> None:
    jamf = adapter(fake, tmp_path)
    out = call(jamf, "mac_lookup", {"serial": SERIAL})
    assert out["found"] is True and out["count"] == 1
    (mac,) = out["computers"]
    assert mac == {"id": "7", "name": "Ann's MacBook", "serial": SERIAL, "model": "MacBook Pro (14-inch, 2023)",
                   "os_version": "macOS 15.1.1 (24B91)", "last_check_in": "2026-12-06T07:58:00Z",
                   "last_inventory": "2026-12-05T09:12:00Z", "managed": True, "mdm_capable": True,
                   "user": "ann.lee", "user_name": "Ann Lee", "user_email": "ann.lee@acme.example",
                   "disk_free_gb": 50.0}
    query = fake.requests("GET", "/computers-inventory")[-1].query
    assert query["filter"] == f'hardware.serialNumber=="{SERIAL}"'
    by_user = call(jamf, "mac_lookup", {"username": "reception"})
    assert [c["serial"] for c in by_user["computers"]] == ["C02ZZ0001XYZ"]
    assert call(jamf, "mac_lookup", {"serial": "C02NOPE00000"}) == {"found": False, "count": 0, "computers": []}


def test_an_older_server_without_v4_is_read_through_v1(fake: JamfFake, tmp_path: Path) -> None:
    fake.versions = ("v1",)
    (mac,) = adapter(fake, tmp_path).find(serial=SERIAL)
    assert mac.last_check_in == "2026-12-06T07:59:00Z" and mac.management_id
    assert [s.path for s in fake.requests("GET")] == ["/api/v4/computers-inventory", "/api/v1/computers-inventory"]


def test_restart_and_update_inventory_send_spec_valid_mdm_commands(fake: JamfFake, tmp_path: Path) -> None:
    jamf = adapter(fake, tmp_path)
    restart = call(jamf, "mac_restart", {"serial": SERIAL})
    assert restart["queued"] is True and restart["command"] == "RESTART_DEVICE" and restart["command_ids"]
    call(jamf, "mac_update_inventory", {"serial": SERIAL})
    first, second = fake.commands
    assert first == {"clientData": [{"managementId": "73226fb6-61df-4c10-9552-000000000007"}],
                     "commandData": {"commandType": "RESTART_DEVICE", "notifyUser": True}}
    assert second["commandData"]["commandType"] == "DEVICE_INFORMATION" and second["commandData"]["queries"]
    assert len(fake.requests("POST", "/oauth/token")) == 1  # one token served every call


def test_redeploy_framework_uses_the_inventory_id(fake: JamfFake, tmp_path: Path) -> None:
    out = call(adapter(fake, tmp_path), "mac_redeploy_framework", {"serial": SERIAL})
    assert out["redeploy_queued"] is True and out["command_uuid"] and fake.redeployed == ["7"]


def test_an_unmanaged_or_unknown_mac_gets_no_command(fake: JamfFake, tmp_path: Path) -> None:
    jamf = adapter(fake, tmp_path)
    with pytest.raises(IntegrationError, match=r"not MDM-enrolled.*not changed: RESTART_DEVICE"):
        jamf.mdm_command("C02ZZ0001XYZ", "RESTART_DEVICE")
    with pytest.raises(IntegrationError, match="no computer with serial C02NOPE00000"):
        jamf.redeploy_framework("C02NOPE00000")
    assert fake.commands == [] and fake.redeployed == []


def test_an_expired_token_is_renewed_once(fake: JamfFake, tmp_path: Path) -> None:
    jamf = adapter(fake, tmp_path)
    jamf.check()
    fake.expire_tokens()
    assert jamf.find(serial=SERIAL)
    assert len(fake.requests("POST", "/oauth/token")) == 2


def test_a_token_near_its_expiry_is_renewed_before_use(fake: JamfFake, tmp_path: Path) -> None:
    now = [0.0]
    fake.token_lifetime = 60
    jamf = opened(Jamf(JamfConfig(url=fake.url, client_id=CLIENT_ID, client_secret_file=tmp_path / "unused",
                                  ca_file=fake.ca_file), client_secret=CLIENT_SECRET, clock=lambda: now[0]))
    jamf.check()
    now[0] = 50.0
    jamf.check()
    assert len(fake.requests("POST", "/oauth/token")) == 2 and not [s for s in fake.seen if s.path.endswith("x")]


def test_refusals_are_told_apart(fake: JamfFake, tmp_path: Path) -> None:
    with pytest.raises(IntegrationAuthFailed, match=r"refused the API client .*Client authentication failed"):
        adapter(fake, tmp_path, secret="wrong").check()
    jamf = adapter(fake, tmp_path)
    fake.fail("GET", "computers-inventory", status=403, body={"httpStatus": 403, "errors": []})
    with pytest.raises(IntegrationAuthFailed, match="privilege 'Read Computers'"):
        jamf.find(serial=SERIAL)
    fake.fail("POST", "/mdm/commands", status=500, body={"httpStatus": 500, "errors": [
        {"code": "UNABLE_TO_QUEUE", "description": "unable to queue command"}]})
    with pytest.raises(IntegrationUnreachable, match=r"500: UNABLE_TO_QUEUE .*not changed: RESTART_DEVICE"):
        jamf.mdm_command(SERIAL, "RESTART_DEVICE")
    fake.fail("GET", "computers-inventory", status=429, headers={"Retry-After": "30"})
    with pytest.raises(IntegrationThrottled, match="in 30 s"):
        jamf.find(serial=SERIAL)
    fake.expire_tokens()
    fake.fail("GET", "computers-inventory", status=401, times=2)
    with pytest.raises(IntegrationAuthFailed, match="refused a fresh token"):
        jamf.find(serial=SERIAL)


def test_slow_server_untrusted_certificate_and_bad_secret_file(fake: JamfFake, tmp_path: Path) -> None:
    fake.fail("GET", "computers-inventory", status=200, delay=2.0)
    with pytest.raises(IntegrationUnreachable, match=r"did not answer .* within 0.5 s"):
        adapter(fake, tmp_path, timeout=0.5).check()
    untrusted = opened(Jamf(JamfConfig(url=fake.url, client_id=CLIENT_ID, client_secret_file=secret_file(tmp_path)),
                            transport=httpx.HTTPTransport(verify=True, trust_env=False)))
    with pytest.raises(IntegrationUnreachable, match="set ca_file"):
        untrusted.check()
    loose = secret_file(tmp_path)
    loose.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        opened(Jamf(JamfConfig(url=fake.url, client_id=CLIENT_ID, client_secret_file=loose,
                               ca_file=fake.ca_file))).check()


def test_answers_over_the_size_bound_are_refused(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/oauth/token"):
            return httpx.Response(200, json={"access_token": "t", "expires_in": 60, "scope": "",
                                             "token_type": "Bearer"})
        return httpx.Response(200, content=json.dumps({"results": ["x" * 1024] * 5000}).encode())

    jamf = Jamf(JamfConfig(url="https://jamf.acme.example", client_id=CLIENT_ID, client_secret_file=tmp_path / "x"),
                client_secret=CLIENT_SECRET, transport=httpx.MockTransport(handler))
    with pytest.raises(IntegrationError, match="over 4 MiB"):
        jamf.find(serial=SERIAL)
    jamf.close()


def test_service_tools_offer_only_configured_integrations(fake: JamfFake, tmp_path: Path) -> None:
    assert service_tools(None, None, None) == {}
    assert set(service_tools(adapter(fake, tmp_path), None, None)) == {
        "mac_lookup", "mac_update_inventory", "mac_restart", "mac_redeploy_framework"}
    assert {spec.name for spec in SITE_SERVICE_TOOLS} >= set(service_tools(adapter(fake, tmp_path), None, None))
    assert all(spec.runs_on == "site" for spec in SITE_SERVICE_TOOLS)
    assert {s.name for s in SITE_SERVICE_TOOLS if s.destructive} == {
        "mac_restart", "mac_redeploy_framework", "print_server_clear_queue", "vpn_disconnect"}
