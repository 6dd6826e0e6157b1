"""A local HTTPS Jamf Pro fake, spec-checked: each request the adapter sends and each answer the fake gives
is validated against the Jamf Pro API excerpt in ``tests/data/specs/jamf`` (openapi-core, as the PSA fakes do).

Knobs: ``fail()`` injects a status/body/delay for the next matching requests (a 5xx, 403, 429, a slow
answer); ``expire_tokens()`` makes every issued token invalid (what an expired token meets);
``versions`` lists the inventory API versions the "server" has (``("v1",)`` for an old Jamf Pro).
The TLS certificate names 127.0.0.1 and is signed by a throwaway CA written next to it.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from tests.connectors.openapi_fake import SpecCheck
from tests.connectors.rest_server import Fault, RestFake, Seen

SPEC = "jamf/jamf-pro-api-excerpt.yaml"
CLIENT_ID = "9b1c4f2e-mspclaw"
CLIENT_SECRET = "s3cr3t-jamf-client"


def computer(cid: str, name: str, serial: str, user: str, *, managed: bool = True, free_mb: int = 51200,
             v4: bool = True) -> dict[str, Any]:
    """An inventory record in the shape of ``ComputerInventoryV4`` (or v1 ``ComputerInventory``)."""
    general: dict[str, Any] = {"name": name, "reportDate": "2026-12-05T09:12:00Z", "lastIpAddress": "10.0.4.21",
                               "platform": "Mac", "remoteManagement": {"managed": managed}}
    if managed:
        general["managementId"] = f"73226fb6-61df-4c10-9552-{int(cid):012d}"
    general.update({"lastCheckIn": "2026-12-06T07:58:00Z", "lastContact": "2026-12-06T07:59:00Z"} if v4
                   else {"lastContactTime": "2026-12-06T07:59:00Z"})
    return {"id": cid, "udid": f"udid-{cid}", "general": general,
            "hardware": {"make": "Apple", "model": "MacBook Pro (14-inch, 2023)", "modelIdentifier": "Mac14,9",
                         "serialNumber": serial, "appleSilicon": True},
            "operatingSystem": {"name": "macOS", "version": "15.1.1", "build": "24B91"},
            "userAndLocation": {"username": user, "realname": user.replace(".", " ").title(),
                                "email": f"{user}@acme.example"},
            "storage": {"bootDriveAvailableSpaceMegabytes": free_mb}}


@dataclass
class JamfFake(RestFake):
    computers: list[dict[str, Any]] = field(default_factory=list)
    versions: tuple[str, ...] = ("v4", "v1")
    token_lifetime: int = 600
    tokens: dict[str, float] = field(default_factory=dict)
    commands: list[dict[str, Any]] = field(default_factory=list)
    redeployed: list[str] = field(default_factory=list)
    ca_file: Path = Path()

    def reset(self, computers: list[dict[str, Any]]) -> None:
        """A fresh server state for the next test (the process and its certificate stay)."""
        self.computers, self.versions, self.token_lifetime = computers, ("v4", "v1"), 600
        for recorded in (self.tokens, self.commands, self.redeployed, self.seen, self.faults, self.violations):
            recorded.clear()

    def expire_tokens(self) -> None:
        self.tokens.clear()

    def _authorised(self, request: Request) -> bool:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        return self.tokens.get(token, 0) > time.monotonic()


_FILTER = {"hardware.serialNumber": ("hardware", "serialNumber"),
           "userAndLocation.username": ("userAndLocation", "username")}


def build_app(fake: JamfFake) -> Starlette:
    check = SpecCheck(SPEC)

    async def answer(request: Request, body: bytes, status: int, payload: Any) -> Response:
        encoded = json.dumps(payload).encode()
        fake.violations += check.response(request, encoded, status)
        return Response(encoded, status_code=status, media_type="application/json")

    async def handle(request: Request) -> Response:
        body = await request.body()
        fake.seen.append(Seen(request.method, request.url.path, dict(request.query_params),
                              body.decode(errors="replace"), dict(request.headers)))
        fake.violations += check.request(request, body)
        fault: Fault | None = fake.take_fault(request.method, request.url.path)
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.status is not None:
                return fake.fault_response(fault)
        path = request.url.path
        if path == "/api/v1/oauth/token":
            form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
            if (form.get("client_id"), form.get("client_secret"), form.get("grant_type")) != (
                    CLIENT_ID, CLIENT_SECRET, "client_credentials"):
                return await answer(request, body, 400, {"error": "invalid_client",
                                                         "error_description": "Client authentication failed"})
            token = secrets.token_urlsafe(24)
            fake.tokens[token] = time.monotonic() + fake.token_lifetime
            return await answer(request, body, 200, {"access_token": token, "token_type": "Bearer",
                                                     "expires_in": fake.token_lifetime, "scope": "api-role:1"})
        if not fake._authorised(request):
            return JSONResponse({"httpStatus": 401, "errors": [{"code": "INVALID_TOKEN",
                                                               "description": "Unauthorized"}]}, status_code=401)
        version = path.split("/")[2]
        if path.endswith("/computers-inventory") and request.method == "GET":
            if version not in fake.versions:
                return JSONResponse({"httpStatus": 404, "errors": []}, status_code=404)
            rsql = request.query_params.get("filter", "")
            matches = fake.computers
            if rsql:
                key, _, value = rsql.partition("==")
                section, prop = _FILTER[key]
                matches = [c for c in matches if c[section][prop] == value.strip('"')]
            size = int(request.query_params.get("page-size", "100"))
            sections = set(request.query_params.getlist("section")) or {"GENERAL"}
            names = {"GENERAL": "general", "HARDWARE": "hardware", "OPERATING_SYSTEM": "operatingSystem",
                     "USER_AND_LOCATION": "userAndLocation", "STORAGE": "storage"}
            results = []
            for record in matches[:size]:
                shown = {"id": record["id"], "udid": record["udid"]}
                shown.update({names[s]: record[names[s]] for s in sections if s in names})
                if version == "v1" and "general" in shown:
                    general = dict(shown["general"])
                    contact = general.pop("lastContact", None)
                    general.pop("lastCheckIn", None)
                    if contact:
                        general.setdefault("lastContactTime", contact)
                    shown["general"] = general
                results.append(shown)
            return await answer(request, body, 200, {"totalCount": len(matches), "results": results})
        if path == "/api/v2/mdm/commands":
            sent = json.loads(body)
            fake.commands.append(sent)
            return await answer(request, body, 201, [{"id": secrets.token_hex(8), "href": "/api/v2/mdm/commands/x"}])
        if path.startswith("/api/v1/jamf-management-framework/redeploy/"):
            cid = path.rsplit("/", 1)[1]
            if not any(c["id"] == cid for c in fake.computers):
                return await answer(request, body, 404, {"httpStatus": 404, "errors": [
                    {"code": "INVALID_ID", "description": "Computer not found"}]})
            fake.redeployed.append(cid)
            return await answer(request, body, 201, {"deviceId": cid, "commandUuid": secrets.token_hex(16)})
        return JSONResponse({"httpStatus": 404, "errors": []}, status_code=404)

    return Starlette(routes=[Route("/{path:path}", handle, methods=["GET", "POST"])])


def _tls(folder: Path) -> tuple[Path, Path, Path]:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "MSPclaw test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def jamf_server(folder: Path, fake: JamfFake) -> Iterator[JamfFake]:
    """Serve ``fake`` over HTTPS on a free loopback port in a thread until the generator is closed."""
    ca, cert, key = _tls(folder)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    fake.url = f"https://127.0.0.1:{sock.getsockname()[1]}"
    fake.ca_file = ca
    server = uvicorn.Server(uvicorn.Config(build_app(fake), log_level="warning", lifespan="off", access_log=False,
                                           ssl_certfile=str(cert), ssl_keyfile=str(key),
                                           timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the Jamf fake did not start"
        time.sleep(0.02)
    try:
        yield fake
    finally:
        server.should_exit = True
        thread.join(5)
        sock.close()
