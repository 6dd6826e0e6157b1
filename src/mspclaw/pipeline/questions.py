"""Questions to the end user: never asked twice, asked where the user is, waited for durably.

A question whose answer is known (a question like it answered earlier in the session, or a
device fact) is not asked: the known answer is used and the skip is audited. Otherwise the
question is stored with a deadline, announced to session watchers, and put to the user on their
device (``ask_user`` to the device agent) or, without one online, as a public reply on the PSA
ticket; an answer from the device, the API or the session socket settles it once. Like approvals,
a question is bound to its tool call's id: after a restart the same call waits for the same row
until the same stored deadline.

An answer is kept only as :func:`kept_answer` makes it: the answer to a question that asks for a
secret (a playbook may declare one; the model's own are refused before they are asked) is never
kept, and any other answer is redacted, before the row, the audit, the events, device memory, the
model and the notes see it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection, Mapping, Sequence
from datetime import timedelta
from typing import Any

from mspclaw.connectors.base import PSAConnector
from mspclaw.dispatch import Hub
from mspclaw.engine.content import asks_for_secret
from mspclaw.engine.questions import best_match, fact_for
from mspclaw.errors import AgentOffline, Conflict, MSPClawError, ToolFailed
from mspclaw.pipeline.audit_entry import AuditEntry
from mspclaw.pipeline.events import SessionEvents, woken_or_pushed
from mspclaw.pipeline.notes import reply_after
from mspclaw.pipeline.offload import run_store
from mspclaw.protocol.frames import UserAnswer
from mspclaw.store.audit import AuditLog
from mspclaw.store.redact import redact_text
from mspclaw.store.runs import RunStore
from mspclaw.store.tables import QuestionRow, Session, Ticket, utcnow
from mspclaw.store.tickets import TicketStore

log = logging.getLogger(__name__)


WITHHELD = "[withheld: the answer to a question about a secret is not kept]"


def kept_answer(question: str, answer: str) -> str:
    """What of the user's ``answer`` to ``question`` may be stored, told to the model and written anywhere."""
    if asks_for_secret(question) is not None:
        return WITHHELD
    return redact_text(answer.strip())


QUESTION_PREFIX = "A question for you: "
RECHECK_S = 5.0
"""A pending question's row is read again at least this often while its session waits (an answer settled on
another replica whose event was lost)."""
"""How a question starts when it is posted as a public reply on the PSA ticket."""


class NoAnswer(ToolFailed):
    """The user did not answer in time: told to the model, which may go on without it or escalate."""

    code = "no_answer"


class Answers:
    """Where the end user's answers arrive (the API, the session socket, the device agent, a PSA reply),
    and who waits for them. It needs no hub: the hub's observer hands it the answers devices send."""

    def __init__(self, runs: RunStore, audit: AuditLog, events: SessionEvents) -> None:
        self._runs, self._audit, self._events = runs, audit, events
        self._wakeups: dict[str, asyncio.Event] = {}
        self._direct: dict[str, tuple[str, str, asyncio.Future[str]]] = {}  # asked outside a session

    def wakeup(self, question_id: str) -> asyncio.Event:
        """Set when the question is answered (until :meth:`forget`)."""
        return self._wakeups.setdefault(question_id, asyncio.Event())

    def forget(self, question_id: str) -> None:
        self._wakeups.pop(question_id, None)

    def expect(self, client_id: str, agent_id: str, question_id: str) -> asyncio.Future[str]:
        """The answer to a question outside any session, from that one agent of that one client."""
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._direct[question_id] = (client_id, agent_id, future)
        return future

    def stop_expecting(self, question_id: str) -> None:
        self._direct.pop(question_id, None)

    def answer(self, question_id: str, answer: str, *, by: str, scope: Collection[str] | None) -> QuestionRow:
        """Record the user's answer, from a thread that runs no event loop (a synchronous API route)."""
        row, entry = self._settle(question_id, answer, by=by, scope=scope)
        entry.append(self._audit)
        return self._announce(row, by)

    async def answer_async(self, question_id: str, answer: str, *, by: str,
                           scope: Collection[str] | None) -> QuestionRow:
        """Record the user's answer, from the event loop (the session socket, a device, a PSA reply); once only."""
        row, entry = await run_store(self._runs, self._settle, question_id, answer, by=by, scope=scope)
        await entry.record(self._audit)
        await self._events.emit_async(row.session_id, "question", _answered(row, by))
        return self._wake(row)

    def _settle(self, question_id: str, answer: str, *, by: str,
                scope: Collection[str] | None) -> tuple[QuestionRow, AuditEntry]:
        if not answer.strip():
            raise Conflict("an answer needs some text")
        asked = self._runs.question(question_id, scope)
        row = self._runs.settle_question(question_id, status="answered", answer=kept_answer(asked.text, answer),
                                         answered_by=by)
        return row, AuditEntry("question_answered", actor=by, client_id=row.client_id, session_id=row.session_id,
                               data={"question_id": row.id})

    def _announce(self, row: QuestionRow, by: str) -> QuestionRow:
        self._events.emit(row.session_id, "question", _answered(row, by))
        return self._wake(row)

    def _wake(self, row: QuestionRow) -> QuestionRow:
        wake = self._wakeups.get(row.id)
        if wake is not None:
            wake.set()
        return row

    async def from_agent(self, client_id: str, agent_id: str, frame: UserAnswer) -> None:
        """An answer from a device agent: only for a question of that agent's own client."""
        direct = self._direct.get(frame.question_id)
        if direct is not None:
            asked_client, asked_agent, future = direct
            if (asked_client, asked_agent) == (client_id, agent_id) and not future.done():
                future.set_result(redact_text(frame.answer))
            return
        try:
            await self.answer_async(frame.question_id, frame.answer, by=f"end user on {agent_id}", scope=[client_id])
        except MSPClawError as exc:
            log.info("answer from %s to %s not taken: %s", agent_id, frame.question_id, exc.message)


class Questions:
    def __init__(self, runs: RunStore, store: TicketStore, audit: AuditLog, events: SessionEvents,
                 hub: Hub, connectors: Mapping[str, PSAConnector], answers: Answers, *, timeout_s: float,
                 psa_poll_s: float = 30.0) -> None:
        self._runs, self._store, self._audit = runs, store, audit
        self._events, self._hub, self._connectors = events, hub, connectors
        self.answers = answers
        self.timeout_s = timeout_s
        self.psa_poll_s = psa_poll_s
        """How often a PSA ticket is read for the user's reply while a question waits."""

    async def ask(self, *, ticket: Ticket, session: Session, agent_id: str | None, call_id: str, text: str,
                  choices: list[str] | None, answered: Sequence[tuple[str, str]] = (),
                  device_facts: bool = True) -> str:
        """Ask the end user, unless the answer is known: from this session, from device memory by the
        fact's name, or from ``answered`` (questions whose facts device memory holds, with their answers).

        ``device_facts=False`` for a question whose answer belongs to this ticket, not to the device
        (a playbook question with ``remember: false``: "the e-mail address of the person leaving" must
        never be answered with the device user's own address)."""
        row = await run_store(self._runs, self._runs.question_for_call, call_id)
        if row is None:
            known = await run_store(self._runs, self._known, session, ticket, text, answered,
                                    device_facts=device_facts)
            if known is not None:
                answer, source = known
                await run_store(self._runs, self._runs.add_question, session_id=session.id,
                                client_id=session.client_id, call_id=call_id, text=text, choices=choices,
                                channel="known", deadline=utcnow(), status="reused", answer=answer,
                                answered_by=source)
                await self._audit.record("question_skipped", client_id=session.client_id, session_id=session.id,
                                         data={"question": text, "known_from": source})
                return answer
            channels = [name for name, ok in (("agent", bool(agent_id)), ("psa", self._psa_for(ticket) is not None))
                        if ok]
            row = await run_store(
                self._runs, self._runs.add_question, session_id=session.id, client_id=session.client_id,
                call_id=call_id, text=text, choices=choices,
                channel="+".join(channels) or "api", deadline=utcnow() + timedelta(seconds=self.timeout_s))
            await self._audit.record("question_asked", client_id=session.client_id, session_id=session.id,
                                     data={"question_id": row.id, "question": text, "channel": row.channel})
            await self._events.emit_async(session.id, "question", {
                "question_id": row.id, "text": text, "choices": choices, "deadline": row.deadline.isoformat(),
                "status": "pending"})
        if row.status == "pending":
            await self._deliver(row, ticket, agent_id)
            await self._wait(row, session.id, ticket)
            row = await run_store(self._runs, self._runs.question, row.id)
        if row.status in ("answered", "reused") and row.answer is not None:
            return row.answer
        raise NoAnswer(f"the user did not answer {text!r} within {self.timeout_s:g} s")

    def _known(self, session: Session, ticket: Ticket, text: str,
               answered: Sequence[tuple[str, str]] = (), *, device_facts: bool = True) -> tuple[str, str] | None:
        earlier = [(q.text, q.answer) for q in self._runs.questions(session.id)
                   if q.answer is not None and q.status in ("answered", "reused")]
        found = best_match(text, earlier)
        if found is not None:
            return found[1], f"earlier question {found[0]!r} (similarity {found[2]:.2f})"
        found = best_match(text, answered)
        if found is not None:
            return found[1], f"device memory, for {found[0]!r} (similarity {found[2]:.2f})"
        if device_facts and ticket.device_id is not None:
            fact = fact_for(text, self._runs.device_facts(ticket.device_id))
            if fact is not None:
                return fact[1], f"device fact {fact[0]}"
        return None

    def _psa_for(self, ticket: Ticket) -> PSAConnector | None:
        connector = self._connectors.get(ticket.psa) if ticket.psa else None
        return connector if connector is not None and ticket.external_id is not None else None

    async def _deliver(self, row: QuestionRow, ticket: Ticket, agent_id: str | None) -> None:
        """Ask on every channel the user has (their device, the PSA ticket); the first answer wins.

        Both are idempotent, so a resumed session may deliver again: the agent shows the question
        anew and the PSA connectors do not post the same public note twice.
        """
        if agent_id:  # on whichever server replica holds the device's agent (its answer comes back here)
            try:
                await self._hub.for_client(row.client_id).ask_user(agent_id, row.id, row.text, row.choices)
            except AgentOffline as exc:
                log.info("question %s: not asked on device agent %s: %s", row.id, agent_id, exc.message)
        connector = self._psa_for(ticket)
        if connector is not None and ticket.external_id is not None:
            try:
                await connector.add_note(ticket.external_id, self._question_note(row), public=True)
            except MSPClawError as exc:
                log.warning("could not post question %s to %s: %s", row.id, ticket.psa, exc.message)

    async def _wait(self, row: QuestionRow, session_id: str, ticket: Ticket | None = None) -> None:
        wake = self.answers.wakeup(row.id)
        await run_store(self._store, self._store.update_session, session_id, status="awaiting_answer")
        reader = None
        if ticket is not None and "psa" in row.channel.split("+") and self._psa_for(ticket) is not None:
            reader = asyncio.ensure_future(self._read_psa_reply(row, ticket))
        events = self._events.subscribe(session_id)  # an answer settled on another replica arrives as an event
        try:
            pending = (await run_store(self._runs, self._runs.question, row.id)).status == "pending"
            while pending and not wake.is_set():
                remaining = (row.deadline - utcnow()).total_seconds()
                if remaining <= 0:
                    try:
                        await run_store(self._runs, self._runs.settle_question, row.id, status="expired",
                                        answer=None, answered_by="mspclaw (no answer in time)")
                    except Conflict:
                        pass  # answered just in time
                    break
                await woken_or_pushed(wake, events, min(remaining, RECHECK_S))
                if not wake.is_set():  # the stored row is the truth: a lost event only delays the answer
                    pending = (await run_store(self._runs, self._runs.question, row.id)).status == "pending"
        finally:
            self._events.unsubscribe(session_id, events)
            self.answers.forget(row.id)
            if reader is not None:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
        await run_store(self._store, self._store.update_session, session_id, status="running")

    async def _read_psa_reply(self, row: QuestionRow, ticket: Ticket) -> None:
        """Read the PSA ticket now and then until the user replies below the question we posted there.

        The answer is the first public note after our question that is not another question of ours
        (:func:`~mspclaw.pipeline.notes.reply_after`).
        """
        connector = self._psa_for(ticket)
        assert connector is not None and ticket.external_id is not None
        posted = self._question_note(row)
        while True:
            await asyncio.sleep(self.psa_poll_s)
            try:
                notes = (await connector.get_ticket(ticket.external_id)).notes
            except MSPClawError as exc:
                log.info("question %s: cannot read replies on %s: %s", row.id, ticket.psa, exc.message)
                continue
            reply = reply_after(notes, posted, lambda text: bool(text.strip()) and not text.startswith(QUESTION_PREFIX))
            if reply is not None:
                with contextlib.suppress(MSPClawError):
                    await self.answers.answer_async(row.id, reply[:2000], by=f"end user (reply on {ticket.psa})",
                                                    scope=[row.client_id])
                return

    @staticmethod
    def _question_note(row: QuestionRow) -> str:
        choices = f" ({' / '.join(row.choices)})" if row.choices else ""
        return f"{QUESTION_PREFIX}{row.text}{choices}"

    def answer(self, question_id: str, answer: str, *, by: str, scope: Collection[str] | None) -> QuestionRow:
        """:meth:`Answers.answer`: the user's answer, from a thread that runs no event loop."""
        return self.answers.answer(question_id, answer, by=by, scope=scope)

    async def answer_async(self, question_id: str, answer: str, *, by: str,
                           scope: Collection[str] | None) -> QuestionRow:
        """:meth:`Answers.answer_async`: the user's answer, from the event loop."""
        return await self.answers.answer_async(question_id, answer, by=by, scope=scope)

    async def ask_device(self, client_id: str, agent_id: str, question_id: str, text: str,
                         choices: Sequence[str]) -> str | None:
        """A question outside any session (the "did it work?" after a resolve), straight to the user's
        device: their answer, or ``None`` when the device is offline. The caller bounds the wait."""
        future = self.answers.expect(client_id, agent_id, question_id)
        try:
            await self._hub.for_client(client_id).ask_user(agent_id, question_id, text, list(choices) or None)
            return await future
        except AgentOffline:
            return None
        finally:
            self.answers.stop_expecting(question_id)


def _answered(row: QuestionRow, by: str) -> dict[str, Any]:
    """The ``question`` event of an answered question."""
    return {"question_id": row.id, "status": "answered", "by": by}
