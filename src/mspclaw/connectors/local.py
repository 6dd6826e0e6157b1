"""The built-in PSA: an in-memory fake and a connector for the local PSA simulator.

Two ways to have a PSA on this machine:

* :class:`LocalPSA` holds tickets in memory and records notes: the quick fake for tests at the
  PSA edge.
* :class:`LocalPSAConnector` talks to the simulator of :mod:`mspclaw.simulators.local_psa`
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
from typing import Any, Final, NotRequired, TypedDict, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from mspclaw.connectors.base import CloseStatus, NoteFormat, PSANote, PSATicket, WebhookEvent
from mspclaw.connectors.http import HttpConnector, PSAHttp
from mspclaw.connectors.payload import Key, Moment, Payload, read, webhook_body
from mspclaw.errors import AuthError, PSANotFound

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


# --- what the connector reads from the simulator's answers -------------------------------------------

M = TypeVar("M", bound=BaseModel)


class _Note(Payload):
    text: str
    public: bool


class _Notes(Payload):
    notes: list[_Note]

    def psa_notes(self) -> list[PSANote]:
        return [PSANote(n.text, n.public) for n in self.notes]


class _Ticket(Payload):
    id: str
    company_id: str
    requester: str
    subject: str
    body: str
    status: str
    created_at: Moment
    updated_at: Moment
    asset: str | None = None
    requester_name: str | None = None

    def psa_ticket(self) -> PSATicket:
        return PSATicket(id=self.id, company=self.company_id, requester=self.requester, subject=self.subject,
                         body=self.body, asset=self.asset, requester_name=self.requester_name,
                         status=OUR_STATUS.get(self.status, "open"),
                         created_at=self.created_at, updated_at=self.updated_at)


class _TicketWithNotes(_Ticket, _Notes):
    pass


class _Page(Payload):
    tickets: list[_Ticket]
    has_more: bool


class _Created(Payload):
    id: str


class _Hook(Payload):
    event: str
    ticket_id: Key
    delivery_id: str


class SampleTicket(TypedDict):
    id: str
    requester: str
    subject: str
    body: str
    requester_name: NotRequired[str]


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
    note_format: NoteFormat = "text"

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
    note_format: NoteFormat = "text"

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
        data = await self._call(_TicketWithNotes, "GET", f"/tickets/{quote(ticket_id, safe='')}",
                                params={"include": "notes"})
        ticket = data.psa_ticket()
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
            data = await self._call(_Page, "GET", "/tickets", params={**params, "page": page})
            found += [item.psa_ticket() for item in data.tickets]
            if not data.has_more:
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
            await self._http.request("POST", f"/tickets/{quote(ticket_id, safe='')}/notes",
                                     json={"text": text, "public": public})
        except BaseException:
            self._seen.pop(ticket_id, None)
            raise
        seen = self._seen.get(ticket_id)
        if seen is not None:
            seen[1].append(note)

    async def set_status(self, ticket_id: str, status: CloseStatus) -> None:
        await self._http.request("PATCH", f"/tickets/{quote(ticket_id, safe='')}",
                                 json={"status": STATUS_NAMES[status]})

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
        hook = webhook_body(_Hook, body, service="local PSA")
        return WebhookEvent(psa=self.name, ticket_id=str(hook.ticket_id), event=hook.event,
                            delivery_id=hook.delivery_id)

    # beyond the protocol: what a person does in the PSA (the demo and tests use these)

    async def create_company(self, name: str) -> str:
        """Create a company and return the id the PSA gave it."""
        return (await self._call(_Created, "POST", "/companies", json={"name": name})).id

    async def create_ticket(self, company: str, *, requester: str, subject: str, body: str = "",
                            asset: str | None = None, requester_name: str | None = None) -> PSATicket:
        """Open a ticket as an end user would; the simulator sends its ``ticket.created`` webhook."""
        payload = {"company_id": company, "requester": requester, "subject": subject, "body": body, "asset": asset,
                   "requester_name": requester_name}
        return (await self._call(_Ticket, "POST", "/tickets", json=payload)).psa_ticket()

    # plumbing

    async def _notes(self, ticket_id: str) -> list[PSANote]:
        """The ticket's notes as the simulator has them now, remembered for :meth:`add_note`."""
        read_at = self._clock()
        data = await self._call(_Notes, "GET", f"/tickets/{quote(ticket_id, safe='')}/notes")
        return self._remember_notes(ticket_id, read_at, data)

    def _remember_notes(self, ticket_id: str, read_at: float, data: _Notes) -> list[PSANote]:
        notes = data.psa_notes()
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

    async def check(self) -> str:
        """The credential test: one ticket of the list (``GET /tickets?page_size=1``)."""
        data = await self._call(_Page, "GET", "/tickets", params={"page_size": 1, "page": 1})
        seen = "at least one ticket" if data.tickets else "no tickets yet"
        return f"the local PSA accepted the API token; it shows {seen}"

    async def _call(self, model: type[M], method: str, path: str, **kwargs: Any) -> M:
        """One request through the shared plumbing (retries, ``Retry-After``, error translation), its
        answer read as ``model``."""
        return read(model, await self._http.request(method, path, **kwargs), service="the local PSA")
