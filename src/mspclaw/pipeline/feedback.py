"""Resolution feedback: after a ticket is resolved, ask the end user whether the fix worked.

The question ends the resolved ticket's reply, so it reaches the user's device (through the
agent) and, for PSA tickets, the public reply on the ticket. The answer (yes, no, partial) comes
back as the user's reply on the PSA ticket (read by :meth:`FeedbackService.check_psa_replies`),
through ``POST /api/tickets/{id}/feedback`` (a chat bridge, a technician recording a phone call),
or as a two-way question on the user's device (the ``ask_port`` the composition root passes in).

* ``yes``: confirmed. ``partial``: recorded, with an internal note for the technician.
* ``no``: the ticket is reopened for a technician with a structured escalation holding the
  whole history (what ran, what it found), sent to the on-duty technician.
* no answer before the deadline (``MSPCLAW_FEEDBACK_TIMEOUT_S``): unconfirmed, never success.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
from collections.abc import Awaitable, Callable, Collection, Mapping
from datetime import timedelta
from typing import Literal

from mspclaw.connectors.base import PSAConnector
from mspclaw.connectors.notify.message import Message
from mspclaw.dispatch import Hub
from mspclaw.errors import MSPClawError
from mspclaw.pipeline.escalation import Escalations
from mspclaw.pipeline.events import SessionEvents
from mspclaw.pipeline.notes import reply_after
from mspclaw.pipeline.notify import Notifier, mention_of
from mspclaw.pipeline.offload import run_store
from mspclaw.pipeline.techs import Assignment, TechRegistry
from mspclaw.store.audit import AuditLog
from mspclaw.store.feedback import FeedbackStore
from mspclaw.store.registry import Registry
from mspclaw.store.tables import Client, FeedbackRow, Ticket, utcnow
from mspclaw.store.tickets import TicketStore

log = logging.getLogger(__name__)
QUESTION = ("Did this fix your problem? Please answer yes, no or partly. If we hear nothing, a technician "
            "may check in with you.")
CHOICES = ("yes", "no", "partial")
_WORDS = {
    "yes": ("yes", "yep", "yeah", "works", "working", "fixed", "solved"),
    "no": ("no", "nope", "not", "still", "didn't", "didnt", "doesn't", "doesnt", "broken"),
    "partial": ("partly", "partially", "partial", "somewhat", "better", "mostly"),
}
_WORD = re.compile(r"[a-z']+")


def read_answer(text: str) -> str | None:
    """yes, no or partial from a user's free-text reply: the earliest telling word decides
    ("Yes, no problem now" is yes; "still slow" is no; "partly" is partial)."""
    for word in _WORD.findall(text.lower()):
        for answer, words in _WORDS.items():
            if word in words:
                return answer
    return None


AskPort = Callable[[str, str, str, str, tuple[str, ...]], Awaitable[str | None]]
"""``(client_id, agent_id, question_id, text, choices) -> answer or None``: the engine's ask_user."""


class FeedbackService:
    def __init__(self, *, store: FeedbackStore, tickets: TicketStore, escalations: Escalations, hub: Hub,
                 registry: Registry, connectors: Mapping[str, PSAConnector], events: SessionEvents, audit: AuditLog,
                 timeout_s: float, notifier: Notifier, techs: TechRegistry, ask_port: AskPort) -> None:
        self.store, self._tickets, self._escalations, self._hub = store, tickets, escalations, hub
        self._registry, self._connectors, self._events, self._audit = registry, connectors, events, audit
        self.timeout_s = timeout_s
        self._notifier, self._techs = notifier, techs
        self.question = QUESTION
        """Appended to the resolved ticket's public reply, so the PSA ticket asks it too."""
        self._ask_port = ask_port
        """The question as a two-way dialog on the user's device
        (:meth:`~mspclaw.pipeline.questions.Questions.ask_device`)."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._psa_turn = 0

    async def ask(self, ticket: Ticket, session_id: str, agent_id: str | None) -> FeedbackRow:
        """Open the feedback request of a resolved ticket and put the question to the user."""
        now = utcnow()
        channels = []
        if agent_id and await self._hub.online_anywhere(agent_id, ticket.client_id):
            channels.append("agent")
        if ticket.psa and ticket.external_id and ticket.psa in self._connectors:
            channels.append("psa")
        deadline = now + timedelta(seconds=self.timeout_s)
        requested = {"ticket_id": ticket.id, "question": QUESTION, "choices": list(CHOICES),
                     "deadline": deadline.isoformat()}

        # the request and the session's event that announces it: stored together, one trip off the event
        # loop where a commit waits for a database server (the tickets' database)
        row, seq = await run_store(
            self._tickets, functools.partial(
                self.store.open_announced, self._tickets, ticket_id=ticket.id, session_id=session_id,
                client_id=ticket.client_id, resolved_at=now, deadline=deadline, channel="+".join(channels) or "api",
                event="feedback_requested", data=requested))
        await self._audit.record("feedback_asked", client_id=ticket.client_id, session_id=session_id,
                                 data={"ticket_id": ticket.id, "feedback_id": row.id, "channel": row.channel,
                                       "deadline": row.deadline.isoformat()})
        self._events.announce(session_id, seq, "feedback_requested", requested)
        if agent_id:
            # a two-way question on the device (the port waits for the agent to come online); the reply,
            # which ends with the question, was shown there too
            self._spawn(self._ask_on_device(ticket, agent_id, row.id))
        # on the PSA the question is the last paragraph of the public reply (the closing appends it)
        return row

    async def _ask_on_device(self, ticket: Ticket, agent_id: str, question_id: str) -> None:
        try:
            answer = await asyncio.wait_for(
                self._ask_port(ticket.client_id, agent_id, question_id, QUESTION, CHOICES), self.timeout_s)
        except (TimeoutError, MSPClawError):
            return
        if answer is not None:
            with contextlib.suppress(MSPClawError):
                await self.answer(ticket.id, answer.strip().lower(), by="end user (device)", comment="", scope=None)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def answer(self, ticket_id: str, answer: str, *, by: str, comment: str,
                     scope: Collection[str] | None) -> FeedbackRow:
        answer = {"partly": "partial", "y": "yes", "n": "no"}.get(answer, answer)
        row = await run_store(self._tickets, self.store.answer, ticket_id, answer, by=by, comment=comment,
                              scope=scope)
        ticket = await run_store(self._tickets, self._tickets.ticket, ticket_id)
        await self._audit.record("feedback_answered", actor=by, client_id=row.client_id, session_id=row.session_id,
                                 data={"ticket_id": ticket_id, "answer": answer, "status": row.status})
        await self._events.emit_async(row.session_id, "feedback", {"ticket_id": ticket_id, "answer": answer,
                                                                   "status": row.status})
        if answer == "no":
            await self._reopen(ticket, row, comment)
        elif answer == "partial":
            text = ("MSPclaw: the user says the fix worked only partly" + (f": {comment}" if comment else "")
                    + ". A technician should follow up.")
            await self._psa_note(ticket, text)
            await self._tell_technician(ticket, row, text)
        return row

    async def _tell_technician(self, ticket: Ticket, row: FeedbackRow, text: str) -> None:
        def lookup() -> tuple[Client, Assignment]:
            client = self._registry.client(ticket.client_id)
            return client, self._techs.on_duty(client.id, client.name, utcnow())
        try:
            client, who = await run_store(self._tickets, lookup)
            message = Message(title=f"Partly fixed: {ticket.subject}"[:150], summary=text,
                              facts=[("Client", client.name), ("Ticket", ticket.external_id or ticket.id),
                                     ("Requester", ticket.requester or "unknown")],
                              mention=mention_of(who.tech),
                              link=("Open the ticket", f"{self._notifier.public_url}/api/tickets/{ticket.id}"))
            await self._notifier.send(client.id, client.name, "feedback", row.id, message, who.tech)
        except MSPClawError as exc:
            log.warning("ticket %s: technician not told about partial feedback: %s", ticket.id, exc.message)

    async def _reopen(self, ticket: Ticket, row: FeedbackRow, comment: str) -> None:
        session = await run_store(self._tickets, self._tickets.session, row.session_id)
        device = None
        if ticket.device_id is not None:
            devices = await run_store(self._tickets, self._registry.devices, ticket.client_id)
            device = next((d for d in devices if d.id == ticket.device_id), None)
        reason = "the user says the fix did not work" + (f": {comment}" if comment else "")
        recorded = await self._escalations.record(ticket, session_id=session.id, kind="user_said_no", reason=reason,
                                            device=device, playbook=session.playbook)
        await run_store(self._tickets, self._tickets.set_ticket_status, ticket.id, "reopened")
        await self._audit.record("status_changed", client_id=ticket.client_id, session_id=session.id,
                                 data={"ticket_id": ticket.id, "status": "reopened", "reason": reason})
        await self._events.emit_async(session.id, "escalation", {"outcome": "reopened", "reason": reason,
                                                                 "note": recorded.note})
        await self._psa_note(ticket, recorded.note, status="escalated")

    async def _psa_note(self, ticket: Ticket, note: str, *, status: Literal["escalated"] | None = None) -> None:
        if not (ticket.psa and ticket.external_id and ticket.psa in self._connectors):
            return
        connector = self._connectors[ticket.psa]
        try:
            await connector.add_note(ticket.external_id, note, public=False)
            if status:
                await connector.set_status(ticket.external_id, status)
        except MSPClawError as exc:
            await self._audit.record("psa_writeback_failed", client_id=ticket.client_id,
                                     data={"ticket_id": ticket.id, "psa": ticket.psa, "error": exc.message})

    async def check_psa_replies(self, *, limit: int = 25) -> int:
        """Read users' replies on PSA tickets whose feedback is pending: the first public note after
        our reply that says yes, no or partly answers it. Returns how many were answered.

        At most ``limit`` tickets are read per call, in turns, so a long queue of pending tickets
        costs the PSA's API a steady trickle, not a burst."""
        answered = 0
        pending = [r for r in await run_store(self._tickets, self.store.pending) if "psa" in r.channel.split("+")]
        if not pending:
            return 0
        start = self._psa_turn % len(pending)
        batch = (pending[start:] + pending[:start])[:limit]
        self._psa_turn = start + len(batch)
        for row in batch:
            ticket = await run_store(self._tickets, self._tickets.ticket, row.ticket_id)
            if not (ticket.psa and ticket.external_id and ticket.psa in self._connectors):
                continue
            reply = (await run_store(self._tickets, self._tickets.session, row.session_id)).reply
            if not reply:
                continue  # no reply of ours on the ticket to read below
            try:
                notes = (await self._connectors[ticket.psa].get_ticket(ticket.external_id)).notes
            except MSPClawError as exc:
                log.warning("ticket %s: cannot read %s replies: %s", ticket.id, ticket.psa, exc.message)
                continue
            said = reply_after(notes, reply, lambda text: read_answer(text) is not None)
            answer = read_answer(said) if said is not None else None
            if said is not None and answer is not None:
                with contextlib.suppress(MSPClawError):
                    await self.answer(ticket.id, answer, by=f"end user (reply on {ticket.psa})",
                                      comment=said[:500], scope=None)
                    answered += 1
        return answered

    async def expire_due(self) -> int:
        """Count every request past its deadline as unconfirmed (never as success)."""
        expired = await run_store(self._tickets, self.store.expire_due)
        if expired:  # the rows are already committed: their audit records are written even if the loop stops now
            await asyncio.shield(self._audit_expired(expired))
        return len(expired)

    async def _audit_expired(self, expired: list[FeedbackRow]) -> None:
        for row in expired:
            await self._audit.record("feedback_unconfirmed", client_id=row.client_id, session_id=row.session_id,
                                     data={"ticket_id": row.ticket_id, "deadline": row.deadline.isoformat()})

    async def run(self, *, max_sleep_s: float = 60.0, psa_every_s: float = 60.0) -> None:
        """Background loop: read PSA replies now and then; expire requests as their deadlines pass."""
        loop = asyncio.get_running_loop()
        next_psa = loop.time()
        while True:
            if loop.time() >= next_psa and self._connectors:
                try:
                    await self.check_psa_replies()
                except MSPClawError as exc:
                    log.warning("reading PSA replies failed: %s", exc.message)
                next_psa = loop.time() + psa_every_s
            await self.expire_due()
            nxt = await run_store(self._tickets, self.store.next_deadline)
            wait = max_sleep_s if nxt is None else (nxt - utcnow()).total_seconds()
            await asyncio.sleep(min(max(wait, 0.05), max_sleep_s))

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

