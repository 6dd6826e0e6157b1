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
* ``requester`` ← ``contactEmailAddress``, else ``contact.name``;
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
``Action`` (``added|updated|deleted``), ``MessageId`` and ``Metadata.key_url``. It is verified by
``x-content-signature: base64(HMAC-SHA256(key=SHA-256(signing_key), body))`` where
``signing_key`` is fetched from ``key_url`` — **only** when ``key_url`` is on the configured site
(same scheme, host and port; anything else is refused without a request, as a forged callback
could otherwise make us fetch any URL). Keys are cached per ``key_url``; a signature that fails
with a cached key refetches it once (ConnectWise rotates keys).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final
from urllib.parse import quote, urlsplit

import httpx

from mspclaw.connectors.base import CloseStatus, PSANote, PSATicket, WebhookEvent
from mspclaw.connectors.http import Clock, HttpConnector, PSAHttp, RateLimiter, Sleep
from mspclaw.connectors.text import changed_after, normalised, numeric_id, parse_iso_time, plain_text, utc
from mspclaw.errors import (
    AuthError,
    ConfigError,
    MalformedWebhook,
    PSAError,
    PSARejected,
)

API_VERSION: Final = "2025.16"
PAGE_SIZE: Final = 1000
"""ConnectWise's maximum ``pageSize``."""
DEFAULT_STATUS_MAP: Final[dict[str, str]] = {"resolved": "Closed (resolved)", "escalated": "New"}
SIGNATURE_HEADER: Final = "x-content-signature"
MAX_CACHED_KEYS: Final = 64
ACTIONS: Final[dict[str, str]] = {"added": "ticket.created", "updated": "ticket.updated", "deleted": "ticket.deleted"}


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
        self._keys: dict[str, str] = {}
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
        raw = await self._json("GET", f"/service/tickets/{_id(ticket_id)}")
        if not isinstance(raw, dict):
            raise PSAError(f"ConnectWise answered ticket {ticket_id} with something that is not a ticket")
        ticket = self._ticket(raw)
        notes = await self._notes(ticket.id)
        ticket.notes = [PSANote(plain_text(str(n.get("text") or "")), n.get("detailDescriptionFlag") is True)
                        for n in notes]
        if not ticket.body:
            described = [n for n in notes if n.get("detailDescriptionFlag") is True]
            if described:
                ticket.body = plain_text(str(described[0].get("text") or ""))
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
            batch = await self._json("GET", "/service/tickets", params=params)
            if not isinstance(batch, list):
                raise PSAError("ConnectWise answered the ticket list with something that is not a list")
            found += [self._ticket(t) for t in batch if isinstance(t, dict)]
            if len(batch) < PAGE_SIZE:
                break
            page += 1
        return changed_after(found, since)

    async def add_note(self, ticket_id: str, text: str, *, public: bool) -> None:
        """An internal-analysis note or a customer-visible discussion note, unless already there."""
        flag = "detailDescriptionFlag" if public else "internalAnalysisFlag"
        wanted = normalised(text)
        for note in await self._notes(_id(ticket_id)):
            if note.get(flag) is True and normalised(str(note.get("text") or "")) == wanted:
                return
        note = {"text": text, "detailDescriptionFlag": public, "internalAnalysisFlag": not public,
                "resolutionFlag": False, "customerUpdatedFlag": False, "processNotifications": public}
        await self._json("POST", f"/service/tickets/{_id(ticket_id)}/notes", json=note)

    async def set_status(self, ticket_id: str, status: CloseStatus) -> None:
        raw = await self._json("GET", f"/service/tickets/{_id(ticket_id)}", params={"fields": "id,board,status"})
        board = raw.get("board") if isinstance(raw, dict) else None
        board_id = board.get("id") if isinstance(board, dict) else None
        if not isinstance(board_id, int):
            raise PSAError(f"ConnectWise ticket {ticket_id} has no board, so its statuses cannot be looked up")
        wanted = self.status_map[status]
        statuses = await self._json("GET", f"/service/boards/{board_id}/statuses",
                                    params={"pageSize": PAGE_SIZE, "fields": "id,name,inactive"})
        names = [s for s in statuses if isinstance(s, dict)] if isinstance(statuses, list) else []
        match = next((s for s in names if str(s.get("name", "")).casefold() == wanted.casefold()
                      and s.get("inactive") is not True), None)
        if match is None:
            available = ", ".join(repr(s.get("name")) for s in names if s.get("inactive") is not True) or "none"
            raise PSARejected(f"ConnectWise board {board_id} has no active status {wanted!r} (mapped from "
                              f"{status!r}); it has: {available}. Fix the account's status_map.")
        patch = [{"op": "replace", "path": "status", "value": {"id": match["id"]}}]
        await self._json("PATCH", f"/service/tickets/{_id(ticket_id)}", json=patch, idempotent=True)

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
        """Verify the ``x-content-signature`` with the key cached by :meth:`prepare_webhook`; read the event."""
        data = _callback(body)
        key_url = _key_url(data)
        signing_key = self._keys.get(key_url)
        if signing_key is None:
            raise AuthError("the ConnectWise callback's signing key has not been fetched; refusing it")
        self._verify(headers, body, signing_key)
        return self._event(data)

    # --- beyond the protocol -------------------------------------------------------------------

    async def prepare_webhook(self, headers: Mapping[str, str], body: bytes) -> None:
        """Fetch (or reuse) the signing key the callback's ``key_url`` names, from the configured site only."""
        data = _callback(body)
        key_url = _key_url(data)
        parts, mine = urlsplit(key_url), urlsplit(self.origin)
        if (parts.scheme, parts.netloc.lower()) != (mine.scheme, mine.netloc.lower()):
            raise AuthError(f"the ConnectWise callback names a signing key on {parts.netloc or key_url!r}, not "
                            f"on the configured site {mine.netloc}; refusing it without fetching anything")
        cached = self._keys.get(key_url)
        if cached is not None:
            try:
                self._verify(headers, body, cached)
                return
            except AuthError:
                pass  # the key may have been rotated: fetch it again, once
        answer = _body(await self._http.request("GET", key_url))
        key = answer.get("signing_key") if isinstance(answer, dict) else None
        if not isinstance(key, str) or not key:
            raise PSAError("ConnectWise answered the callback's key_url without a signing_key")
        if len(self._keys) >= MAX_CACHED_KEYS:
            self._keys.pop(next(iter(self._keys)))
        self._keys[key_url] = key

    async def register_webhook(self, url: str) -> str:
        """A ``Ticket`` callback to ``url`` at level ``Owner`` (or ``Board``), unless one exists."""
        existing = await self._json("GET", "/system/callbacks",
                                    params={"conditions": f'url="{_quoted(url)}"', "pageSize": PAGE_SIZE})
        for entry in existing if isinstance(existing, list) else []:
            if isinstance(entry, dict) and entry.get("url") == url and str(entry.get("type")).lower() == "ticket":
                return f"ConnectWise callback {entry.get('id')} already sends ticket events to {url}"
        level, object_id = ("Board", self.callback_board_id) if self.callback_board_id else ("Owner", 0)
        entry = {"description": "MSPclaw ticket events", "url": url, "objectId": object_id, "type": "Ticket",
                 "level": level, "inactiveFlag": False}
        created = await self._json("POST", "/system/callbacks", json=entry)
        ident = created.get("id") if isinstance(created, dict) else None
        return f"ConnectWise callback {ident} created: {level} ticket events go to {url}"

    async def api_base(self) -> str:
        """``/{codebase}apis/3.0``, discovering the codebase once when it was not configured."""
        if self.codebase is None:
            answer = await self._http.request("GET", f"/login/companyinfo/{quote(self.company, safe='')}")
            info = _body(answer)
            found = info.get("Codebase") if isinstance(info, dict) else None
            if not isinstance(found, str) or not found.strip():
                raise PSAError(f"ConnectWise did not say the codebase of company {self.company!r} "
                               f"(GET /login/companyinfo); check the company id and site")
            self.codebase = _codebase(found)
        return f"/{self.codebase}apis/3.0"

    # --- plumbing ------------------------------------------------------------------------------

    async def _json(self, method: str, path: str, *, json: Any = None, params: Mapping[str, str | int] | None = None,
                    idempotent: bool | None = None) -> Any:
        answer = await self._http.request(method, await self.api_base() + path, json=json, params=params,
                                          idempotent=idempotent)
        return _body(answer)

    async def _notes(self, ticket_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            batch = await self._json("GET", f"/service/tickets/{ticket_id}/notes",
                                     params={"orderBy": "id asc", "page": page, "pageSize": PAGE_SIZE})
            items = [n for n in batch if isinstance(n, dict)] if isinstance(batch, list) else []
            found += items
            if len(items) < PAGE_SIZE:
                return found
            page += 1

    def _ticket(self, raw: dict[str, Any]) -> PSATicket:
        ticket_id = raw.get("id")
        if not isinstance(ticket_id, int) or isinstance(ticket_id, bool):
            raise PSAError("ConnectWise sent a ticket without a numeric id")
        company, contact, info = raw.get("company"), raw.get("contact"), raw.get("_info")
        requester = raw.get("contactEmailAddress") or (contact.get("name") if isinstance(contact, dict) else None)
        info = info if isinstance(info, dict) else {}
        return PSATicket(
            id=str(ticket_id),
            company=str(company.get("identifier") or company.get("id") or "") if isinstance(company, dict) else "",
            requester=str(requester or ""), subject=str(raw.get("summary") or ""),
            body=plain_text(str(raw.get("initialDescription") or "")), asset=self._asset(raw.get("customFields")),
            status=self._our_status(raw), created_at=parse_time(info.get("dateEntered") or raw.get("dateEntered")),
            updated_at=parse_time(info.get("lastUpdated")))

    def _asset(self, fields: object) -> str | None:
        if not self.asset_field or not isinstance(fields, list):
            return None
        for item in fields:
            if isinstance(item, dict) and str(item.get("caption", "")).casefold() == self.asset_field.casefold():
                value = item.get("value")
                return str(value).strip() if isinstance(value, str | int) and str(value).strip() else None
        return None

    def _our_status(self, raw: dict[str, Any]) -> str:
        status = raw.get("status")
        name = str(status.get("name") or "").casefold() if isinstance(status, dict) else ""
        if raw.get("closedFlag") is True or name == self.status_map["resolved"].casefold():
            return "resolved"
        escalated = self.status_map["escalated"].casefold()
        return "escalated" if name == escalated and escalated != "new" else "open"

    def _verify(self, headers: Mapping[str, str], body: bytes, signing_key: str) -> None:
        given = next((v for k, v in headers.items() if k.lower() == SIGNATURE_HEADER), None)
        if not given:
            raise AuthError("the ConnectWise callback has no x-content-signature header")
        if not hmac.compare_digest(sign_callback(signing_key, body).encode(), given.strip().encode()):
            raise AuthError("the ConnectWise callback's x-content-signature does not match its signing key")

    def _event(self, data: dict[str, Any]) -> WebhookEvent:
        kind, ident = str(data.get("Type") or "").lower(), data.get("ID")
        if kind != "ticket":
            raise MalformedWebhook(f"the ConnectWise callback is about a {data.get('Type')!r}, not a ticket; "
                                   "register the callback with type Ticket")
        if isinstance(ident, bool) or not isinstance(ident, int | str) or not str(ident).strip():
            raise MalformedWebhook('the ConnectWise callback has no ticket "ID"')
        action = str(data.get("Action") or "updated").lower()
        message = data.get("MessageId")
        return WebhookEvent(psa=self.name, ticket_id=str(ident).strip(), event=ACTIONS.get(action, f"ticket.{action}"),
                            delivery_id=str(message) if message else None)


def _callback(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedWebhook(f"the ConnectWise callback body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise MalformedWebhook("the ConnectWise callback body is not a JSON object")
    return data


def _key_url(data: dict[str, Any]) -> str:
    meta = data.get("Metadata")
    key_url = meta.get("key_url") if isinstance(meta, dict) else None
    if not isinstance(key_url, str) or not key_url.startswith(("https://", "http://")):
        raise AuthError("the ConnectWise callback has no Metadata.key_url to verify its signature with")
    return key_url


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise PSAError(f"ConnectWise answered {response.request.url.path} with something that is not JSON") from exc


def _codebase(value: str) -> str:
    return value.strip().strip("/") + "/"


def _id(ticket_id: str) -> str:
    return numeric_id(ticket_id, vendor="ConnectWise")


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')



def format_time(moment: datetime) -> str:
    """ConnectWise's condition date: UTC ISO-8601 with ``Z`` (the caller wraps it in ``[...]``)."""
    return utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: object) -> datetime | None:
    return parse_iso_time(value, vendor="ConnectWise")
