"""HaloPSA, over its REST API (``/api``), with OAuth2 client credentials.

**Instance and token.** ``host`` is the Halo instance (``acme.halopsa.com``, or a full origin such as
``http://127.0.0.1:8080`` in tests). A token comes from ``POST https://{host}/auth/token``
(``?tenant={tenant}`` on hosted multi-tenant cloud) with the form
``grant_type=client_credentials&client_id=…&client_secret=…&scope=all``; it is cached and fetched
again ``refresh_margin_s`` (60 s) before its ``expires_in`` runs out. Calls carry
``Authorization: Bearer <token>``; a 401 on a call made with a cached token drops it and retries
the call once with a fresh one (a token revoked early). A refused token request is
:class:`~mspclaw.errors.PSAAuthError` quoting Halo's ``error`` / ``error_description``.

**Mapping a ticket** (``GET /api/Tickets/{id}?includedetails=true``, ``Faults``):

* ``company`` ← ``client_id`` (``mspclaw clients add … --psa halo=<client id>``);
* ``requester`` ← ``user_email``, else ``user_name``; ``requester_name`` ← ``user_name``;
* ``subject`` ← ``summary``; ``body`` ← ``details`` (HTML reduced to text, ``details_html`` when
  ``details`` is empty);
* ``asset`` ← the first ``assets[].inventory_number`` (Halo's asset tag), else ``None``;
* ``status`` ← ``resolved`` when ``hasbeenclosed`` or the status is ``status_map["resolved"]``,
  ``escalated`` for ``status_map["escalated"]`` unless that is ``New``, else ``open``;
* ``notes`` ← ``GET /api/Actions?ticket_id=…&excludesys=true`` (``hiddenfromuser`` actions are
  internal); times ← ``datecreated`` / ``lastactiondate`` (Halo's UTC times without zone).

:meth:`~HaloConnector.list_tickets` pages ``GET /api/Tickets`` (``pageinate=true``, 100 a page,
following ``record_count``) with ``lastupdatefromdate=<since>``, and also drops anything at or
before ``since`` on our side.

**Writing back.** ``POST /api/Actions`` with one action: the technical trail with
``hiddenfromuser: true``, ``sendemail: false`` and the ``outcome`` named ``internal_outcome``
(``Private Note``); the customer reply with ``hiddenfromuser: false``, ``sendemail: true`` and
``public_outcome`` (``Email User``). Each action carries the text in ``note`` and the same note as
escaped HTML in ``note_html`` (what Halo shows). Both first read the ticket's actions and skip text already
there. Status: ``GET /api/Status`` names are searched for ``status_map`` (case-insensitive;
:class:`PSARejected` listing them when absent), then ``POST /api/Tickets [{"id", "status_id"}]``.

**Webhooks.** Halo does not sign its webhooks; the receiver authenticates it with Basic
credentials configured on the webhook (``webhook_username`` / ``webhook_password``), compared in
constant time. The body is Halo's JSON ("the ticket and action objects"): the ticket id is read
from ``ticket.id``, else ``ticket_id``, else ``id``; ``event`` from ``event`` (default
``ticket.updated``). :meth:`~HaloConnector.register_webhook` creates the webhook through
``POST /api/Webhook`` with those credentials, unless one for the URL exists (its events are chosen
in Halo, see docs/psa/halo.md). Rate limits: 429 with ``Retry-After`` is honoured by
:mod:`mspclaw.connectors.http`; a client-side window of ``rate_per_5min`` (700) requests per five
minutes keeps us under Halo's published per-instance limit.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, RootModel, model_validator

from mspclaw.connectors.base import CloseStatus, NoteFormat, PSANote, PSATicket, WebhookEvent
from mspclaw.connectors.http import Clock, HttpConnector, PSAHttp, RateLimiter, Sleep
from mspclaw.connectors.note_format import render
from mspclaw.connectors.payload import Id, Key, Name, Payload, Text, Time, Token, read, webhook_body
from mspclaw.connectors.text import changed_after, normalised, numeric_id, plain_text, utc
from mspclaw.errors import AuthError, ConfigError, MalformedWebhook, PSAAuthError, PSAError, PSARejected

PAGE_SIZE: Final = 100
"""Halo's maximum ``page_size``."""
DEFAULT_STATUS_MAP: Final[dict[str, str]] = {"resolved": "Closed", "escalated": "In Progress"}
WEBHOOK_AUTH_BASIC: Final = 1
"""``Webhook.authentication_type`` for Basic credentials (unverified: see docs/psa/halo.md)."""


# --- what the connector reads from Halo's answers ---------------------------------------------------

M = TypeVar("M", bound=BaseModel)


class _Asset(Payload):
    inventory_number: Name = None


class _Ticket(Payload):
    id: Id
    summary: Text
    client_id: int | None
    details: Text = ""
    details_html: Text = ""
    user_email: Name = None
    user_name: Name = None
    status_name: Name = None
    hasbeenclosed: bool | None = None
    assets: list[_Asset] | None = None
    datecreated: Time = None
    lastactiondate: Time = None


class _TicketPage(Payload):
    tickets: list[_Ticket]
    record_count: int | None = None


class _Action(Payload):
    note: Text = ""
    note_html: Text = ""
    hiddenfromuser: bool | None = None

    def text(self) -> str:
        return plain_text(self.note or self.note_html)


class _Actions(Payload):
    """``GET /api/Actions``: a page (``{"record_count", "actions"}``), or the bare list some versions send."""

    actions: list[_Action]

    @model_validator(mode="before")
    @classmethod
    def _bare_list(cls, data: Any) -> Any:
        return {"actions": data} if isinstance(data, list) else data


class _Status(Payload):
    id: Id
    name: Text


class _Statuses(RootModel[list[_Status]]):
    pass


class _Webhook(Payload):
    id: Key | None = None
    url: str | None = None


class _Webhooks(RootModel[list[_Webhook]]):
    pass


class _Created(Payload):
    id: Key | None = None


class _Token(Payload):
    access_token: Token = None
    expires_in: float | None = None


class _OAuthError(Payload):
    error: Name = None
    error_description: Name = None


class _HookTicket(Payload):
    id: Key | None = None


class _Hook(Payload):
    ticket: _HookTicket | None = None
    ticket_id: Key | None = None
    id: Key | None = None
    event: str | None = None


def instance_origin(host: str) -> str:
    text = host.strip().rstrip("/")
    if "://" not in text:
        text = f"https://{text}"
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"Halo host {host!r} is not a host name such as acme.halopsa.com")
    return f"{parts.scheme}://{parts.netloc}"


class HaloConnector(HttpConnector):
    """The HaloPSA connector (every mapping and rule is in the module docstring)."""

    name = "halo"
    note_format: NoteFormat = "html"
    """Halo shows an action's ``note_html``."""

    def __init__(self, *, host: str, client_id: str, client_secret: str, tenant: str | None = None,
                 scope: str = "all", webhook_username: str | None = None, webhook_password: str | None = None,
                 status_map: Mapping[str, str] | None = None, internal_outcome: str = "Private Note",
                 public_outcome: str = "Email User", refresh_margin_s: float = 60.0,
                 transport: httpx.AsyncBaseTransport | None = None, timeout: float = 30.0, max_retries: int = 3,
                 rate_per_5min: int = 700, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep,
                 now: Clock = time.time) -> None:
        if not host or not client_id or not client_secret:
            raise ConfigError("Halo needs the instance host and an API application's client id and secret "
                              "(Configuration > Integrations > HaloPSA API > Applications, Client ID and Secret)")
        unknown = set(status_map or {}) - set(DEFAULT_STATUS_MAP)
        if unknown:
            raise ConfigError(f"Halo status_map keys must be resolved/escalated, not {sorted(unknown)}")
        self.origin = instance_origin(host)
        self.tenant = tenant
        self.status_map: dict[str, str] = {**DEFAULT_STATUS_MAP, **(status_map or {})}
        self.internal_outcome, self.public_outcome = internal_outcome, public_outcome
        self.refresh_margin_s = refresh_margin_s
        self._client_id, self._client_secret, self._scope = client_id, client_secret, scope
        self._webhook_username, self._webhook_password = webhook_username, webhook_password
        self._clock = clock
        self._token: str | None = None
        self._expires = 0.0
        self._token_lock = asyncio.Lock()
        self._statuses: list[_Status] | None = None
        self.rate_limiter = RateLimiter(rate_per_5min, 300.0, clock=clock, sleep=sleep)
        self._http = PSAHttp(service="Halo", base_url=self.origin, timeout=timeout, max_retries=max_retries,
                             headers={"Accept": "application/json"}, rate_limiter=self.rate_limiter,
                             transport=transport, sleep=sleep, now=now)

    # --- the PSAConnector protocol -------------------------------------------------------------

    async def get_ticket(self, ticket_id: str) -> PSATicket:
        raw = await self._read(_Ticket, "GET", f"/api/Tickets/{_id(ticket_id)}", params={"includedetails": "true"})
        ticket = self._ticket(raw)
        ticket.notes = [PSANote(a.text(), a.hiddenfromuser is not True) for a in await self._actions(ticket.id)]
        return ticket

    async def list_tickets(self, since: datetime | None = None) -> list[PSATicket]:
        found: list[PSATicket] = []
        page = 1
        while True:
            params: dict[str, str | int] = {"pageinate": "true", "page_size": PAGE_SIZE, "page_no": page,
                                            "order": "id", "orderdesc": "false"}
            if since is not None:
                params["lastupdatefromdate"] = format_time(since)
            answer = await self._read(_TicketPage, "GET", "/api/Tickets", params=params)
            found += [self._ticket(t) for t in answer.tickets]
            total = answer.record_count
            if not answer.tickets or total is None or page * PAGE_SIZE >= total:
                break
            page += 1
        return changed_after(found, since)

    async def add_note(self, ticket_id: str, text: str, *, public: bool) -> None:
        """A hidden-from-user action (internal) or an e-mailed one (customer reply), unless already there."""
        wanted = normalised(text)
        for known in await self._actions(_id(ticket_id)):
            if (known.hiddenfromuser is not True) == public and normalised(known.text()) == wanted:
                return
        action = {"ticket_id": int(_id(ticket_id)), "outcome": self.public_outcome if public else self.internal_outcome,
                  "note": text, "note_html": render(text, self.note_format), "hiddenfromuser": not public,
                  "sendemail": public}
        await self._call("POST", "/api/Actions", json=[action])

    async def set_status(self, ticket_id: str, status: CloseStatus) -> None:
        status_id = await self._status_id(self.status_map[status], status)
        await self._call("POST", "/api/Tickets", json=[{"id": int(_id(ticket_id)), "status_id": status_id}],
                         idempotent=True)

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
        """Authenticate the Basic credentials configured on the Halo webhook; read the ticket id."""
        if not self._webhook_username or not self._webhook_password:
            raise AuthError("no webhook credentials are configured for this Halo account; refusing the webhook")
        given = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        scheme, _, encoded = given.strip().partition(" ")
        if scheme.lower() != "basic" or not encoded:
            raise AuthError("the Halo webhook has no Basic Authorization header")
        try:
            user, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise AuthError("the Halo webhook's Basic Authorization header is not base64 user:password") from None
        good_user = hmac.compare_digest(user.encode(), self._webhook_username.encode())
        good_password = hmac.compare_digest(password.encode(), self._webhook_password.encode())
        if not (sep and good_user and good_password):
            raise AuthError("the Halo webhook's Basic credentials do not match the configured ones")
        return self._event(body)

    # --- beyond the protocol -------------------------------------------------------------------

    async def register_webhook(self, url: str) -> str:
        """A Halo webhook posting JSON to ``url`` with the configured Basic credentials, unless one exists."""
        if not self._webhook_username or not self._webhook_password:
            raise ConfigError("this Halo account has no webhook credentials; add it again with --webhook-secret")
        existing = await self._read(_Webhooks, "GET", "/api/Webhook")
        for known in existing.root:
            if known.url == url:
                return f"Halo webhook {known.id} already posts to {url}"
        hook = {"name": "MSPclaw", "url": url, "content_type": "application/json", "active": True,
                "authentication_type": WEBHOOK_AUTH_BASIC, "basic_username": self._webhook_username,
                "basic_password": self._webhook_password}
        created = await self._read(_Created, "POST", "/api/Webhook", json=[hook])
        return (f"Halo webhook {created.id} created for {url}; choose its events (e.g. 'New Ticket Logged') in "
                "Configuration > Integrations > Webhooks")

    async def check(self) -> str:
        """The credential test: a token from the client credentials, then the ticket statuses (``GET /api/Status``)."""
        statuses = (await self._read(_Statuses, "GET", "/api/Status")).root
        return f"Halo issued a token for this client id and lists {len(statuses)} ticket statuses"

    async def token(self) -> str:
        """A bearer token, fetched when there is none or it expires within ``refresh_margin_s``."""
        async with self._token_lock:
            if self._token is None or self._clock() >= self._expires - self.refresh_margin_s:
                params = {"tenant": self.tenant} if self.tenant else None
                form = {"grant_type": "client_credentials", "client_id": self._client_id,
                        "client_secret": self._client_secret, "scope": self._scope}
                try:
                    answer = await self._http.request("POST", "/auth/token", params=params, data=form,
                                                      idempotent=True)
                except PSAError as exc:
                    if exc.__cause__ is not None and isinstance(exc.__cause__, httpx.HTTPStatusError) and \
                            exc.__cause__.response.status_code in (400, 401):
                        raise PSAAuthError(f"Halo refused the API application's client id/secret: "
                                           f"{_oauth_error(exc.__cause__.response)}") from exc
                    raise
                granted = read(_Token, answer, service="Halo")
                if granted.access_token is None:
                    raise PSAError("Halo answered the token request without an access_token")
                self._token = granted.access_token
                self._expires = self._clock() + (granted.expires_in if granted.expires_in is not None else 3600.0)
            return self._token

    # --- plumbing ------------------------------------------------------------------------------

    async def _read(self, model: type[M], method: str, path: str, *, json: Any = None,
                    params: Mapping[str, str | int] | None = None, idempotent: bool | None = None) -> M:
        answer = await self._call(method, path, json=json, params=params, idempotent=idempotent)
        return read(model, answer, service="Halo")

    async def _call(self, method: str, path: str, *, json: Any = None,
                    params: Mapping[str, str | int] | None = None, idempotent: bool | None = None) -> httpx.Response:
        for attempt in (0, 1):
            token = await self.token()
            try:
                answer = await self._http.request(method, path, json=json, params=params, idempotent=idempotent,
                                                  headers={"Authorization": f"Bearer {token}"})
            except PSAAuthError:
                if attempt or self._token != token:
                    raise
                self._token = None  # revoked or expired early: one more try with a fresh token
                continue
            return answer
        raise AssertionError("unreachable")

    async def _actions(self, ticket_id: str) -> list[_Action]:
        answer = await self._read(_Actions, "GET", "/api/Actions",
                                  params={"ticket_id": ticket_id, "excludesys": "true"})
        return answer.actions

    async def _status_id(self, wanted: str, ours: str) -> int:
        for refresh in (False, True):
            if self._statuses is None or refresh:
                self._statuses = (await self._read(_Statuses, "GET", "/api/Status")).root
            for status in self._statuses:
                if status.name.casefold() == wanted.casefold():
                    return status.id
        available = ", ".join(repr(s.name) for s in self._statuses or []) or "none"
        raise PSARejected(f"Halo has no ticket status {wanted!r} (mapped from {ours!r}); this instance defines: "
                          f"{available}. Fix the account's status_map.")

    def _ticket(self, raw: _Ticket) -> PSATicket:
        tags = [a.inventory_number for a in raw.assets or [] if a.inventory_number]
        return PSATicket(
            id=str(raw.id), company=str(raw.client_id) if raw.client_id and raw.client_id > 0 else "",
            requester=raw.user_email or raw.user_name or "", subject=raw.summary, requester_name=raw.user_name,
            body=plain_text(raw.details) or plain_text(raw.details_html), asset=tags[0] if tags else None,
            status=self._our_status(raw), created_at=raw.datecreated, updated_at=raw.lastactiondate)

    def _our_status(self, raw: _Ticket) -> str:
        name = (raw.status_name or "").casefold()
        if raw.hasbeenclosed is True or name == self.status_map["resolved"].casefold():
            return "resolved"
        escalated = self.status_map["escalated"].casefold()
        return "escalated" if name == escalated and escalated != "new" else "open"

    def _event(self, body: bytes) -> WebhookEvent:
        hook = webhook_body(_Hook, body, service="Halo")
        ident = hook.ticket.id if hook.ticket is not None else (hook.ticket_id if hook.ticket_id is not None
                                                                 else hook.id)
        if ident is None or not str(ident).strip().isdigit():
            raise MalformedWebhook('the Halo webhook body has no ticket id ("ticket": {"id": …}, or "ticket_id")')
        return WebhookEvent(psa=self.name, ticket_id=str(ident).strip(), event=hook.event or "ticket.updated")


def _oauth_error(response: httpx.Response) -> str:
    try:
        said = read(_OAuthError, response, service="Halo")
    except PSAError:
        return f"HTTP {response.status_code}"
    if said.error:
        return f"{said.error}: {said.error_description or ''}".strip(": ")
    return f"HTTP {response.status_code}"


def _id(ticket_id: str) -> str:
    return numeric_id(ticket_id, vendor="Halo")



def format_time(moment: datetime) -> str:
    """Halo's date parameter: UTC ISO-8601 to the second, without zone."""
    return utc(moment).strftime("%Y-%m-%dT%H:%M:%S")
