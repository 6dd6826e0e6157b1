"""Working an escalation: a technician takes it, hands it over to a colleague with a note, closes it with
the resolution.

An escalation is ``open`` (nobody holds it), ``taken`` (by a technician, since when), ``handed_over`` (held by
the technician it was handed to, with who handed it and their note) or ``closed`` (by whom, when, with the
resolution). Every change goes through one compare-and-set on the row's version
(:meth:`~mspclaw.store.escalations.EscalationStore.change`), so of two technicians acting at once exactly one
wins and the other is told who did (:class:`~mspclaw.errors.Conflict`). The rules:

* only technicians and admins act, and only on their clients' escalations (another client's is not found);
* the holder is a technician (by e-mail) or, for an integration, the API key that took it (by name); taking one
  you hold changes nothing;
* one held by someone else is handed over or closed only by its holder or an admin;
* a hand-over goes to a technician or admin who serves the escalation's client, and they are notified on the
  client's Slack/Teams channels (:class:`~mspclaw.pipeline.notify.Notifier`);
* closing writes the resolution to the PSA ticket as an internal note, through the ticket's connector, as the
  closing of a run does; a PSA that refuses it costs a ``psa_writeback_failed`` audit event, never the close.

Each change is audited (``escalation_taken``, ``escalation_handed_over``, ``escalation_closed``). Notes and
resolutions are technicians' free text: secret-looking values are redacted before they are stored or sent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from mspclaw.connectors.base import PSAConnector
from mspclaw.connectors.notify.message import Message
from mspclaw.errors import Conflict, Forbidden, InvalidRequest, MSPClawError
from mspclaw.pipeline.access import Principal
from mspclaw.pipeline.notify import Notifier, mention_of
from mspclaw.pipeline.offload import run_store
from mspclaw.pipeline.techs import Tech, TechRegistry
from mspclaw.store.audit import AuditLog
from mspclaw.store.escalations import EscalationStore
from mspclaw.store.redact import redact_text
from mspclaw.store.registry import Registry
from mspclaw.store.tables import EscalationRow, utcnow
from mspclaw.store.tickets import TicketStore

log = logging.getLogger(__name__)

NOTE_MAX = 2000
"""The longest hand-over note."""
RESOLUTION_MAX = 4000
"""The longest resolution text."""
STATES = ("open", "taken", "handed_over", "closed")
HELD = ("taken", "handed_over")
_ATTEMPTS = 5
"""Compare-and-set rounds before giving up (each lost round re-reads the row and checks the rules again)."""


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


def _identity(principal: Principal) -> str:
    """Who acts, as stored: a technician's e-mail, else the caller's name (an API key's ``key:NAME``)."""
    return principal.email or principal.name


def holder_label(row: EscalationRow) -> str:
    """Who holds ``row``, in words: ``Dana Scully <dana@msp.example>``."""
    if row.held_by is None:
        return "nobody"
    named = row.held_by_name and row.held_by_name != row.held_by
    return f"{row.held_by_name} <{row.held_by}>" if named else row.held_by


def _clean(text: str, limit: int, what: str) -> str:
    text = text.replace("\x00", "").strip()  # no database stores a NUL in text
    if not text:
        raise InvalidRequest(f"the {what} is empty; write it in a few words")
    if len(text) > limit:
        raise InvalidRequest(f"the {what} has {len(text)} characters; at most {limit} fit, shorten it")
    return redact_text(text)


class EscalationHandling:
    def __init__(self, *, escalations: EscalationStore, tickets: TicketStore, registry: Registry,
                 techs: TechRegistry, notifier: Notifier, audit: AuditLog,
                 connectors: Mapping[str, PSAConnector]) -> None:
        self._store, self._tickets, self._registry = escalations, tickets, registry
        self._techs, self._notifier, self._audit, self._connectors = techs, notifier, audit, connectors

    # -- reading ----------------------------------------------------------------------------------
    def technicians_for(self, row: EscalationRow) -> list[Tech]:
        """Who an escalation may be handed to: the technicians and admins who serve its client."""
        client = self._registry.client(row.client_id)
        return [t for t in self._techs.techs() if t.role in ("tech", "admin") and t.serves(client.id, client.name)]

    # -- changing ---------------------------------------------------------------------------------
    async def take(self, escalation_id: str, principal: Principal, *, via: str = "api") -> EscalationRow:
        """``principal`` holds the escalation from now on; taking one you hold already changes nothing."""
        self._acting(principal, "take an escalation")
        me = _identity(principal)
        tech = await run_store(self._tickets, self._techs.find, principal.email) if principal.email else None

        def rule(row: EscalationRow) -> dict[str, Any] | None:
            self._not_closed(row)
            if row.held_by == me:
                return None
            if row.state in HELD:
                raise Conflict(f"{holder_label(row)} holds this escalation since {_when(row.taken_at)}; ask them "
                               "or an admin to hand it over to you")
            return {"state": "taken", "held_by": me, "held_by_name": tech.name if tech else principal.name,
                    "taken_at": utcnow()}

        row, changed = await self._change(escalation_id, principal, rule)
        if changed:
            await self._audit.record("escalation_taken", actor=me, client_id=row.client_id,
                                     session_id=row.session_id,
                                     data={"escalation_id": row.id, "ticket_id": row.ticket_id, "via": via})
        return row

    async def hand_over(self, escalation_id: str, principal: Principal, *, to: str, note: str,
                        via: str = "api") -> EscalationRow:
        """Hand the escalation to the technician ``to`` (e-mail or name) with ``note``; they are notified."""
        self._acting(principal, "hand over an escalation")
        text = _clean(note, NOTE_MAX, "hand-over note")
        actor = _identity(principal)
        target: Tech | None = None

        def rule(row: EscalationRow) -> dict[str, Any]:
            nonlocal target
            self._not_closed(row)
            self._holder_or_admin(row, principal, "hand it over")
            target = self._serving(row, to)
            if row.held_by == target.email:
                raise Conflict(f"{holder_label(row)} holds this escalation already")
            return {"state": "handed_over", "held_by": target.email, "held_by_name": target.name,
                    "taken_at": utcnow(), "handed_over_by": actor, "handed_over_at": utcnow(),
                    "handover_note": text}

        row, _ = await self._change(escalation_id, principal, rule)
        assert target is not None  # the rule passed, so it found them
        await self._audit.record("escalation_handed_over", actor=actor, client_id=row.client_id,
                                 session_id=row.session_id,
                                 data={"escalation_id": row.id, "ticket_id": row.ticket_id, "to": target.email,
                                       "note": text, "via": via})
        await self._notify(row, target, principal, text)
        return row

    async def close(self, escalation_id: str, principal: Principal, *, resolution: str,
                    via: str = "api") -> EscalationRow:
        """Close the escalation with ``resolution``, written to the PSA ticket as an internal note."""
        self._acting(principal, "close an escalation")
        text = _clean(resolution, RESOLUTION_MAX, "resolution")
        actor = _identity(principal)

        def rule(row: EscalationRow) -> dict[str, Any]:
            self._not_closed(row)
            self._holder_or_admin(row, principal, "close it")
            return {"state": "closed", "closed_by": actor, "closed_at": utcnow(), "resolution": text}

        row, _ = await self._change(escalation_id, principal, rule)
        written = await self._write_note(row, principal, text)
        await self._audit.record("escalation_closed", actor=actor, client_id=row.client_id,
                                 session_id=row.session_id,
                                 data={"escalation_id": row.id, "ticket_id": row.ticket_id, "resolution": text,
                                       "psa_note": written, "via": via})
        return row

    # -- the rules ----------------------------------------------------------------------------------
    def _acting(self, principal: Principal, what: str) -> None:
        if not principal.at_least("tech"):
            raise Forbidden(f"only technicians and admins {what}; you are {principal.role}")

    @staticmethod
    def _not_closed(row: EscalationRow) -> None:
        if row.state == "closed":
            raise Conflict(f"this escalation was closed by {row.closed_by} at {_when(row.closed_at)}")

    @staticmethod
    def _holder_or_admin(row: EscalationRow, principal: Principal, what: str) -> None:
        if row.state in HELD and row.held_by != _identity(principal) and not principal.at_least("admin"):
            raise Conflict(f"{holder_label(row)} holds this escalation; only they or an admin may {what}")

    def _serving(self, row: EscalationRow, ref: str) -> Tech:
        found = self._techs.find(ref[:320]) if ref.strip() else None
        serving = self.technicians_for(row)
        if found is None or all(t.email != found.email for t in serving):
            names = ", ".join(t.email for t in serving) or "nobody (add one to the roster: `mspclaw tech add`)"
            raise Forbidden(f"{ref[:100]!r} is no technician who serves this escalation's client; hand it to one "
                            f"of: {names}")
        return found

    async def _change(self, escalation_id: str, principal: Principal,
                      rule: Callable[[EscalationRow], dict[str, Any] | None]) -> tuple[EscalationRow, bool]:
        """Read the escalation (in the caller's scope), check ``rule`` and apply its values if nobody changed it
        meanwhile; a lost race reads again and checks again. ``(row, changed)``."""
        for _ in range(_ATTEMPTS):
            row = await run_store(self._tickets, self._store.get, escalation_id[:64], principal.scope)
            values = await run_store(self._tickets, rule, row)  # a rule may read the roster
            if values is None:
                return row, False
            changed = await run_store(self._tickets, self._store.change, row.id, version=row.version,
                                      values=values)
            if changed is not None:
                return changed, True
        raise Conflict("this escalation is changing too often to act on; reload it and try again")

    # -- what follows a change ------------------------------------------------------------------
    async def _notify(self, row: EscalationRow, target: Tech, principal: Principal, note: str) -> None:
        try:
            client = await run_store(self._tickets, self._registry.client, row.client_id)
            ticket = await run_store(self._tickets, self._tickets.ticket, row.ticket_id)
            message = Message(
                title=f"Handed over to you: {ticket.subject}"[:150],
                summary=note,
                facts=[("Client", client.name), ("Ticket", ticket.external_id or ticket.id),
                       ("From", principal.name),
                       ("Why escalated", f"{row.kind.replace('_', ' ')}: {row.reason}"[:300])],
                mention=mention_of(target),
                link=("Open the escalation", f"{self._notifier.public_url}/escalations/{row.id}"))
            await self._notifier.send(client.id, client.name, "escalation", row.id, message, target)
        except MSPClawError as exc:  # a channel or a broken roster never undoes the hand-over
            log.warning("escalation %s: the new holder was not notified: %s", row.id, exc.message)

    async def _write_note(self, row: EscalationRow, principal: Principal, resolution: str) -> str:
        """The resolution as an internal note on the PSA ticket: ``written``, ``no PSA`` or ``failed``."""
        ticket = await run_store(self._tickets, self._tickets.ticket, row.ticket_id)
        connector = self._connectors.get(ticket.psa) if ticket.psa is not None else None
        if connector is None or ticket.external_id is None:
            return "no PSA"
        who = f"{principal.name} <{principal.email}>" if principal.email else principal.name
        note = (f"MSPclaw: escalation closed by {who}\n\nResolution:\n{resolution}\n\n"
                f"Escalated because: {row.kind.replace('_', ' ')}: {row.reason[:500]}")
        try:
            await connector.add_note(ticket.external_id, note, public=False)
        except MSPClawError as exc:
            await self._audit.record("psa_writeback_failed", client_id=row.client_id,
                                     data={"ticket_id": ticket.id, "psa": ticket.psa, "error": exc.message,
                                           "escalation_id": row.id})
            return "failed"
        return "written"
