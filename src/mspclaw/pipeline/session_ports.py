"""The engine's ports for one session: tools, approvals, questions, the requester's confirmation.

Each port is built for one run from the session's facts (:class:`RunContext`) and the services it
needs, passed in; none reaches back into the ticket service.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from mspclaw.dispatch import ClientDispatcher
from mspclaw.engine.plan import PlanQuestion
from mspclaw.engine.questions import best_match
from mspclaw.errors import IntegrationError, MSPClawError, NotRequesters, ToolError
from mspclaw.pipeline.approvals import Approvals
from mspclaw.pipeline.durable import CallLedger
from mspclaw.pipeline.events import SessionEvents
from mspclaw.pipeline.handover import Handover, Recipient
from mspclaw.pipeline.memory import DeviceLearning
from mspclaw.pipeline.offload import run_store
from mspclaw.pipeline.questions import NoAnswer, Questions
from mspclaw.pipeline.requester import Verifications
from mspclaw.pipeline.routing import SiteRoute
from mspclaw.protocol.frames import Approval
from mspclaw.store.audit import AuditLog
from mspclaw.store.runs import RunStore
from mspclaw.store.tables import Session, Ticket, utcnow
from mspclaw.store.tickets import MAX_CALLS_PER_WRITE, MAX_STEPS_PER_WRITE, FinishedCall, StepWrite, TicketStore
from mspclaw.tools import CATALOGUE, get_tool

log = logging.getLogger(__name__)

STEPS_BEHIND_S = 1.0
"""How long a step that can be replayed may wait to be stored with the next write (:meth:`SessionTools.save_step`):
watchers of the session see it at most this late."""


class QuietSessions:
    """Sessions opened by this process that have asked for no approval and no answer (yet): when they
    close there is nothing of theirs to expire. Resumed sessions are never in it."""

    def __init__(self) -> None:
        self._ids: set[str] = set()

    def opened(self, session_id: str) -> None:
        self._ids.add(session_id)

    def asked(self, session_id: str) -> None:
        """The session asked someone something: at its close, what it asked may still be pending."""
        self._ids.discard(session_id)

    def closed(self, session_id: str) -> bool:
        """Forget the session; whether it asked no one anything."""
        quiet = session_id in self._ids
        self._ids.discard(session_id)
        return quiet

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._ids


@dataclass(frozen=True)
class RunContext:
    """What one run knows of its session, shared by its ports."""

    ticket: Ticket
    session: Session
    device_id: str | None
    """The device the run acts on (device memory learns about it); ``None`` for a site-only run."""
    agent_id: str
    """The ticket's device agent, or the acting (site) agent without one."""
    ledger: CallLedger
    recipient: Recipient
    quiet: QuietSessions


SiteFinder = Callable[[str, Collection[str]], Awaitable[SiteRoute]]
"""The client's site agent for some tools on any server replica
(:meth:`~mspclaw.pipeline.routing.Router.find_site_agent`)."""


class SessionTools:
    """The engine's tool port for one session: audit, dispatch, then one write per call.

    A call is audited (``tool_call``, durable) before it is sent; its row, with its result, is stored
    in the same write as the step that reports it (:meth:`save_step`: one statement on PostgreSQL)
    instead of an insert before the call and an update after it. A run that stops between the result
    and its step (a crash, a lost lease) leaves no row: the replay sends the call again with the same
    id (``pipeline/durable.py``), and the agent's journal answers it without running the tool twice,
    as it did for a row left pending.

    Steps are *written behind* when that is safe: a step that changed nothing (no tool, a tool that is
    not destructive, a preview such as a dry run, or a skipped step) waits, with its calls' rows, to be
    stored in one write with the steps after it (:meth:`flush`): at the latest :data:`STEPS_BEHIND_S`
    later, before a call that changes something or an approval request, and at the run's end, where they
    are handed to the closing (:meth:`hand_over`) to be stored with the run's end.
    A run that dies first replays those steps on resume, and their calls are answered by the agents'
    journals (same ids), as above: what a crash costs is a repeated diagnostic, never a repeated change.
    A deterministic run of read-only steps is one write instead of one per step."""

    def __init__(self, ctx: RunContext, *, dispatcher: ClientDispatcher, store: TicketStore, runs: RunStore,
                 audit: AuditLog, handover: Handover, learning: DeviceLearning, tool_timeout_s: float,
                 reconnect_grace_s: float, find_site: SiteFinder | None = None) -> None:
        """``find_site``: where a site tool goes when no agent of this replica offers it (several replicas)."""
        self._ctx, self._dispatcher, self._store, self._runs, self._audit = ctx, dispatcher, store, runs, audit
        self._handover, self._learning, self._find_site = handover, learning, find_site
        self._tool_timeout_s, self._reconnect_grace_s = tool_timeout_s, reconnect_grace_s
        self._unsaved: list[FinishedCall] = []
        """Calls with their result whose row goes with the next step (:meth:`save_step`)."""
        self._audits: list[asyncio.Future[Any]] = []
        """``tool_result`` audit records under way, awaited with the next step's write."""
        self._pending: list[StepWrite] = []
        """Steps written behind (:meth:`save_step`), stored by the next :meth:`flush`."""
        self._events: SessionEvents | None = None
        self._flushing = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._later: asyncio.Future[None] | None = None

    async def agent_for(self, tool: str) -> str:
        """The ticket's device agent if it offers the tool, else the client's site agent that does.

        Agents on this replica are known with their tools at no cost; only when none of them fits, and a
        ``find_site`` is given, is a site agent on another replica looked for (its tools as it last said)."""
        links = self._dispatcher.online()
        device = next((link for link in links if link.identity.agent_id == self._ctx.agent_id), None)
        if device is not None and tool in device.tools:
            return self._ctx.agent_id
        site = next((link for link in links if link.identity.role == "site" and tool in link.tools), None)
        if site is not None:
            return site.identity.agent_id
        if self._find_site is not None and get_tool(tool).runs_on == "site":
            elsewhere = await self._find_site(self._ctx.session.client_id, (tool,))
            if elsewhere.agent_id is not None:
                return elsewhere.agent_id
        return self._ctx.agent_id

    async def __call__(self, tool: str, args: dict[str, Any], *, reason: str,
                       approval: Approval | None = None) -> dict[str, Any]:
        spec = get_tool(tool)
        args = spec.validate(args).model_dump(mode="json")
        audit, session, ledger = self._audit, self._ctx.session, self._ctx.ledger
        if self._unsaved:  # a call with no step after it (not from the engines): stored first
            await self.save_unsaved()
        if spec.needs_approval(spec.args.model_construct(**args)):  # what the run found is stored before a change
            await self.flush()
        agent_id = await self.agent_for(tool)
        call_id = ledger.current or "call_" + secrets.token_hex(8)
        # DurableTools read this call's row just before (no one else writes it: one runner per session)
        in_flight = ledger.stored if ledger.current else await run_store(self._runs, self._runs.call, call_id)
        if in_flight is not None:  # left pending by an earlier version: sent again with its id and agent
            agent_id = in_flight.agent_id
        else:
            await audit.record("tool_call", client_id=session.client_id, session_id=session.id,
                               data={"call_id": call_id, "agent_id": agent_id, "tool": tool, "args": args,
                                     "approval_id": approval.approval_id if approval else None})
        sent = in_flight.created_at if in_flight is not None else utcnow()

        def finished(ok: bool, output: dict[str, Any] | None, error: MSPClawError | None,
                     duration_ms: int | None) -> FinishedCall:
            return FinishedCall(call_id=call_id, session_id=session.id, client_id=session.client_id,
                                agent_id=agent_id, tool=tool, args=args,
                                approval_id=approval.approval_id if approval else None, ok=ok, output=output,
                                error_code=error.code if error else None,
                                error_message=error.message if error else None, duration_ms=duration_ms,
                                created_at=sent)

        try:
            result = await self._dispatcher.call_tool(
                agent_id, tool, args, timeout=min(spec.timeout_s, self._tool_timeout_s) + 5,
                call_id=call_id, approval=approval, reconnect_grace=self._reconnect_grace_s)
        except ToolError as exc:
            self._unsaved.append(finished(False, None, exc, None))  # the engine records the failed step next
            await audit.record("tool_result", client_id=session.client_id, session_id=session.id,
                               data={"call_id": call_id, "tool": tool, "ok": False, "error": exc.code,
                                     "message": exc.message})
            raise
        output = result.output if isinstance(result.output, dict) else {"value": result.output}
        if spec.hands_over_secret and result.secret is None:  # a replay after a restart: the agent keeps no copy
            lost = IntegrationError(f"{tool} took effect before a restart, and its temporary password was never "
                                    "delivered (nothing keeps a copy of it); run it again to set a new one",
                                    changed=(tool,), unchanged=("the user has not received it",))
            await self.save_unsaved(finished(False, None, lost, result.duration_ms))
            raise lost
        if result.secret is not None:  # for the user alone: handed on now, recorded nowhere
            try:
                output = {**output, "handed_over": await self._handover.deliver(result.secret, self._ctx.recipient)}
            except MSPClawError as exc:
                failed = IntegrationError(f"{tool} took effect, but {exc.message}", changed=(tool,),
                                          unchanged=("the user has not received it",))
                await self.save_unsaved(finished(False, None, failed, result.duration_ms))
                await audit.record("tool_result", client_id=session.client_id, session_id=session.id,
                                   data={"call_id": call_id, "tool": tool, "ok": False, "error": failed.code,
                                         "message": failed.message})
                raise failed from exc
        self._unsaved.append(finished(True, output, None, result.duration_ms))
        # device memory learns from the device's own tool output
        if self._ctx.device_id is not None and agent_id == self._ctx.agent_id:
            await self._learning.learn_from_tool(self._ctx.device_id, tool, output, client_id=session.client_id,
                                                 session_id=session.id)
        # durable before the step is (save_step awaits it), but written while the step's row is
        self._audits.append(asyncio.ensure_future(audit.record(
            "tool_result", client_id=session.client_id, session_id=session.id,
            data={"call_id": call_id, "tool": tool, "ok": True, "duration_ms": result.duration_ms,
                  "replayed": result.replayed})))
        return output

    async def save_step(self, events: SessionEvents, *, title: str, tool: str | None, args: dict[str, Any],
                        ok: bool | None, observation: dict[str, Any], data: dict[str, Any]) -> None:
        """Store a step, its ``step`` event and the rows of the calls finished since the last step, in one
        write (one statement on PostgreSQL) with the steps written behind before it, then announce the
        events; a step that changed nothing is itself written behind (see the class)."""
        self._events = events
        calls, self._unsaved = self._unsaved[:MAX_CALLS_PER_WRITE], self._unsaved[MAX_CALLS_PER_WRITE:]
        if (len(self._pending) >= MAX_STEPS_PER_WRITE
                or sum(len(p.calls) for p in self._pending) + len(calls) > MAX_CALLS_PER_WRITE):
            await self.flush()
        self._pending.append(StepWrite(title=title, tool=tool, args=args, ok=ok, observation=observation,
                                       data=data, created_at=utcnow(), calls=tuple(calls)))
        spec = CATALOGUE.get(tool) if tool is not None else None
        # changed nothing: no tool or an unknown one (refused), skipped, not destructive, or a preview (dry run)
        if spec is None or observation.get("skipped") or not spec.needs_approval(spec.args.model_construct(**args)):
            if self._timer is None:
                self._timer = asyncio.get_running_loop().call_later(STEPS_BEHIND_S, self._flush_later)
            return
        await self.flush()

    async def flush(self) -> None:
        """Store the steps written behind, in one write, and announce their events in order."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        async with self._flushing:
            pending, self._pending = self._pending, []
            if pending:
                session_id, store = self._ctx.session.id, self._store
                try:
                    seqs = await run_store(store, store.add_steps, session_id, pending)
                except BaseException:
                    self._pending[:0] = pending  # not stored: kept for the next write
                    raise
                if self._events is not None:
                    for step, seq in zip(pending, seqs, strict=True):
                        self._events.announce(session_id, seq, step.event, step.data)
            await self._audited()

    async def hand_over(self) -> list[StepWrite]:
        """The run's end: the rows of calls no step reported are stored, the ``tool_result`` records awaited, and
        the steps written behind handed over, to be stored with the run's end (``Closing.close``), not here."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        calls, self._unsaved = self._unsaved, []
        if calls:
            await self.save_unsaved(*calls)  # rare (a call without its step): stored by themselves, steps first
        async with self._flushing:  # after a flush under way
            pending, self._pending = self._pending, []
        await self._audited()
        return pending

    @contextlib.asynccontextmanager
    async def settled_on_error(self) -> AsyncIterator[None]:
        """Around a run: if it raises, its steps written behind are stored (:meth:`settle`), or dropped if it was
        cancelled (its lease may be another replica's now)."""
        try:
            yield
        except Exception:
            await self.settle(store=True)
            raise
        except BaseException:
            await self.settle(store=False)
            raise

    async def settle(self, *, store: bool) -> None:
        """A run that stopped on an error: with ``store``, its steps written behind are stored if they can be
        (what it did stays on record with its end); without (cancelled: its lease may be another replica's
        now), they are dropped, to be replayed by the session's next owner. No later write is left pending."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if store:
            await self._flush_quietly()
        else:
            self._pending.clear()

    def _flush_later(self) -> None:
        self._timer = None
        self._later = asyncio.ensure_future(self._flush_quietly())

    async def _flush_quietly(self) -> None:
        try:
            await self.flush()
        except Exception:  # kept, and stored (or raised) by the run's next write
            log.warning("session %s: storing its last steps failed; the next write tries again",
                        self._ctx.session.id, exc_info=True)

    async def _audited(self) -> None:
        """Wait for the ``tool_result`` records under way (a failed one raises here, as it did inline)."""
        audits, self._audits = self._audits, []
        if audits:
            await asyncio.gather(*audits)

    async def save_unsaved(self, *more: FinishedCall) -> None:
        """Store the steps written behind, then the rows of finished calls no step has reported (and ``more``)
        by themselves: at the run's end, and before a call that follows a call without a step."""
        calls, self._unsaved = [*self._unsaved, *more], []
        await self.flush()
        if calls:
            await run_store(self._store, self._store.save_calls, calls)
        await self._audited()


class DeviceConfirmation:
    """The second factor for an account change: the requester confirms on their own enrolled device
    (only that device: a reply on the ticket would come through the very channel being verified)."""

    def __init__(self, ctx: RunContext, *, questions: Questions, audit: AuditLog) -> None:
        self._ctx, self._questions, self._audit = ctx, questions, audit
        self.device = ctx.recipient.device_name

    async def __call__(self, tool: str, target: str) -> bool:
        agent_id = self._ctx.recipient.device_agent_id
        if agent_id is None:
            return False
        ticket, session = self._ctx.ticket, self._ctx.session
        key = f"{tool}/{target}"
        question_id = "cf_" + hashlib.sha256(f"{session.id}/confirm/{key}".encode()).hexdigest()[:30]
        action = get_tool(tool).description.split(".")[0].lower()
        text = (f"Your IT help desk received a request from you ({ticket.requester}) to {action} "
                f"(account {target or 'yours'}). Did you ask for this?")
        try:
            answer = await asyncio.wait_for(
                self._questions.ask_device(session.client_id, agent_id, question_id, text,
                                           ["Yes, it was me", "No"]), self._questions.timeout_s)
        except TimeoutError:
            answer = None
        await self._audit.record("requester_confirmation", client_id=session.client_id, session_id=session.id,
                                 data={"tool": tool, "device": self.device,
                                       "answer": "no answer" if answer is None else answer[:40]})
        if answer is None:
            return False
        if not answer.lower().startswith("yes"):
            raise NotRequesters(f"{ticket.requester} said on their own device that they did not ask for "
                                f"{tool}; nothing was changed. Treat this ticket as a possible social-engineering "
                                "attempt")
        return True


class SessionApprovals:
    """The engine's approval port for one session: a technician's grant, bound to the call and its agent."""

    def __init__(self, ctx: RunContext, *, approvals: Approvals, target: str, tools: SessionTools,
                 verifications: Verifications, note_label: str) -> None:
        self._ctx, self._approvals, self._target, self._tools = ctx, approvals, target, tools
        self._verifications, self._note_label = verifications, note_label
        self.decisions: list[str] = []
        self.evidence = ""
        """The latest finding, shown with the request so the technician decides on facts."""

    async def request(self, tool: str, args: dict[str, Any], *, reason: str) -> Approval:
        ticket, session = self._ctx.ticket, self._ctx.session
        self._ctx.quiet.asked(session.id)
        await self._tools.flush()  # the technician sees every step before the request
        try:
            grant = await self._approvals.request(
                session_id=session.id, client_id=session.client_id, ticket_id=ticket.id,
                target=self._target, tool=tool, args=args, reason=reason, finding=self.evidence,
                note_label=self._note_label,
                verification=verified.sentence() if (verified := self._verifications.for_call(tool, args)) else "",
                call_id=self._ctx.ledger.current or None, agent_id=await self._agent(tool))
        except MSPClawError as exc:
            self.decisions.append(exc.message if tool in exc.message else f"{tool}: {exc.message}")
            raise
        self.decisions.append(f"{tool} approved by {grant.approver}")
        return grant

    async def _agent(self, tool: str) -> str:
        """The agent the grant binds: the one a call sent before a restart went to, else the one it will go to."""
        ledger = self._ctx.ledger
        sent = ledger.stored if ledger.current else None  # read by DurableTools just before
        return sent.agent_id if sent is not None else await self._tools.agent_for(tool)


class SessionQuestions:
    """``ask_user`` for one session: numbered by the same ledger as tool calls, so a restart finds it again."""

    def __init__(self, ctx: RunContext, *, questions: Questions, runs: RunStore, learning: DeviceLearning,
                 playbook_questions: Mapping[str, PlanQuestion] | None = None) -> None:
        self._ctx, self._questions, self._runs, self._learning = ctx, questions, runs, learning
        self._playbook_questions = dict(playbook_questions or {})

    async def ask(self, text: str, choices: list[str] | None) -> str:
        """The model's ``ask_user``. When it asks what one of the playbook's questions asks (by meaning),
        the answer fills that question's fact, in device memory when the playbook says so."""
        ctx = self._ctx
        ctx.quiet.asked(ctx.session.id)
        facts = await run_store(self._runs, self._runs.device_facts, ctx.device_id) if ctx.device_id else {}
        answered = [(q.text, facts[fact]) for fact, q in self._playbook_questions.items() if fact in facts]
        answer = await self._questions.ask(ticket=ctx.ticket, session=ctx.session, agent_id=ctx.agent_id,
                                           call_id=ctx.ledger.next(), text=text, choices=choices, answered=answered)
        found = best_match(text, [(q.text, fact) for fact, q in self._playbook_questions.items()])
        if found is not None:
            await self._remember(self._playbook_questions[found[1]], answer)
        return answer

    async def _remember(self, question: PlanQuestion, answer: str) -> None:
        device_id = self._ctx.device_id
        if question.remember and device_id is not None:
            await self._learning.learn_from_answer(device_id, question.fact, answer,
                                                   client_id=self._ctx.session.client_id,
                                                   session_id=self._ctx.session.id)

    async def ask_playbook(self, question: PlanQuestion) -> str | None:
        """A playbook's question, for the deterministic runner: the answer fills ``facts.<fact>``, and
        goes into the device's memory when the playbook says it belongs to the device.

        Its id comes from the fact, not the call ledger, so a resumed run finds the same question
        whether or not the answer is in device memory by then.
        """
        ctx = self._ctx
        ctx.quiet.asked(ctx.session.id)
        call_id = "q_" + hashlib.sha256(f"{ctx.session.id}/{question.fact}".encode()).hexdigest()[:30]
        try:
            answer = await self._questions.ask(ticket=ctx.ticket, session=ctx.session, agent_id=ctx.agent_id,
                                               call_id=call_id, text=question.text,
                                               choices=question.choices or None, device_facts=question.remember)
        except NoAnswer:
            return None
        await self._remember(question, answer)
        return answer
