"""Structured escalation: when a run cannot finish, hand the ticket to a technician with
everything they need, so nobody starts from zero.

An :class:`Escalation` says what was tried (each step and its result), why it failed (a kind
and the reason), what to do next (suggestions by kind, plus the playbook's own hint, and which
steps not to repeat), the evidence (each step's finding in words, the failed step's error first),
and the device's known facts. It is stored, rendered as the ticket's internal note in the same
sections as every note (:func:`mspclaw.pipeline.notes.internal_note`: what was reported, checked
and done, the result, the next steps), and sent to the client's on-duty technician on the
configured Slack/Teams channels. Nothing in it is raw JSON. It is built from the persisted steps and tool calls, not
from the engine's memory, so any engine can escalate through it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from mspclaw.connectors.notify.message import Message
from mspclaw.engine.plan import StepRecord
from mspclaw.errors import NotFound
from mspclaw.pipeline.memory import DeviceLearning
from mspclaw.pipeline.notes import (
    CHECKED,
    DONE,
    NEXT,
    REPORTED,
    RESULT,
    check_label,
    compose,
    findings,
    reported,
    section,
)
from mspclaw.pipeline.notify import Notifier, mention_of
from mspclaw.pipeline.techs import Assignment, TechRegistry
from mspclaw.pipeline.tool_summaries import changes, clean, named, size, summarise
from mspclaw.store.audit import AuditLog
from mspclaw.store.escalations import EscalationStore
from mspclaw.store.redact import redact_text
from mspclaw.store.registry import Registry
from mspclaw.store.tables import Client, Device, EscalationRow, Ticket, utcnow
from mspclaw.store.tickets import TicketStore

Kind = Literal["no_playbook", "unknown_device", "offline", "denied", "limits", "failed", "error", "user_said_no"]
EVIDENCE_CHARS = 500
"""The longest evidence line (a step's finding or its error, in words)."""

NEXT_STEPS: dict[str, list[str]] = {
    "no_playbook": ["Read the ticket and fix it by hand; no playbook covers it.",
                    "If this kind of ticket recurs, write a playbook for it (`mspclaw playbooks validate`)."],
    "unknown_device": ["Find out which machine the user means and set the ticket's asset.",
                       "If the machine has no agent, enroll one with `mspclaw enroll CLIENT`."],
    "offline": ["Check that the machine is switched on and online, and that the MSPclaw agent service runs.",
                "Re-run the ticket once the agent is online (`mspclaw run-ticket`)."],
    "denied": ["Review why the destructive step was denied or not decided in time.",
               "Do the step by hand if it is right, or tell the user what else to try."],
    "limits": ["The run hit its step limit: review the steps below and continue from the last one."],
    "failed": ["Look at the failed step's error and the findings above, fix the cause on the device, and verify "
               "with the user."],
    "error": ["MSPclaw hit an internal error; work the ticket by hand and report the error to the MSPclaw admin."],
    "user_said_no": ["The user says the fix did not work: call them, and start from the steps already done."],
}


class TriedStep(BaseModel):
    index: int
    title: str
    tool: str | None
    ok: bool | None
    result: str
    changed: bool = False
    """The step changed something (a destructive call that was no preview) rather than looked."""
    by_model: bool = False
    """A reasoning model's call: its title is the model's thinking, so the note names the tool's purpose."""

    def label(self) -> str:
        return "" if self.by_model else self.title


class Evidence(BaseModel):
    tool: str
    excerpt: str
    """What the step found, or why it failed, in words (never the raw output)."""
    failed: bool = False


class Escalation(BaseModel):
    kind: Kind
    reason: str
    tried: list[TriedStep] = Field(default_factory=list)
    next_steps: list[str] = Field(default_factory=list)
    evidence: list[Evidence] = Field(default_factory=list)
    device: dict[str, Any] = Field(default_factory=dict)
    approvals: list[str] = Field(default_factory=list)
    assigned_to: str | None = None

    def note(self, *, playbook: str | None, ticket: Ticket | None = None) -> str:
        """The hand-off as the ticket's internal note: the sections of every note, with the evidence."""
        checked, done = findings([(s.label(), s.tool, s.result, s.changed) for s in self.tried], self.approvals)
        failed = [e for e in self.evidence if e.failed]
        result = [f"Escalated ({self.kind.replace('_', ' ')}): {clean(self.reason, 500)}"]
        result += [f"Evidence: {e.tool}: {e.excerpt}" for e in failed[:3]]
        repeat = [check_label(s.label(), s.tool) for s in self.tried if s.ok]
        next_steps = [f"- {clean(step, 500)}" for step in self.next_steps]
        if repeat:
            next_steps.append(f"- Already done, no need to repeat: {'; '.join(repeat)}.")
        next_steps.append(f"Assigned to: {self.assigned_to or 'no technician on duty; see the escalation queue'}")
        device = ", ".join(f"{_label(k)} {_value(k, v)}" for k, v in self.device.items()) or "unknown"
        return compose(
            f"MSPclaw: ESCALATED ({self.kind.replace('_', ' ')})" + (f" after playbook {playbook}" if playbook else ""),
            section(REPORTED, reported(subject=ticket.subject if ticket else "", body=ticket.body if ticket else "",
                                       requester=ticket.requester if ticket else "", device=device)),
            section(CHECKED, checked or ["Nothing was checked on a device or in a directory."]),
            section(DONE, done or ["Nothing was changed."]),
            section(RESULT, result),
            section(NEXT, next_steps))

    def message(self, ticket: Ticket, client_name: str) -> Message:
        return Message(
            title=f"Escalated: {ticket.subject}"[:150],
            summary=f"{self.reason}",
            facts=[("Client", client_name), ("Ticket", ticket.external_id or ticket.id),
                   ("Requester", ticket.requester or "unknown"), ("Why", self.kind.replace("_", " "))]
                  + [(_label(k).capitalize(), _value(k, v)) for k, v in list(self.device.items())[:4]],
            sections=[("What was tried", [f"{s.index}. {clean(s.title, 120)}: {s.result}" for s in self.tried]
                       or ["nothing"]),
                      ("Suggested next steps", self.next_steps)]
                     + ([("Evidence", [f"{e.tool}: {e.excerpt[:400]}" for e in self.evidence[:3]])]
                        if self.evidence else []))


def classify(reason: str, *, routed: bool, matched: bool, ran: bool) -> Kind:
    """The kind of failure, from where the run stopped and what it said."""
    text = reason.lower()
    if text.startswith("internal error"):
        return "error"
    if not routed:
        return "offline" if "offline" in text else "unknown_device"
    if not matched and not ran:
        return "offline" if "offline" in text else "no_playbook"
    if "denied" in text or "no technician decided" in text or "approval" in text:
        return "denied"
    if "limit" in text or "max_steps" in text or "too many steps" in text:
        return "limits"
    return "failed"


def _label(key: str) -> str:
    """A device fact's key in words: ``primary_user`` → ``primary user``, ``memory_bytes`` → ``memory``."""
    return clean(key.removesuffix("_bytes").replace("_", " "), 40)


def _value(key: str, value: Any) -> str:
    if key.endswith("_bytes") and (isinstance(value, int | float) or (isinstance(value, str) and value.isdigit())):
        return size(float(value))
    if isinstance(value, list):
        return named([clean(v, 60) for v in value])
    return clean(value, 120)


@dataclass(frozen=True)
class Recorded:
    row: EscalationRow
    escalation: Escalation
    note: str


class Escalations:
    def __init__(self, *, store: TicketStore, escalations: EscalationStore, learning: DeviceLearning,
                 registry: Registry, techs: TechRegistry, notifier: Notifier, audit: AuditLog) -> None:
        self._store, self.escalations, self._learning = store, escalations, learning
        self._registry, self._techs, self._notifier, self._audit = registry, techs, notifier, audit

    def build(self, *, session_id: str, kind: Kind, reason: str, device: Device | None,
              playbook_hint: str = "") -> Escalation:
        tried: list[TriedStep] = []
        evidence: list[Evidence] = []
        try:
            by_model = self._store.session(session_id).model != "playbook"
        except NotFound:
            by_model = False
        for s in self._store.steps(session_id):
            obs = s.observation or {}
            rec = StepRecord(s.index, "", s.title, s.tool, s.args, s.ok, obs.get("output"), obs.get("error"),
                             bool(obs.get("skipped")))
            result = summarise(rec)
            tried.append(TriedStep(index=s.index, title=s.title, tool=s.tool, ok=s.ok, result=result,
                                   changed=changes(rec), by_model=by_model))
            if s.tool and not rec.skipped and (rec.output or rec.error):
                excerpt = redact_text(clean(result if rec.ok else rec.error or result, EVIDENCE_CHARS))
                evidence.append(Evidence(tool=s.tool, excerpt=excerpt, failed=not rec.ok))
        # the failed step's error first: it is what the technician looks at
        evidence.sort(key=lambda e: 0 if e.failed else 1)
        steps = list(NEXT_STEPS[kind])
        if playbook_hint:
            steps.append(f"Playbook hint: {playbook_hint}")
        facts: dict[str, Any] = {}
        if device is not None:
            facts = {"hostname": device.hostname, "os": device.os, **self._learning.context(device.id)}
        return Escalation(kind=kind, reason=reason, tried=tried, next_steps=steps, evidence=evidence[:5],
                          device=facts)

    async def record(self, ticket: Ticket, *, session_id: str, kind: Kind, reason: str, device: Device | None,
                     playbook: str | None = None, playbook_hint: str = "",
                     approvals: list[str] | None = None) -> Recorded:
        """Build, assign to the on-duty technician, store, audit and send; returns the note to write."""
        def store_it() -> tuple[Escalation, Client, Assignment, EscalationRow]:  # reads and a commit: off the loop
            escalation = self.build(session_id=session_id, kind=kind, reason=reason, device=device,
                                    playbook_hint=playbook_hint)
            escalation.approvals = list(approvals or [])
            client = self._registry.client(ticket.client_id)
            who = self._techs.on_duty(client.id, client.name, utcnow())
            escalation.assigned_to = f"{who.tech.name} <{who.tech.email}>" if who.tech else None
            row = self.escalations.add(ticket_id=ticket.id, session_id=session_id, client_id=ticket.client_id,
                                       kind=kind, reason=reason, body=escalation.model_dump(mode="json"),
                                       assigned_to=who.tech.email if who.tech else None)
            return escalation, client, who, row
        escalation, client, who, row = await asyncio.to_thread(store_it)
        await self._audit.record("escalated", client_id=ticket.client_id, session_id=session_id,
                                 data={"escalation_id": row.id, "ticket_id": ticket.id, "kind": kind,
                                       "assigned_to": row.assigned_to, "assignment": who.why})
        message = escalation.message(ticket, client.name)
        message = Message(message.title, message.summary, message.facts, message.sections,
                          mention=mention_of(who.tech),
                          link=("Open the ticket", f"{self._notifier.public_url}/api/tickets/{ticket.id}"))
        await self._notifier.send(client.id, client.name, "escalation", row.id, message, who.tech)
        return Recorded(row, escalation, escalation.note(playbook=playbook, ticket=ticket))
