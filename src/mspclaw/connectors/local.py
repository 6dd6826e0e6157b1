"""The built-in PSA simulator: an in-memory PSA that holds tickets and records notes.

It is what ``mspclaw demo`` runs against, and the fake that tests use at the PSA edge.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from importlib import resources

from mspclaw.connectors.base import CloseStatus, PSANote, PSATicket, WebhookEvent
from mspclaw.errors import AuthError, NotFound


class LocalPSA:
    name = "local"

    def __init__(self, tickets: list[PSATicket] | None = None) -> None:
        self._tickets: dict[str, PSATicket] = {t.id: t for t in tickets or []}

    @classmethod
    def with_samples(cls, company: str, asset: str | None) -> LocalPSA:
        """A simulator holding the sample tickets, all from ``company`` about ``asset``."""
        raw = json.loads(resources.files("mspclaw.connectors").joinpath("data/sample_tickets.json").read_text())
        return cls([
            PSATicket(id=item["id"], company=company, requester=item["requester"], subject=item["subject"],
                      body=item["body"], asset=asset)
            for item in raw
        ])

    def add(self, ticket: PSATicket) -> None:
        self._tickets[ticket.id] = ticket

    async def get_ticket(self, ticket_id: str) -> PSATicket:
        try:
            return self._tickets[ticket_id]
        except KeyError:
            raise NotFound(f"the local PSA has no ticket {ticket_id!r}") from None

    async def list_tickets(self, since: datetime | None = None) -> list[PSATicket]:
        return [t for t in self._tickets.values() if since is None or (t.updated_at or t.created_at or since) > since]

    async def add_note(self, ticket_id: str, text: str, *, public: bool) -> None:
        ticket = await self.get_ticket(ticket_id)
        note = PSANote(text, public)
        if note not in ticket.notes:
            ticket.notes.append(note)

    async def set_status(self, ticket_id: str, status: CloseStatus) -> None:
        (await self.get_ticket(ticket_id)).status = status

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
        raise AuthError("the in-memory PSA sends no webhooks")
