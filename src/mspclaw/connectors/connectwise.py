"""ConnectWise Manage (ConnectWise PSA), over its REST API (``/apis/3.0``).

**Site and codebase.** ``site`` is the ConnectWise host (``api-na.myconnectwise.net``,
``api-eu.…``, ``api-au.…``, ``api-staging.connectwisedev.com`` or your on-premises host); a full
origin such as ``http://127.0.0.1:8080`` is taken as given (tests). The codebase is discovered on
first use from ``GET https://{site}/login/companyinfo/{company}`` (no credentials; its
``Codebase``, e.g. ``v2025_1/``) unless ``codebase=`` is configured; every call then goes to
``https://{site}/{codebase}apis/3.0``.

**Auth.** Every call carries ``Authorization: Basic base64("{company}+{publicKey}:{privateKey}")``
(an API member's keys), ``clientId: <GUID>`` (developer.connectwise.com/ClientID) and
``Accept: application/vnd.connectwise.com+json; version=2025.16``. ConnectWise answers 401 for bad
keys or a missing clientId: :class:`~mspclaw.errors.PSAAuthError`. Error bodies
(``{"code", "message", "errors": [{"code", "message", "resource", "field"}]}``) are quoted in
the exception; 404 is :class:`PSANotFound`, 429 and 5xx are retried by
:mod:`mspclaw.connectors.http` (ConnectWise publishes no number, so no client-side limit is set
unless ``rate_per_minute`` is given).

**Mapping a ticket** (``GET /service/tickets/{id}`` and its notes):

* ``company`` ← ``company.identifier`` (e.g. ``ACME``; ``mspclaw clients add … --psa connectwise=ACME``);
* ``requester`` ← ``contactEmailAddress``, else ``contact.name``; ``requester_name`` ← ``contact.name``,
  else ``contactName``;
* ``subject`` ← ``summary``; ``body`` ← ``initialDescription``, else the first
  ``detailDescriptionFlag`` note;
* ``asset`` ← the custom field whose ``caption`` is ``asset_field`` when configured and non-empty;
* ``status`` ← ``resolved`` when ``closedFlag`` is true or the status is ``status_map["resolved"]``,
  ``escalated`` for ``status_map["escalated"]`` unless that is ``New``, else ``open``;
* ``notes`` ← ``GET /service/tickets/{id}/notes`` (``detailDescriptionFlag`` notes are public);
  times ← ``_info.dateEntered`` / ``_info.lastUpdated``.

:meth:`~ConnectWiseConnector.list_tickets` pages ``GET /service/tickets`` with
``conditions=lastUpdated > [since]`` (plus ``conditions`` from the account, e.g.
``board/name="Help Desk"``), ``orderBy=id asc``, 1,000 a page, until a short page.

**Writing back.** Notes go to ``POST /service/tickets/{id}/notes``: the technical trail with
``internalAnalysisFlag: true`` (the Internal tab, ``processNotifications: false``), the customer
reply with ``detailDescriptionFlag: true`` and ``processNotifications: true`` (the Discussion, and
the board's workflow e-mails the contact). Both first read the notes and skip text already there.
Status: the ticket's board statuses (``GET /service/boards/{id}/statuses``) are searched for the
name ``status_map`` gives (case-insensitive; :class:`PSARejected` listing the board's names when
absent), then ``PATCH /service/tickets/{id}`` with
``[{"op": "replace", "path": "status", "value": {"id": N}}]``.

**Callbacks.** :meth:`~ConnectWiseConnector.register_webhook` posts a ``CallbackEntry`` to
``/system/callbacks`` (type ``Ticket``, level ``Owner`` for every ticket, or ``Board`` with
``callback_board_id``), unless one for the URL exists. A delivery is JSON with ``ID``, ``Type``,
``Action`` (``added|updated|deleted``), ``MessageId`` and ``Metadata.key_url``.
It is verified by ``x-content-signature: base64(HMAC-SHA256(key=SHA-256(signing_key), body))``
where ``signing_key`` is fetched from ``key_url``. That fetch is an authenticated request that an
unauthenticated caller triggers, so :meth:`~ConnectWiseConnector.prepare_webhook` makes it only
for a delivery that is otherwise plausible, and to one place only:

* the body is a ticket callback (``Type`` ticket, an ``ID``), its ``CompanyId`` (when present)
  is the configured company, and ``x-content-signature`` is base64 of 32 bytes; anything else is
  refused without a request;
* ``key_url`` is the configured site's key endpoint exactly: same scheme, host and port, path
  ``/{codebase}apis/3.0/system/callbacks/keys/{id}`` (:data:`KEY_PATH`; no query, fragment,
  user info or escapes). The GET goes to that path rebuilt on the configured origin;
* keys are cached by that path, only after a delivery verified with them (so an attacker, who
  cannot sign, cannot add entries nor evict good ones), at most :data:`MAX_CACHED_KEYS`, least
  recently verified first out;
* a signature that fails with a cached key refetches that key (ConnectWise rotates keys), at most
  once per :data:`KEY_REFETCH_S` per key, and at most :data:`KEY_FETCHES_PER_MINUTE` key fetches
  happen in any minute whatever the key ids: beyond that a delivery is refused (401) without a
  request, so forged callbacks cannot spend the API member's rate limit;
* a key ConnectWise does not have (404, 401/403, 400) refuses the delivery
  (:class:`~mspclaw.errors.AuthError`); ConnectWise unreachable or rate limiting is
  :class:`~mspclaw.errors.PSAUnavailable` / :class:`~mspclaw.errors.PSARateLimited` (503/429,
  so ConnectWise retries the delivery).

ConnectWise signs no delivery time, so a captured delivery cannot be refused by age; see
``docs/psa/connectwise.md`` (Replays) for what bounds a replay.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import re
import time
from collections import OrderedDict, deque
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, TypeVar
from urllib.parse import quote, urlsplit

import httpx
from pydantic import Field, RootModel

from mspclaw.connectors.base import CloseStatus, NoteFormat, PSANote, PSATicket, WebhookEvent
from mspclaw.connectors.http import Clock, HttpConnector, PSAHttp, RateLimiter, Sleep
from mspclaw.connectors.payload import Id, Key, Name, Payload, Text, Time, read, webhook_body
from mspclaw.connectors.text import changed_after, normalised, numeric_id, plain_text, utc
from mspclaw.errors import (
    AuthError,
    ConfigError,
    MalformedWebhook,
    PSAAuthError,
    PSAError,
    PSANotFound,
    PSARejected,
)

API_VERSION: Final = "2025.16"
PAGE_SIZE: Final = 1000
"""ConnectWise's maximum ``pageSize``."""
DEFAULT_STATUS_MAP: Final[dict[str, str]] = {"resolved": "Closed (resolved)", "escalated": "New"}
SIGNATURE_HEADER: Final = "x-content-signature"
MAX_CACHED_KEYS: Final = 64
"""Verified signing keys kept (ConnectWise uses one at a time; a few survive a rotation)."""
KEY_PATH: Final = re.compile(r"/[A-Za-z0-9_.]{1,40}/apis/3\.0/system/callbacks/keys/[A-Za-z0-9_-]{1,80}")
"""The path of a callback's signing key on the configured site: ``/{codebase}apis/3.0/system/callbacks/keys/{id}``."""
KEY_REFETCH_S: Final = 60.0
"""A key whose signature failed is fetched again at most this often (a rotation needs one refetch)."""
KEY_FETCHES_PER_MINUTE: Final = 10
"""Key fetches in any 60 seconds, whatever the key: the most forged callbacks can cost ConnectWise."""
ACTIONS: Final[dict[str, str]] = {"added": "ticket.created", "updated": "ticket.updated", "deleted": "ticket.deleted"}


# --- what the connector reads from ConnectWise's answers --------------------------------------------
# ConnectWise leaves null fields out of its answers, so only what every ticket has is required.

M = TypeVar("M", bound=Payload | RootModel[Any])


class _Company(Payload):
    identifier: Name = None
    id: int | None = None


class _Named(Payload):
    name: Name = None


class _Info(Payload):
    date_entered: Time = Field(None, alias="dateEntered")
    last_updated: Time = Field(None, alias="lastUpdated")


class _CustomField(Payload):
    caption: Text = ""
    value: str | int | float | None = None


class _Ticket(Payload):
    id: Id
    summary: Text
    company: _Company
    status: _Named
    info: _Info = Field(alias="_info")
    contact: _Named | None = None
    contact_email: Name = Field(None, alias="contactEmailAddress")
    contact_name: Name = Field(None, alias="contactName")
    initial_description: Text = Field("", alias="initialDescription")
    custom_fields: list[_CustomField] | None = Field(None, alias="customFields")
    closed: bool | None = Field(None, alias="closedFlag")
    date_entered: Time = Field(None, alias="dateEntered")


class _Tickets(RootModel[list[_Ticket]]):
    pass


class _Note(Payload):
    text: Text
    detail: bool | None = Field(None, alias="detailDescriptionFlag")
    internal: bool | None = Field(None, alias="internalAnalysisFlag")


class _Notes(RootModel[list[_Note]]):
    pass


class _Board(Payload):
    id: Id


class _TicketBoard(Payload):
    board: _Board | None = None


class _BoardStatus(Payload):
    id: Id
    name: Text
    inactive: bool | None = None


class _BoardStatuses(RootModel[list[_BoardStatus]]):
    pass


class _CallbackEntry(Payload):
    id: int | None = None
    url: str | None = None
    type: str | None = None


class _CallbackEntries(RootModel[list[_CallbackEntry]]):
    pass


class _Created(Payload):
    id: int | None = None


class _CompanyInfo(Payload):
    codebase: Name = Field(None, alias="Codebase")


class _SigningKey(Payload):
    signing_key: Name = None


class _KeyMetadata(Payload):
    key_url: str | None = None


class _Callback(Payload):
    """The fields of a ConnectWise callback delivery that we read."""

    ID: Key | None = None
    Type: str | None = None
    Action: str | None = None
    MessageId: str | None = None
    CompanyId: str | None = None
    Metadata: _KeyMetadata | None = None


def site_origin(site: str) -> str:
    """``https://{site}`` for a bare host, or the origin of a URL given in full; no trailing slash."""
    text = site.strip().rstrip("/")
    if "://" not in text:
        text = f"https://{text}"
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        raise ConfigError(f"ConnectWise site {site!r} is not a host name such as api-na.myconnectwise.net")
    return f"{parts.scheme}://{parts.netloc}"


def sign_callback(signing_key: str, body: bytes) -> str:
    """The ``x-content-signature`` ConnectWise sends: base64 HMAC-SHA256 keyed with SHA-256 of the key."""
    key = hashlib.sha256(signing_key.encode()).digest()
    return base64.b64encode(hmac.digest(key, body, hashlib.sha256)).decode()


class ConnectWiseConnector(HttpConnector):
    """The ConnectWise Manage connector (every mapping and rule is in the module docstring)."""

    name = "connectwise"
    note_format: NoteFormat = "text"
    """ConnectWise service notes are text (``text``); no markup is sent."""

    def __init__(self, *, site: str, company: str, public_key: str, private_key: str, client_id: str,
                 codebase: str | None = None, conditions: str | None = None,
                 status_map: Mapping[str, str] | None = None, asset_field: str | None = None,
                 callback_board_id: int | None = None, api_version: str = API_VERSION,
                 transport: httpx.AsyncBaseTransport | None = None, timeout: float = 30.0, max_retries: int = 3,
                 rate_per_minute: int | None = None, clock: Clock = time.monotonic,
                 sleep: Sleep = asyncio.sleep, now: Clock = time.time) -> None:
        missing = [label for label, value in (("site", site), ("company", company), ("public key", public_key),
                                              ("private key", private_key), ("client id", client_id)) if not value]
        if missing:
            raise ConfigError(f"ConnectWise needs {', '.join(missing)} (System > Members > API Members > API Keys; "
                              "the client id from developer.connectwise.com/ClientID)")
        unknown = set(status_map or {}) - set(DEFAULT_STATUS_MAP)
        if unknown:
            raise ConfigError(f"ConnectWise status_map keys must be resolved/escalated, not {sorted(unknown)}")
        self.origin = site_origin(site)
        self.company = company
        self.codebase = _codebase(codebase) if codebase else None
        self.conditions = conditions
        self.status_map: dict[str, str] = {**DEFAULT_STATUS_MAP, **(status_map or {})}
        self.asset_field = asset_field
        self.callback_board_id = callback_board_id
        self._keys = _SigningKeys(clock)
        credentials = base64.b64encode(f"{company}+{public_key}:{private_key}".encode()).decode()
        limiter = RateLimiter(rate_per_minute, 60.0, clock=clock, sleep=sleep) if rate_per_minute else None
        self._http = PSAHttp(
            service="ConnectWise", base_url=self.origin, timeout=timeout, max_retries=max_retries,
            headers={"Authorization": f"Basic {credentials}", "clientId": client_id,
                     "Accept": f"application/vnd.connectwise.com+json; version={api_version}",
                     "Content-Type": "application/json"},
            rate_limiter=limiter, transport=transport, sleep=sleep, now=now)

    # --- the PSAConnector protocol -------------------------------------------------------------

    async def get_ticket(self, ticket_id: str) -> PSATicket:
        raw = await self._read(_Ticket, "GET", f"/service/tickets/{_id(ticket_id)}")
        ticket = self._ticket(raw)
        notes = await self._notes(ticket.id)
        ticket.notes = [PSANote(plain_text(n.text), n.detail is True) for n in notes]
        if not ticket.body:
            described = [n for n in notes if n.detail is True]
            if described:
                ticket.body = plain_text(described[0].text)
        return ticket

    async def list_tickets(self, since: datetime | None = None) -> list[PSATicket]:
        clauses = [f"({self.conditions})"] if self.conditions else []
        if since is not None:
            clauses.append(f"lastUpdated > [{format_time(since)}]")
        found: list[PSATicket] = []
        page = 1
        while True:
            params: dict[str, str | int] = {"orderBy": "id asc", "page": page, "pageSize": PAGE_SIZE}
            if clauses:
                params["conditions"] = " and ".join(clauses)
            batch = (await self._read(_Tickets, "GET", "/service/tickets", params=params)).root
            found += [self._ticket(t) for t in batch]
            if len(batch) < PAGE_SIZE:
                break
            page += 1
        return changed_after(found, since)

    async def add_note(self, ticket_id: str, text: str, *, public: bool) -> None:
        """An internal-analysis note or a customer-visible discussion note, unless already there."""
        wanted = normalised(text)
        for known in await self._notes(_id(ticket_id)):
            if (known.detail if public else known.internal) is True and normalised(known.text) == wanted:
                return
        note = {"text": text, "detailDescriptionFlag": public, "internalAnalysisFlag": not public,
                "resolutionFlag": False, "customerUpdatedFlag": False, "processNotifications": public}
        await self._send("POST", f"/service/tickets/{_id(ticket_id)}/notes", json=note)

    async def set_status(self, ticket_id: str, status: CloseStatus) -> None:
        raw = await self._read(_TicketBoard, "GET", f"/service/tickets/{_id(ticket_id)}",
                               params={"fields": "id,board,status"})
        if raw.board is None:
            raise PSAError(f"ConnectWise ticket {ticket_id} has no board, so its statuses cannot be looked up")
        board_id = raw.board.id
        wanted = self.status_map[status]
        statuses = await self._read(_BoardStatuses, "GET", f"/service/boards/{board_id}/statuses",
                                    params={"pageSize": PAGE_SIZE, "fields": "id,name,inactive"})
        active = [s for s in statuses.root if s.inactive is not True]
        match = next((s for s in active if s.name.casefold() == wanted.casefold()), None)
        if match is None:
            available = ", ".join(repr(s.name) for s in active) or "none"
            raise PSARejected(f"ConnectWise board {board_id} has no active status {wanted!r} (mapped from "
                              f"{status!r}); it has: {available}. Fix the account's status_map.")
        patch = [{"op": "replace", "path": "status", "value": {"id": match.id}}]
        await self._send("PATCH", f"/service/tickets/{_id(ticket_id)}", json=patch, idempotent=True)

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
        """Verify the ``x-content-signature`` with the key :meth:`prepare_webhook` verified; read the event."""
        callback = _callback(body)
        signature = _signature(headers)
        signing_key = self._keys.get(self._key_path(callback))
        if signing_key is None:
            raise AuthError("the ConnectWise callback's signing key has not been fetched and verified; refusing it")
        if not _signed(signing_key, body, signature):
            raise AuthError("the ConnectWise callback's x-content-signature does not match its signing key")
        return self._event(callback)

    # --- beyond the protocol -------------------------------------------------------------------

    async def prepare_webhook(self, headers: Mapping[str, str], body: bytes) -> None:
        """Fetch (or reuse) the callback's signing key, for a plausible delivery and from the configured
        site's key endpoint only, and verify the delivery with it (the rules are in the module docstring)."""
        callback = _callback(body)
        signature = _signature(headers)
        self._event(callback)
        if callback.CompanyId is not None and callback.CompanyId.strip().casefold() != self.company.casefold():
            raise AuthError(f"the ConnectWise callback is for company {callback.CompanyId[:40]!r}, not the configured "
                            f"{self.company!r}; refusing it without fetching its key")
        path = self._key_path(callback)
        cached = self._keys.get(path)
        if cached is not None and _signed(cached, body, signature):
            self._keys.verified(path, cached)
            return
        refusal = self._keys.refuse_fetch(path)
        if refusal is not None:
            why = "does not match the cached signing key" if cached is not None else "names a key we do not have"
            raise AuthError(f"the ConnectWise callback {why}, and {refusal}; refusing it without a request")
        self._keys.fetching(path)
        try:
            response = await self._http.request("GET", self.origin + path)
        except (PSANotFound, PSAAuthError, PSARejected) as exc:
            self._keys.fetched(path)
            raise AuthError(f"ConnectWise has no signing key at the callback's key_url {path} ({exc.message}); "
                            "refusing it") from exc
        self._keys.fetched(path)
        key = read(_SigningKey, response, service="ConnectWise").signing_key
        if key is None:
            raise PSAError(f"ConnectWise answered the callback's key_url {path} without a signing_key")
        if not _signed(key, body, signature):
            raise AuthError("the ConnectWise callback's x-content-signature does not match its signing key")
        self._keys.verified(path, key)

    async def register_webhook(self, url: str) -> str:
        """A ``Ticket`` callback to ``url`` at level ``Owner`` (or ``Board``), unless one exists."""
        existing = await self._read(_CallbackEntries, "GET", "/system/callbacks",
                                    params={"conditions": f'url="{_quoted(url)}"', "pageSize": PAGE_SIZE})
        for known in existing.root:
            if known.url == url and (known.type or "").lower() == "ticket":
                return f"ConnectWise callback {known.id} already sends ticket events to {url}"
        level, object_id = ("Board", self.callback_board_id) if self.callback_board_id else ("Owner", 0)
        entry = {"description": "MSPclaw ticket events", "url": url, "objectId": object_id, "type": "Ticket",
                 "level": level, "inactiveFlag": False}
        created = await self._read(_Created, "POST", "/system/callbacks", json=entry)
        return f"ConnectWise callback {created.id} created: {level} ticket events go to {url}"

    async def check(self) -> str:
        """The credential test: the codebase (discovered if not configured) and one ticket of the service board."""
        batch = (await self._read(_Tickets, "GET", "/service/tickets",
                                  params={"orderBy": "id asc", "page": 1, "pageSize": 1})).root
        seen = "at least one ticket" if batch else "no tickets yet"
        return f"ConnectWise accepted the API member's keys for company {self.company}; it shows {seen}"

    async def api_base(self) -> str:
        """``/{codebase}apis/3.0``, discovering the codebase once when it was not configured."""
        if self.codebase is None:
            answer = await self._http.request("GET", f"/login/companyinfo/{quote(self.company, safe='')}")
            found = read(_CompanyInfo, answer, service="ConnectWise").codebase
            if found is None:
                raise PSAError(f"ConnectWise did not say the codebase of company {self.company!r} "
                               f"(GET /login/companyinfo); check the company id and site")
            self.codebase = _codebase(found)
        return f"/{self.codebase}apis/3.0"

    # --- plumbing ------------------------------------------------------------------------------

    async def _send(self, method: str, path: str, *, json: Any = None,
                    params: Mapping[str, str | int] | None = None, idempotent: bool | None = None) -> httpx.Response:
        return await self._http.request(method, await self.api_base() + path, json=json, params=params,
                                        idempotent=idempotent)

    async def _read(self, model: type[M], method: str, path: str, *, json: Any = None,
                    params: Mapping[str, str | int] | None = None, idempotent: bool | None = None) -> M:
        answer = await self._send(method, path, json=json, params=params, idempotent=idempotent)
        return read(model, answer, service="ConnectWise")

    async def _notes(self, ticket_id: str) -> list[_Note]:
        found: list[_Note] = []
        page = 1
        while True:
            batch = await self._read(_Notes, "GET", f"/service/tickets/{ticket_id}/notes",
                                     params={"orderBy": "id asc", "page": page, "pageSize": PAGE_SIZE})
            found += batch.root
            if len(batch.root) < PAGE_SIZE:
                return found
            page += 1

    def _ticket(self, raw: _Ticket) -> PSATicket:
        company = raw.company.identifier or (str(raw.company.id) if raw.company.id is not None else "")
        requester = raw.contact_email or (raw.contact.name if raw.contact else None)
        return PSATicket(
            id=str(raw.id), company=company, requester=requester or "", subject=raw.summary,
            requester_name=(raw.contact.name if raw.contact else None) or raw.contact_name,
            body=plain_text(raw.initial_description), asset=self._asset(raw.custom_fields),
            status=self._our_status(raw), created_at=raw.info.date_entered or raw.date_entered,
            updated_at=raw.info.last_updated)

    def _asset(self, fields: list[_CustomField] | None) -> str | None:
        if not self.asset_field or fields is None:
            return None
        for item in fields:
            if item.caption.casefold() == self.asset_field.casefold():
                value = item.value
                return str(value).strip() if isinstance(value, str | int) and str(value).strip() else None
        return None

    def _our_status(self, raw: _Ticket) -> str:
        name = (raw.status.name or "").casefold()
        if raw.closed is True or name == self.status_map["resolved"].casefold():
            return "resolved"
        escalated = self.status_map["escalated"].casefold()
        return "escalated" if name == escalated and escalated != "new" else "open"

    def _key_path(self, callback: _Callback) -> str:
        """The key_url's path when it is the configured site's key endpoint; otherwise AuthError."""
        key_url = callback.Metadata.key_url if callback.Metadata is not None else None
        if not key_url:
            raise AuthError("the ConnectWise callback has no Metadata.key_url to verify its signature with")
        try:
            parts, mine = urlsplit(key_url), urlsplit(self.origin)
            port, my_port = parts.port, mine.port
        except ValueError:
            raise AuthError(f"the ConnectWise callback's key_url {key_url[:80]!r} is not a URL") from None
        if (parts.scheme, parts.hostname, port) != (mine.scheme, mine.hostname, my_port) or parts.username \
                or parts.password is not None:
            raise AuthError(f"the ConnectWise callback names a signing key on {parts.netloc[:80] or key_url[:80]!r}, "
                            f"not on the configured site {mine.netloc}; refusing it without fetching anything")
        if parts.query or parts.fragment or "#" in key_url or "?" in key_url or not KEY_PATH.fullmatch(parts.path):
            raise AuthError(f"the ConnectWise callback's key_url path {parts.path[:80]!r} is not the site's "
                            "signing-key endpoint /{codebase}apis/3.0/system/callbacks/keys/{id}; refusing it "
                            "without fetching anything")
        return parts.path

    def _event(self, callback: _Callback) -> WebhookEvent:
        kind, ident = (callback.Type or "").lower(), callback.ID
        if kind != "ticket":
            raise MalformedWebhook(f"the ConnectWise callback is about a {callback.Type!r}, not a ticket; "
                                   "register the callback with type Ticket")
        if ident is None or not str(ident).strip():
            raise MalformedWebhook('the ConnectWise callback has no ticket "ID"')
        action = (callback.Action or "updated").lower()
        return WebhookEvent(psa=self.name, ticket_id=str(ident).strip(), event=ACTIONS.get(action, f"ticket.{action}"),
                            delivery_id=callback.MessageId or None)


class _SigningKeys:
    """Signing keys by key path, only once a delivery verified with them; and the budget of key fetches."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._keys: OrderedDict[str, str] = OrderedDict()
        self._fetched: OrderedDict[str, float] = OrderedDict()
        self._recent: deque[float] = deque()

    def get(self, path: str) -> str | None:
        return self._keys.get(path)

    def verified(self, path: str, key: str) -> None:
        self._keys[path] = key
        self._keys.move_to_end(path)
        while len(self._keys) > MAX_CACHED_KEYS:
            self._keys.popitem(last=False)

    def refuse_fetch(self, path: str) -> str | None:
        """Why the key must not be fetched now, or ``None``."""
        now = self._clock()
        while self._recent and self._recent[0] <= now - 60.0:
            self._recent.popleft()
        last = self._fetched.get(path)
        if last is not None and now - last < KEY_REFETCH_S:
            return f"its key was fetched {now - last:.0f}s ago (at most once per {KEY_REFETCH_S:.0f}s)"
        if len(self._recent) >= KEY_FETCHES_PER_MINUTE:
            return f"{KEY_FETCHES_PER_MINUTE} signing keys were fetched in the last minute already"
        return None

    def fetching(self, path: str) -> None:
        """A fetch is about to be made: it counts against the budget whatever its outcome."""
        self._recent.append(self._clock())

    def fetched(self, path: str) -> None:
        """ConnectWise answered for the key (a failure to reach it does not hold the next attempt back)."""
        self._fetched[path] = self._clock()
        self._fetched.move_to_end(path)
        while len(self._fetched) > 4 * KEY_FETCHES_PER_MINUTE:
            self._fetched.popitem(last=False)


def _callback(body: bytes) -> _Callback:
    return webhook_body(_Callback, body, service="ConnectWise")


def _signature(headers: Mapping[str, str]) -> bytes:
    """The ``x-content-signature`` digest: base64 of an HMAC-SHA256 (32 bytes), else AuthError."""
    given = next((v for k, v in headers.items() if k.lower() == SIGNATURE_HEADER), None)
    if not given:
        raise AuthError("the ConnectWise callback has no x-content-signature header")
    try:
        digest = base64.b64decode(given.strip(), validate=True)
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != hashlib.sha256().digest_size:
        raise AuthError("the ConnectWise callback's x-content-signature is not base64 of an HMAC-SHA256")
    return digest


def _signed(signing_key: str, body: bytes, digest: bytes) -> bool:
    key = hashlib.sha256(signing_key.encode()).digest()
    return hmac.compare_digest(hmac.digest(key, body, hashlib.sha256), digest)


def _codebase(value: str) -> str:
    return value.strip().strip("/") + "/"


def _id(ticket_id: str) -> str:
    return numeric_id(ticket_id, vendor="ConnectWise")


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')



def format_time(moment: datetime) -> str:
    """ConnectWise's condition date: UTC ISO-8601 with ``Z`` (the caller wraps it in ``[...]``)."""
    return utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")
