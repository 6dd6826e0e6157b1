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
* ``requester`` ← ``user_email``, else ``user_name``;
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
``public_outcome`` (``Email User``). Both first read the ticket's actions and skip text already
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
import json
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final
from urllib.parse import urlsplit

import httpx

from mspclaw.connectors.base import CloseStatus, PSANote, PSATicket, WebhookEvent
from mspclaw.connectors.http import Clock, HttpConnector, PSAHttp, RateLimiter, Sleep
from mspclaw.connectors.text import changed_after, normalised, numeric_id, parse_iso_time, plain_text, utc
from mspclaw.errors import AuthError, ConfigError, MalformedWebhook, PSAAuthError, PSAError, PSARejected

PAGE_SIZE: Final = 100
"""Halo's maximum ``page_size``."""
DEFAULT_STATUS_MAP: Final[dict[str, str]] = {"resolved": "Closed", "escalated": "In Progress"}
WEBHOOK_AUTH_BASIC: Final = 1
"""``Webhook.authentication_type`` for Basic credentials (unverified: see docs/psa/halo.md)."""


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
        self._statuses: list[dict[str, Any]] | None = None
        self.rate_limiter = RateLimiter(rate_per_5min, 300.0, clock=clock, sleep=sleep)
        self._http = PSAHttp(service="Halo", base_url=self.origin, timeout=timeout, max_retries=max_retries,
                             headers={"Accept": "application/json"}, rate_limiter=self.rate_limiter,
                             transport=transport, sleep=sleep, now=now)

    # --- the PSAConnector protocol -------------------------------------------------------------

    async def get_ticket(self, ticket_id: str) -> PSATicket:
        raw = await self._call("GET", f"/api/Tickets/{_id(ticket_id)}", params={"includedetails": "true"})
        if not isinstance(raw, dict):
            raise PSAError(f"Halo answered ticket {ticket_id} with something that is not a ticket")
        ticket = self._ticket(raw)
        ticket.notes = [PSANote(_action_text(a), a.get("hiddenfromuser") is not True)
                        for a in await self._actions(ticket.id)]
        return ticket

    async def list_tickets(self, since: datetime | None = None) -> list[PSATicket]:
        found: list[PSATicket] = []
        page = 1
        while True:
            params: dict[str, str | int] = {"pageinate": "true", "page_size": PAGE_SIZE, "page_no": page,
                                            "order": "id", "orderdesc": "false"}
            if since is not None:
                params["lastupdatefromdate"] = format_time(since)
            answer = await self._call("GET", "/api/Tickets", params=params)
            tickets = answer.get("tickets") if isinstance(answer, dict) else None
            if not isinstance(tickets, list):
                raise PSAError("Halo answered the ticket list without a 'tickets' list")
            found += [self._ticket(t) for t in tickets if isinstance(t, dict)]
            total = answer.get("record_count")
            if not tickets or not isinstance(total, int) or page * PAGE_SIZE >= total:
                break
            page += 1
        return changed_after(found, since)

    async def add_note(self, ticket_id: str, text: str, *, public: bool) -> None:
        """A hidden-from-user action (internal) or an e-mailed one (customer reply), unless already there."""
        wanted = normalised(text)
        for action in await self._actions(_id(ticket_id)):
            if (action.get("hiddenfromuser") is not True) == public and normalised(_action_text(action)) == wanted:
                return
        action = {"ticket_id": int(_id(ticket_id)), "outcome": self.public_outcome if public else self.internal_outcome,
                  "note": text, "hiddenfromuser": not public, "sendemail": public}
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
        existing = await self._call("GET", "/api/Webhook")
        for hook in existing if isinstance(existing, list) else []:
            if isinstance(hook, dict) and hook.get("url") == url:
                return f"Halo webhook {hook.get('id')} already posts to {url}"
        hook = {"name": "MSPclaw", "url": url, "content_type": "application/json", "active": True,
                "authentication_type": WEBHOOK_AUTH_BASIC, "basic_username": self._webhook_username,
                "basic_password": self._webhook_password}
        created = await self._call("POST", "/api/Webhook", json=[hook])
        ident = created.get("id") if isinstance(created, dict) else None
        return (f"Halo webhook {ident} created for {url}; choose its events (e.g. 'New Ticket Logged') in "
                "Configuration > Integrations > Webhooks")

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
                data = _body(answer)
                token, lifetime = (data.get("access_token"), data.get("expires_in")) if isinstance(data, dict) \
                    else (None, None)
                if not isinstance(token, str) or not token:
                    raise PSAError("Halo answered the token request without an access_token")
                self._token = token
                self._expires = self._clock() + (float(lifetime) if isinstance(lifetime, int | float) else 3600.0)
            return self._token

    # --- plumbing ------------------------------------------------------------------------------

    async def _call(self, method: str, path: str, *, json: Any = None,
                    params: Mapping[str, str | int] | None = None, idempotent: bool | None = None) -> Any:
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
            return _body(answer) if answer.content else None
        raise AssertionError("unreachable")

    async def _actions(self, ticket_id: str) -> list[dict[str, Any]]:
        answer = await self._call("GET", "/api/Actions", params={"ticket_id": ticket_id, "excludesys": "true"})
        actions = answer.get("actions") if isinstance(answer, dict) else answer
        return [a for a in actions if isinstance(a, dict)] if isinstance(actions, list) else []

    async def _status_id(self, wanted: str, ours: str) -> int:
        for refresh in (False, True):
            if self._statuses is None or refresh:
                answer = await self._call("GET", "/api/Status")
                self._statuses = [s for s in answer if isinstance(s, dict)] if isinstance(answer, list) else []
            for status in self._statuses:
                if str(status.get("name", "")).casefold() == wanted.casefold() and isinstance(status.get("id"), int):
                    return int(status["id"])
        available = ", ".join(repr(s.get("name")) for s in self._statuses or []) or "none"
        raise PSARejected(f"Halo has no ticket status {wanted!r} (mapped from {ours!r}); this instance defines: "
                          f"{available}. Fix the account's status_map.")

    def _ticket(self, raw: dict[str, Any]) -> PSATicket:
        ticket_id = raw.get("id")
        if not isinstance(ticket_id, int) or isinstance(ticket_id, bool):
            raise PSAError("Halo sent a ticket without a numeric id")
        client = raw.get("client_id")
        body = plain_text(str(raw.get("details") or "")) or plain_text(str(raw.get("details_html") or ""))
        assets = raw.get("assets")
        tags = [str(a.get("inventory_number")).strip() for a in assets if isinstance(a, dict)
                and str(a.get("inventory_number") or "").strip()] if isinstance(assets, list) else []
        return PSATicket(
            id=str(ticket_id), company=str(client) if isinstance(client, int) and client > 0 else "",
            requester=str(raw.get("user_email") or raw.get("user_name") or ""), subject=str(raw.get("summary") or ""),
            body=body, asset=tags[0] if tags else None, status=self._our_status(raw),
            created_at=parse_time(raw.get("datecreated")), updated_at=parse_time(raw.get("lastactiondate")))

    def _our_status(self, raw: dict[str, Any]) -> str:
        name = str(raw.get("status_name") or "").casefold()
        if raw.get("hasbeenclosed") is True or name == self.status_map["resolved"].casefold():
            return "resolved"
        escalated = self.status_map["escalated"].casefold()
        return "escalated" if name == escalated and escalated != "new" else "open"

    def _event(self, body: bytes) -> WebhookEvent:
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise MalformedWebhook(f"the Halo webhook body is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise MalformedWebhook("the Halo webhook body is not a JSON object")
        ticket = data.get("ticket")
        ident = ticket.get("id") if isinstance(ticket, dict) else data.get("ticket_id", data.get("id"))
        if isinstance(ident, bool) or not isinstance(ident, int | str) or not str(ident).strip().isdigit():
            raise MalformedWebhook('the Halo webhook body has no ticket id ("ticket": {"id": …}, or "ticket_id")')
        event = data.get("event") or "ticket.updated"
        return WebhookEvent(psa=self.name, ticket_id=str(ident).strip(), event=str(event))


def _action_text(action: dict[str, Any]) -> str:
    return plain_text(str(action.get("note") or action.get("note_html") or ""))


def _oauth_error(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(data, dict) and data.get("error"):
        return f"{data['error']}: {data.get('error_description') or ''}".strip(": ")
    return f"HTTP {response.status_code}"


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise PSAError(f"Halo answered {response.request.url.path} with something that is not JSON") from exc


def _id(ticket_id: str) -> str:
    return numeric_id(ticket_id, vendor="Halo")



def format_time(moment: datetime) -> str:
    """Halo's date parameter: UTC ISO-8601 to the second, without zone."""
    return utc(moment).strftime("%Y-%m-%dT%H:%M:%S")


def parse_time(value: object) -> datetime | None:
    return parse_iso_time(value, vendor="Halo")
