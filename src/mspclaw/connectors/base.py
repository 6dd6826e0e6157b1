"""The interface every PSA connector implements (one file per PSA), and the ticket it maps to.

The issue "PSA intake without a human" grows this with listing since a cursor and webhook
parsing; the shape of :class:`PSATicket` is what routing needs from any PSA.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class PSANote:
    text: str
    public: bool


@dataclass
class PSATicket:
    """A PSA's ticket mapped into our terms."""

    id: str
    company: str
    """The PSA's id (or name) of the client company: matched against ``Client.psa_refs``."""
    requester: str
    subject: str
    body: str
    asset: str | None = None
    """The PSA's asset / configuration item: our device's host name or id."""
    status: str = "open"
    notes: list[PSANote] = field(default_factory=list)


class PSAConnector(Protocol):
    name: str

    async def get_ticket(self, ticket_id: str) -> PSATicket: ...
    async def list_tickets(self) -> list[PSATicket]: ...
    async def add_note(self, ticket_id: str, text: str, *, public: bool) -> None: ...
    async def set_status(self, ticket_id: str, status: str) -> None: ...
