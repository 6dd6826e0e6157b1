"""The closing of a run: the note and the reply, stored with the session's end, written back to the
PSA ticket and shown on the user's device; then whatever else a finished run sets off.

What else a finished run sets off (a structured escalation, the "did it work?" question, the model's
usage) is a :class:`RunObserver` passed in by the composition root: nothing is looked up or
optional in here, and a closing built without an observer visibly has none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from mspclaw.connectors.base import PSAConnector
from mspclaw.dispatch import Hub
from mspclaw.engine.plan import RunResult
from mspclaw.errors import AgentOffline, Conflict, MSPClawError
from mspclaw.pipeline.events import SessionEvents
from mspclaw.pipeline.notes import ReplyCheck, internal_note, user_reply
from mspclaw.pipeline.offload import run_store
from mspclaw.pipeline.routing import Route
from mspclaw.pipeline.session_ownership import SessionOwnership
from mspclaw.pipeline.session_ports import QuietSessions
from mspclaw.playbooks.schema import Playbook
from mspclaw.store.audit import AuditLog
from mspclaw.store.runs import RunStore
from mspclaw.store.tables import Session, Ticket
from mspclaw.store.tickets import StepWrite, TicketStore

log = logging.getLogger(__name__)


@dataclass
class FinishedRun:
    """How a run ended, and the words it leaves: observers may amend ``note`` and ``reply`` before they
    are stored (:meth:`RunObserver.on_closing`)."""

    ticket: Ticket
    session: Session
    playbook: Playbook | None
    result: RunResult | None
    """``None`` when the engine never ran (no route, no playbook, an internal error)."""
    reason: str
    route: Route
    approvals: list[str]
    note: str
    reply: str

    @property
    def outcome(self) -> str:
        return self.result.outcome if self.result is not None else "escalated"


class RunObserver(Protocol):
    """Something a finished run sets off."""

    async def on_closing(self, run: FinishedRun) -> None:
        """Before the session's end is stored: may amend ``run.note`` and ``run.reply``."""

    async def on_closed(self, run: FinishedRun) -> None:
        """After the end is stored, written back to the PSA and shown on the device."""


class Closing:
    def __init__(self, *, store: TicketStore, runs: RunStore, audit: AuditLog, hub: Hub, events: SessionEvents,
                 connectors: Mapping[str, PSAConnector], reply_check: ReplyCheck, quiet: QuietSessions,
                 observers: Sequence[RunObserver], sessions: SessionOwnership | None = None) -> None:
        """``sessions``: the session leases of this replica; a run's lease is deleted with its end (``None``: one
        process, no leases)."""
        self._store, self._runs, self._audit, self._hub, self._events = store, runs, audit, hub, events
        self._connectors, self._reply_check, self._quiet = connectors, reply_check, quiet
        self.observers = tuple(observers)
        self._sessions = sessions

    async def close(self, ticket: Ticket, session: Session, book: Playbook | None, result: RunResult | None,
                    reason: str, route: Route, approvals: list[str], steps: Sequence[StepWrite] = ()) -> FinishedRun:
        """End the run: note, reply, observers, the session's end stored and announced, the PSA written back.

        ``steps``: the run's last steps, written behind (``SessionTools.hand_over``). A resolved run's are stored
        in the same write as its end; an escalated run's first, because the structured hand-off lists them."""
        outcome = result.outcome if result else "escalated"
        if steps and outcome != "resolved":
            seqs = await run_store(self._store, self._store.add_steps, session.id, steps)
            for step, step_seq in zip(steps, seqs, strict=True):
                self._events.announce(session.id, step_seq, step.event, step.data)
            steps = ()
        device = f"{route.device.hostname} ({route.device.os})" if route.device else "unknown"
        note = internal_note(playbook=book.id if book else None, device=device, result=result, reason=reason,
                             approvals=approvals, subject=ticket.subject, body=ticket.body, requester=ticket.requester)
        template = (book.reply.resolved if outcome == "resolved" else book.reply.escalated) if book else ""
        refused = (self._reply_check.problems(result.reply) if result is not None and result.reply
                   and result.reply != template else [])
        reply = user_reply(result, await self._contact_name(ticket), template=template, refused=bool(refused))
        run = FinishedRun(ticket, session, book, result, reason, route, approvals, note, reply)
        for observer in self.observers:
            await observer.on_closing(run)
        if refused:
            run.note += (f"\n\nReply: the assistant's reply was not sent (it carried {'; '.join(refused)}); "
                         "the playbook's was.")
        # the event that announces the end is stored with it, and pushed to watchers at once
        event = "final_answer" if outcome == "resolved" else "escalation"
        event_data = {"outcome": outcome, "reason": reason, "note": run.note, "reply": run.reply}
        # the session's lease goes with its end (one statement): a finished session is never resumed
        lease = self._sessions.ending(session.id) if self._sessions is not None else None
        try:
            seq = await run_store(self._store, self._store.close_session, session.id, ticket.id, outcome=outcome,
                                  note=run.note, reply=run.reply, reason=reason, event=(event, event_data),
                                  lease=lease, steps=steps)
        except BaseException:
            if lease is not None and self._sessions is not None:
                self._sessions.ended(session.id, lease, stored=False)
            raise
        if lease is not None and self._sessions is not None:
            self._sessions.ended(session.id, lease, stored=True)
        assert seq is not None
        for k, step in enumerate(steps):  # numbered just before the end's event
            self._events.announce(session.id, seq - len(steps) + k, step.event, step.data)
        self._events.announce(session.id, seq, event, event_data)
        log.info("ticket %s %s: %s", ticket.id, outcome, reason[:300])
        if not self._quiet.closed(session.id):  # it asked someone something: it may still be pending
            await run_store(self._store, self._expire_pending, session, reason)
        # both in one batch, in this order (each is queued when its coroutine starts, and gather starts them in turn)
        await asyncio.gather(
            self._audit.record("note_written", client_id=session.client_id, session_id=session.id,
                               data={"ticket_id": ticket.id, "note": run.note, "reply": run.reply}),
            self._audit.record("status_changed", client_id=session.client_id, session_id=session.id,
                               data={"ticket_id": ticket.id, "status": outcome, "reason": reason}))
        await self._write_back(ticket, run.note, run.reply, outcome)
        await self._show_on_device(session, route, run.reply)
        for observer in self.observers:
            await observer.on_closed(run)
        return run

    def _expire_pending(self, session: Session, reason: str) -> None:
        """Nothing may stay pending for a closed run: its approvals and questions expire."""
        for approval_id in self._store.pending_approval_ids(session.id):
            with contextlib.suppress(Conflict):
                self._store.decide(approval_id, status="expired", approver="mspclaw (ticket closed)", reason=reason)
        for question_id in self._runs.pending_question_ids(session.id):
            with contextlib.suppress(Conflict):
                self._runs.settle_question(question_id, status="expired", answer=None,
                                           answered_by="mspclaw (ticket closed)")

    async def _contact_name(self, ticket: Ticket) -> str | None:
        """The name of the ticket's contact as its PSA holds it (the reply greets them by it), read at intake;
        for a PSA ticket opened before that was kept, read from the PSA now. ``None`` for a ticket from no
        PSA, or when the PSA gives none or cannot be read now."""
        if ticket.requester_name is not None:
            return ticket.requester_name or None
        connector = self._connectors.get(ticket.psa) if ticket.psa is not None else None
        if connector is None or ticket.external_id is None:
            return None
        try:
            return (await connector.get_ticket(ticket.external_id)).requester_name
        except MSPClawError as exc:
            log.warning("ticket %s: could not read the contact's name from %s: %s", ticket.id, ticket.psa,
                        exc.message)
            return None

    async def _write_back(self, ticket: Ticket, note: str, reply: str, outcome: str) -> None:
        if ticket.psa is None or ticket.external_id is None:
            return
        connector = self._connectors.get(ticket.psa)
        if connector is None:
            log.warning("ticket %s came from %s, which has no connector configured", ticket.id, ticket.psa)
            return
        try:
            await connector.add_note(ticket.external_id, note, public=False)
            await connector.add_note(ticket.external_id, reply, public=True)
            await connector.set_status(ticket.external_id, "resolved" if outcome == "resolved" else "escalated")
        except MSPClawError as exc:
            await self._audit.record("psa_writeback_failed", client_id=ticket.client_id,
                                     data={"ticket_id": ticket.id, "psa": ticket.psa, "error": exc.message})

    async def _show_on_device(self, session: Session, route: Route, reply: str) -> None:
        """The reply on the user's device, when the run was routed to one that is online."""
        link = self._hub.link(route.agent_id) if route.agent_id else None
        device_route = route.device is not None and route.device.agent_id == route.agent_id  # held elsewhere too
        if route.agent_id and (link.identity.role == "device" if link is not None else device_route):
            with contextlib.suppress(AgentOffline):
                await self._hub.for_client(session.client_id).notify_user(route.agent_id, reply)
