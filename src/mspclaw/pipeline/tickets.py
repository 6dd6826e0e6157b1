"""The ticket pipeline: route, match, run, close. One task per ticket.

Every step is persisted before the next is taken and every tool call is recorded before it
is sent. A failure anywhere ends in an escalation with the reason, never in silence.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from mspclaw.connectors.base import PSAConnector
from mspclaw.dispatch import ClientDispatcher, Hub
from mspclaw.engine.approval import ApprovalGate
from mspclaw.engine.models.playbook import run_plan
from mspclaw.engine.plan import RunResult, StepRecord
from mspclaw.errors import AgentOffline, Conflict, MSPClawError, ToolError
from mspclaw.pipeline.approvals import Approvals
from mspclaw.pipeline.events import SessionEvents
from mspclaw.pipeline.notes import internal_note, summarise, user_reply
from mspclaw.pipeline.routing import Route, Router
from mspclaw.playbooks.matcher import match
from mspclaw.playbooks.schema import Playbook
from mspclaw.protocol.frames import Approval
from mspclaw.store.audit import AuditLog
from mspclaw.store.registry import Registry
from mspclaw.store.tables import Session, Ticket
from mspclaw.store.tickets import TicketStore
from mspclaw.tools import get_tool

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Submitted:
    ticket: Ticket
    session: Session


class _SessionTools:
    """The engine's tool port for one session: record, audit, dispatch, record the result."""

    def __init__(self, svc: TicketService, session: Session, dispatcher: ClientDispatcher, agent_id: str) -> None:
        self._svc, self._session, self._dispatcher, self._agent_id = svc, session, dispatcher, agent_id

    def _agent_for(self, tool: str) -> str:
        """The ticket's device agent if it offers the tool, else the client's site agent that does."""
        links = self._dispatcher.online()
        device = next((link for link in links if link.identity.agent_id == self._agent_id), None)
        if device is not None and tool in device.tools:
            return self._agent_id
        site = next((link for link in links if link.identity.role == "site" and tool in link.tools), None)
        return site.identity.agent_id if site is not None else self._agent_id

    async def __call__(self, tool: str, args: dict[str, Any], *, reason: str,
                       approval: Approval | None = None) -> dict[str, Any]:
        spec = get_tool(tool)
        args = spec.validate(args).model_dump(mode="json")
        store, audit, session = self._svc.store, self._svc.audit, self._session
        agent_id = self._agent_for(tool)
        call_id = "call_" + secrets.token_hex(8)
        store.record_call(call_id=call_id, session_id=session.id, client_id=session.client_id,
                          agent_id=agent_id, tool=tool, args=args,
                          approval_id=approval.approval_id if approval else None)
        audit.append("tool_call", client_id=session.client_id, session_id=session.id,
                     data={"call_id": call_id, "agent_id": agent_id, "tool": tool, "args": args,
                           "approval_id": approval.approval_id if approval else None})
        try:
            result = await self._dispatcher.call_tool(
                agent_id, tool, args, timeout=min(spec.timeout_s, self._svc.tool_timeout_s) + 5,
                call_id=call_id, approval=approval, reconnect_grace=self._svc.reconnect_grace_s)
        except ToolError as exc:
            store.finish_call(call_id, ok=False, output=None, error_code=exc.code, error_message=exc.message,
                              duration_ms=None)
            audit.append("tool_result", client_id=session.client_id, session_id=session.id,
                         data={"call_id": call_id, "tool": tool, "ok": False, "error": exc.code,
                               "message": exc.message})
            raise
        output = result.output if isinstance(result.output, dict) else {"value": result.output}
        store.finish_call(call_id, ok=True, output=output, error_code=None, error_message=None,
                          duration_ms=result.duration_ms)
        audit.append("tool_result", client_id=session.client_id, session_id=session.id,
                     data={"call_id": call_id, "tool": tool, "ok": True, "duration_ms": result.duration_ms,
                           "replayed": result.replayed})
        return output


class _SessionApprovals:
    def __init__(self, svc: TicketService, ticket: Ticket, session: Session, target: str) -> None:
        self._svc, self._ticket, self._session, self._target = svc, ticket, session, target
        self.decisions: list[str] = []
        self.evidence = ""
        """The latest finding, shown with the request so the technician decides on facts."""

    async def request(self, tool: str, args: dict[str, Any], *, reason: str) -> Approval:
        try:
            grant = await self._svc.approvals.request(
                session_id=self._session.id, client_id=self._session.client_id, ticket_id=self._ticket.id,
                target=self._target, tool=tool, args=args,
                reason=f"{reason} Latest finding: {self.evidence}." if self.evidence else reason)
        except MSPClawError as exc:
            self.decisions.append(f"{tool}: {exc.message}")
            raise
        self.decisions.append(f"{tool} approved by {grant.approver}")
        return grant


class TicketService:
    def __init__(self, *, registry: Registry, store: TicketStore, audit: AuditLog, hub: Hub, router: Router,
                 events: SessionEvents, approvals: Approvals, playbooks: list[Playbook],
                 connectors: dict[str, PSAConnector], tool_timeout_s: float = 60.0,
                 reconnect_grace_s: float = 30.0) -> None:
        self.registry, self.store, self.audit, self.hub = registry, store, audit, hub
        self.router, self.events, self.approvals = router, events, approvals
        self.playbooks, self.connectors = playbooks, connectors
        self.tool_timeout_s, self.reconnect_grace_s = tool_timeout_s, reconnect_grace_s
        self._tasks: dict[str, asyncio.Task[None]] = {}

    # -- intake ---------------------------------------------------------------------------------
    def submit(self, *, client: str, subject: str, body: str, requester: str, device: str | None,
               scope: Collection[str] | None = None, psa: str | None = None,
               external_id: str | None = None, actor: str = "api") -> Submitted:
        client_row = self.registry.client(client)
        if scope is not None and client_row.id not in scope:
            raise Conflict("you may not open tickets for this client")
        if not subject.strip():
            raise Conflict("a ticket needs a subject")
        route = self.router.route(client_row.id, device=device, requester=requester)
        ticket, session = self.store.open_ticket(
            client_id=client_row.id, subject=subject, body=body, requester=requester,
            device_id=route.device.id if route.device else None, psa=psa, external_id=external_id)
        self.audit.append("ticket_opened", actor=actor, client_id=client_row.id, session_id=session.id,
                          data={"ticket_id": ticket.id, "subject": subject, "requester": requester,
                                "psa": psa, "external_id": external_id})
        self._tasks[session.id] = asyncio.get_running_loop().create_task(self._process(ticket, session, route))
        return Submitted(ticket, session)

    async def wait(self, session_id: str) -> None:
        task = self._tasks.get(session_id)
        if task is not None:
            await asyncio.shield(task)

    async def shutdown(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    def find_external(self, psa: str, external_id: str) -> str | None:
        """Our ticket id for a PSA ticket we have already opened."""
        found = self.store.find_external(psa, external_id)
        return found.id if found else None

    async def wait_or_recover(self, ticket_id: str) -> None:
        """Wait for a ticket running here; settle one a dead process left unfinished."""
        session = self.store.session_for(ticket_id)
        if session.id in self._tasks:
            await self.wait(session.id)
        elif session.status in ("running", "awaiting_approval"):
            self._settle_orphan(session)

    def recover(self) -> int:
        """Close sessions a previous process left unfinished: escalate, never re-run blindly."""
        orphans = self.store.unfinished_sessions()
        for session in orphans:
            self._settle_orphan(session)
        return len(orphans)

    def _settle_orphan(self, session: Session) -> None:
        reason = "the server stopped while this ticket was being worked on; nothing further was run"
        self.store.update_session(session.id, status="escalated", outcome="escalated", reason=reason)
        self.store.set_ticket_status(session.ticket_id, "escalated")
        for approval in self.store.approvals([session.client_id]):
            if approval.session_id == session.id:
                self.store.decide(approval.id, status="expired", approver="mspclaw (restart)", reason=reason)
        self.audit.append("status_changed", client_id=session.client_id, session_id=session.id,
                          data={"ticket_id": session.ticket_id, "status": "escalated", "reason": reason})

    # -- the run --------------------------------------------------------------------------------
    async def _process(self, ticket: Ticket, session: Session, route: Route) -> None:
        self.events.emit(session.id, "started", {"ticket_id": ticket.id, "subject": ticket.subject})
        try:
            await self._run(ticket, session, route)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the last line of defence: escalate, never lose the ticket
            log.exception("ticket %s failed", ticket.id)
            await self._close(ticket, session, None, None, f"internal error: {type(exc).__name__}: {exc}",
                              route, [])
        finally:
            self._tasks.pop(session.id, None)

    async def _run(self, ticket: Ticket, session: Session, route: Route) -> None:
        if route.device is None or route.agent_id is None:
            await self._close(ticket, session, None, None, f"cannot route: {route.reason}", route, [])
            return
        self.store.update_session(session.id, agent_id=route.agent_id)
        if not route.online and not await self._wait_online(route.agent_id, 10.0):
            await self._close(ticket, session, None, None,
                              f"device {route.device.hostname} is offline ({route.reason})", route, [])
            return
        found = match(self.playbooks, ticket.subject, ticket.body, route.device.os)
        self.events.emit(session.id, "matched", {"playbook": found.playbook.id if found.playbook else None,
                                                 "score": found.score, "explanation": found.explanation})
        if found.playbook is None:
            await self._close(ticket, session, None, None, f"no playbook fits: {found.explanation}", route, [])
            return
        book = found.playbook
        self.store.update_session(session.id, playbook=book.id)
        plan = book.plan_for(route.device.os)
        dispatcher = self.hub.for_client(session.client_id)
        asker = _SessionApprovals(self, ticket, session, route.device.hostname)
        tools = ApprovalGate(_SessionTools(self, session, dispatcher, route.agent_id), asker,
                             plan.requires_approval)

        async def on_step(record: StepRecord) -> None:
            if record.ok:
                asker.evidence = summarise(record)
            if record.ok is False:
                # refusals before dispatch (bad arguments, unknown tool, denial) leave a trace too
                self.audit.append("step_failed", client_id=session.client_id, session_id=session.id,
                                  data={"step": record.step_id, "tool": record.tool, "error": record.error})
            self.store.add_step(session.id, title=record.title, tool=record.tool, args=record.args, ok=record.ok,
                                observation={"output": record.output, "error": record.error,
                                             "skipped": record.skipped})
            self.events.emit(session.id, "step", {"index": record.index, "title": record.title,
                                                  "tool": record.tool, "ok": record.ok, "skipped": record.skipped,
                                                  "summary": summarise(record)})

        facts = {"requester": ticket.requester, "hostname": route.device.hostname, "os": route.device.os}
        result = await run_plan(plan, tools, on_step, facts=facts)
        await self._close(ticket, session, book, result, result.reason, route, asker.decisions)

    async def _wait_online(self, agent_id: str, seconds: float) -> bool:
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        while loop.time() < until:
            if self.hub.is_online(agent_id):
                return True
            await asyncio.sleep(0.2)
        return False

    async def _close(self, ticket: Ticket, session: Session, book: Playbook | None, result: RunResult | None,
                     reason: str, route: Route, approvals: list[str]) -> None:
        outcome = result.outcome if result else "escalated"
        device = f"{route.device.hostname} ({route.device.os})" if route.device else "unknown"
        note = internal_note(playbook=book.id if book else None, device=device, result=result, reason=reason,
                             approvals=approvals)
        reply = user_reply(result, ticket.requester)
        self.store.update_session(session.id, status=outcome, outcome=outcome, note=note, reply=reply,
                                  reason=reason)
        self.store.set_ticket_status(ticket.id, outcome)
        self.audit.append("note_written", client_id=session.client_id, session_id=session.id,
                          data={"ticket_id": ticket.id, "note": note, "reply": reply})
        self.audit.append("status_changed", client_id=session.client_id, session_id=session.id,
                          data={"ticket_id": ticket.id, "status": outcome, "reason": reason})
        await self._write_back(ticket, note, reply, outcome)
        if route.agent_id and self.hub.is_online(route.agent_id):
            try:
                await self.hub.for_client(session.client_id).notify_user(route.agent_id, reply)
            except AgentOffline:
                pass
        event = "final_answer" if outcome == "resolved" else "escalation"
        self.events.emit(session.id, event, {"outcome": outcome, "reason": reason, "note": note, "reply": reply})

    async def _write_back(self, ticket: Ticket, note: str, reply: str, outcome: str) -> None:
        if ticket.psa is None or ticket.external_id is None:
            return
        connector = self.connectors.get(ticket.psa)
        if connector is None:
            log.warning("ticket %s came from %s, which has no connector configured", ticket.id, ticket.psa)
            return
        try:
            await connector.add_note(ticket.external_id, note, public=False)
            await connector.add_note(ticket.external_id, reply, public=True)
            await connector.set_status(ticket.external_id, "resolved" if outcome == "resolved" else "escalated")
        except MSPClawError as exc:
            self.audit.append("psa_writeback_failed", client_id=ticket.client_id,
                              data={"ticket_id": ticket.id, "psa": ticket.psa, "error": exc.message})
