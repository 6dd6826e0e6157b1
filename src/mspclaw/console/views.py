"""What each console page shows, read from the stores and scoped to the signed-in technician's clients
exactly as the API scopes them: a record of another client raises :class:`~mspclaw.errors.NotFound`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from mspclaw.engine.plan import StepRecord
from mspclaw.pipeline.access import Principal
from mspclaw.pipeline.approval_view import ApprovalFacts, approval_facts
from mspclaw.pipeline.notes import summarise
from mspclaw.protocol.frames import Event
from mspclaw.store.audit import AuditRecord
from mspclaw.store.devices import Fact
from mspclaw.store.redact import redact
from mspclaw.store.stats import StatsRow, aggregate
from mspclaw.store.tables import (
    ApprovalRow,
    Client,
    Device,
    QuestionRow,
    Session,
    Step,
    Ticket,
    ToolCallRow,
    utcnow,
)
from mspclaw.wiring import Services

FINISHED = ("resolved", "escalated", "closed")
HOME_TICKETS = 300
"""Newest tickets the home page sorts into running, escalated and resolved today."""


@dataclass(frozen=True)
class Waiting:
    kind: str
    """``approval`` or ``question``."""
    id: str
    ticket: Ticket
    what: str
    deadline: datetime


@dataclass(frozen=True)
class AgentLine:
    client: Client
    online: list[str]
    offline: list[str]


@dataclass
class Home:
    waiting: list[Waiting] = field(default_factory=list)
    running: list[tuple[Ticket, str]] = field(default_factory=list)
    escalated: list[Ticket] = field(default_factory=list)
    resolved_today: list[Ticket] = field(default_factory=list)
    agents: list[AgentLine] = field(default_factory=list)
    week: StatsRow = field(default_factory=lambda: StatsRow("total"))


def _clients(svc: Services, principal: Principal) -> dict[str, Client]:
    return {c.id: c for c in svc.registry.clients() if principal.sees(c.id)}


def home(svc: Services, principal: Principal, online: Collection[str], now: datetime | None = None) -> Home:
    """The home page; ``online``: the agents connected to any replica (:func:`console.presence.online_agents`)."""
    now = now or utcnow()
    scope = principal.scope
    page = Home()
    tickets: dict[str, Ticket] = {}

    def ticket_of(session_id: str) -> Ticket:
        session = svc.store.session(session_id, scope)
        if session.ticket_id not in tickets:
            tickets[session.ticket_id] = svc.store.ticket(session.ticket_id, scope)
        return tickets[session.ticket_id]

    for a in svc.store.approvals(scope, status="pending"):
        page.waiting.append(Waiting("approval", a.id, ticket_of(a.session_id), f"approve {a.tool}", a.deadline))
    for q in svc.tickets.runs.questions(scope=scope, status="pending"):
        page.waiting.append(Waiting("question", q.id, ticket_of(q.session_id), q.text[:200], q.deadline))
    page.waiting.sort(key=lambda w: w.deadline)
    today = now.date()
    for t in svc.store.tickets(scope, HOME_TICKETS):
        if t.status == "escalated":
            page.escalated.append(t)
        elif t.status == "resolved":
            if t.updated_at.date() == today:
                page.resolved_today.append(t)
        elif t.status not in FINISHED:
            page.running.append((t, svc.store.session_for(t.id).status))
    clients = _clients(svc, principal)
    by_client: dict[str, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    for agent in svc.registry.agents():
        if agent.client_id in clients and agent.revoked_at is None:
            online_names, offline = by_client[agent.client_id]
            (online_names if agent.id in online else offline).append(f"{agent.hostname} ({agent.role})")
    page.agents = [AgentLine(c, *by_client[c.id]) for c in sorted(clients.values(), key=lambda c: c.name)]
    page.week = aggregate(svc.staff.stats.outcomes(scope, since=now - timedelta(days=7)), None)[0]
    return page


@dataclass(frozen=True)
class CallLine:
    call: ToolCallRow
    args: dict[str, Any]
    result: str


@dataclass
class TicketPage:
    ticket: Ticket
    client: Client
    session: Session
    device: Device | None
    matched: dict[str, Any]
    steps: list[tuple[Step, str]]
    calls: list[CallLine]
    approvals: list[ApprovalRow]
    questions: list[QuestionRow]
    events: list[Event]
    audit: list[AuditRecord] | None
    """``None``: the caller's role does not read the audit trail (viewer)."""
    remembered: list[Fact] = field(default_factory=list)
    """What MSPclaw remembers about the ticket's device (device memory)."""


def _result(call: ToolCallRow) -> str:
    if call.status == "pending":
        return "running"
    if call.error_code or call.error_message:
        return f"failed: {call.error_code or ''} {redact(call.error_message or '')}".strip()[:300]
    rec = StepRecord(0, "", call.tool, call.tool, call.args, True, redact(call.output or {}), None, False)
    return summarise(rec)[:300]


def step_summary(step: Step) -> str:
    obs = step.observation or {}
    rec = StepRecord(step.index, "", step.title, step.tool, step.args, step.ok, redact(obs.get("output")),
                     redact(obs.get("error")), bool(obs.get("skipped")))
    return summarise(rec)[:400]


def ticket_page(svc: Services, principal: Principal, ticket_id: str) -> TicketPage:
    ticket = svc.store.ticket(ticket_id[:64], principal.scope)
    session = svc.store.session_for(ticket.id)
    client = svc.registry.client(ticket.client_id)
    device = next((d for d in svc.registry.devices(ticket.client_id) if d.id == ticket.device_id), None)
    events = svc.events.history(session.id)
    matched = next((e.data for e in events if e.event == "matched"), {})
    audit = None
    if principal.at_least("tech"):  # as GET /api/audit
        audit = svc.audit.query(client_ids=[ticket.client_id], session_id=session.id, limit=200)
    remembered = svc.staff.devices.device(device.id, principal.scope).facts if device is not None else []
    return TicketPage(
        remembered=remembered, ticket=ticket, client=client, session=session, device=device, matched=matched,
        steps=[(s, step_summary(s)) for s in svc.store.steps(session.id)],
        calls=[CallLine(c, redact(c.args), _result(c)) for c in svc.store.calls(session.id)],
        approvals=[a for a in svc.store.approvals(principal.scope, status=None) if a.session_id == session.id],
        questions=svc.tickets.runs.questions(session.id, scope=principal.scope),
        events=events, audit=audit)


def forget_device(svc: Services, principal: Principal, device_id: str) -> list[str]:
    """Forget every fact of a device and its primary user, as ``POST /api/devices/{id}/forget``; audited."""
    device = svc.staff.devices.device(device_id[:64], principal.scope).device
    keys = svc.staff.devices.forget(device.id, principal.scope)
    svc.audit.append("device_forgotten", actor=principal.email or principal.name, client_id=device.client_id,
                     data={"device_id": device.id, "hostname": device.hostname, "keys": keys, "via": "console"})
    return keys


@dataclass
class ApprovalPage:
    approval: ApprovalRow
    ticket: Ticket
    client: Client
    device: Device | None
    facts: ApprovalFacts
    may_decide: bool


def approval_page(svc: Services, principal: Principal, approval_id: str) -> ApprovalPage:
    row = svc.store.approval(approval_id[:64], principal.scope)
    session = svc.store.session(row.session_id, principal.scope)
    ticket = svc.store.ticket(session.ticket_id, principal.scope)
    device = next((d for d in svc.registry.devices(ticket.client_id) if d.id == ticket.device_id), None)
    return ApprovalPage(approval=row, ticket=ticket, client=svc.registry.client(ticket.client_id), device=device,
                        facts=approval_facts(row.tool, row.args, row.target),
                        may_decide=principal.at_least("tech"))
