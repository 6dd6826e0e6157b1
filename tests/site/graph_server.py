"""A local Entra ID tenant for tests: an HTTPS token endpoint and a Microsoft Graph v1.0 server.

Spec-checked, not live: every request (path, method, query ``$select``/``$filter`` properties, body)
and every response body is checked against Microsoft's published Graph v1.0 metadata (the CSDL
excerpt in ``tests/data/specs/graph``). A property, segment or parameter the CSDL does not define is
answered 400 (request) and recorded in :attr:`GraphTenant.violations`; the ``graph_tenant``
fixture fails the test at teardown when there are any.

Use it::

    from tests.site.graph_server import graph_tenant  # noqa: F401   (in a conftest.py)

    def test_x(graph_tenant: GraphTenant) -> None:
        e3 = graph_tenant.add_sku("SPE_E3")
        sales = graph_tenant.add_group("Sales")
        alice = graph_tenant.add_user("alice@contoso.test", methods=("password", "phone"),
                                      licences=(e3,), groups=(sales,))
        entra = graph_tenant.entra()                  # a wired mspclaw EntraID (msal + httpx)
        ...
        assert graph_tenant.user(alice)["accountEnabled"] is False

Seeding: :meth:`add_sku`, :meth:`add_group`, :meth:`add_role`, :meth:`add_user` (cloud-only by
default; ``synced=True`` for an account synced from on-prem AD). Inspection: :meth:`user`,
:meth:`methods`, :meth:`members`, :meth:`password_of`, :attr:`requests`. Knobs: :meth:`fail_next`,
:attr:`tap_policy_enabled`, :attr:`granted_roles`, :attr:`page_size`, :meth:`rotate_token_key`.
The token endpoint takes the tenant's :attr:`client_secret` or a certificate from
:meth:`make_certificate` (a JWT client assertion checked against the registered certificate).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import json
import re
import secrets
import ssl
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import httpx
import jwt
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from mspclaw.agent.site.config import EntraConfig
from mspclaw.agent.site.entra import EntraID

SPEC = Path(__file__).parents[1] / "data" / "specs" / "graph" / "graph-v1.0-subset.xml.gz"
_EDM = "{http://docs.oasis-open.org/odata/ns/edm}"
_PRIMITIVES: dict[str, tuple[type, ...]] = {
    "Edm.String": (str,), "Edm.Boolean": (bool,), "Edm.Int32": (int,), "Edm.Int64": (int,), "Edm.Double": (int, float),
    "Edm.Guid": (str,), "Edm.DateTimeOffset": (str,), "Edm.Date": (str,), "Edm.Binary": (str,), "Edm.Duration": (str,),
    "Edm.TimeOfDay": (str,), "Edm.Stream": (str,),
}
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_DEFAULT_USER_SELECT = ("businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone",
                        "officeLocation", "preferredLanguage", "surname", "userPrincipalName", "id")
_ON_PREM_MASTERED = {"accountEnabled", "passwordProfile", "displayName", "givenName", "surname", "userPrincipalName",
                     "mailNickname", "onPremisesImmutableId"}
_QUERY_OPTIONS = {"$select", "$filter", "$top", "$skiptoken", "$count", "$orderby", "$expand", "$search"}
TAP_DISABLED_MESSAGE = ("Converged UserCredentialPolicy does not allow creating or updating this authentication "
                        "method. AuthMethodType [TemporaryAccessPass].")


# --- the CSDL ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Prop:
    name: str
    type: str  # "graph.passwordProfile", "Edm.String" (element type for collections)
    collection: bool
    nullable: bool


@dataclass
class _Type:
    name: str
    base: str | None
    props: dict[str, _Prop]
    navs: dict[str, _Prop]
    open: bool


@dataclass(frozen=True)
class _Action:
    name: str
    binding: str
    params: dict[str, _Prop]
    returns: str | None


def _prop(el: ET.Element) -> _Prop:
    raw = el.get("Type", "")
    collection = raw.startswith("Collection(")
    inner = raw[len("Collection("):-1] if collection else raw
    return _Prop(el.get("Name", ""), inner.replace("microsoft.graph.", "graph."), collection,
                 el.get("Nullable", "true") != "false")


class Csdl:
    """The Graph v1.0 types, actions and entity sets the local server serves, from the stored CSDL."""

    def __init__(self, xml: bytes) -> None:
        root = ET.fromstring(xml)
        schema = next(s for s in root.iter(f"{_EDM}Schema") if s.get("Namespace") == "microsoft.graph")
        self.types: dict[str, _Type] = {}
        self.enums: dict[str, set[str]] = {}
        self.actions: dict[tuple[str, str], _Action] = {}
        self.sets: dict[str, str] = {}
        for el in schema:
            tag, name = el.tag.removeprefix(_EDM), el.get("Name", "")
            if tag in ("EntityType", "ComplexType"):
                base = el.get("BaseType")
                self.types[name] = _Type(
                    name, base.removeprefix("graph.") if base else None,
                    {p.name: p for p in map(_prop, el.findall(f"{_EDM}Property"))},
                    {p.name: p for p in map(_prop, el.findall(f"{_EDM}NavigationProperty"))},
                    el.get("OpenType") == "true")
            elif tag == "EnumType":
                self.enums[name] = {m.get("Name", "") for m in el.findall(f"{_EDM}Member")}
            elif tag == "Action":
                params = [_prop(p) for p in el.findall(f"{_EDM}Parameter")]
                ret = el.find(f"{_EDM}ReturnType")
                action = _Action(name, params[0].type.removeprefix("graph."), {p.name: p for p in params[1:]},
                                 ret.get("Type") if ret is not None else None)
                self.actions[(name, action.binding)] = action
            elif tag == "EntityContainer":
                for s in el.findall(f"{_EDM}EntitySet"):
                    self.sets[s.get("Name", "")] = s.get("EntityType", "").removeprefix("microsoft.graph.")

    def lineage(self, name: str) -> list[str]:
        out: list[str] = []
        current: str | None = name
        while current is not None:
            out.append(current)
            current = self.types[current].base if current in self.types else None
        return out

    def props(self, name: str) -> dict[str, _Prop]:
        out: dict[str, _Prop] = {}
        for t in self.lineage(name):
            out.update(self.types[t].props) if t in self.types else None
        return out

    def navs(self, name: str) -> dict[str, _Prop]:
        out: dict[str, _Prop] = {}
        for t in self.lineage(name):
            if t in self.types:
                out.update(self.types[t].navs)
        return out

    def derived(self, name: str) -> list[str]:
        return [t for t in self.types if name in self.lineage(t)]

    def action(self, name: str, bound_to: str) -> _Action | None:
        for t in self.lineage(bound_to):
            if (name, t) in self.actions:
                return self.actions[(name, t)]
        return None

    def check_object(self, type_name: str, obj: Any, where: str, *, partial: bool = True) -> list[str]:
        """Problems of ``obj`` as a ``type_name`` (or the derived type its ``@odata.type`` names)."""
        if not isinstance(obj, dict):
            return [f"{where}: expected an object of {type_name}, got {type(obj).__name__}"]
        actual = type_name
        odata_type = obj.get("@odata.type")
        if isinstance(odata_type, str):
            actual = odata_type.removeprefix("#microsoft.graph.")
            if actual not in self.derived(type_name):
                return [f"{where}: @odata.type {odata_type} is not a {type_name}"]
        props = self.props(actual)
        problems: list[str] = []
        for key, value in obj.items():
            if key.startswith("@odata.") or "@odata." in key:
                continue
            if key not in props:
                if key in self.navs(actual):
                    continue
                problems.append(f"{where}: {actual} has no property {key!r}")
                continue
            problems += self.check_value(props[key], value, f"{where}.{key}")
        if not partial:
            problems += [f"{where}: {actual}.{p.name} is required" for p in props.values()
                         if not p.nullable and p.name not in obj and p.name != "id"]
        return problems

    def check_value(self, prop: _Prop, value: Any, where: str) -> list[str]:
        if value is None:
            return [] if prop.nullable or prop.collection else [f"{where}: may not be null"]
        if prop.collection:
            if not isinstance(value, list):
                return [f"{where}: expected a collection of {prop.type}"]
            element = _Prop(prop.name, prop.type, False, True)
            return [p for i, v in enumerate(value) for p in self.check_value(element, v, f"{where}[{i}]")]
        name = prop.type.removeprefix("graph.")
        if prop.type in _PRIMITIVES:
            ok = isinstance(value, _PRIMITIVES[prop.type]) and not (isinstance(value, bool)
                                                                    and prop.type != "Edm.Boolean")
            if ok and prop.type == "Edm.Guid":
                ok = bool(_GUID.match(value))
            return [] if ok else [f"{where}: {value!r} is not an {prop.type}"]
        if name in self.enums:
            return [] if value in self.enums[name] else [f"{where}: {value!r} is not a member of {name}"]
        if name in self.types:
            return self.check_object(name, value, where)
        return [f"{where}: type {prop.type} is not in the stored CSDL excerpt"]


@cache
def csdl() -> Csdl:
    return Csdl(gzip.decompress(SPEC.read_bytes()))


# --- request paths --------------------------------------------------------------------------------


@dataclass
class _Target:
    template: str
    type: str
    collection: bool
    keys: list[str] = field(default_factory=list)
    action: _Action | None = None
    ref: bool = False


class _BadRequest(Exception):
    def __init__(self, status: int, code: str, message: str, *, violation: bool = False) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.violation = status, code, message, violation


def _resolve(spec: Csdl, segments: list[str]) -> _Target:
    """Walk the path through entity sets, keys, navigation properties and bound actions of the CSDL."""
    if not segments or segments[0] not in spec.sets:
        raise _BadRequest(400, "BadRequest", f"Resource not found for the segment '{segments[0] if segments else ''}'.",
                          violation=True)
    target = _Target(segments[0], spec.sets[segments[0]], True)
    for i, seg in enumerate(segments[1:], start=1):
        last = i == len(segments) - 1
        if seg == "$ref" and last:
            target.ref, target.template = True, target.template + "/$ref"
        elif target.collection and target.action is None:
            target.keys.append(seg)
            target.collection, target.template = False, target.template + "/{id}"
        elif seg in spec.navs(target.type) and spec.navs(target.type)[seg].type.removeprefix("graph.") in spec.types:
            nav = spec.navs(target.type)[seg]
            target.type, target.collection = nav.type.removeprefix("graph."), nav.collection
            target.template += "/" + seg
        elif (action := spec.action(seg, target.type)) is not None and last:
            target.action, target.template = action, target.template + "/" + seg
        else:
            raise _BadRequest(400, "BadRequest", f"Resource not found for the segment '{seg}'.", violation=True)
    return target


def _allowed(target: _Target) -> set[str]:
    if target.action is not None:
        return {"POST"}
    if target.ref:
        return {"POST", "GET"} if target.collection else {"DELETE"}
    return {"GET", "POST"} if target.collection else {"GET", "PATCH", "DELETE"}


# --- $filter ---------------------------------------------------------------------------------------


_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<word>[A-Za-z_][\w/]*))")


def _parse_filter(text: str) -> list[list[tuple[str, Any]]]:
    """``a eq 'x' and b eq true or c eq 'y'`` -> [[(a, x), (b, True)], [(c, y)]] (or of ands)."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text.rstrip()):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise _BadRequest(400, "BadRequest", f"Invalid filter clause: syntax error at position {pos} in '{text}'.")
        tokens.append(("str", m.group("str")[1:-1].replace("''", "'")) if m.group("str") else ("word", m.group("word")))
        pos = m.end()
    groups: list[list[tuple[str, Any]]] = [[]]
    i = 0
    while i < len(tokens):
        if i + 2 >= len(tokens) or tokens[i][0] != "word" or tokens[i + 1] != ("word", "eq"):
            raise _BadRequest(400, "BadRequest", f"Invalid filter clause: '{text}'.")
        kind, raw = tokens[i + 2]
        value: Any = raw if kind == "str" else {"true": True, "false": False, "null": None}.get(raw, raw)
        groups[-1].append((tokens[i][1], value))
        i += 3
        if i < len(tokens):
            if tokens[i] == ("word", "or"):
                groups.append([])
            elif tokens[i] != ("word", "and"):
                raise _BadRequest(400, "BadRequest", f"Invalid filter clause: '{text}'.")
            i += 1
    return groups


# --- PKI ------------------------------------------------------------------------------------------


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(when: dt.datetime | None = None) -> str:
    return (when or _now()).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cert(subject: str, key: Any, issuer_name: x509.Name | None, issuer_key: Any, *, ca: bool,
          ip: str | None = None) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name or name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(_now() - dt.timedelta(minutes=5)).not_valid_after(_now() + dt.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ip:
        import ipaddress

        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
                                        critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


# --- the tenant -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    """One request the server answered (token endpoint and Graph)."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int
    authorization: str | None


@dataclass
class _Failure:
    status: int
    code: str
    message: str
    retry_after: str | None
    match: str | None
    times: int


_METHOD_SAMPLES: dict[str, dict[str, Any]] = {
    "password": {"password": None},
    "phone": {"phoneNumber": "+1 5555550100", "phoneType": "mobile", "smsSignInState": "notEnabled"},
    "microsoftAuthenticator": {"displayName": "iPhone 15", "deviceTag": "SoftwareTokenActivated",
                               "phoneAppVersion": "6.8.7"},
    "softwareOath": {"secretKey": None},
    "fido2": {"displayName": "YubiKey 5", "model": "YubiKey 5 NFC", "aaGuid": "cb69481e-8ff7-4039-93ec-0a2729a154a8",
              "attestationLevel": "attested", "attestationCertificates": []},
    "email": {"emailAddress": "alice.private@example.org"},
    "windowsHelloForBusiness": {"displayName": "LAPTOP-01", "keyStrength": "normal"},
    "temporaryAccessPass": {"isUsable": True, "isUsableOnce": False, "lifetimeInMinutes": 60,
                            "methodUsabilityReason": "EnabledByPolicy", "startDateTime": "2026-01-01T00:00:00Z",
                            "temporaryAccessPass": None},
}
_METHOD_NAVS = {f"{kind}Methods": kind for kind in _METHOD_SAMPLES}


class GraphTenant:
    """One Entra ID tenant: token endpoint + Graph v1.0 over HTTPS on 127.0.0.1 (see the module doc)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.tenant_id = str(uuid.uuid4())
        self.client_id = str(uuid.uuid4())
        self.client_secret = "s3cr3t~" + secrets.token_urlsafe(24)
        self.granted_roles: list[str] = ["User.ReadWrite.All", "UserAuthenticationMethod.ReadWrite.All",
                                         "GroupMember.ReadWrite.All", "Directory.Read.All"]
        self.tap_policy_enabled = True
        self.page_size = 100
        self.requests: list[Recorded] = []
        self.violations: list[str] = []
        self.tokens_issued = 0
        self._failures: list[_Failure] = []
        self._lock = threading.RLock()
        self._token_key = secrets.token_bytes(32)
        self._certificates: dict[str, x509.Certificate] = {}
        self._users: dict[str, dict[str, Any]] = {}
        self._passwords: dict[str, str] = {}
        self._methods: dict[str, list[dict[str, Any]]] = {}
        self._groups: dict[str, dict[str, Any]] = {}
        self._roles: dict[str, dict[str, Any]] = {}
        self._members: dict[str, set[str]] = {}  # group or role id -> user ids
        self._skus: dict[str, dict[str, Any]] = {}
        domain = {"name": "contoso.test", "isDefault": True, "isInitial": False, "type": "Managed",
                  "capabilities": "Email, OfficeCommunicationsOnline"}
        self.organization = {"id": self.tenant_id, "displayName": "Contoso (local test tenant)",
                             "verifiedDomains": [domain]}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._clients: list[Any] = []
        self.sleeps: list[float] = []
        self._make_pki()

    # --- lifecycle ----------------------------------------------------------------------------------

    def _make_pki(self) -> None:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = _cert("MSPclaw test CA", ca_key, None, ca_key, ca=True)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert("127.0.0.1", key, ca.subject, ca_key, ca=False, ip="127.0.0.1")
        self.ca_file = self.dir / "ca.pem"
        self.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        (self.dir / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM) + _pem_key(key))

    def start(self) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.dir / "server.pem")
        tenant = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                tenant._serve(self)

            do_POST = do_PATCH = do_DELETE = do_PUT = do_GET

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), name="graph-server",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving (idempotent); clients made by :meth:`entra` and friends are closed."""
        for client in self._clients:
            client.close()
        self._clients.clear()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    @classmethod
    @contextlib.contextmanager
    def running(cls, directory: Path) -> Iterator[GraphTenant]:
        tenant = cls(directory)
        tenant.start()
        try:
            yield tenant
        finally:
            tenant.stop()

    @property
    def authority_host(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def graph_url(self) -> str:
        return f"https://127.0.0.1:{self.port}/v1.0"

    # --- wiring an adapter --------------------------------------------------------------------------

    def config(self, *, certificate: Path | None = None, **overrides: Any) -> EntraConfig:
        """An ``EntraConfig`` for this tenant; the client secret is written to a 0600 file."""
        secret_file = self.dir / "client-secret"
        secret_file.write_text(self.client_secret + "\n")
        secret_file.chmod(0o600)
        values: dict[str, Any] = {
            "tenant_id": self.tenant_id, "client_id": self.client_id, "authority_host": self.authority_host,
            "graph_url": self.graph_url, "ca_file": self.ca_file,
            **({"certificate_file": certificate} if certificate else {"client_secret_file": secret_file}),
        }
        return EntraConfig(**{**values, **overrides})

    def token_session(self) -> requests.Session:
        """A requests session for msal that trusts this tenant's CA (and ignores REQUESTS_CA_BUNDLE)."""
        session = requests.Session()
        session.trust_env = False
        session.verify = str(self.ca_file)
        self._clients.append(session)
        return session

    def http_client(self) -> httpx.Client:
        client = httpx.Client(verify=ssl.create_default_context(cafile=str(self.ca_file)), trust_env=False,
                              timeout=10)
        self._clients.append(client)
        return client

    def entra(self, *, certificate: Path | None = None, **overrides: Any) -> EntraID:
        """The real adapter wired to this tenant (msal + httpx); retry sleeps go to :attr:`sleeps`."""
        adapter = EntraID(self.config(certificate=certificate, **overrides), http=self.http_client(),
                          token_http=self.token_session(), sleep=self.sleeps.append)
        self._clients.append(adapter)
        return adapter

    def make_certificate(self, *, register: bool = True) -> Path:
        """A new RSA key + self-signed certificate for the app, as one 0600 PEM file; registered with the
        tenant (so the token endpoint accepts assertions signed with it) unless ``register=False``."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cert = _cert("mspclaw-site-agent", key, None, key, ca=False)
        path = self.dir / f"app-{len(self._certificates)}.pem"
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + _pem_key(key))
        path.chmod(0o600)
        if register:
            self._certificates[cert.fingerprint(hashes.SHA1()).hex()] = cert
        return path

    # --- seeding ------------------------------------------------------------------------------------

    def add_sku(self, part_number: str, *, sku_id: str | None = None, units: int = 25) -> str:
        """A subscribed licence; returns its skuId."""
        sku = sku_id or str(uuid.uuid4())
        self._skus[sku] = {"id": f"{self.tenant_id}_{sku}", "skuId": sku, "skuPartNumber": part_number,
                           "accountId": self.tenant_id, "accountName": "contoso", "appliesTo": "User",
                           "capabilityStatus": "Enabled", "consumedUnits": 0, "servicePlans": [],
                           "subscriptionIds": [str(uuid.uuid4())],
                           "prepaidUnits": {"enabled": units, "lockedOut": 0, "suspended": 0, "warning": 0}}
        return sku

    def add_group(self, display_name: str, *, role_assignable: bool = False, dynamic: bool = False,
                  members: Sequence[str] = ()) -> str:
        """A security group with ``members`` (user ids); returns its id."""
        gid = str(uuid.uuid4())
        self._groups[gid] = {"id": gid, "displayName": display_name, "description": None, "mail": None,
                             "mailEnabled": False, "securityEnabled": True,
                             "mailNickname": re.sub(r"\W", "", display_name) or "group",
                             "groupTypes": ["DynamicMembership"] if dynamic else [],
                             "isAssignableToRole": role_assignable,
                             "membershipRule": "user.department -eq \"Sales\"" if dynamic else None}
        self._members[gid] = set(members)
        return gid

    def add_role(self, display_name: str) -> str:
        """An activated directory role (e.g. "Global Administrator"); returns its id."""
        rid = str(uuid.uuid4())
        self._roles[rid] = {"id": rid, "displayName": display_name, "description": f"{display_name} role",
                            "roleTemplateId": str(uuid.uuid4())}
        self._members[rid] = set()
        return rid

    def add_user(self, upn: str, *, display_name: str | None = None, mail: str | None = None, enabled: bool = True,
                 synced: bool = False, sam: str | None = None, immutable_id: str | None = None,
                 methods: Sequence[str] = ("password",), licences: Sequence[str] = (), groups: Sequence[str] = (),
                 roles: Sequence[str] = (), usage_location: str | None = "US") -> str:
        """A user (cloud-only, or ``synced`` from on-prem AD); ``licences`` are skuIds from :meth:`add_sku`,
        ``groups``/``roles`` ids from :meth:`add_group`/:meth:`add_role`, ``methods`` method types
        (``password phone microsoftAuthenticator softwareOath fido2 email windowsHelloForBusiness
        temporaryAccessPass``). Returns the user's id."""
        uid = str(uuid.uuid4())
        nick = upn.split("@")[0]
        self._users[uid] = {
            "id": uid, "userPrincipalName": upn, "mail": mail if mail is not None else upn,
            "displayName": display_name or nick.replace(".", " ").title(), "mailNickname": nick,
            "givenName": None, "surname": None, "businessPhones": [], "jobTitle": None, "mobilePhone": None,
            "officeLocation": None, "preferredLanguage": None, "accountEnabled": enabled,
            "onPremisesSyncEnabled": True if synced else None,
            "onPremisesImmutableId": (immutable_id or "x" + secrets.token_hex(8)) if synced else None,
            "onPremisesSamAccountName": (sam or nick[:20]) if synced else None,
            "usageLocation": usage_location, "signInSessionsValidFromDateTime": "2026-01-01T00:00:00Z",
            "assignedLicenses": [], "passwordProfile": None,
        }
        self._methods[uid] = [self._method(kind) for kind in methods]
        for sku in licences:
            self._users[uid]["assignedLicenses"].append({"skuId": sku, "disabledPlans": []})
            self._skus[sku]["consumedUnits"] += 1
        for gid in (*groups, *roles):
            self._members[gid].add(uid)
        return uid

    @staticmethod
    def _method(kind: str) -> dict[str, Any]:
        return {"@odata.type": f"#microsoft.graph.{kind}AuthenticationMethod", "id": str(uuid.uuid4()),
                **({"createdDateTime": "2025-05-01T10:00:00Z"} if kind != "password" else {}),
                **_METHOD_SAMPLES[kind]}

    # --- inspection ---------------------------------------------------------------------------------

    def user(self, key: str) -> dict[str, Any]:
        """The stored user (by id or UPN), Graph-shaped; ``passwordProfile`` holds the force-change flag."""
        return dict(self._user(key) or {})

    def password_of(self, key: str) -> str | None:
        user = self._user(key)
        return self._passwords.get(user["id"]) if user else None

    def methods(self, key: str) -> list[str]:
        """The method types the user has registered."""
        user = self._user(key)
        return [m["@odata.type"].removeprefix("#microsoft.graph.").removesuffix("AuthenticationMethod")
                for m in self._methods.get(user["id"] if user else "", [])]

    def members(self, group_or_role: str) -> set[str]:
        """UPNs of the members of a group or role (by id or display name)."""
        gid = next((g for g, v in {**self._groups, **self._roles}.items()
                    if group_or_role in (g, v["displayName"])), group_or_role)
        return {self._users[u]["userPrincipalName"] for u in self._members.get(gid, set())}

    def licences(self, key: str) -> list[str]:
        user = self._user(key)
        return [lic["skuId"] for lic in user["assignedLicenses"]] if user else []

    def graph_requests(self, method: str | None = None) -> list[Recorded]:
        return [r for r in self.requests if "/v1.0/" in r.path and (method is None or r.method == method)]

    # --- knobs --------------------------------------------------------------------------------------

    def fail_next(self, status: int, *, code: str | None = None, message: str | None = None,
                  retry_after: float | None = None, times: int = 1, match: str | None = None) -> None:
        """Answer the next ``times`` Graph requests (whose ``"METHOD /path"`` contains ``match``) with
        ``status`` and a Graph error body; 429/503 may carry ``Retry-After``."""
        default_codes = {401: "InvalidAuthenticationToken", 403: "Authorization_RequestDenied",
                         404: "Request_ResourceNotFound", 429: "TooManyRequests", 503: "serviceNotAvailable",
                         504: "UnknownError", 500: "UnknownError"}
        default_messages = {401: "Access token has expired or is not yet valid.",
                            403: "Insufficient privileges to complete the operation.",
                            404: "Resource does not exist or one of its queried reference-property objects "
                                 "are not present.",
                            429: "Too many requests.", 503: "Service unavailable."}
        self._failures.append(_Failure(status, code or default_codes.get(status, "generalException"),
                                       message or default_messages.get(status, "An error occurred."),
                                       None if retry_after is None else f"{retry_after:g}", match, times))

    def clear_failures(self) -> None:
        """Forget failures queued by :meth:`fail_next` that were not used up."""
        self._failures.clear()

    def rotate_token_key(self) -> None:
        """Invalidate every token issued so far (Graph then answers 401 InvalidAuthenticationToken)."""
        self._token_key = secrets.token_bytes(32)

    # --- HTTP ---------------------------------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        body: Any = None
        with self._lock:
            try:
                if url.path.startswith(f"/{self.tenant_id}/"):
                    body = {k: v[-1] for k, v in parse_qs(raw.decode()).items()} if raw else None
                    status, headers, payload = self._identity(handler.command, url.path, body)
                elif url.path.startswith("/v1.0/"):
                    try:
                        body = json.loads(raw) if raw else None
                    except ValueError:
                        body = raw.decode(errors="replace")
                    status, headers, payload = self._graph(handler.command, url.path, query, body,
                                                           handler.headers.get("Authorization"))
                else:
                    status, headers, payload = 404, {}, {"error": "not_found"}
            except Exception as exc:  # a bug of this server: fail the test, answer 500
                self.violations.append(f"server error on {handler.command} {url.path}: {exc!r}")
                status, headers, payload = 500, {}, {"error": {"code": "UnknownError", "message": "local bug"}}
            self.requests.append(Recorded(handler.command, url.path, query, body, status,
                                          handler.headers.get("Authorization")))
        data = b"" if payload is None else json.dumps(payload).encode()
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        if payload is not None:
            handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.write(data)

    # --- the identity platform ----------------------------------------------------------------------

    def _identity(self, method: str, path: str, form: dict[str, str] | None
                  ) -> tuple[int, dict[str, str], Any]:
        base = f"{self.authority_host}/{self.tenant_id}"
        if method == "GET" and path == f"/{self.tenant_id}/v2.0/.well-known/openid-configuration":
            return 200, {}, {
                "issuer": f"{base}/v2.0", "token_endpoint": f"{base}/oauth2/v2.0/token",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "jwks_uri": f"{base}/discovery/v2.0/keys", "response_types_supported": ["code", "token"],
                "subject_types_supported": ["pairwise"], "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt",
                                                          "client_secret_basic"],
                "tenant_region_scope": "EU", "cloud_instance_name": "microsoftonline.com"}
        if method != "POST" or path != f"/{self.tenant_id}/oauth2/v2.0/token" or form is None:
            return 404, {}, {"error": "invalid_request", "error_description": "AADSTS900561: unknown endpoint"}

        def refuse(code: int, error: str, description: str) -> tuple[int, dict[str, str], Any]:
            return code, {}, {"error": error, "error_description": f"{description}\r\nTrace ID: {uuid.uuid4()}",
                              "error_codes": [int(description[6:].split(":")[0])], "timestamp": _iso(),
                              "trace_id": str(uuid.uuid4()), "correlation_id": str(uuid.uuid4())}

        if form.get("grant_type") != "client_credentials":
            return refuse(400, "unsupported_grant_type", "AADSTS70003: The app requested an unsupported grant type.")
        if form.get("client_id") != self.client_id:
            return refuse(400, "unauthorized_client", f"AADSTS700016: Application with identifier "
                          f"'{form.get('client_id')}' was not found in the directory.")
        if form.get("scope") != f"{self.authority_host}/.default":
            return refuse(400, "invalid_scope", f"AADSTS1002012: The provided value for scope "
                          f"{form.get('scope')} is not valid.")
        if "client_assertion" in form:
            problem = self._check_assertion(form["client_assertion"], f"{base}/oauth2/v2.0/token")
            if problem:
                return refuse(401, "invalid_client", f"AADSTS700027: Client assertion failed signature "
                              f"validation. {problem}")
        elif form.get("client_secret") != self.client_secret:
            return refuse(401, "invalid_client", "AADSTS7000215: Invalid client secret provided. Ensure the secret "
                          "being sent in the request is the client secret value, not the client secret ID.")
        self.tokens_issued += 1
        return 200, {}, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                         "access_token": self.access_token()}

    def access_token(self) -> str:
        """A Graph access token for the app, as the token endpoint issues (for raw requests in tests)."""
        now = int(_now().timestamp())
        return jwt.encode({"aud": self.authority_host, "iss": f"https://sts.windows.net/{self.tenant_id}/",
                           "tid": self.tenant_id, "appid": self.client_id, "roles": list(self.granted_roles),
                           "iat": now, "nbf": now, "exp": now + 3600}, self._token_key, algorithm="HS256")

    def _check_assertion(self, assertion: str, audience: str) -> str | None:
        try:
            header = jwt.get_unverified_header(assertion)
            cert = None
            if "x5t" in header:
                thumb = jwt.utils.base64url_decode(header["x5t"]).hex()
                cert = self._certificates.get(thumb)
            elif "x5t#S256" in header:
                thumb = jwt.utils.base64url_decode(header["x5t#S256"]).hex()
                cert = next((c for c in self._certificates.values()
                             if c.fingerprint(hashes.SHA256()).hex() == thumb), None)
            public_key = cert.public_key() if cert is not None else None
            if not isinstance(public_key, rsa.RSAPublicKey):  # make_certificate registers RSA keys only
                return "Key was not found."
            claims = jwt.decode(assertion, public_key, algorithms=["RS256", "PS256"], audience=audience,
                                issuer=self.client_id)
        except jwt.PyJWTError as exc:
            return f"Invalid assertion: {type(exc).__name__}."
        return None if claims.get("sub") == self.client_id else "Invalid subject."

    # --- Graph --------------------------------------------------------------------------------------

    def _graph(self, method: str, path: str, query: dict[str, str], body: Any, authorization: str | None
               ) -> tuple[int, dict[str, str], Any]:
        try:
            token = (authorization or "").removeprefix("Bearer ")
            try:
                jwt.decode(token, self._token_key, algorithms=["HS256"], audience=self.authority_host)
            except jwt.PyJWTError:
                raise _BadRequest(401, "InvalidAuthenticationToken", "Access token validation failure. Invalid "
                                  "audience or signature.") from None
            segments = [unquote(s) for s in path.removeprefix("/v1.0/").split("/") if s]
            spec = csdl()
            target = _resolve(spec, segments)
            if method not in _allowed(target):
                raise _BadRequest(405, "Request_BadRequest", f"The request method {method} is not allowed for "
                                  f"{target.template}.", violation=True)
            self._check_request(spec, method, target, query, body)
            failure = self._pop_failure(f"{method} {path}")
            if failure is not None:
                headers = {"Retry-After": failure.retry_after} if failure.retry_after else {}
                return failure.status, headers, self._error(failure.code, failure.message)
            handler = getattr(self, "_" + method.lower() + "_" + re.sub(r"\W", "_", target.template), None)
            if handler is None and target.template.startswith("users/{id}/authentication/") \
                    and target.template.endswith("Methods/{id}") and method == "DELETE":
                handler = self._delete_method
            if handler is None:
                raise _BadRequest(501, "NotImplemented", f"the local Graph server does not serve {method} "
                                  f"{target.template}", violation=True)
            status, headers, payload = handler(target, query, body)
            if payload is not None:
                self._check_response(spec, method, target, payload)
            return status, headers, payload
        except _BadRequest as exc:
            if exc.violation:
                self.violations.append(f"{method} {path}: {exc.message}")
            return exc.status, {}, self._error(exc.code, exc.message)

    def _error(self, code: str, message: str) -> dict[str, Any]:
        return {"error": {"code": code, "message": message, "innerError": {
            "date": _iso(), "request-id": str(uuid.uuid4()), "client-request-id": str(uuid.uuid4())}}}

    def _pop_failure(self, request: str) -> _Failure | None:
        for failure in self._failures:
            if failure.match is None or failure.match in request:
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
                return failure
        return None

    def _check_request(self, spec: Csdl, method: str, target: _Target, query: dict[str, str], body: Any) -> None:
        problems: list[str] = [f"unknown query option {k}" for k in query if k not in _QUERY_OPTIONS]
        known = {p for t in [target.type, *spec.derived(target.type)] for p in [*spec.props(t), *spec.navs(t)]}
        for name in query.get("$select", "").split(",") if query.get("$select") else []:
            if name not in known:
                problems.append(f"$select: {target.type} has no property {name!r}")
        if "$filter" in query:
            for group in _parse_filter(query["$filter"]):
                problems += [f"$filter: {target.type} has no property {p!r}" for p, _ in group
                             if p not in spec.props(target.type)]
        if "$top" in query and not query["$top"].isdigit():
            problems.append("$top must be an integer")
        if target.action is not None:
            args = body or {}
            if not isinstance(args, dict):
                problems.append("action parameters must be a JSON object")
            else:
                problems += [f"{target.action.name} has no parameter {k!r}" for k in args
                             if k not in target.action.params]
                problems += [f"{target.action.name}: parameter {p.name} is required"
                             for p in target.action.params.values() if not p.nullable and p.name not in args]
                problems += [q for k, v in args.items() if k in target.action.params
                             for q in spec.check_value(target.action.params[k], v, f"{target.action.name}.{k}")]
        elif target.ref and method == "POST":
            if not isinstance(body, dict) or set(body) != {"@odata.id"} or not isinstance(body["@odata.id"], str):
                problems.append("a $ref body is exactly {\"@odata.id\": url}")
        elif method in ("POST", "PATCH"):
            problems += spec.check_object(target.type, body, f"{method} body", partial=True)
        elif body is not None:
            problems.append(f"{method} takes no body")
        if problems:
            raise _BadRequest(400, "BadRequest", "; ".join(problems), violation=True)

    def _check_response(self, spec: Csdl, method: str, target: _Target, payload: Any) -> None:
        problems: list[str] = []
        if target.action is not None:
            returns = target.action.returns or ""
            if returns.startswith("Edm."):
                problems += spec.check_value(_Prop("value", returns, False, False), payload.get("value"), "value")
            else:
                problems += spec.check_object(returns.removeprefix("graph."), payload, "response")
        elif target.collection and not target.ref and method == "GET":
            extra = [k for k in payload if k != "value" and not k.startswith("@odata.")]
            problems += [f"collection response has {k!r}" for k in extra]
            for i, item in enumerate(payload.get("value", [])):
                problems += spec.check_object(target.type, item, f"value[{i}]")
        else:
            problems += spec.check_object(target.type, payload, "response")
        if problems:
            self.violations.append(f"response to {target.template}: " + "; ".join(problems))

    # --- Graph: helpers -----------------------------------------------------------------------------

    def _user(self, key: str) -> dict[str, Any] | None:
        if key in self._users:
            return self._users[key]
        return next((u for u in self._users.values() if u["userPrincipalName"].lower() == key.lower()), None)

    def _need_user(self, key: str) -> dict[str, Any]:
        user = self._user(key)
        if user is None:
            raise _BadRequest(404, "Request_ResourceNotFound", f"Resource '{key}' does not exist or one of its "
                              "queried reference-property objects are not present.")
        return user

    def _project(self, obj: dict[str, Any], query: dict[str, str], default: Sequence[str] | None = None
                 ) -> dict[str, Any]:
        select = query.get("$select")
        names = select.split(",") if select else default
        out = {k: v for k, v in obj.items() if k.startswith("@odata.")}
        if names is None:
            return {**obj, **out}
        return {**out, "id": obj["id"], **{n: obj.get(n) for n in names if n in obj or not n.startswith("@")}}

    def _page(self, path: str, query: dict[str, str], items: list[dict[str, Any]]) -> dict[str, Any]:
        top = int(query.get("$top", "0") or 0)
        size = min(self.page_size, top) if top else self.page_size
        start = int(query.get("$skiptoken", "0") or 0)
        page: dict[str, Any] = {"@odata.context": f"{self.graph_url}/$metadata#{path}",
                                "value": items[start:start + size]}
        if start + size < len(items) and not top:
            page["@odata.nextLink"] = f"{self.graph_url}/{path}?" + urlencode({**query, "$skiptoken": start + size})
        return page

    def _matches(self, obj: dict[str, Any], query: dict[str, str]) -> bool:
        if "$filter" not in query:
            return True
        return any(all(str(obj.get(p) or "").lower() == str(v).lower() if isinstance(v, str) else obj.get(p) == v
                       for p, v in group) for group in _parse_filter(query["$filter"]))

    def _directory_object(self, oid: str) -> dict[str, Any]:
        if oid in self._groups:
            return {"@odata.type": "#microsoft.graph.group", **self._groups[oid]}
        return {"@odata.type": "#microsoft.graph.directoryRole", **self._roles[oid]}

    # --- Graph: handlers ----------------------------------------------------------------------------

    Reply = tuple[int, dict[str, str], Any]

    def _get_organization(self, target: _Target, query: dict[str, str], body: Any) -> Reply:
        return 200, {}, self._page("organization", query, [self._project(self.organization, query)])

    def _get_subscribedSkus(self, target: _Target, query: dict[str, str], body: Any) -> Reply:
        return 200, {}, self._page("subscribedSkus", query, [self._project(s, query) for s in self._skus.values()])

    def _get_users(self, target: _Target, query: dict[str, str], body: Any) -> Reply:
        found = [self._project(u, query, _DEFAULT_USER_SELECT) for u in self._users.values()
                 if self._matches(u, query)]
        return 200, {}, self._page("users", query, found)

    def _get_users__id_(self, target: _Target, query: dict[str, str], body: Any) -> Reply:
        user = self._need_user(target.keys[0])
        return 200, {}, {"@odata.context": f"{self.graph_url}/$metadata#users/$entity",
                         **self._project(user, query, _DEFAULT_USER_SELECT)}

    def _post_users(self, target: _Target, query: dict[str, str], body: Any) -> Reply:
        missing = [k for k in ("accountEnabled", "displayName", "mailNickname", "userPrincipalName",
                               "passwordProfile") if k not in body]
        if missing:
            raise _BadRequest(400, "Request_BadRequest", f"Property '{missing[0]}' is required.")
        if self._user(body["userPrincipalName"]):
            raise _BadRequest(400, "Request_BadRequest", "Another object with the same value for property "
                              "userPrincipalName already exists.")
        password = body["passwordProfile"].get("password") or ""
        if len(password) < 8:
            raise _BadRequest(400, "Request_BadRequest", "The specified password does not comply with password "
                              "complexity requirements. Please provide a different password.")
        uid = self.add_user(body["userPrincipalName"], display_name=body["displayName"], mail=None,
                            enabled=body["accountEnabled"], usage_location=body.get("usageLocation"))
        user = self._users[uid]
        user["mail"] = None
        user.update({k: v for k, v in body.items() if k not in ("passwordProfile",)})
        self._passwords[uid] = password
        user["passwordProfile"] = {"password": None, "forceChangePasswordNextSignIn":
                                   bool(body["passwordProfile"].get("forceChangePasswordNextSignIn"))}
        return 201, {}, {"@odata.context": f"{self.graph_url}/$metadata#users/$entity",
                         **self._project(user, {}, _DEFAULT_USER_SELECT)}

    def _patch_users__id_(self, target: _Target, query: dict[str, str], body: Any) -> Reply:
        user = self._need_user(target.keys[0])
        if user["onPremisesSyncEnabled"] and set(body) & _ON_PREM_MASTERED:
            raise _BadRequest(400, "Request_BadRequest", "Unable to update the specified properties for on-premises "
                              "mastered Directory Sync objects or objects currently undergoing migration.")
        changes = dict(body)
        if "passwordProfile" in changes:
            profile = changes.pop("passwordProfile")
            password = profile.get("password") or ""
            if len(password) < 8 or password.isalnum():
                raise _BadRequest(400, "Request_BadRequest", "The specified password does not comply with password "
                                  "complexity requirements. Please provide a different password.")
            self._passwords[user["id"]] = password
            user["passwordProfile"] = {"password": None, "forceChangePasswordNextSignIn":
                                       bool(profile.get("forceChangePasswordNextSignIn"))}
        user.update(changes)
        return 204, {}, None

    def _get_users__id__memberOf(self, target: _Target, query: dict[str, str], body: Any) -> Reply:
        uid = self._need_user(target.keys[0])["id"]
        objects = [self._project(self._directory_object(g), query) for g, members in self._members.items()
                   if uid in members]
        return 200, {}, self._page(f"users/{uid}/memberOf", query, objects)

    def _get_users__id__authentication_methods(self, target: _Target, query: dict[str, str], body: Any) -> Reply:
        uid = self._need_user(target.keys[0])["id"]
        return 200, {}, self._page(f"users/{uid}/authentication/methods", query, list(self._methods[uid]))

    def _delete_method(self, target: _Target, query: dict[str, str], body: Any) -> Reply:
        uid = self._need_user(target.keys[0])["id"]
        kind = _METHOD_NAVS[target.template.split("/")[3]]
        odata = f"#microsoft.graph.{kind}AuthenticationMethod"
        match = [m for m in self._methods[uid] if m["id"] == target.keys[1] and m["@odata.type"] == odata]
        if not match:
            raise _BadRequest(404, "itemNotFound", "The requested authentication method was not found.")
        self._methods[uid].remove(match[0])
        return 204, {}, None

    def _post_users__id__authentication_temporaryAccessPassMethods(self, target: _Target, query: dict[str, str],
                                                                   body: Any) -> Reply:
        uid = self._need_user(target.keys[0])["id"]
        if not self.tap_policy_enabled:
            raise _BadRequest(400, "badRequest", TAP_DISABLED_MESSAGE)
        method = self._method("temporaryAccessPass")
        method.update({k: v for k, v in body.items()})
        self._methods[uid].append(method)
        tap = secrets.token_urlsafe(6)[:8]
        return 201, {}, {"@odata.context": f"{self.graph_url}/$metadata#users('{uid}')/authentication/"
                         "temporaryAccessPassMethods/$entity", **method, "temporaryAccessPass": tap,
                         "startDateTime": _iso()}

    def _post_users__id__revokeSignInSessions(self, target: _Target, query: dict[str, str], body: Any) -> Reply:
        user = self._need_user(target.keys[0])
        user["signInSessionsValidFromDateTime"] = _iso()
        return 200, {}, {"@odata.context": f"{self.graph_url}/$metadata#Edm.Boolean", "value": True}

    def _post_users__id__assignLicense(self, target: _Target, query: dict[str, str], body: Any) -> Reply:
        user = self._need_user(target.keys[0])
        held = {lic["skuId"] for lic in user["assignedLicenses"]}
        for lic in body["addLicenses"]:
            sku = self._skus.get(lic["skuId"])
            if sku is None:
                raise _BadRequest(400, "Request_BadRequest", f"License {lic['skuId']} does not correspond to a "
                                  "valid company License.")
            if not user.get("usageLocation"):
                raise _BadRequest(400, "Request_BadRequest", "License assignment cannot be done for user with "
                                  "invalid usage location.")
            if lic["skuId"] not in held and sku["consumedUnits"] >= sku["prepaidUnits"]["enabled"]:
                raise _BadRequest(400, "Request_BadRequest", f"Subscription with SKU {lic['skuId']} does not have "
                                  "any available licenses.")
        for sku_id in body["removeLicenses"]:
            if sku_id not in held:
                raise _BadRequest(400, "Request_BadRequest", f"User does not have a corresponding license "
                                  f"{sku_id}.")
        for sku_id in body["removeLicenses"]:
            user["assignedLicenses"] = [lic for lic in user["assignedLicenses"] if lic["skuId"] != sku_id]
            self._skus[sku_id]["consumedUnits"] -= 1
        for lic in body["addLicenses"]:
            if lic["skuId"] not in held:
                user["assignedLicenses"].append({"skuId": lic["skuId"], "disabledPlans": lic.get("disabledPlans", [])})
                self._skus[lic["skuId"]]["consumedUnits"] += 1
        return 200, {}, {"@odata.context": f"{self.graph_url}/$metadata#users/$entity",
                         **self._project(user, {}, _DEFAULT_USER_SELECT)}

    def _get_groups(self, target: _Target, query: dict[str, str], body: Any) -> Reply:
        found = [self._project(g, query) for g in self._groups.values() if self._matches(g, query)]
        return 200, {}, self._page("groups", query, found)

    def _get_groups__id_(self, target: _Target, query: dict[str, str], body: Any) -> Reply:
        group = self._groups.get(target.keys[0])
        if group is None:
            raise _BadRequest(404, "Request_ResourceNotFound", f"Resource '{target.keys[0]}' does not exist.")
        return 200, {}, {"@odata.context": f"{self.graph_url}/$metadata#groups/$entity", **self._project(group, query)}

    def _post_groups__id__members__ref(self, target: _Target, query: dict[str, str], body: Any) -> Reply:
        gid = target.keys[0]
        if gid not in self._groups:
            raise _BadRequest(404, "Request_ResourceNotFound", f"Resource '{gid}' does not exist.")
        ref = body["@odata.id"]
        if not ref.startswith(f"{self.graph_url}/directoryObjects/"):
            raise _BadRequest(400, "Request_BadRequest", f"Invalid URL format specified in @odata.id: {ref}",
                              violation=True)
        user = self._need_user(ref.rsplit("/", 1)[1])
        if "DynamicMembership" in self._groups[gid]["groupTypes"]:
            raise _BadRequest(400, "Request_BadRequest", "Insufficient privileges to complete the operation. "
                              "Members of a dynamic group cannot be changed.")
        if user["id"] in self._members[gid]:
            raise _BadRequest(400, "Request_BadRequest", "One or more added object references already exist for "
                              "the following modified properties: 'members'.")
        self._members[gid].add(user["id"])
        return 204, {}, None

    def _delete_groups__id__members__id___ref(self, target: _Target, query: dict[str, str], body: Any) -> Reply:
        gid, uid = target.keys
        if gid not in self._groups or uid not in self._members[gid]:
            raise _BadRequest(404, "Request_ResourceNotFound", f"Resource '{uid}' does not exist or one of its "
                              "queried reference-property objects are not present.")
        self._members[gid].discard(uid)
        return 204, {}, None


@pytest.fixture
def graph_tenant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GraphTenant]:
    """A running local tenant (token endpoint + spec-checked Graph); fails the test on any spec violation."""
    with GraphTenant.running(tmp_path_factory.mktemp("graph")) as tenant:
        yield tenant
    assert not tenant.violations, "Graph v1.0 spec violations:\n" + "\n".join(tenant.violations)
