"""The built-in PSA: an in-memory fake and a connector for the local PSA simulator.

Two ways to have a PSA on this machine:

* :class:`LocalPSA` holds tickets in memory and records notes: the quick fake for tests at the
  PSA edge.
* :class:`LocalPSAConnector` talks to the simulator of :mod:`mspclaw.connectors.local_server`
  over its REST API, the way a real connector talks to a real PSA (ids and timestamps assigned
  by the PSA, paging, HTTP errors, signed webhooks). ``mspclaw demo`` runs against it.

Both implement :class:`~mspclaw.connectors.base.PSAConnector`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Final, TypedDict, TypeVar
from urllib.parse import quote

import httpx

from mspclaw.connectors.base import CloseStatus, PSANote, PSATicket, WebhookEvent
from mspclaw.connectors.http import HttpConnector, PSAHttp
from mspclaw.errors import (
    AuthError,
    MalformedWebhook,
    PSAError,
    PSANotFound,
)

TIMESTAMP_HEADER: Final = "x-localpsa-timestamp"
SIGNATURE_HEADER: Final = "x-localpsa-signature"
NOTES_FRESH_S: Final = 60.0
"""How long the notes this connector last read or wrote on a ticket stand in for reading them again."""
NOTES_REMEMBERED: Final = 1024
"""Tickets whose notes are remembered at once (the least recently used are forgotten first)."""
WEBHOOK_TOLERANCE_S: Final = 300
"""A webhook whose timestamp is further than this from our clock is refused (replay protection)."""

STATUS_NAMES: Final[dict[CloseStatus, str]] = {"resolved": "Resolved", "escalated": "Escalated"}
"""Our close words → the simulator's status names."""
OUR_STATUS: Final[dict[str, str]] = {"Resolved": "resolved", "Closed": "resolved", "Escalated": "escalated"}
"""The simulator's status names → our words; every other status is ``open``."""


class SampleTicket(TypedDict):
    id: str
    requester: str
    subject: str
    body: str


def sample_tickets() -> list[SampleTicket]:
    """The shipped sample tickets (``connectors/data/sample_tickets.json``)."""
    text = resources.files("mspclaw.connectors").joinpath("data/sample_tickets.json").read_text(encoding="utf-8")
    items: list[SampleTicket] = json.loads(text)
    return items


def sign_webhook(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-LocalPSA-Signature`` value: HMAC-SHA256 over ``timestamp + "." + body``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


# --- in memory -----------------------------------------------------------------------------------


class LocalPSA:
    """An in-memory PSA: tickets are the objects handed to :meth:`add`, changed in place."""

    name = "local"

    def __init__(self, tickets: list[PSATicket] | None = None) -> None:
        self._tickets: dict[str, PSATicket] = {}
        for ticket in tickets or []:
            self.add(ticket)

    @classmethod
    def with_samples(cls, company: str, asset: str | None) -> LocalPSA:
        """A PSA holding the sample tickets, all from ``company`` about ``asset``."""
        return cls([
            PSATicket(id=item["id"], company=company, requester=item["requester"], subject=item["subject"],
                      body=item["body"], asset=asset)
            for item in sample_tickets()
        ])

    def add(self, ticket: PSATicket) -> None:
        """Hold ``ticket``; it is stamped with the current time when it has no timestamps."""
        now = datetime.now(UTC)
        ticket.created_at = ticket.created_at or now
        ticket.updated_at = ticket.updated_at or ticket.created_at
        self._tickets[ticket.id] = ticket

    async def get_ticket(self, ticket_id: str) -> PSATicket:
        try:
            return self._tickets[ticket_id]
        except KeyError:
            raise PSANotFound(f"the local PSA has no ticket {ticket_id!r}") from None

    async def list_tickets(self, since: datetime | None = None) -> list[PSATicket]:
        def changed(t: PSATicket) -> datetime:
            return _utc(t.updated_at or t.created_at or datetime.now(UTC))

        found = [t for t in self._tickets.values() if since is None or changed(t) > _utc(since)]
        return sorted(found, key=changed)

    async def add_note(self, ticket_id: str, text: str, *, public: bool) -> None:
        ticket = await self.get_ticket(ticket_id)
        note = PSANote(text, public)
        if note not in ticket.notes:
            ticket.notes.append(note)
            ticket.updated_at = datetime.now(UTC)

    async def set_status(self, ticket_id: str, status: CloseStatus) -> None:
        ticket = await self.get_ticket(ticket_id)
        ticket.status = status
        ticket.updated_at = datetime.now(UTC)

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
        raise AuthError("the in-memory PSA sends no webhooks")


# --- over the simulator's REST API -------------------------------------------------------------


class LocalPSAConnector(HttpConnector):
    """The connector for the local PSA simulator's REST API (``/api/v1``, bearer token).

    ``transport`` replaces the network (``httpx.MockTransport``, ``httpx.ASGITransport``).
    Close it with :meth:`aclose` or use it as an async context manager.
    """

    name = "local"

    def __init__(self, base_url: str, api_token: str, *, webhook_secret: str | None = None,
                 transport: httpx.AsyncBaseTransport | None = None, page_size: int = 100,
                 timeout: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._webhook_secret = webhook_secret
        self._page_size = page_size
        self._clock = clock
        self._seen: OrderedDict[str, tuple[float, list[PSANote]]] = OrderedDict()
        """Per ticket: when its notes were last read from the simulator, and those notes plus ours since."""
        self._http = PSAHttp(service="the local PSA", base_url=base_url.rstrip("/") + "/api/v1",
                             headers={"Authorization": f"Bearer {api_token}"}, timeout=timeout, transport=transport,
                             max_retries=2, backoff_cap=2.0)


    # the PSAConnector protocol

    async def get_ticket(self, ticket_id: str) -> PSATicket:
        """The ticket with its notes, oldest note first (one request: ``?include=notes``)."""
        read_at = self._clock()
        data = await self._call("GET", f"/tickets/{quote(ticket_id, safe='')}", params={"include": "notes"})
        ticket = _ticket(data)
        ticket.notes = self._remember_notes(ticket_id, read_at, data)
        return ticket

    async def list_tickets(self, since: datetime | None = None) -> list[PSATicket]:
        """Tickets changed after ``since``, oldest first, following every page. Notes are not
        fetched here (``notes`` is empty); :meth:`get_ticket` brings them."""
        params: dict[str, str | int] = {"page_size": self._page_size}
        if since is not None:
            params["updated_since"] = _utc(since).isoformat()
        found: list[PSATicket] = []
        page = 1
        while True:
            data = await self._call("GET", "/tickets", params={**params, "page": page})
            found += [_ticket(item) for item in _field(data, "tickets", list)]
            if not _field(data, "has_more", bool):
                return found
            page += 1

    async def add_note(self, ticket_id: str, text: str, *, public: bool) -> None:
        """Post a note unless the ticket already carries the same text with the same visibility.

        The notes looked at are those read (by :meth:`get_ticket` or here) or posted by this
        connector within :data:`NOTES_FRESH_S`, else they are read again: after :meth:`get_ticket`, a
        ticket's internal note and public reply cost a POST each and no GET. A post that fails in any
        way (a timeout after which the note may be there after all) forgets the ticket's notes, so
        the retry reads them from the PSA before it posts.
        """
        note = PSANote(text, public)
        if note in await self._known_notes(ticket_id):
            return
        try:
            await self._call("POST", f"/tickets/{quote(ticket_id, safe='')}/notes", json={"text": text,
                                                                                           "public": public})
        except BaseException:
            self._seen.pop(ticket_id, None)
            raise
        seen = self._seen.get(ticket_id)
        if seen is not None:
            seen[1].append(note)

    async def set_status(self, ticket_id: str, status: CloseStatus) -> None:
        await self._call("PATCH", f"/tickets/{quote(ticket_id, safe='')}", json={"status": STATUS_NAMES[status]})

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
        """Verify the signature and the timestamp window, then read the event.

        Raises :class:`AuthError` when no secret is configured here, when the signature is missing
        or wrong, or when the timestamp is more than five minutes from our clock;
        :class:`MalformedWebhook` when a correctly signed body is not a LocalPSA event.
        """
        lower = {key.lower(): value for key, value in headers.items()}
        if not self._webhook_secret:
            raise AuthError("no webhook secret is configured for the local PSA; refusing unsigned webhooks")
        timestamp, signature = lower.get(TIMESTAMP_HEADER), lower.get(SIGNATURE_HEADER)
        if not timestamp or not signature:
            raise AuthError("the webhook has no X-LocalPSA-Timestamp or X-LocalPSA-Signature header")
        expected = sign_webhook(self._webhook_secret, timestamp, body)
        if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
            raise AuthError("the webhook signature does not match the configured secret")
        try:
            sent = int(timestamp)
        except ValueError:
            raise AuthError(f"the webhook timestamp {timestamp!r} is not unix seconds") from None
        if abs(time.time() - sent) > WEBHOOK_TOLERANCE_S:
            raise AuthError("the webhook timestamp is more than five minutes off: a stale or replayed delivery")
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise MalformedWebhook(f"the local PSA webhook body is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise MalformedWebhook("the local PSA webhook body is not a JSON object")
        event, ticket_id, delivery_id = data.get("event"), data.get("ticket_id"), data.get("delivery_id")
        if not isinstance(event, str) or not isinstance(ticket_id, str | int) or not isinstance(delivery_id, str):
            raise MalformedWebhook("the local PSA webhook lacks event, ticket_id or delivery_id")
        return WebhookEvent(psa=self.name, ticket_id=str(ticket_id), event=event, delivery_id=delivery_id)

    # beyond the protocol: what a person does in the PSA (the demo and tests use these)

    async def create_company(self, name: str) -> str:
        """Create a company and return the id the PSA gave it."""
        return str(_field(await self._call("POST", "/companies", json={"name": name}), "id", str))

    async def create_ticket(self, company: str, *, requester: str, subject: str, body: str = "",
                            asset: str | None = None) -> PSATicket:
        """Open a ticket as an end user would; the simulator sends its ``ticket.created`` webhook."""
        payload = {"company_id": company, "requester": requester, "subject": subject, "body": body, "asset": asset}
        return _ticket(await self._call("POST", "/tickets", json=payload))

    # plumbing

    async def _notes(self, ticket_id: str) -> list[PSANote]:
        """The ticket's notes as the simulator has them now, remembered for :meth:`add_note`."""
        read_at = self._clock()
        data = await self._call("GET", f"/tickets/{quote(ticket_id, safe='')}/notes")
        return self._remember_notes(ticket_id, read_at, data)

    def _remember_notes(self, ticket_id: str, read_at: float, data: dict[str, Any]) -> list[PSANote]:
        notes = [PSANote(_field(n, "text", str), _field(n, "public", bool)) for n in _field(data, "notes", list)]
        self._seen[ticket_id] = (read_at, list(notes))
        self._seen.move_to_end(ticket_id)
        while len(self._seen) > NOTES_REMEMBERED:
            self._seen.popitem(last=False)
        return notes

    async def _known_notes(self, ticket_id: str) -> list[PSANote]:
        seen = self._seen.get(ticket_id)
        if seen is not None and self._clock() - seen[0] < NOTES_FRESH_S:
            return seen[1]
        return await self._notes(ticket_id)

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """One request through the shared plumbing (retries, ``Retry-After``, error translation)."""
        response = await self._http.request(method, path, **kwargs)
        try:
            data = response.json()
        except ValueError as exc:
            raise PSAError(f"the local PSA answered {method} {path} with something that is not JSON") from exc
        if not isinstance(data, dict):
            raise PSAError(f"the local PSA answered {method} {path} with a JSON {type(data).__name__}")
        return data


T = TypeVar("T")


def _field(data: Any, key: str, kind: type[T]) -> T:
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, kind):
        raise PSAError(f"the local PSA sent a record whose {key!r} is not a {kind.__name__}")
    return value


def _moment(data: dict[str, Any], key: str) -> datetime:
    try:
        return _utc(datetime.fromisoformat(_field(data, key, str)))
    except ValueError as exc:
        raise PSAError(f"the local PSA sent a {key!r} that is not an ISO timestamp") from exc


def _ticket(data: dict[str, Any]) -> PSATicket:
    asset = data.get("asset")
    return PSATicket(
        id=_field(data, "id", str), company=_field(data, "company_id", str),
        requester=_field(data, "requester", str), subject=_field(data, "subject", str),
        body=_field(data, "body", str), asset=asset if isinstance(asset, str) else None,
        status=OUR_STATUS.get(_field(data, "status", str), "open"),
        created_at=_moment(data, "created_at"), updated_at=_moment(data, "updated_at"),
    )
