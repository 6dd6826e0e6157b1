"""The interface every PSA connector implements (one file per PSA), and the ticket it maps to.

A connector turns its PSA's API into these few calls. Shared HTTP plumbing (timeouts, retries
with backoff honouring ``Retry-After``, client-side rate limits, error translation) lives in
:mod:`mspclaw.connectors.http`, never in a connector; which proxy carries a request, in
:mod:`mspclaw.connectors.proxies`.

A connector reads its PSA's JSON through small private pydantic models at the top of its file
(:mod:`mspclaw.connectors.payload`), validated once where the answer arrives. Its calls raise
only the PSA branch of :mod:`mspclaw.errors`: :class:`~mspclaw.errors.PSAAuthError`,
:class:`~mspclaw.errors.PSANotFound`, :class:`~mspclaw.errors.PSARateLimited`,
:class:`~mspclaw.errors.PSAUnavailable` and :class:`~mspclaw.errors.PSARejected` for what the
PSA said or failed to say, and :class:`~mspclaw.errors.PSAError` itself for an answer that does
not fit the model (a vendor's API change), naming the PSA, the request and the field path; no
ticket is built and nothing is written from such an answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

CloseStatus = Literal["resolved", "escalated"]
"""Our words for the outcome; each connector maps them to its PSA's status names."""

NoteFormat = Literal["html", "text"]
"""How a PSA shows a note's body: ``html`` renders markup, ``text`` shows the characters as written."""


@dataclass(frozen=True)
class PSANote:
    text: str
    public: bool


@dataclass
class PSATicket:
    """A PSA's ticket mapped into our terms."""

    id: str
    company: str
    """The PSA's id of the client company: matched against ``Client.psa_refs[psa]``."""
    requester: str
    subject: str
    body: str
    asset: str | None = None
    """The PSA's asset / configuration item: our device's host name or id."""
    requester_name: str | None = None
    """The contact's name as the PSA holds it (the reply greets them by it); ``None`` when the PSA
    gives none. Never derived from an e-mail address."""
    status: str = "open"
    notes: list[PSANote] = field(default_factory=list)
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class WebhookEvent:
    """What a verified webhook says happened."""

    psa: str
    ticket_id: str
    event: str = "ticket.created"
    delivery_id: str | None = None


class PSAConnector(Protocol):
    name: str
    note_format: NoteFormat
    """How this PSA shows note bodies; ``add_note`` renders the text it is given accordingly
    (:func:`mspclaw.connectors.note_format.render`)."""

    async def get_ticket(self, ticket_id: str) -> PSATicket: ...

    async def list_tickets(self, since: datetime | None = None) -> list[PSATicket]:
        """Tickets created or updated after ``since`` (all when ``None``), oldest first."""
        ...

    async def add_note(self, ticket_id: str, text: str, *, public: bool) -> None:
        """Post an internal (``public=False``) or customer-visible note. ``text`` is plain text in
        the layout of :mod:`mspclaw.connectors.note_format`; a PSA that renders HTML receives it as
        escaped HTML. Idempotent: when the same text is already on the ticket (a retry after a
        timeout), nothing is posted again."""
        ...

    async def set_status(self, ticket_id: str, status: CloseStatus) -> None: ...

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
        """Verify and read an inbound webhook. Raises :class:`~mspclaw.errors.AuthError` for a
        missing or wrong signature/secret, :class:`~mspclaw.errors.MalformedWebhook` for a body
        it cannot read. Header names are matched case-insensitively."""
        ...


@runtime_checkable
class PreparesWebhooks(Protocol):
    """A connector whose webhook verification needs I/O first (ConnectWise fetches the signing key
    a callback names). The intake awaits :meth:`prepare_webhook` before calling ``parse_webhook``."""

    async def prepare_webhook(self, headers: Mapping[str, str], body: bytes) -> None:
        """Fetch and cache what verifying this delivery needs. Raises
        :class:`~mspclaw.errors.AuthError` when the delivery cannot be genuine (a key from a host
        that is not the PSA's), :class:`~mspclaw.errors.MalformedWebhook` for an unreadable body."""
        ...


@runtime_checkable
class RegistersWebhooks(Protocol):
    """A connector whose PSA has an API to subscribe a URL to ticket events."""

    async def register_webhook(self, url: str) -> str:
        """Subscribe ``url`` (``https://…/webhooks/NAME``) to ticket events, unless a subscription for
        it already exists; return a line saying what was done (the PSA's id for it)."""
        ...


@runtime_checkable
class ChecksCredentials(Protocol):
    """A connector that can prove its account's credentials with one cheap authenticated read."""

    async def check(self) -> str:
        """Make one cheap authenticated read and say in plain words what the PSA answered. Raises
        :class:`~mspclaw.errors.PSAAuthError` when the PSA refuses the credentials, the other PSA errors
        when it cannot be reached or answers something unexpected."""
        ...
