"""Datto Autotask PSA, over its REST API (``/atservicesrest/v1.0``).

**Zone and auth.** The account's zone is discovered on first use from
``GET https://webservices.autotask.net/atservicesrest/v1.0/zoneInformation?user={username}``
(sent without credentials) unless ``zone_url`` is configured; calls then go to ``{url}v1.0``.
Every call carries ``ApiIntegrationCode`` (the integration's tracking identifier), ``UserName``
(the API-only user) and ``Secret``. 401 is :class:`~mspclaw.errors.PSAAuthError`; validation
failures come back as HTTP 500 ``{"errors": ["…"]}`` and are raised as
:class:`~mspclaw.errors.PSARejected` quoting them (reads are retried first, as for any 500).

**Limits.** Autotask allows three concurrent requests per endpoint per tracking identifier and
10,000 requests per rolling hour per database (shared by every integration). Each connector
sends at most ``max_concurrent`` (3) requests at once and at most ``hourly_limit`` (10,000; set it
lower when other integrations share the database) per sliding hour; 429 with ``Retry-After`` is
honoured by :mod:`mspclaw.connectors.http`.

**Mapping a ticket** (``GET /Tickets/{id}`` → ``{"item": …}``):

* ``company`` ← ``companyID`` (``mspclaw clients add … --psa autotask=<company id>``);
* ``requester`` ← the contact's ``emailAddress`` (``GET /Contacts/{contactID}``), else their name;
  ``requester_name`` ← the contact's ``firstName`` and ``lastName``;
* ``subject`` ← ``title``; ``body`` ← ``description``;
* ``asset`` ← the configuration item's ``referenceTitle`` (``GET /ConfigurationItems/{id}``);
* ``status`` ← the ticket's ``status`` value compared with the values of the ``status_map`` labels
  in the ``status`` picklist (``/Tickets/entityInformation/fields``);
* ``notes`` ← ``POST /TicketNotes/query`` on ``ticketID``: a note is public when its ``publish``
  is the "All Autotask Users" value; times ← ``createDate`` / ``lastActivityDate``.

:meth:`~AutotaskConnector.list_tickets` posts ``/Tickets/query`` with
``{"op": "gt", "field": "lastActivityDate", "value": since}`` (``exist id`` without a cursor),
500 a page, following ``pageDetails.nextPageUrl`` (only on the zone's own host).

**Writing back.** ``POST /Tickets/{id}/Notes`` with ``title`` (``MSPclaw``), ``description``
(plain text), ``noteType`` (the picklist's default) and ``publish``: the integer values are read
once from ``/TicketNotes/entityInformation/fields`` — "All Autotask Users" for the customer-visible
reply, the "Internal Only" value (``internal_publish`` names another label) for the technical
trail. Both first read the ticket's notes and skip text already there. Status:
``PATCH /Tickets`` ``{"id", "status"}`` with the picklist value of ``status_map``'s label
(default ``resolved`` → ``Complete``, ``escalated`` → ``In Progress``; :class:`PSARejected`
listing the labels when one is missing).

**Webhooks.** :meth:`~AutotaskConnector.register_webhook` creates a ``TicketWebhooks`` entry
(create and update events, ``SecretKey`` = the account's webhook secret) and subscribes it to the
``Status`` field, unless one for the URL exists. A delivery is JSON with ``Action``
(``Create|Update|Delete``), ``Guid``, ``EntityType`` (``Ticket``), ``Id`` and ``Fields``;
``X-Hook-Signature: sha1=<base64 HMAC-SHA1(secret, body)>`` is checked in constant time (the
``sha1=`` prefix is optional). The body's ``EventTime`` is under that signature, so a delivery
whose ``EventTime`` is outside the replay window (:mod:`mspclaw.connectors.freshness`, five
minutes) is refused as a replay; a delivery without one is accepted (Autotask documents the field
loosely, and a replayer cannot remove it from a signed body). ``Guid:SequenceNumber`` is the
delivery id.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, Generic, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, Field

from mspclaw.connectors.base import CloseStatus, NoteFormat, PSANote, PSATicket, WebhookEvent
from mspclaw.connectors.freshness import check_fresh
from mspclaw.connectors.http import Clock, HttpConnector, PSAHttp, RateLimiter, Sleep
from mspclaw.connectors.payload import Id, Key, Name, Payload, Text, Time, read, webhook_body
from mspclaw.connectors.text import changed_after, normalised, numeric_id, parse_iso_time, plain_text, utc
from mspclaw.errors import (
    AuthError,
    ConfigError,
    MalformedWebhook,
    PSAError,
    PSANotFound,
    PSARejected,
    PSAUnavailable,
)

DISCOVERY_URL: Final = "https://webservices.autotask.net"
PAGE_SIZE: Final = 500
"""Autotask's maximum ``MaxRecords``."""
DEFAULT_STATUS_MAP: Final[dict[str, str]] = {"resolved": "Complete", "escalated": "In Progress"}
PUBLIC_PUBLISH: Final = "All Autotask Users"
SIGNATURE_HEADER: Final = "x-hook-signature"
ACTIONS: Final[dict[str, str]] = {"create": "ticket.created", "update": "ticket.updated", "delete": "ticket.deleted"}
NOTE_TITLE: Final = "MSPclaw"


# --- what the connector reads from Autotask's answers -----------------------------------------------
# Autotask sends every field of an entity, null or not: a field it renamed is one clear error.

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R", bound=Payload)
"""A record of an entity (a ticket, a note)."""


class _Ticket(Payload):
    id: Id
    title: Text
    description: Text
    status: int | None
    company_id: int | None = Field(alias="companyID")
    contact_id: int | None = Field(alias="contactID")
    item_id: int | None = Field(alias="configurationItemID")
    created: Time = Field(alias="createDate")
    updated: Time = Field(alias="lastActivityDate")


class _Contact(Payload):
    first_name: Name = Field(None, alias="firstName")
    last_name: Name = Field(None, alias="lastName")
    email: Name = Field(None, alias="emailAddress")


class _ConfigurationItem(Payload):
    title: Name = Field(None, alias="referenceTitle")


class _Item(Payload, Generic[R]):
    """``GET /{Entity}/{id}``: ``{"item": …}``, ``null`` when there is none."""

    item: R | None


class _Note(Payload):
    description: Text
    publish: int | None


class _Webhook(Payload):
    id: Id


class _PageDetails(Payload):
    next_page_url: str | None = Field(None, alias="nextPageUrl")


class _Page(Payload, Generic[R]):
    items: list[R]
    page_details: _PageDetails | None = Field(None, alias="pageDetails")


class _PicklistValue(Payload):
    value: int
    label: Text
    is_active: bool | None = Field(None, alias="isActive")
    is_default: bool | None = Field(None, alias="isDefaultValue")


class _Field(Payload):
    name: Text
    picklist: list[_PicklistValue] | None = Field(None, alias="picklistValues")


class _Fields(Payload):
    fields: list[_Field]


class _Created(Payload):
    item_id: int | None = Field(None, alias="itemId")


class _Zone(Payload):
    url: Name = None


class _Errors(Payload):
    errors: list[Any] | None = None


class _Delivery(Payload):
    """A ticket webhook's delivery (the fields we read)."""

    entity_type: str | None = Field(None, alias="EntityType")
    id: Key | None = Field(None, alias="Id")
    event_time: str | None = Field(None, alias="EventTime")
    action: str | None = Field(None, alias="Action")
    guid: str | None = Field(None, alias="Guid")
    sequence: Key | None = Field(None, alias="SequenceNumber")


def sign_hook(secret: str, body: bytes) -> str:
    """The ``X-Hook-Signature`` Autotask sends: ``sha1=`` and the base64 HMAC-SHA1 of the body."""
    return "sha1=" + base64.b64encode(hmac.digest(secret.encode(), body, hashlib.sha1)).decode()


class AutotaskConnector(HttpConnector):
    """The Autotask connector (every mapping and rule is in the module docstring)."""

    name = "autotask"
    note_format: NoteFormat = "text"
    """Autotask keeps only the plain text of notes written through the API."""

    def __init__(self, *, username: str, integration_code: str, secret: str, zone_url: str | None = None,
                 webhook_secret: str | None = None, status_map: Mapping[str, str] | None = None,
                 internal_publish: str = "Internal Only", notification_email: str | None = None,
                 discovery_url: str = DISCOVERY_URL, transport: httpx.AsyncBaseTransport | None = None,
                 timeout: float = 30.0, max_retries: int = 3, max_concurrent: int = 3, hourly_limit: int = 10_000,
                 clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep, now: Clock = time.time) -> None:
        if not username or not integration_code or not secret:
            raise ConfigError("Autotask needs the API user's user name and secret and the integration's tracking "
                              "identifier (Admin > Resources (Users) > API user > Security)")
        unknown = set(status_map or {}) - set(DEFAULT_STATUS_MAP)
        if unknown:
            raise ConfigError(f"Autotask status_map keys must be resolved/escalated, not {sorted(unknown)}")
        if webhook_secret is not None and len(webhook_secret) > 64:
            raise ConfigError("Autotask webhook secrets are at most 64 characters")
        self.username = username
        self.zone_url = _zone(zone_url) if zone_url else None
        self.status_map: dict[str, str] = {**DEFAULT_STATUS_MAP, **(status_map or {})}
        self.internal_publish = internal_publish
        self.notification_email = notification_email
        self._webhook_secret = webhook_secret
        self._now = now
        self._picklists: dict[str, dict[str, list[_PicklistValue]]] = {}
        self._slots = asyncio.Semaphore(max_concurrent)
        self.rate_limiter = RateLimiter(hourly_limit, 3600.0, clock=clock, sleep=sleep)
        """Spent by every attempt; share it between connectors on the same Autotask database."""
        common: dict[str, Any] = {"timeout": timeout, "max_retries": max_retries, "transport": transport,
                                  "sleep": sleep, "now": now}
        self._discovery = PSAHttp(service="Autotask", base_url=discovery_url.rstrip("/"), **common)
        self._http = PSAHttp(service="Autotask", base_url=discovery_url.rstrip("/"),
                             headers={"ApiIntegrationCode": integration_code, "UserName": username, "Secret": secret,
                                      "Content-Type": "application/json", "Accept": "application/json"},
                             rate_limiter=self.rate_limiter, status_errors={500: _server_error}, **common)

    async def aclose(self) -> None:
        await self._discovery.aclose()
        await super().aclose()

    # --- the PSAConnector protocol -------------------------------------------------------------

    async def get_ticket(self, ticket_id: str) -> PSATicket:
        raw = await self._item(_Ticket, f"/Tickets/{_id(ticket_id)}", what=f"ticket {ticket_id}")
        ticket = await self._ticket(raw)
        if raw.contact_id is not None and raw.contact_id > 0:
            person = await self._item(_Contact, f"/Contacts/{raw.contact_id}", what=f"contact {raw.contact_id}")
            name = " ".join(part for part in (person.first_name, person.last_name) if part)
            ticket.requester = person.email or name
            ticket.requester_name = name or None
        if raw.item_id is not None and raw.item_id > 0:
            ci = await self._item(_ConfigurationItem, f"/ConfigurationItems/{raw.item_id}",
                                  what=f"configuration item {raw.item_id}")
            ticket.asset = ci.title
        public = await self._publish(PUBLIC_PUBLISH)
        ticket.notes = [PSANote(plain_text(n.description), n.publish == public) for n in await self._notes(ticket.id)]
        return ticket

    async def list_tickets(self, since: datetime | None = None) -> list[PSATicket]:
        condition = ({"op": "gt", "field": "lastActivityDate", "value": format_time(since)} if since is not None
                     else {"op": "exist", "field": "id"})
        found: list[PSATicket] = []
        for raw in await self._query(_Ticket, "Tickets", [condition]):
            found.append(await self._ticket(raw))
        return changed_after(found, since)

    async def add_note(self, ticket_id: str, text: str, *, public: bool) -> None:
        """A note published to all Autotask users (customer-visible) or internal only, unless already there."""
        publish = await self._publish(PUBLIC_PUBLISH if public else self.internal_publish)
        wanted = normalised(text)
        for known in await self._notes(_id(ticket_id)):
            if known.publish == publish and normalised(known.description) == wanted:
                return
        note_type = await self._default_value("TicketNotes", "noteType")
        await self._send("POST", f"/Tickets/{_id(ticket_id)}/Notes", json={
            "title": NOTE_TITLE, "description": text, "noteType": note_type, "publish": publish})

    async def set_status(self, ticket_id: str, status: CloseStatus) -> None:
        value = await self._value("Tickets", "status", self.status_map[status], ours=status)
        await self._send("PATCH", "/Tickets", json={"id": int(_id(ticket_id)), "status": value}, idempotent=True)

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
        """Verify ``X-Hook-Signature`` (HMAC-SHA1 with the webhook's secret key); read the event."""
        if not self._webhook_secret:
            raise AuthError("no webhook secret is configured for this Autotask account; refusing the webhook")
        given = next((v for k, v in headers.items() if k.lower() == SIGNATURE_HEADER), None)
        if not given:
            raise AuthError("the Autotask webhook has no X-Hook-Signature header")
        expected = sign_hook(self._webhook_secret, body).removeprefix("sha1=")
        if not hmac.compare_digest(expected.encode(), given.strip().removeprefix("sha1=").encode()):
            raise AuthError("the Autotask webhook's X-Hook-Signature does not match the configured secret")
        hook = webhook_body(_Delivery, body, service="Autotask")
        if (hook.entity_type or "").lower() != "ticket":
            raise MalformedWebhook(f"the Autotask webhook is about a {hook.entity_type!r}, not a Ticket")
        ident = str(hook.id).strip() if hook.id is not None else ""
        if not ident.isdigit():
            raise MalformedWebhook('the Autotask webhook has no numeric ticket "Id"')
        try:
            sent = parse_iso_time(hook.event_time, vendor="Autotask")
        except PSAError as exc:
            raise MalformedWebhook(f"the Autotask webhook's EventTime is not a time: {exc.message}") from None
        if sent is not None:
            check_fresh(sent, self._now(), what=f"the Autotask webhook for ticket {ident} (EventTime)")
        action = (hook.action or "Update").lower()
        delivery = f"{hook.guid}:{hook.sequence}" if hook.guid and hook.sequence is not None else None
        return WebhookEvent(psa=self.name, ticket_id=ident,
                            event=ACTIONS.get(action, f"ticket.{action}"), delivery_id=delivery)

    # --- beyond the protocol -------------------------------------------------------------------

    async def register_webhook(self, url: str) -> str:
        """A ticket webhook for create and update events to ``url``, with a subscribed Status field."""
        if not self._webhook_secret:
            raise ConfigError("this Autotask account has no webhook secret; add it again with --webhook-secret")
        existing = await self._query(_Webhook, "TicketWebhooks", [{"op": "eq", "field": "WebhookUrl", "value": url}])
        if existing:
            return f"Autotask ticket webhook {existing[0].id} already posts to {url}"
        hook: dict[str, Any] = {
            "Name": "MSPclaw", "WebhookUrl": url, "DeactivationUrl": url, "SecretKey": self._webhook_secret,
            "IsActive": True, "IsSubscribedToCreateEvents": True, "IsSubscribedToUpdateEvents": True,
            "IsSubscribedToDeleteEvents": False, "SendThresholdExceededNotification": False}
        if self.notification_email:
            hook["NotificationEmailAddress"] = self.notification_email
        ident = (await self._read(_Created, "POST", "/TicketWebhooks", json=hook)).item_id
        if ident is None:
            raise PSAError("Autotask created the ticket webhook without saying its itemId")
        field_id = await self._value("TicketWebhookFields", "fieldID", "Status", ours="webhook field")
        await self._send("POST", f"/TicketWebhooks/{ident}/Fields",
                         json={"FieldID": field_id, "IsSubscribedField": True, "IsDisplayAlwaysField": False})
        return f"Autotask ticket webhook {ident} created: ticket create and update events go to {url}"

    async def check(self) -> str:
        """The credential test: the zone (discovered if not configured) and the ticket entity's field list."""
        answer = await self._read(_Fields, "GET", "/tickets/entityInformation/fields")
        return (f"Autotask accepted the API user at {await self.base()}; "
                f"the ticket entity has {len(answer.fields)} fields")

    async def base(self) -> str:
        """``{zone url}v1.0``, discovering the zone once when it was not configured."""
        if self.zone_url is None:
            answer = await self._discovery.request("GET", "/atservicesrest/v1.0/zoneInformation",
                                                   params={"user": self.username})
            url = read(_Zone, answer, service="Autotask").url
            if url is None or not url.startswith(("https://", "http://")):
                raise PSAError(f"Autotask did not say the zone of API user {self.username!r} (zoneInformation); "
                               "check the user name")
            self.zone_url = _zone(url)
        return self.zone_url + "v1.0"

    # --- plumbing ------------------------------------------------------------------------------

    async def _send(self, method: str, path: str, *, json: Any = None,
                    idempotent: bool | None = None) -> httpx.Response:
        url = path if path.startswith(("https://", "http://")) else await self.base() + path
        async with self._slots:
            return await self._http.request(method, url, json=json, idempotent=idempotent)

    async def _read(self, model: type[M], method: str, path: str, *, json: Any = None,
                    idempotent: bool | None = None) -> M:
        return read(model, await self._send(method, path, json=json, idempotent=idempotent), service="Autotask")

    async def _item(self, model: type[R], path: str, *, what: str) -> R:
        item = (await self._read(_Item[model], "GET", path)).item  # type: ignore[valid-type]
        if item is None:
            raise PSANotFound(f"Autotask has no {what}")
        return item

    async def _query(self, model: type[R], entity: str, conditions: list[dict[str, Any]]) -> list[R]:
        page_model = _Page[model]  # type: ignore[valid-type]
        found: list[R] = []
        answer = await self._read(page_model, "POST", f"/{entity}/query",
                                  json={"MaxRecords": PAGE_SIZE, "filter": conditions}, idempotent=True)
        while True:
            found += answer.items
            following = answer.page_details.next_page_url if answer.page_details else None
            if not following:
                return found
            zone, there = urlsplit(await self.base()), urlsplit(following)
            if (zone.scheme, zone.netloc) != (there.scheme, there.netloc):
                raise PSAError(f"Autotask's nextPageUrl points to {there.netloc!r}, not to the zone {zone.netloc}")
            answer = await self._read(page_model, "GET", following)

    async def _notes(self, ticket_id: str) -> list[_Note]:
        return await self._query(_Note, "TicketNotes", [{"op": "eq", "field": "ticketID", "value": int(ticket_id)}])

    async def _ticket(self, raw: _Ticket) -> PSATicket:
        return PSATicket(
            id=str(raw.id), company=str(raw.company_id) if raw.company_id is not None else "", requester="",
            subject=raw.title, body=plain_text(raw.description), status=await self._our_status(raw.status),
            created_at=raw.created, updated_at=raw.updated)

    async def _our_status(self, value: int | None) -> str:
        if value is None:
            return "open"
        for ours in ("resolved", "escalated"):
            picklist = await self._picklist("Tickets", "status")
            wanted = self.status_map[ours].casefold()
            if any(p.value == value and p.label.casefold() == wanted for p in picklist):
                return ours
        return "open"

    async def _picklist(self, entity: str, field: str) -> list[_PicklistValue]:
        if entity not in self._picklists:
            answer = await self._read(_Fields, "GET", f"/{entity}/entityInformation/fields")
            self._picklists[entity] = {f.name.casefold(): f.picklist or [] for f in answer.fields}
        return self._picklists[entity].get(field.casefold(), [])

    async def _value(self, entity: str, field: str, label: str, *, ours: str) -> int:
        active = [p for p in await self._picklist(entity, field) if p.is_active is not False]
        for item in active:
            if item.label.casefold() == label.casefold():
                return item.value
        labels = ", ".join(repr(p.label) for p in active) or "none"
        raise PSARejected(f"Autotask's {entity}.{field} picklist has no active {label!r} (for {ours!r}); it has: "
                          f"{labels}. Fix the account's configuration.")

    async def _publish(self, label: str) -> int:
        return await self._value("TicketNotes", "publish", label, ours="note visibility")

    async def _default_value(self, entity: str, field: str) -> int:
        picklist = [p for p in await self._picklist(entity, field) if p.is_active is not False]
        chosen = next((p for p in picklist if p.is_default is True), picklist[0] if picklist else None)
        if chosen is None:
            raise PSARejected(f"Autotask's {entity}.{field} picklist has no active value")
        return chosen.value


def _server_error(response: httpx.Response) -> PSAError:
    """Autotask answers validation failures with HTTP 500 and ``{"errors": [...]}``: a rejection, not an outage."""
    try:
        errors = read(_Errors, response, service="Autotask").errors
    except PSAError:
        errors = None
    where = f"{response.request.method} {response.request.url.path}"
    if errors:
        return PSARejected(f"Autotask rejected {where}: {'; '.join(str(e) for e in errors)}")
    return PSAUnavailable(f"Autotask failed (500) on {where}: {' '.join(response.text.split())[:300]}")


def _zone(url: str) -> str:
    return url.rstrip("/") + "/"


def _id(ticket_id: str) -> str:
    return numeric_id(ticket_id, vendor="Autotask")



def format_time(moment: datetime) -> str:
    return utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")
