"""Jamf Pro through its API with an API client (OAuth client credentials): find a Mac, send it MDM commands.

Spec-checked, not live: every request and answer here is tested against an excerpt of Jamf's
published OpenAPI document (``tests/data/specs/jamf``) served by a local HTTPS fake; no real Jamf
Pro server has been called.

* ``POST /api/v1/oauth/token`` (form: client_id, client_secret, grant_type=client_credentials) gives a
  bearer token for ``expires_in`` seconds; it is renewed before it expires and once after a 401.
* ``GET /api/v4/computers-inventory`` (``/api/v1/...`` on servers older than v4, found by its 404)
  with ``section=`` and an RSQL ``filter`` finds Macs by ``hardware.serialNumber`` or
  ``userAndLocation.username``.
* ``POST /api/v2/mdm/commands`` queues ``RESTART_DEVICE`` or ``DEVICE_INFORMATION`` (the MDM
  inventory query: the API has no ``UPDATE_INVENTORY`` command type) for the Mac's ``managementId``.
* ``POST /api/v1/jamf-management-framework/redeploy/{id}`` reinstalls the jamf binary.

Answers are read up to 4 MiB and parsed into the small dataclasses below in one place.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from mspclaw.agent.site.config import JamfConfig, read_secret
from mspclaw.errors import IntegrationAuthFailed, IntegrationError, IntegrationThrottled, IntegrationUnreachable

MAX_BODY = 4 * 1024 * 1024
MAX_RESULTS = 20
SECTIONS = ("GENERAL", "HARDWARE", "OPERATING_SYSTEM", "USER_AND_LOCATION", "STORAGE")
INVENTORY_VERSIONS = ("v4", "v1")
INVENTORY_QUERIES = ("DeviceName", "OSVersion", "BuildVersion", "ModelName", "SerialNumber",
                     "AvailableDeviceCapacity", "DeviceCapacity")
CommandType = Literal["RESTART_DEVICE", "DEVICE_INFORMATION"]
_PRIVILEGE = {"inventory": "Read Computers", "mdm": "Send Computer Remote Command (and View MDM command information)",
              "redeploy": "Send Computer Remote Command to Install Package / Jamf Management Framework redeploy"}


@dataclass(frozen=True)
class Computer:
    """One computer of the inventory, as much as a helpdesk needs of it."""

    id: str
    name: str
    serial: str
    model: str
    os_version: str
    last_check_in: str | None
    last_inventory: str | None
    managed: bool | None
    management_id: str | None
    username: str
    real_name: str
    email: str
    disk_free_mb: int | None

    def as_json(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name, "serial": self.serial, "model": self.model,
                "os_version": self.os_version, "last_check_in": self.last_check_in,
                "last_inventory": self.last_inventory, "managed": self.managed,
                "mdm_capable": self.management_id is not None, "user": self.username or None,
                "user_name": self.real_name or None, "user_email": self.email or None,
                "disk_free_gb": round(self.disk_free_mb / 1024, 1) if self.disk_free_mb is not None else None}


def _section(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = raw.get(key)
    return value if isinstance(value, dict) else {}


def _text(raw: Mapping[str, Any], key: str) -> str:
    value = raw.get(key)
    return value[:256] if isinstance(value, str) else ""


def parse_computer(raw: Mapping[str, Any]) -> Computer:
    """A ``ComputerInventory`` (v1) or ``ComputerInventoryV4`` record."""
    general, hardware = _section(raw, "general"), _section(raw, "hardware")
    system, user, storage = _section(raw, "operatingSystem"), _section(raw, "userAndLocation"), _section(raw, "storage")
    managed = _section(general, "remoteManagement").get("managed")
    free = storage.get("bootDriveAvailableSpaceMegabytes")
    version = " ".join(p for p in (_text(system, "version"), f"({_text(system, 'build')})" if system.get("build")
                                   else "") if p)
    return Computer(
        id=_text(raw, "id"), name=_text(general, "name"), serial=_text(hardware, "serialNumber"),
        model=_text(hardware, "model") or _text(hardware, "modelIdentifier"),
        os_version=(f"{_text(system, 'name')} {version}".strip() if system.get("name") else version),
        last_check_in=(_text(general, "lastCheckIn") or _text(general, "lastContact")
                       or _text(general, "lastContactTime") or None),
        last_inventory=_text(general, "reportDate") or None,
        managed=managed if isinstance(managed, bool) else None,
        management_id=_text(general, "managementId") or None,
        username=_text(user, "username"), real_name=_text(user, "realname"), email=_text(user, "email"),
        disk_free_mb=free if isinstance(free, int) and not isinstance(free, bool) else None,
    )


@dataclass
class _Token:
    value: str
    expires_at: float


class Jamf:
    """The site's Jamf Pro server. ``transport`` replaces the network in tests (``httpx.MockTransport``,
    a local server's own transport); ``client_secret`` replaces reading ``client_secret_file``."""

    def __init__(self, config: JamfConfig, *, client_secret: str | None = None,
                 transport: httpx.BaseTransport | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._secret = client_secret
        self._clock = clock
        self._token: _Token | None = None
        self._inventory_version: str | None = None
        verify: ssl.SSLContext | bool = True
        if config.ca_file is not None:
            try:
                verify = ssl.create_default_context(cafile=str(config.ca_file))
            except (OSError, ssl.SSLError) as exc:
                raise IntegrationUnreachable(f"Jamf: cannot load ca_file {config.ca_file}: {exc}") from exc
        self._http = httpx.Client(base_url=config.url.rstrip("/"), transport=transport, verify=verify,
                                  timeout=httpx.Timeout(config.timeout_s), follow_redirects=False,
                                  headers={"Accept": "application/json", "User-Agent": "mspclaw-site-agent"})

    def close(self) -> None:
        self._http.close()

    # --- HTTP ---------------------------------------------------------------------------------

    def _send(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any, httpx.Headers]:
        where = f"{method} {self.config.url.rstrip('/')}{path}"
        try:
            with self._http.stream(method, path, **kwargs) as response:
                body = b""
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_BODY:
                        raise IntegrationError(f"Jamf answered {where} with over {MAX_BODY // 1024 // 1024} MiB; "
                                               "refusing to read more")
                status, headers = response.status_code, response.headers
        except httpx.TimeoutException as exc:
            raise IntegrationUnreachable(f"Jamf Pro did not answer {where} within {self.config.timeout_s:g} s; "
                                         "check the server is up and reachable from the site agent") from exc
        except httpx.ConnectError as exc:
            hint = ("its TLS certificate did not verify: set ca_file to the CA that signs it"
                    if "CERTIFICATE_VERIFY_FAILED" in str(exc) else "check the URL and the network")
            raise IntegrationUnreachable(f"cannot reach Jamf Pro for {where} ({exc}); {hint}") from exc
        except httpx.HTTPError as exc:
            raise IntegrationUnreachable(f"Jamf Pro request {where} failed: {exc}") from exc
        try:
            data = json.loads(body) if body else None
        except ValueError:
            data = None
        return status, data, headers

    def _auth(self) -> str:
        if self._token is not None and self._clock() < self._token.expires_at:
            return self._token.value
        secret = self._secret or read_secret(self.config.client_secret_file, "jamf client secret")
        status, data, _ = self._send("POST", "/api/v1/oauth/token", data={
            "client_id": self.config.client_id, "client_secret": secret, "grant_type": "client_credentials"})
        if status in (400, 401, 403):
            reason = data.get("error_description") or data.get("error") if isinstance(data, dict) else None
            raise IntegrationAuthFailed(
                f"Jamf Pro refused the API client {self.config.client_id!r} ({status}"
                f"{': ' + str(reason)[:200] if reason else ''}); check the client is enabled under Settings > "
                "API roles and clients and that client_secret_file holds its current secret")
        self._raise_for(status, data, "POST /api/v1/oauth/token")
        if not (isinstance(data, dict) and isinstance(data.get("access_token"), str)):
            raise IntegrationError("Jamf Pro's token answer has no access_token")
        lifetime = data.get("expires_in")
        seconds = float(lifetime) if isinstance(lifetime, int) and lifetime > 0 else 60.0
        self._token = _Token(data["access_token"], self._clock() + max(seconds - min(30.0, seconds / 4), 1.0))
        return self._token.value

    def _call(self, method: str, path: str, what: str, **kwargs: Any) -> tuple[int, Any]:
        """An authorised request; a 401 renews the token once (it may have expired early or been revoked)."""
        for attempt in range(2):
            status, data, headers = self._send(method, path, headers={"Authorization": f"Bearer {self._auth()}"},
                                               **kwargs)
            if status == 401 and attempt == 0:
                self._token = None
                continue
            if status == 401:
                raise IntegrationAuthFailed(f"Jamf Pro refused a fresh token for {method} {path}; check the API "
                                            "client and its role")
            if status == 403:
                raise IntegrationAuthFailed(f"the Jamf API client {self.config.client_id!r} may not {method} {path}: "
                                            f"give its API role the privilege {_PRIVILEGE[what]!r}")
            if status == 429:
                retry = headers.get("Retry-After", "")
                raise IntegrationThrottled(f"Jamf Pro is throttling requests (429 on {method} {path}); try again "
                                           f"{'in ' + retry + ' s' if retry.isdigit() else 'in a minute'}")
            return status, data
        raise AssertionError("unreachable")

    def _raise_for(self, status: int, data: Any, where: str) -> None:
        if 200 <= status < 300:
            return
        detail = ""
        if isinstance(data, dict) and isinstance(data.get("errors"), list) and data["errors"]:
            first = data["errors"][0]
            if isinstance(first, dict):
                detail = f": {first.get('code', '')} {first.get('description', '')}".rstrip()
        if status >= 500:
            raise IntegrationUnreachable(f"Jamf Pro failed {where} ({status}{detail[:200]}); try again later or check "
                                         "the server's health")
        raise IntegrationError(f"Jamf Pro answered {where} with {status}{detail[:200]}")

    # --- operations ---------------------------------------------------------------------------

    def _inventory(self, rsql: str) -> list[Computer]:
        params = [("section", s) for s in SECTIONS] + [("page", "0"), ("page-size", str(MAX_RESULTS)),
                                                        ("filter", rsql)]
        versions = (self._inventory_version,) if self._inventory_version else INVENTORY_VERSIONS
        for version in versions:
            path = f"/api/{version}/computers-inventory"
            status, data = self._call("GET", path, "inventory", params=params)
            if status == 404 and version != versions[-1]:
                continue
            self._raise_for(status, data, f"GET {path}")
            self._inventory_version = version
            results = data.get("results") if isinstance(data, dict) else None
            if not isinstance(results, list):
                raise IntegrationError(f"Jamf Pro's answer to GET {path} has no results list")
            return [parse_computer(r) for r in results[:MAX_RESULTS] if isinstance(r, dict)]
        raise AssertionError("unreachable")

    def find(self, *, serial: str | None = None, username: str | None = None) -> list[Computer]:
        """Macs by serial number or by assigned user (values validated by the catalogue: no quotes)."""
        if serial is not None:
            return self._inventory(f'hardware.serialNumber=="{serial}"')
        if username is not None:
            return self._inventory(f'userAndLocation.username=="{username}"')
        raise IntegrationError("look a Mac up by serial or by username")

    def _one(self, serial: str) -> Computer:
        found = self.find(serial=serial)
        if not found:
            raise IntegrationError(f"no computer with serial {serial} in Jamf Pro at {self.config.url}; check the "
                                   "serial (System Settings > General > About) or whether the Mac is enrolled")
        if len(found) > 1:
            raise IntegrationError(f"{len(found)} computers in Jamf Pro carry serial {serial}; nothing was sent "
                                   "(remove the duplicate record first)")
        return found[0]

    def mdm_command(self, serial: str, command: CommandType) -> dict[str, object]:
        """Queue an MDM command for the Mac; it runs when the Mac next talks to Apple's push service."""
        mac = self._one(serial)
        if mac.management_id is None:
            raise IntegrationError(f"{mac.name or serial} has no MDM management id in Jamf Pro (not MDM-enrolled); "
                                   "no command was sent", unchanged=(f"{command} for {serial}",))
        data: dict[str, object] = {"commandType": command}
        if command == "RESTART_DEVICE":
            data["notifyUser"] = True
        else:
            data["queries"] = list(INVENTORY_QUERIES)
        status, answer = self._call("POST", "/api/v2/mdm/commands", "mdm",
                                    json={"clientData": [{"managementId": mac.management_id}], "commandData": data})
        try:
            self._raise_for(status, answer, "POST /api/v2/mdm/commands")
        except IntegrationError as exc:
            raise type(exc)(exc.message, unchanged=(f"{command} for {serial}",)) from exc
        ids = [str(item["id"]) for item in answer if isinstance(item, dict) and "id" in item] \
            if isinstance(answer, list) else []
        return {"serial": mac.serial or serial, "computer": mac.name, "command": command, "queued": True,
                "command_ids": ids[:10],
                "note": "queued in Jamf Pro; the Mac carries it out when it is online"}

    def redeploy_framework(self, serial: str) -> dict[str, object]:
        mac = self._one(serial)
        path = f"/api/v1/jamf-management-framework/redeploy/{mac.id}"
        status, answer = self._call("POST", path, "redeploy")
        if status == 404:
            raise IntegrationError(f"Jamf Pro no longer has computer {mac.id} ({serial}); nothing was sent")
        self._raise_for(status, answer, f"POST {path}")
        uuid = answer.get("commandUuid") if isinstance(answer, dict) else None
        return {"serial": mac.serial or serial, "computer": mac.name, "redeploy_queued": True,
                "command_uuid": uuid if isinstance(uuid, str) else None}

    def check(self) -> dict[str, object]:
        """Get a token and read one inventory page: proves the URL, TLS, the client and Read Computers."""
        status, data = self._call("GET", f"/api/{self._inventory_version or 'v4'}/computers-inventory", "inventory",
                                  params=[("section", "GENERAL"), ("page", "0"), ("page-size", "1")])
        if status == 404 and self._inventory_version is None:
            status, data = self._call("GET", "/api/v1/computers-inventory", "inventory",
                                      params=[("section", "GENERAL"), ("page", "0"), ("page-size", "1")])
            self._inventory_version = "v1"
        elif 200 <= status < 300:
            self._inventory_version = self._inventory_version or "v4"
        self._raise_for(status, data, "GET computers-inventory")
        total = data.get("totalCount") if isinstance(data, dict) else None
        return {"ok": True, "url": self.config.url, "computers": total if isinstance(total, int) else None,
                "inventory_api": self._inventory_version,
                "can": ["look Macs up by serial or user", "restart a Mac", "ask a Mac for fresh inventory",
                        "redeploy the Jamf management framework"]}
