"""One ticket's run: route it to an agent, match a playbook, run the engine, hand the end to the closing.

Every step is persisted before the next is taken; every tool call is audited before it is sent
and stored, with its result, in the write of the step that reports it. A failure anywhere ends
in an escalation with the reason, never in silence.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from mspclaw.connectors.base import PSAConnector
from mspclaw.dispatch import Hub
from mspclaw.engine.approval import ApprovalGate
from mspclaw.engine.context import INSTRUCTIONS, build_prompt
from mspclaw.engine.loop import Limits, run_loop
from mspclaw.engine.models.base import Model
from mspclaw.engine.models.playbook import run_plan
from mspclaw.engine.plan import RunResult, StepRecord
from mspclaw.engine.toolset import Toolset
from mspclaw.errors import MSPClawError
from mspclaw.pipeline.approval_view import NOTE_LABEL, PLAYBOOK_LABEL
from mspclaw.pipeline.approvals import Approvals
from mspclaw.pipeline.closing import Closing, FinishedRun
from mspclaw.pipeline.durable import CallLedger, DurableModel, DurableTools
from mspclaw.pipeline.events import SessionEvents
from mspclaw.pipeline.handover import Handover, Recipient
from mspclaw.pipeline.memory import DeviceLearning
from mspclaw.pipeline.notes import summarise
from mspclaw.pipeline.offload import run_store
from mspclaw.pipeline.questions import Questions
from mspclaw.pipeline.requester import ActForRequester, Verifications, for_someone_else
from mspclaw.pipeline.routing import Route, Router
from mspclaw.pipeline.session_ownership import SessionOwnership
from mspclaw.pipeline.session_ports import (
    DeviceConfirmation,
    QuietSessions,
    RunContext,
    SessionApprovals,
    SessionQuestions,
    SessionTools,
)
from mspclaw.playbooks.matcher import Match, match, matcher_for
from mspclaw.playbooks.model_triage import ModelTriage
from mspclaw.playbooks.schema import Playbook
from mspclaw.store.audit import AuditLog
from mspclaw.store.runs import RunStore
from mspclaw.store.tables import Device, Session, Ticket
from mspclaw.store.tickets import OpeningEvent, StepWrite, TicketStore
from mspclaw.tools import get_tool

log = logging.getLogger(__name__)


def site_tools(book: Playbook) -> frozenset[str]:
    """The playbook's tools that run on the client's site agent."""
    return frozenset(t for t in book.tools if get_tool(t).runs_on == "site")


def needs_device(book: Playbook) -> bool:
    """Whether a required step of the playbook runs on the end user's device; an account playbook
    (password, lockout, MFA, joiners, leavers, access) runs on the site agent alone."""
    return any(get_tool(step.tool).runs_on == "device" for step in book.steps if step.required) or not site_tools(book)


class TicketRun:
    def __init__(self, *, store: TicketStore, runs: RunStore, audit: AuditLog, hub: Hub, router: Router,
                 events: SessionEvents, approvals: Approvals, questions: Questions, learning: DeviceLearning,
                 handover: Handover, closing: Closing, quiet: QuietSessions, playbooks: list[Playbook],
                 connectors: Mapping[str, PSAConnector], model: Model | None, limits: Limits = Limits(),
                 tool_timeout_s: float = 60.0, reconnect_grace_s: float = 30.0,
                 sessions: SessionOwnership | None = None) -> None:
        """``model`` is the reasoning model (a chain); ``None`` runs the deterministic playbook model."""
        self.store, self.runs, self.audit, self.hub, self.router = store, runs, audit, hub, router
        self.events, self.approvals, self.questions, self.learning = events, approvals, questions, learning
        self.handover, self.closing, self.quiet = handover, closing, quiet
        self.playbooks, self.connectors, self.model, self.limits = playbooks, connectors, model, limits
        self.tool_timeout_s, self.reconnect_grace_s = tool_timeout_s, reconnect_grace_s
        self.sessions = sessions
        """The session leases (``session_ownership.py``): no tool call once another replica holds the session."""
        self.triage = ModelTriage(model, matcher_for(playbooks)) if model is not None else None
        """Sorts a ticket no playbook matched confidently, when a model is configured (never before the
        must-not-automate layer: a ticket it stops is never offered to the model)."""

    async def process(self, ticket: Ticket, session: Session, route: Route, *,
                      resumed: bool = False) -> FinishedRun:
        """Run the ticket to its close (returned); any failure closes it as an escalation with the reason."""
        log.info("ticket %s %s (agent %s)", ticket.id, "resumed" if resumed else "started", route.agent_id or "none")
        if resumed:  # a new session's "started" was stored with it
            await self.events.emit_async(session.id, "resumed", {"ticket_id": ticket.id, "subject": ticket.subject})
        try:
            return await self._run(ticket, session, route, resumed=resumed)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the last line of defence: escalate, never lose the ticket
            log.exception("ticket %s failed", ticket.id)
            return await self.closing.close(ticket, session, None, None,
                                            f"internal error: {type(exc).__name__}: {exc}", route, [])

    async def _run(self, ticket: Ticket, session: Session, route: Route, *, resumed: bool = False) -> FinishedRun:
        close = self.closing.close
        route = await self.router.confirm(route)  # its agent may be on another server replica
        device = route.device if route.agent_id is not None else None
        if resumed and session.playbook:
            book = next((b for b in self.playbooks if b.id == session.playbook), None)
            if book is None:
                return await close(ticket, session, None, None,
                                   f"playbook {session.playbook} is no longer installed; resume impossible", route, [])
        else:  # matched at the open (``route.found``: announced with it), or now
            picked, explanation = await self._match(ticket, session, device, route.found)
            if device is None and (picked is None or needs_device(picked)):
                return await close(ticket, session, None, None, f"cannot route: {route.reason}", route, [])
            if picked is None:
                return await close(ticket, session, None, None, f"no playbook fits: {explanation}", route, [])
            book = picked
            someone = for_someone_else(book.tools, ticket.subject, ticket.body, ticket.requester)
            if someone is not None:
                return await close(ticket, session, book, None, someone, route, [])
        if needs_device(book):
            if device is None or route.agent_id is None:
                return await close(ticket, session, book, None, f"cannot route: {route.reason}", route, [])
            acting, target_name = route.agent_id, device.hostname
        else:
            site = await self.router.find_site_agent(session.client_id, site_tools(book))
            if site.agent_id is None:
                return await close(ticket, session, book, None, site.reason, route, [])
            acting, target_name = site.agent_id, site.hostname or site.agent_id
            if device is None or not route.online:  # the device is only a convenience here
                route = Route(device, site.agent_id, True, site.reason)
        if session.agent_id != acting:  # a new session has the device's from open_ticket
            await run_store(self.store, self.store.update_session, session.id, agent_id=acting)
        known: dict[str, Any] = {}
        if device is not None and route.agent_id == device.agent_id:
            known = (dict(route.facts) if route.facts is not None and route.device is device  # read at the open
                     else await run_store(self.store, self.runs.device_facts, device.id))
            # device memory: the requester is the device's user unless known (read again only if that changed)
            if await self.learning.learn_from_ticket(device.id, ticket.requester, client_id=session.client_id,
                                                     session_id=session.id, known=known):
                known = await run_store(self.store, self.runs.device_facts, device.id)
            wait_s = max(10.0, self.reconnect_grace_s) if resumed else 10.0
            if (needs_device(book) and not route.online and device.agent_id is not None
                    and not await self._wait_online(device.agent_id, device.client_id, wait_s)):
                return await close(ticket, session, None, None,
                                   f"device {device.hostname} is offline ({route.reason})", route, [])
        else:
            device = None
        result, decisions, steps = await self._engine(ticket, session, book, device, acting, target_name, known,
                                                      resumed=resumed)
        return await close(ticket, session, book, result, result.reason, route, decisions, steps)

    def match_at_open(self, subject: str, body: str, route: Route) -> tuple[Match, OpeningEvent | None]:
        """The matcher's verdict on a new ticket (its stored ``subject`` and ``body``) on ``route``, reached
        where the ticket is opened (off the event loop), and its ``matched`` event when that needs nothing
        more (no model triage, a place to run): stored with the open, one statement fewer. With the event,
        ``route.found`` tells :meth:`process` that it was announced (``pipeline/submission.py``)."""
        device = route.device if route.agent_id is not None else None
        found = match(self.playbooks, subject, body, device.os if device else None)
        picked = found.playbook
        if picked is None and found.triage_reason is None and self.triage is not None:
            return found, None  # the model sorts it: in the run
        if device is None and (picked is None or needs_device(picked)):
            return found, None  # nowhere to run it: closed by the run, unannounced
        data, chosen = self._matched(picked, found, found.explanation, None)
        return found, OpeningEvent("matched", data, chosen or {})

    def _matched(self, picked: Playbook | None, found: Match, explanation: str,
                 triaged: str | None) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The ``matched`` event's data and the session columns it sets (``None``: no playbook)."""
        chosen = {"playbook": picked.id,
                  "model": self.model.name[:100] if self.model else "playbook"} if picked else None
        return ({"playbook": picked.id if picked else None, "score": found.score, "confidence": found.confidence,
                 "explanation": explanation, **({"model_triage": triaged} if triaged else {})}, chosen)

    async def _match(self, ticket: Ticket, session: Session, device: Device | None,
                     announced: Match | None = None) -> tuple[Playbook | None, str]:
        """The playbook for the ticket and why (announced as ``matched`` when it can run): what the ticket
        asks decides where it runs, since an account playbook needs no device at all. ``announced``: the
        verdict stored and announced with the ticket's open (:meth:`match_at_open`)."""
        if announced is not None:
            return announced.playbook, announced.explanation
        # CPU work that grows with the ticket's length: off the event loop (sockets, heartbeats)
        found = await asyncio.to_thread(match, self.playbooks, ticket.subject, ticket.body,
                                        device.os if device else None)
        picked, explanation, triaged = found.playbook, found.explanation, None
        if picked is None and found.triage_reason is None and self.triage is not None:
            # no confident match, and nothing says "never automate": the configured model sorts it
            picked, triaged = await self._model_triage(ticket, session, device.os if device else None)
            explanation = f"{explanation}; {triaged}"
        if device is None and (picked is None or needs_device(picked)):
            return picked, explanation  # nowhere to run it: closed by the caller, unannounced
        data, chosen = self._matched(picked, found, explanation, triaged)
        await self.events.emit_async(session.id, "matched", data, session_values=chosen)
        return picked, explanation

    async def _engine(self, ticket: Ticket, session: Session, book: Playbook, device: Device | None, acting: str,
                      target_name: str, known: dict[str, Any], *,
                      resumed: bool) -> tuple[RunResult, list[str], list[StepWrite]]:
        """Run the playbook (deterministically, or with the reasoning model) through the session's ports: its
        result, the approvals' decisions, and its last steps, written behind, to be stored with its end."""
        os_name = device.os if device is not None else book.os[0]
        plan = book.plan_for(os_name)
        first = device.agent_id if device is not None and device.agent_id else acting
        ctx = RunContext(ticket, session, device.id if device is not None else None, first,
                         CallLedger(session.id, fresh=not resumed), await self._recipient(ticket, device), self.quiet)
        session_tools = SessionTools(ctx, dispatcher=self.hub.for_client(session.client_id), store=self.store,
                                     runs=self.runs, audit=self.audit, handover=self.handover,
                                     learning=self.learning, tool_timeout_s=self.tool_timeout_s,
                                     reconnect_grace_s=self.reconnect_grace_s,
                                     find_site=self.router.find_site_agent)
        verifications = Verifications()
        asker = SessionApprovals(ctx, approvals=self.approvals, target=target_name, tools=session_tools,
                                 verifications=verifications,
                                 note_label=NOTE_LABEL if self.model is not None else PLAYBOOK_LABEL)
        dispatching = self.sessions.fenced(session.id, session_tools) if self.sessions is not None else session_tools
        gated = ApprovalGate(dispatching, asker, plan.requires_approval)
        tools = ActForRequester(DurableTools(gated, self.runs, ctx.ledger), ticket.requester,
                                DeviceConfirmation(ctx, questions=self.questions, audit=self.audit),
                                device=ctx.recipient.device_name, verifications=verifications)
        questions = SessionQuestions(ctx, questions=self.questions, runs=self.runs, learning=self.learning,
                                     playbook_questions=plan.questions)
        already = len(await run_store(self.store, self.store.steps, session.id)) if resumed else 0

        async def on_step(record: StepRecord) -> None:
            if record.ok:
                asker.evidence = summarise(record)
            if record.index <= already:
                return  # replayed after a restart: stored and announced before
            if record.ok is False:
                # refusals before dispatch (bad arguments, unknown tool, denial) leave a trace too
                await self.audit.record("step_failed", client_id=session.client_id, session_id=session.id,
                                        data={"step": record.step_id, "tool": record.tool, "error": record.error})
            # the step with the rows of the calls it reports: one write (SessionTools.save_step)
            await session_tools.save_step(self.events, title=record.title, tool=record.tool, args=record.args,
                                          ok=record.ok, observation={"output": record.output, "error": record.error,
                                                                     "skipped": record.skipped},
                                          data={"index": record.index, "title": record.title, "tool": record.tool,
                                                "ok": record.ok, "skipped": record.skipped,
                                                "summary": summarise(record)})

        if self.model is None:
            # what the device is known to be (device memory), then what this ticket says
            facts = {**known, "requester": ticket.requester, "os": os_name,
                     **({"hostname": device.hostname} if device is not None else {})}
            async with session_tools.settled_on_error():
                planned = await run_plan(plan, tools, on_step, facts=facts, ask=questions.ask_playbook)
            return planned, asker.decisions, await session_tools.hand_over()  # stored with the run's end
        toolset = Toolset(book.tools, tools, declared=plan.questions, questions=questions)
        prompt = build_prompt(subject=ticket.subject, body=ticket.body, requester=ticket.requester,
                              device={"hostname": device.hostname if device else target_name, "os": os_name},
                              plan=plan, facts=known)
        turns = await run_store(self.store, self.runs.turns, session.id)
        limits = replace(self.limits, max_steps=min(self.limits.max_steps, plan.max_steps))
        async with session_tools.settled_on_error():
            result = await run_loop(DurableModel(self.model, self.runs, session.id, turns=turns), INSTRUCTIONS,
                                    prompt, toolset, on_step, limits)
        return result, asker.decisions, await session_tools.hand_over()

    async def _model_triage(self, ticket: Ticket, session: Session, os_name: str | None) -> tuple[Playbook | None, str]:
        """The configured model's category for a ticket the matcher left without a playbook, recorded with its
        tokens; a provider failure leaves it to a technician, as without a model."""
        assert self.triage is not None
        try:
            verdict = await self.triage.classify(ticket.subject, ticket.body)
        except MSPClawError as exc:
            return None, f"the model could not sort it ({exc.message})"
        book = verdict.playbook(self.playbooks, os_name)
        await self.audit.record("model_triage", client_id=session.client_id, session_id=session.id,
                                data={"ticket_id": ticket.id, "model": verdict.model[:100],
                                      "category": verdict.category, "playbook": book.id if book else None,
                                      "reason": verdict.reason, "input_tokens": verdict.usage.prompt_tokens,
                                      "output_tokens": verdict.usage.completion_tokens})
        if verdict.category is not None and book is None:
            return None, f"{verdict.reason} (no playbook of that category for {os_name})"
        return book, verdict.reason

    async def _recipient(self, ticket: Ticket, device: Device | None) -> Recipient:
        """Where a secret or a confirmation for the requester may go: their own device, when online."""
        user = (device.primary_user or (await run_store(self.store, self.runs.device_facts, device.id))
                .get("primary_user")) if device else None
        own = (device is not None and device.agent_id is not None and user is not None
               and user.lower() == ticket.requester.lower()
               and await self.hub.online_anywhere(device.agent_id, ticket.client_id))
        psa = self.connectors.get(ticket.psa) if ticket.psa else None
        return Recipient(client_id=ticket.client_id,
                         device_agent_id=device.agent_id if own and device is not None else None,
                         device_name=device.hostname if own and device is not None else None,
                         psa=psa, external_id=ticket.external_id)

    async def _wait_online(self, agent_id: str, client_id: str, seconds: float) -> bool:
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        while loop.time() < until:
            if await self.hub.online_anywhere(agent_id, client_id):
                return True
            await asyncio.sleep(0.2)
        return False
