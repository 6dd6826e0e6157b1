"""The ticket pipeline: route, match, run, close. One task per ticket.

Every step is persisted before the next is taken and every tool call is recorded before it
is sent. A failure anywhere ends in an escalation with the reason, never in silence.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from mspclaw.connectors.base import PSAConnector
from mspclaw.dispatch import ClientDispatcher, Hub
from mspclaw.engine.approval import ApprovalGate
from mspclaw.engine.context import INSTRUCTIONS, build_prompt
from mspclaw.engine.loop import Limits, run_loop
from mspclaw.engine.models.base import Model
from mspclaw.engine.models.playbook import run_plan
from mspclaw.engine.plan import PlanQuestion, RunResult, StepRecord
from mspclaw.engine.questions import best_match
from mspclaw.engine.toolset import Toolset
from mspclaw.errors import AgentOffline, Conflict, IntegrationError, MSPClawError, NotFound, NotRequesters, ToolError
from mspclaw.pipeline.approval_view import NOTE_LABEL, PLAYBOOK_LABEL
from mspclaw.pipeline.approvals import Approvals
from mspclaw.pipeline.durable import CallLedger, DurableModel, DurableTools
from mspclaw.pipeline.escalation import classify
from mspclaw.pipeline.events import SessionEvents
from mspclaw.pipeline.handover import Handover, Recipient
from mspclaw.pipeline.notes import ReplyCheck, internal_note, summarise, user_reply
from mspclaw.pipeline.offload import run_store
from mspclaw.pipeline.questions import NoAnswer, Questions
from mspclaw.pipeline.requester import ActForRequester, Verifications
from mspclaw.pipeline.routing import Route, Router
from mspclaw.playbooks.matcher import match, matcher_for
from mspclaw.playbooks.model_triage import ModelTriage
from mspclaw.playbooks.schema import Playbook
from mspclaw.protocol.frames import Approval
from mspclaw.store.audit import AuditLog
from mspclaw.store.registry import Registry
from mspclaw.store.runs import RunStore
from mspclaw.store.tables import Device, Session, Ticket
from mspclaw.store.tickets import TicketStore
from mspclaw.tools import get_tool


def site_tools(book: Playbook) -> frozenset[str]:
    """The playbook's tools that run on the client's site agent."""
    return frozenset(t for t in book.tools if get_tool(t).runs_on == "site")


def needs_device(book: Playbook) -> bool:
    """Whether a required step of the playbook runs on the end user's device; an account playbook
    (password, lockout, MFA, joiners, leavers, access) runs on the site agent alone."""
    return any(get_tool(step.tool).runs_on == "device" for step in book.steps if step.required) or not site_tools(book)

if TYPE_CHECKING:
    from mspclaw.pipeline.escalation import Escalations
    from mspclaw.pipeline.feedback import FeedbackService
    from mspclaw.pipeline.memory import DeviceLearning
    from mspclaw.store.stats import UsageLog

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Submitted:
    ticket: Ticket
    session: Session


class _SessionTools:
    """The engine's tool port for one session: record, audit, dispatch, record the result."""

    def __init__(self, svc: TicketService, session: Session, dispatcher: ClientDispatcher, agent_id: str,
                 ledger: CallLedger, recipient: Recipient) -> None:
        self._svc, self._session, self._dispatcher, self._agent_id = svc, session, dispatcher, agent_id
        self._ledger, self._recipient = ledger, recipient

    def agent_for(self, tool: str) -> str:
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
        agent_id = self.agent_for(tool)
        call_id = self._ledger.current or "call_" + secrets.token_hex(8)
        # DurableTools read this call's row just before (no one else writes it: one runner per session)
        in_flight = self._ledger.stored if self._ledger.current else self._svc.runs.call(call_id)
        if in_flight is not None:  # sent before a restart: send it again with the same id, never a new one
            agent_id = in_flight.agent_id
        else:
            await run_store(store, store.record_call, call_id=call_id, session_id=session.id,
                            client_id=session.client_id, agent_id=agent_id, tool=tool, args=args,
                            approval_id=approval.approval_id if approval else None)
            await audit.record("tool_call", client_id=session.client_id, session_id=session.id,
                               data={"call_id": call_id, "agent_id": agent_id, "tool": tool, "args": args,
                                     "approval_id": approval.approval_id if approval else None})
        try:
            result = await self._dispatcher.call_tool(
                agent_id, tool, args, timeout=min(spec.timeout_s, self._svc.tool_timeout_s) + 5,
                call_id=call_id, approval=approval, reconnect_grace=self._svc.reconnect_grace_s)
        except ToolError as exc:
            await run_store(store, store.finish_call, call_id, ok=False, output=None, error_code=exc.code,
                            error_message=exc.message, duration_ms=None)
            await audit.record("tool_result", client_id=session.client_id, session_id=session.id,
                               data={"call_id": call_id, "tool": tool, "ok": False, "error": exc.code,
                                     "message": exc.message})
            raise
        output = result.output if isinstance(result.output, dict) else {"value": result.output}
        if spec.hands_over_secret and result.secret is None:  # a replay after a restart: the agent keeps no copy
            lost = IntegrationError(f"{tool} took effect before a restart, and its temporary password was never "
                                    "delivered (nothing keeps a copy of it); run it again to set a new one",
                                    changed=(tool,), unchanged=("the user has not received it",))
            await run_store(store, store.finish_call, call_id, ok=False, output=None, error_code=lost.code,
                            error_message=lost.message, duration_ms=result.duration_ms)
            raise lost
        if result.secret is not None:  # for the user alone: handed on now, recorded nowhere
            try:
                output = {**output, "handed_over": await self._svc.handover.deliver(result.secret, self._recipient)}
            except MSPClawError as exc:
                failed = IntegrationError(f"{tool} took effect, but {exc.message}", changed=(tool,),
                                          unchanged=("the user has not received it",))
                await run_store(store, store.finish_call, call_id, ok=False, output=None, error_code=failed.code,
                                error_message=failed.message, duration_ms=result.duration_ms)
                await audit.record("tool_result", client_id=session.client_id, session_id=session.id,
                                   data={"call_id": call_id, "tool": tool, "ok": False, "error": failed.code,
                                         "message": failed.message})
                raise failed from exc
        await run_store(store, store.finish_call, call_id, ok=True, output=output, error_code=None,
                        error_message=None, duration_ms=result.duration_ms)
        learning, device_id = self._svc.learning, self._svc.device_of(session)
        # device memory learns from the device's own tool output
        if learning is not None and device_id is not None and agent_id == self._agent_id:
            await learning.learn_from_tool(device_id, tool, output, client_id=session.client_id,
                                           session_id=session.id)
        await audit.record("tool_result", client_id=session.client_id, session_id=session.id,
                           data={"call_id": call_id, "tool": tool, "ok": True, "duration_ms": result.duration_ms,
                                 "replayed": result.replayed})
        return output


class _DeviceConfirmation:
    """The second factor for an account change: the requester confirms on their own enrolled device
    (only that device: a reply on the ticket would come through the very channel being verified)."""

    def __init__(self, svc: TicketService, ticket: Ticket, session: Session, recipient: Recipient) -> None:
        self._svc, self._ticket, self._session, self._recipient = svc, ticket, session, recipient
        self.device = recipient.device_name

    async def __call__(self, tool: str, target: str) -> bool:
        agent_id = self._recipient.device_agent_id
        if agent_id is None:
            return False
        key = f"{tool}/{target}"
        question_id = "cf_" + hashlib.sha256(f"{self._session.id}/confirm/{key}".encode()).hexdigest()[:30]
        action = get_tool(tool).description.split(".")[0].lower()
        text = (f"Your IT help desk received a request from you ({self._ticket.requester}) to {action} "
                f"(account {target or 'yours'}). Did you ask for this?")
        try:
            answer = await asyncio.wait_for(
                self._svc.questions.ask_device(self._session.client_id, agent_id, question_id, text,
                                               ["Yes, it was me", "No"]), self._svc.questions.timeout_s)
        except TimeoutError:
            answer = None
        await self._svc.audit.record("requester_confirmation", client_id=self._session.client_id,
                                     session_id=self._session.id,
                                     data={"tool": tool, "device": self.device,
                                           "answer": "no answer" if answer is None else answer[:40]})
        if answer is None:
            return False
        if not answer.lower().startswith("yes"):
            raise NotRequesters(f"{self._ticket.requester} said on their own device that they did not ask for "
                                f"{tool}; nothing was changed. Treat this ticket as a possible social-engineering "
                                "attempt")
        return True


class _SessionApprovals:
    def __init__(self, svc: TicketService, ticket: Ticket, session: Session, target: str, tools: _SessionTools,
                 ledger: CallLedger, verifications: Verifications) -> None:
        self._svc, self._ticket, self._session, self._target = svc, ticket, session, target
        self._tools, self._ledger, self._verifications = tools, ledger, verifications
        self.decisions: list[str] = []
        self.evidence = ""
        """The latest finding, shown with the request so the technician decides on facts."""

    async def request(self, tool: str, args: dict[str, Any], *, reason: str) -> Approval:
        self._svc.untouched.discard(self._session.id)
        try:
            grant = await self._svc.approvals.request(
                session_id=self._session.id, client_id=self._session.client_id, ticket_id=self._ticket.id,
                target=self._target, tool=tool, args=args, reason=reason, finding=self.evidence,
                note_label=NOTE_LABEL if self._svc.model is not None else PLAYBOOK_LABEL,
                verification=verified.sentence() if (verified := self._verifications.for_call(tool, args)) else "",
                call_id=self._ledger.current or None, agent_id=self._agent(tool))
        except MSPClawError as exc:
            self.decisions.append(exc.message if tool in exc.message else f"{tool}: {exc.message}")
            raise
        self.decisions.append(f"{tool} approved by {grant.approver}")
        return grant

    def _agent(self, tool: str) -> str:
        """The agent the grant binds: the one a call sent before a restart went to, else the one it will go to."""
        sent = self._ledger.stored if self._ledger.current else None  # read by DurableTools just before
        return sent.agent_id if sent is not None else self._tools.agent_for(tool)


class _SessionQuestions:
    """``ask_user`` for one session: numbered by the same ledger as tool calls, so a restart finds it again."""

    def __init__(self, svc: TicketService, ticket: Ticket, session: Session, agent_id: str | None,
                 ledger: CallLedger, playbook_questions: Mapping[str, PlanQuestion] | None = None) -> None:
        self._svc, self._ticket, self._session, self._agent_id, self._ledger = svc, ticket, session, agent_id, ledger
        self._playbook_questions = dict(playbook_questions or {})

    async def ask(self, text: str, choices: list[str] | None) -> str:
        """The model's ``ask_user``. When it asks what one of the playbook's questions asks (by meaning),
        the answer fills that question's fact, in device memory when the playbook says so."""
        self._svc.untouched.discard(self._session.id)
        device_id = self._svc.device_of(self._session)
        facts = self._svc.runs.device_facts(device_id) if device_id else {}
        answered = [(q.text, facts[fact]) for fact, q in self._playbook_questions.items() if fact in facts]
        answer = await self._svc.questions.ask(ticket=self._ticket, session=self._session, agent_id=self._agent_id,
                                               call_id=self._ledger.next(), text=text, choices=choices,
                                               answered=answered)
        found = best_match(text, [(q.text, fact) for fact, q in self._playbook_questions.items()])
        if found is not None:
            await self._remember(self._playbook_questions[found[1]], answer)
        return answer

    async def _remember(self, question: PlanQuestion, answer: str) -> None:
        device_id = self._svc.device_of(self._session)
        learning = self._svc.learning
        if question.remember and learning is not None and device_id is not None:
            await learning.learn_from_answer(device_id, question.fact, answer, client_id=self._session.client_id,
                                             session_id=self._session.id)

    async def ask_playbook(self, question: PlanQuestion) -> str | None:
        """A playbook's question, for the deterministic runner: the answer fills ``facts.<fact>``, and
        goes into the device's memory when the playbook says it belongs to the device.

        Its id comes from the fact, not the call ledger, so a resumed run finds the same question
        whether or not the answer is in device memory by then.
        """
        self._svc.untouched.discard(self._session.id)
        call_id = "q_" + hashlib.sha256(f"{self._session.id}/{question.fact}".encode()).hexdigest()[:30]
        try:
            answer = await self._svc.questions.ask(ticket=self._ticket, session=self._session,
                                                   agent_id=self._agent_id, call_id=call_id, text=question.text,
                                                   choices=question.choices or None, device_facts=question.remember)
        except NoAnswer:
            return None
        await self._remember(question, answer)
        return answer


class TicketService:
    # optional services, set by wiring: device memory, structured escalation, resolution feedback, usage
    learning: DeviceLearning | None = None
    escalations: Escalations | None = None
    feedback: FeedbackService | None = None
    usage: UsageLog | None = None

    def __init__(self, *, registry: Registry, store: TicketStore, audit: AuditLog, hub: Hub, router: Router,
                 events: SessionEvents, approvals: Approvals, playbooks: list[Playbook],
                 connectors: dict[str, PSAConnector], runs: RunStore, questions: Questions,
                 model: Model | None = None, limits: Limits = Limits(), tool_timeout_s: float = 60.0,
                 reconnect_grace_s: float = 30.0, handover: Handover | None = None,
                 reply_check: ReplyCheck | None = None) -> None:
        """``model`` is the reasoning model (a chain); ``None`` runs the deterministic playbook model."""
        self.registry, self.store, self.audit, self.hub = registry, store, audit, hub
        self.runs, self.questions, self.model, self.limits = runs, questions, model, limits
        self.router, self.events, self.approvals = router, events, approvals
        self.playbooks, self.connectors = playbooks, connectors
        self.tool_timeout_s, self.reconnect_grace_s = tool_timeout_s, reconnect_grace_s
        self.triage = ModelTriage(model, matcher_for(playbooks)) if model is not None else None
        """Sorts a ticket no playbook matched confidently, when a model is configured (never before the
        must-not-automate layer: a ticket it stops is never offered to the model)."""
        self.handover = handover or Handover(hub)
        self.reply_check = reply_check or ReplyCheck()
        """What a reply the model wrote may carry (links on allowed hosts only, no credentials)."""
        """Where a temporary password a site tool set goes: the user's device, or a view-once link."""
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._devices: dict[str, str] = {}
        self.untouched: set[str] = set()
        """Sessions opened by this process that have asked for no approval and no answer (yet): when
        they close there is nothing of theirs to expire. Resumed sessions are never in it."""

    def device_of(self, session: Session) -> str | None:
        return self._devices.get(session.id)

    # -- intake ---------------------------------------------------------------------------------
    def submit(self, *, client: str, subject: str, body: str, requester: str, device: str | None,
               scope: Collection[str] | None = None, psa: str | None = None,
               external_id: str | None = None, actor: str = "api") -> Submitted:
        ticket, session, route = self._open(client=client, subject=subject, body=body, requester=requester,
                                            device=device, scope=scope, psa=psa, external_id=external_id)
        self.audit.append("ticket_opened", **self._opened(ticket, session, actor))
        return self._start(ticket, session, route)

    async def submit_async(self, *, client: str, subject: str, body: str, requester: str, device: str | None,
                           psa: str | None = None, external_id: str | None = None, actor: str = "api") -> Submitted:
        """:meth:`submit` for coroutines: the event loop runs while ``ticket_opened`` is made durable."""
        ticket, session, route = self._open(client=client, subject=subject, body=body, requester=requester,
                                            device=device, scope=None, psa=psa, external_id=external_id)
        await self.audit.record("ticket_opened", **self._opened(ticket, session, actor))
        return self._start(ticket, session, route)

    def _open(self, *, client: str, subject: str, body: str, requester: str, device: str | None,
              scope: Collection[str] | None, psa: str | None, external_id: str | None) -> tuple[Ticket, Session, Route]:
        client_row = self.registry.client(client)
        if scope is not None and client_row.id not in scope:
            raise NotFound(f"no client {client!r}")  # another client's: reveal nothing
        if not subject.strip():
            raise Conflict("a ticket needs a subject")
        route = self.router.route(client_row.id, device=device, requester=requester)
        ticket, session = self.store.open_ticket(
            client_id=client_row.id, subject=subject, body=body, requester=requester,
            device_id=route.device.id if route.device else None, psa=psa, external_id=external_id,
            agent_id=route.agent_id, started=True)
        # stored with the session (seq 1); pushed now, though no one can be watching a session this new
        self.events.announce(session.id, 1, "started", {"ticket_id": ticket.id, "subject": ticket.subject})
        return ticket, session, route

    @staticmethod
    def _opened(ticket: Ticket, session: Session, actor: str) -> dict[str, Any]:
        return {"actor": actor, "client_id": ticket.client_id, "session_id": session.id,
                "data": {"ticket_id": ticket.id, "subject": ticket.subject, "requester": ticket.requester,
                         "psa": ticket.psa, "external_id": ticket.external_id}}

    def _start(self, ticket: Ticket, session: Session, route: Route) -> Submitted:
        self.untouched.add(session.id)
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
        elif session.status in ("running", "awaiting_approval", "awaiting_answer"):
            self._resume(session)
            await self.wait(session.id)

    def recover(self) -> int:
        """Resume the sessions a previous process left unfinished, each from its last persisted step."""
        orphans = self.store.unfinished_sessions()
        for session in orphans:
            self._resume(session)
        return len(orphans)

    def _resume(self, session: Session) -> None:
        if session.id in self._tasks:
            return
        ticket = self.store.ticket(session.ticket_id)
        device = self.registry.find_device(ticket.client_id, ticket.device_id) if ticket.device_id else None
        agent_id = session.agent_id or (device.agent_id if device else None)
        route = Route(device, agent_id, bool(agent_id and self.hub.is_online(agent_id)), "resumed after a restart")
        self.audit.append("session_resumed", client_id=session.client_id, session_id=session.id,
                          data={"ticket_id": ticket.id, "status": session.status})
        self._tasks[session.id] = asyncio.get_running_loop().create_task(
            self._process(ticket, session, route, resumed=True))

    # -- the run --------------------------------------------------------------------------------
    async def _process(self, ticket: Ticket, session: Session, route: Route, *, resumed: bool = False) -> None:
        if resumed:  # a new session's "started" was stored with it (_open)
            await self.events.emit_async(session.id, "resumed", {"ticket_id": ticket.id, "subject": ticket.subject})
        try:
            await self._run(ticket, session, route, resumed=resumed)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the last line of defence: escalate, never lose the ticket
            log.exception("ticket %s failed", ticket.id)
            await self._close(ticket, session, None, None, f"internal error: {type(exc).__name__}: {exc}",
                              route, [])
        finally:
            self._tasks.pop(session.id, None)
            self.untouched.discard(session.id)

    async def _run(self, ticket: Ticket, session: Session, route: Route, *, resumed: bool = False) -> None:
        device = route.device if route.agent_id is not None else None
        if resumed and session.playbook:
            book = next((b for b in self.playbooks if b.id == session.playbook), None)
            if book is None:
                await self._close(ticket, session, None, None,
                                  f"playbook {session.playbook} is no longer installed; resume impossible", route, [])
                return
        else:
            # what the ticket asks decides where it runs: an account playbook needs no device at all
            # CPU work that grows with the ticket's length: off the event loop (sockets, heartbeats)
            found = await asyncio.to_thread(match, self.playbooks, ticket.subject, ticket.body,
                                            device.os if device else None)
            picked, explanation, triaged = found.playbook, found.explanation, None
            if picked is None and found.triage_reason is None and self.triage is not None:
                # no confident match, and nothing says "never automate": the configured model sorts it
                picked, triaged = await self._model_triage(ticket, session, device.os if device else None)
                explanation = f"{explanation}; {triaged}"
            if device is None and (picked is None or needs_device(picked)):
                await self._close(ticket, session, None, None, f"cannot route: {route.reason}", route, [])
                return
            chosen = {"playbook": picked.id,
                      "model": self.model.name[:100] if self.model else "playbook"} if picked else None
            await self.events.emit_async(session.id, "matched",
                                         {"playbook": picked.id if picked else None, "score": found.score,
                                          "confidence": found.confidence, "explanation": explanation,
                                          **({"model_triage": triaged} if triaged else {})},
                                         session_values=chosen)
            if picked is None:
                await self._close(ticket, session, None, None, f"no playbook fits: {explanation}", route, [])
                return
            book = picked
        if needs_device(book):
            if device is None or route.agent_id is None:
                await self._close(ticket, session, book, None, f"cannot route: {route.reason}", route, [])
                return
            acting, target_name = route.agent_id, device.hostname
        else:
            site = self.router.site_agent(session.client_id, site_tools(book))
            if site.agent_id is None:
                await self._close(ticket, session, book, None, site.reason, route, [])
                return
            acting, target_name = site.agent_id, site.hostname or site.agent_id
            if device is None or not route.online:  # the device is only a convenience here
                route = Route(device, site.agent_id, True, site.reason)
        if session.agent_id != acting:  # a new session has the device's from open_ticket
            self.store.update_session(session.id, agent_id=acting)
        known: dict[str, Any] = {}
        if device is not None and route.agent_id == device.agent_id:
            self._devices[session.id] = device.id
            known = self.runs.device_facts(device.id)
            # device memory: the requester is the device's user unless known (read again only if that changed)
            if self.learning is not None and await self.learning.learn_from_ticket(
                    device.id, ticket.requester, client_id=session.client_id, session_id=session.id, known=known):
                known = self.runs.device_facts(device.id)
            wait_s = max(10.0, self.reconnect_grace_s) if resumed else 10.0
            if (needs_device(book) and not route.online and device.agent_id is not None
                    and not await self._wait_online(device.agent_id, wait_s)):
                await self._close(ticket, session, None, None,
                                  f"device {device.hostname} is offline ({route.reason})", route, [])
                return
        else:
            device = None
        os_name = device.os if device is not None else book.os[0]
        plan = book.plan_for(os_name)
        dispatcher = self.hub.for_client(session.client_id)
        ledger = CallLedger(session.id, fresh=not resumed)
        recipient = self._recipient(ticket, device)
        first = device.agent_id if device is not None and device.agent_id else acting
        session_tools = _SessionTools(self, session, dispatcher, first, ledger, recipient)
        verifications = Verifications()
        asker = _SessionApprovals(self, ticket, session, target_name, session_tools, ledger, verifications)
        gated = ApprovalGate(session_tools, asker, plan.requires_approval)
        tools = ActForRequester(DurableTools(gated, self.runs, ledger), ticket.requester,
                                _DeviceConfirmation(self, ticket, session, recipient), device=recipient.device_name,
                                verifications=verifications)
        already = len(self.store.steps(session.id)) if resumed else 0

        async def on_step(record: StepRecord) -> None:
            if record.ok:
                asker.evidence = summarise(record)
            if record.index <= already:
                return  # replayed after a restart: stored and announced before
            if record.ok is False:
                # refusals before dispatch (bad arguments, unknown tool, denial) leave a trace too
                await self.audit.record("step_failed", client_id=session.client_id, session_id=session.id,
                                        data={"step": record.step_id, "tool": record.tool, "error": record.error})
            await self.events.emit_step(session.id, title=record.title, tool=record.tool, args=record.args,
                                        ok=record.ok, observation={"output": record.output, "error": record.error,
                                                                   "skipped": record.skipped},
                                        data={"index": record.index, "title": record.title, "tool": record.tool,
                                              "ok": record.ok, "skipped": record.skipped,
                                              "summary": summarise(record)})

        result: RunResult
        if self.model is None:
            # what the device is known to be (device memory), then what this ticket says
            facts = {**known, "requester": ticket.requester, "os": os_name,
                     **({"hostname": device.hostname} if device is not None else {})}
            questions = _SessionQuestions(self, ticket, session, first, ledger, plan.questions)
            result = await run_plan(plan, tools, on_step, facts=facts, ask=questions.ask_playbook)
        else:
            model = DurableModel(self.model, self.runs, session.id)
            toolset = Toolset(book.tools, tools, declared=plan.questions,
                              questions=_SessionQuestions(self, ticket, session, first, ledger, plan.questions))
            prompt = build_prompt(subject=ticket.subject, body=ticket.body, requester=ticket.requester,
                                  device={"hostname": device.hostname if device else target_name, "os": os_name},
                                  plan=plan, facts=known)
            result = await run_loop(model, INSTRUCTIONS, prompt, toolset, on_step,
                                    replace(self.limits, max_steps=min(self.limits.max_steps, plan.max_steps)))
            if self.usage is not None:  # tokens and cost per session, for the stats
                prompt_tokens, completion_tokens = self.runs.token_totals(session.id)
                per_prompt, per_completion = self.model.price_per_mtok
                self.usage.record(session.id, model=self.model.name[:100], input_tokens=prompt_tokens,
                                  output_tokens=completion_tokens,
                                  cost_usd=(prompt_tokens * per_prompt + completion_tokens * per_completion) / 1e6)
        await self._close(ticket, session, book, result, result.reason, route, asker.decisions)

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

    def _recipient(self, ticket: Ticket, device: Device | None) -> Recipient:
        """Where a secret or a confirmation for the requester may go: their own device, when online."""
        user = (device.primary_user or self.runs.device_facts(device.id).get("primary_user")) if device else None
        own = (device is not None and device.agent_id is not None and user is not None
               and user.lower() == ticket.requester.lower() and self.hub.is_online(device.agent_id))
        psa = self.connectors.get(ticket.psa) if ticket.psa else None
        return Recipient(client_id=ticket.client_id,
                         device_agent_id=device.agent_id if own and device is not None else None,
                         device_name=device.hostname if own and device is not None else None,
                         psa=psa, external_id=ticket.external_id)

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
        template = (book.reply.resolved if outcome == "resolved" else book.reply.escalated) if book else ""
        refused = (self.reply_check.problems(result.reply) if result is not None and result.reply
                   and result.reply != template else [])
        reply = user_reply(result, ticket.requester, template=template, refused=bool(refused))
        if outcome == "resolved" and self.feedback is not None:  # the reply asks "did it work?"
            reply = f"{reply}\n\n{self.feedback.question}"
        if outcome == "escalated" and self.escalations is not None:  # structured escalation
            kind = classify(reason, routed=route.agent_id is not None, matched=book is not None,
                            ran=result is not None)
            try:
                note = self.escalations.record(ticket, session_id=session.id, kind=kind, reason=reason,
                                               device=route.device, playbook=book.id if book else None,
                                               playbook_hint=book.escalation if book else "",
                                               approvals=approvals).note
            except MSPClawError:
                log.exception("ticket %s: structured escalation failed; the plain note stands", ticket.id)
        if refused:
            note += (f"\nReply: the assistant's reply was not sent (it carried {'; '.join(refused)}); "
                     "the playbook's was.")
        # the event that announces the end is stored with it, and pushed to watchers at once
        event = "final_answer" if outcome == "resolved" else "escalation"
        event_data = {"outcome": outcome, "reason": reason, "note": note, "reply": reply}
        seq = await run_store(self.store, self.store.close_session, session.id, ticket.id, outcome=outcome,
                              note=note, reply=reply, reason=reason, event=(event, event_data))
        assert seq is not None
        self.events.announce(session.id, seq, event, event_data)
        if session.id in self.untouched:
            self.untouched.discard(session.id)  # it asked no one anything: nothing can be pending
        else:
            self._expire_pending(session, reason)
        # both in one batch, in this order (each is queued when its coroutine starts, and gather starts them in turn)
        await asyncio.gather(
            self.audit.record("note_written", client_id=session.client_id, session_id=session.id,
                              data={"ticket_id": ticket.id, "note": note, "reply": reply}),
            self.audit.record("status_changed", client_id=session.client_id, session_id=session.id,
                              data={"ticket_id": ticket.id, "status": outcome, "reason": reason}))
        await self._write_back(ticket, note, reply, outcome)
        link = self.hub.link(route.agent_id) if route.agent_id else None
        if route.agent_id and link is not None and link.identity.role == "device":
            try:
                await self.hub.for_client(session.client_id).notify_user(route.agent_id, reply)
            except AgentOffline:
                pass
        self._devices.pop(session.id, None)
        if outcome == "resolved" and self.feedback is not None:  # ask whether the fix worked
            try:
                await self.feedback.ask(ticket, session.id, route.agent_id)
            except MSPClawError:
                log.exception("ticket %s: could not ask for feedback", ticket.id)

    def _expire_pending(self, session: Session, reason: str) -> None:
        """Nothing may stay pending for a closed run: its approvals and questions expire."""
        for approval_id in self.store.pending_approval_ids(session.id):
            with contextlib.suppress(Conflict):
                self.store.decide(approval_id, status="expired", approver="mspclaw (ticket closed)", reason=reason)
        for question_id in self.runs.pending_question_ids(session.id):
            with contextlib.suppress(Conflict):
                self.runs.settle_question(question_id, status="expired", answer=None,
                                          answered_by="mspclaw (ticket closed)")

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
            await self.audit.record("psa_writeback_failed", client_id=ticket.client_id,
                                    data={"ticket_id": ticket.id, "psa": ticket.psa, "error": exc.message})
