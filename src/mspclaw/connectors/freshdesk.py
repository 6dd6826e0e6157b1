"""Freshdesk, over its REST API v2.

**Endpoint and auth.** ``https://{domain}.freshdesk.com/api/v2`` (``domain`` is the helpdesk's
sub-domain; ``base_url=`` overrides it for tests). Every request carries
``Authorization: Basic base64("{api_key}:X")`` (the API key as user, any password). A wrong key is
HTTP 401 ``{"code": "invalid_credentials"}``: :class:`~mspclaw.errors.PSAAuthError`. Validation
failures are 400 ``{"description": "Validation failed", "errors": [{"field", "message", "code"}]}``
quoted in :class:`~mspclaw.errors.PSARejected`. 429 carries ``Retry-After`` (seconds), which
:mod:`mspclaw.connectors.http` honours; a client-side window of ``rate_per_minute`` (default 200,
the Growth plan's account-wide limit; Pro allows 400, Enterprise 700) keeps us under it.

**Mapping a ticket** (``GET /tickets/{id}?include=requester``, then its conversations):

* ``company`` ← ``company_id`` (``mspclaw clients add … --psa freshdesk=<company id>``);
* ``requester`` ← ``requester.email``, else ``requester.name``, else ``requester_id``;
* ``requester_name`` ← ``requester.name`` (the contact's name the reply greets);
* ``subject`` ← ``subject``; ``body`` ← ``description_text`` (else ``description`` as text);
* ``asset`` ← ``custom_fields[asset_field]`` when configured and non-empty;
* ``status`` ← 4 Resolved and 5 Closed are ``resolved``; ``status_map["escalated"]`` is
  ``escalated`` unless it is 2 (Open); else ``open``;
* ``notes`` ← ``GET /tickets/{id}/conversations`` (100 a page): ``private`` notes are internal,
  public notes and replies are public; times ← ``created_at`` / ``updated_at``.

:meth:`~FreshdeskConnector.list_tickets` pages ``GET /tickets`` with ``updated_since`` (without it
Freshdesk lists only the last 30 days; we then pass 30 days ago explicitly),
``order_by=updated_at&order_type=asc``, 100 a page, until a short page.

**Writing back.** The technical trail is ``POST /tickets/{id}/notes`` with ``private: true``; the
customer reply is ``POST /tickets/{id}/reply`` (e-mailed to the requester). Both first read the
ticket's conversations and skip text already there. Status: ``PUT /tickets/{id}`` with
``{"status": N}``, ``N`` from ``status_map`` (default ``resolved`` → 4 Resolved, ``escalated`` →
2 Open).

**Webhooks.** Freshdesk has no webhook subscription API and does not sign its calls. An automation
rule (Admin > Workflows > Automations, *Ticket Creation* or *Ticket Updates*) with the action
*Trigger Webhook* posts JSON to ``/webhooks/NAME`` with the custom header ``X-MSPclaw-Secret:
<webhook secret>`` (compared in constant time). The body is either the "advanced" content
``{"ticket_id": "{{ticket.id}}", "event": "ticket.created"}`` or Freshdesk's "simple" content
``{"freshdesk_webhook": {"ticket_id": …}}``.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar

import httpx
from pydantic import BaseModel, RootModel

from mspclaw.connectors.base import CloseStatus, NoteFormat, PSANote, PSATicket, WebhookEvent
from mspclaw.connectors.http import Clock, HttpConnector, PSAHttp, RateLimiter, Sleep
from mspclaw.connectors.note_format import render
from mspclaw.connectors.payload import Id, Key, Name, Payload, Text, Time, read, webhook_body
from mspclaw.connectors.text import changed_after, normalised, numeric_id, plain_text, utc
from mspclaw.errors import AuthError, ConfigError, MalformedWebhook

PAGE_SIZE: Final = 100
"""Freshdesk's maximum ``per_page``."""
OPEN, RESOLVED, CLOSED = 2, 4, 5
STATUSES: Final = frozenset({2, 3, 4, 5})
DEFAULT_STATUS_MAP: Final[dict[str, int]] = {"resolved": RESOLVED, "escalated": OPEN}
SECRET_HEADER: Final = "x-mspclaw-secret"  # noqa: S105 (a header name)
LIST_WINDOW: Final = timedelta(days=30)


# --- what the connector reads from Freshdesk's answers ----------------------------------------------
# The ticket list leaves out the description; everything else we read is in every ticket.

M = TypeVar("M", bound=BaseModel)


class _Requester(Payload):
    email: Name = None
    name: Name = None


class _Ticket(Payload):
    id: Id
    subject: Text
    status: int
    requester_id: int | None
    created_at: Time
    updated_at: Time
    company_id: int | None = None
    requester: _Requester | None = None
    description_text: Text = ""
    description: Text = ""
    custom_fields: dict[str, Any] | None = None


class _Tickets(RootModel[list[_Ticket]]):
    pass


class _Conversation(Payload):
    body_text: Text = ""
    body: Text = ""
    private: bool | None = None

    def text(self) -> str:
        return self.body_text.strip() or plain_text(self.body)


class _Conversations(RootModel[list[_Conversation]]):
    pass


class _SimpleHook(Payload):
    ticket_id: Key | None = None
    event: str | None = None


class _Hook(_SimpleHook):
    """The automation rule's body: ours (``ticket_id``, ``event``) or Freshdesk's simple one."""

    freshdesk_webhook: _SimpleHook | None = None


class FreshdeskConnector(HttpConnector):
    """The Freshdesk connector (every mapping and rule is in the module docstring)."""

    name = "freshdesk"
    note_format: NoteFormat = "html"
    """Freshdesk stores note and reply bodies as HTML."""

    def __init__(self, *, domain: str, api_key: str, webhook_secret: str | None = None,
                 status_map: Mapping[str, int] | None = None, asset_field: str | None = None,
                 base_url: str | None = None, transport: httpx.AsyncBaseTransport | None = None,
                 timeout: float = 30.0, max_retries: int = 3, rate_per_minute: int = 200,
                 clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep, now: Clock = time.time) -> None:
        if not domain or not api_key:
            raise ConfigError("Freshdesk needs the helpdesk's sub-domain (acme for acme.freshdesk.com) and an "
                              "agent's API key (Profile settings > View API key)")
        unknown = set(status_map or {}) - set(DEFAULT_STATUS_MAP)
        if unknown:
            raise ConfigError(f"Freshdesk status_map keys must be resolved/escalated, not {sorted(unknown)}")
        mapped = {**DEFAULT_STATUS_MAP, **(status_map or {})}
        if not set(mapped.values()) <= STATUSES:
            raise ConfigError(f"Freshdesk statuses are 2 Open, 3 Pending, 4 Resolved, 5 Closed; not {mapped}")
        self.domain = domain.removesuffix(".freshdesk.com")
        self.base_url = (base_url or f"https://{self.domain}.freshdesk.com/api/v2").rstrip("/")
        self.status_map = mapped
        self.asset_field = asset_field
        self._webhook_secret = webhook_secret
        self._now = now
        self.rate_limiter = RateLimiter(rate_per_minute, 60.0, clock=clock, sleep=sleep)
        credentials = base64.b64encode(f"{api_key}:X".encode()).decode()
        self._http = PSAHttp(service="Freshdesk", base_url=self.base_url, timeout=timeout, max_retries=max_retries,
                             headers={"Authorization": f"Basic {credentials}", "Content-Type": "application/json",
                                      "Accept": "application/json"},
                             rate_limiter=self.rate_limiter, transport=transport, sleep=sleep, now=now)

    # --- the PSAConnector protocol -------------------------------------------------------------

    async def get_ticket(self, ticket_id: str) -> PSATicket:
        raw = await self._read(_Ticket, "GET", f"/tickets/{_id(ticket_id)}", params={"include": "requester"})
        ticket = self._ticket(raw)
        ticket.notes = [PSANote(c.text(), c.private is not True) for c in await self._conversations(ticket.id)]
        return ticket

    async def list_tickets(self, since: datetime | None = None) -> list[PSATicket]:
        after = utc(since) if since is not None else datetime.fromtimestamp(self._now(), UTC) - LIST_WINDOW
        found: list[PSATicket] = []
        page = 1
        while True:
            batch = (await self._read(_Tickets, "GET", "/tickets", params={
                "updated_since": format_time(after), "order_by": "updated_at", "order_type": "asc",
                "per_page": PAGE_SIZE, "page": page})).root
            found += [self._ticket(t) for t in batch]
            if len(batch) < PAGE_SIZE:
                break
            page += 1
        return changed_after(found, since)

    async def add_note(self, ticket_id: str, text: str, *, public: bool) -> None:
        """A private note (internal) or a reply e-mailed to the requester, unless already there."""
        html = render(text, self.note_format)
        # body_text is already text: compared as it is (parsing it again would drop an escaped "<tag>")
        wanted = {normalised(text), " ".join(plain_text(html).split())}
        for conversation in await self._conversations(_id(ticket_id)):
            known = conversation.text()
            if (conversation.private is not True) == public and (" ".join(known.split()) in wanted
                                                                   or normalised(known) in wanted):
                return
        if public:
            await self._send("POST", f"/tickets/{_id(ticket_id)}/reply", json={"body": html})
        else:
            await self._send("POST", f"/tickets/{_id(ticket_id)}/notes", json={"body": html, "private": True})

    async def set_status(self, ticket_id: str, status: CloseStatus) -> None:
        await self._send("PUT", f"/tickets/{_id(ticket_id)}", json={"status": self.status_map[status]})

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
        """Check the ``X-MSPclaw-Secret`` header the automation rule sends; read the ticket id."""
        if not self._webhook_secret:
            raise AuthError("no webhook secret is configured for this Freshdesk account; refusing the webhook")
        given = next((v for k, v in headers.items() if k.lower() == SECRET_HEADER), None)
        if not given:
            raise AuthError("the Freshdesk webhook has no X-MSPclaw-Secret header (add it to the automation rule's "
                            "Trigger Webhook action as a custom header)")
        if not hmac.compare_digest(given.strip().encode(), self._webhook_secret.encode()):
            raise AuthError("the Freshdesk webhook's X-MSPclaw-Secret does not match the configured secret")
        hook = webhook_body(_Hook, body, service="Freshdesk")
        source: _SimpleHook = hook.freshdesk_webhook or hook
        ident = str(source.ticket_id).strip() if source.ticket_id is not None else ""
        if not ident.isdigit():
            raise MalformedWebhook('the Freshdesk webhook body has no numeric "ticket_id"')
        return WebhookEvent(psa=self.name, ticket_id=ident, event=source.event or "ticket.created")

    # --- plumbing ------------------------------------------------------------------------------

    async def check(self) -> str:
        """The credential test: one ticket of the help desk (``GET /tickets?per_page=1``)."""
        batch = (await self._read(_Tickets, "GET", "/tickets", params={"per_page": 1, "page": 1})).root
        seen = "at least one ticket" if batch else "no tickets yet"
        return f"Freshdesk accepted the API key for {self.domain}.freshdesk.com; it shows {seen}"

    async def _send(self, method: str, path: str, *, json: Any = None,
                    params: Mapping[str, str | int] | None = None) -> httpx.Response:
        return await self._http.request(method, self.base_url + path, json=json, params=params)

    async def _read(self, model: type[M], method: str, path: str, *,
                    params: Mapping[str, str | int] | None = None) -> M:
        return read(model, await self._send(method, path, params=params), service="Freshdesk")

    async def _conversations(self, ticket_id: str) -> list[_Conversation]:
        found: list[_Conversation] = []
        page = 1
        while True:
            batch = (await self._read(_Conversations, "GET", f"/tickets/{ticket_id}/conversations",
                                      params={"per_page": PAGE_SIZE, "page": page})).root
            found += batch
            if len(batch) < PAGE_SIZE:
                return found
            page += 1

    def _ticket(self, raw: _Ticket) -> PSATicket:
        who = raw.requester.email or raw.requester.name if raw.requester else None
        asset = (raw.custom_fields or {}).get(self.asset_field) if self.asset_field else None
        return PSATicket(
            id=str(raw.id), company=str(raw.company_id) if raw.company_id is not None else "",
            requester=who or (str(raw.requester_id) if raw.requester_id else ""), subject=raw.subject,
            requester_name=raw.requester.name if raw.requester else None,
            body=raw.description_text.strip() or plain_text(raw.description),
            asset=str(asset).strip() if isinstance(asset, str | int) and str(asset).strip() else None,
            status=self._our_status(raw.status), created_at=raw.created_at, updated_at=raw.updated_at)

    def _our_status(self, status: int) -> str:
        if status in (RESOLVED, CLOSED) or status == self.status_map["resolved"]:
            return "resolved"
        escalated = self.status_map["escalated"]
        return "escalated" if status == escalated and escalated != OPEN else "open"


def _id(ticket_id: str) -> str:
    return numeric_id(ticket_id, vendor="Freshdesk")



def format_time(moment: datetime) -> str:
    """Freshdesk's ``updated_since``: UTC ISO-8601 with ``Z``."""
    return utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")
