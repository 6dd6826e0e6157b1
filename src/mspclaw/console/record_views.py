"""What the audit, stats and devices pages show, read from the same stores as ``/api/audit``, ``/api/stats`` and
``/api/devices`` and scoped the same way: another client's record raises :class:`~mspclaw.errors.NotFound`;
events of no client are read only by a principal of every client (scope ``None``)."""

from __future__ import annotations

import re
import threading
import time
import weakref
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from mspclaw.errors import AuditIntegrityError, NotFound, StoreError
from mspclaw.pipeline.access import Principal
from mspclaw.protocol.limits import SEQ_MAX
from mspclaw.store.audit import AuditLog, AuditRecord, browse
from mspclaw.store.devices import Fact
from mspclaw.store.redact import redact
from mspclaw.store.stats import StatsRow, TicketOutcome, aggregate
from mspclaw.store.tables import Agent, Client, Device, Ticket, utcnow
from mspclaw.wiring import Services

PAGE = 50
"""Audit events per page."""
WINDOWS = (7, 30, 90)
"""The stats windows, in days."""
DEVICE_TICKETS = 20
TICKETS_READ = 500
"""Newest tickets of the device's client read to find the device's recent ones."""
VERIFIED_FOR_S = 60.0
"""A chain verification is reused this long while no event was appended (verifying reads the whole trail)."""
FIELD_MAX = {"client": 200, "kind": 64, "ticket": 64, "actor": 255, "since": 10, "until": 10, "before": 19}
KIND = re.compile(r"[a-z][a-z0-9_.:-]{0,63}")
ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def visible_clients(svc: Services, principal: Principal) -> list[Client]:
    return sorted((c for c in svc.registry.clients() if principal.sees(c.id)), key=lambda c: c.name.lower())


def _client_ref(svc: Services, principal: Principal, ref: str) -> Client:
    """A client of the principal's by id or exact name; another client's does not exist."""
    try:
        found = svc.registry.client(ref)
    except NotFound:
        raise NotFound(f"no client {ref!r} among yours") from None
    if not principal.sees(found.id):
        raise NotFound(f"no client {ref!r} among yours")
    return found


# -- audit ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AuditQuery:
    """The audit page's filter form as typed (each field ``""`` when not given)."""

    client: str = ""
    kind: str = ""
    ticket: str = ""
    actor: str = ""
    since: str = ""
    until: str = ""
    before: str = ""

    def params(self, **changed: str) -> dict[str, str]:
        """The non-empty fields (with ``changed`` applied), for a link to another page of the same filter."""
        values = {**self.__dict__, **changed}
        return {k: v for k, v in values.items() if v}


def audit_query(params: Mapping[str, str]) -> tuple[AuditQuery, list[str]]:
    """The form's fields (trimmed) and what is wrong with their shape: too long, not a date, not a number."""
    errors: list[str] = []
    values: dict[str, str] = {}
    for name, limit in FIELD_MAX.items():
        raw = params.get(name, "").strip()
        if len(raw) > limit:
            errors.append(f"{name}: at most {limit} characters, not {len(raw)}")
            raw = raw[:limit]
        values[name] = raw
    q = AuditQuery(**values)
    if q.kind and not KIND.fullmatch(q.kind):
        errors.append(f"kind {q.kind!r}: an event kind is lower-case letters, digits and _ (e.g. approval_decided)")
    if q.ticket and not ID.fullmatch(q.ticket):
        errors.append(f"ticket or session {q.ticket!r}: paste the id from a ticket's address (letters, digits, _)")
    days = {}
    for name, label in (("since", "From"), ("until", "To")):
        value = getattr(q, name)
        if value:
            try:
                days[name] = date.fromisoformat(value)
            except ValueError:
                errors.append(f"{label} {value!r}: use a date as YYYY-MM-DD")
                continue
            if not 2000 <= days[name].year <= 9000:
                errors.append(f"{label} {value!r}: a year from 2000 to 9000")
    if "since" in days and "until" in days and days["since"] > days["until"]:
        errors.append(f"From ({q.since}) is after To ({q.until}): swap them")
    if q.before and (not (q.before.isascii() and q.before.isdigit()) or not 1 <= int(q.before) <= SEQ_MAX):
        errors.append(f"before {q.before!r}: the page link's cursor is an event number; start again from the "
                      "first page")
    return q, errors


@dataclass(frozen=True)
class ChainStatus:
    """The hash chain's verification: intact through ``through`` (``events`` checked), or the first fault."""

    ok: bool
    events: int = 0
    through: datetime | None = None
    problem: str = ""
    location: str = ""


@dataclass(frozen=True)
class AuditLine:
    record: AuditRecord
    client: str
    ticket_id: str | None
    summary: str


@dataclass
class AuditView:
    query: AuditQuery
    chain: ChainStatus
    clients: list[Client]
    kinds: list[str]
    lines: list[AuditLine] = field(default_factory=list)
    older: int | None = None
    """The cursor of the next (older) page; ``None``: this is the last page."""
    errors: list[str] = field(default_factory=list)


def summary(data: Mapping[str, Any], limit: int = 240) -> str:
    """A short readable line of an event's data: ``key: value`` pairs, secrets redacted (again), long values cut."""
    parts = []
    for key, value in redact(dict(data)).items():
        if isinstance(value, list):
            text = ", ".join(str(v) for v in value[:8]) + (", …" if len(value) > 8 else "")
        elif isinstance(value, dict):
            text = "{" + ", ".join(f"{k}: {v}" for k, v in list(value.items())[:6]) + "}"
        else:
            text = str(value)
        parts.append(f"{key}: {text[:80]}")
    line = " · ".join(parts)
    return line if len(line) <= limit else line[: limit - 1] + "…"


def audit_view(svc: Services, principal: Principal, q: AuditQuery, chain: ChainStatus) -> AuditView:
    """A page of the trail (newest first) for a well-formed query; :class:`NotFound` for a client, ticket or session
    the principal does not see."""
    clients = visible_clients(svc, principal)
    names = {c.id: c.name for c in clients}
    ids = None if principal.scope is None else list(principal.scope)
    if q.client:
        ids = [_client_ref(svc, principal, q.client).id]
    session_id = None
    if q.ticket:
        session_id = _session_of(svc, principal, q.ticket)
    since = datetime.combine(date.fromisoformat(q.since), datetime.min.time(), UTC) if q.since else None
    until = (datetime.combine(date.fromisoformat(q.until), datetime.min.time(), UTC) + timedelta(days=1)
             if q.until else None)
    where = browse.AuditFilter(client_ids=ids, session_id=session_id, kind=q.kind or None, actor=q.actor or None,
                               since=since, until=until)
    records = browse.newest_first(svc.db, where, before=int(q.before) if q.before else None, limit=PAGE)
    tickets: dict[str, str | None] = {}
    lines = []
    for r in records:
        ticket_id = r.data.get("ticket_id") if isinstance(r.data.get("ticket_id"), str) else None
        if ticket_id is None and r.session_id is not None:
            if r.session_id not in tickets:
                try:
                    tickets[r.session_id] = svc.store.session(r.session_id, principal.scope).ticket_id
                except NotFound:
                    tickets[r.session_id] = None
            ticket_id = tickets[r.session_id]
        client = names.get(r.client_id, r.client_id) if r.client_id else "(none)"
        lines.append(AuditLine(r, client, ticket_id, summary(r.data)))
    older = records[-1].seq if len(records) == PAGE else None
    return AuditView(query=q, chain=chain, clients=clients, kinds=browse.kinds(svc.db), lines=lines, older=older)


def empty_audit_view(svc: Services, principal: Principal, q: AuditQuery, chain: ChainStatus,
                     errors: list[str]) -> AuditView:
    """The page with the form and what is wrong with it, and no events."""
    return AuditView(query=q, chain=chain, clients=visible_clients(svc, principal), kinds=browse.kinds(svc.db),
                     errors=errors)


def _session_of(svc: Services, principal: Principal, ref: str) -> str:
    """The session of a ticket id (its latest), or a session id, among the principal's clients."""
    try:
        return svc.store.session_for(svc.store.ticket(ref, principal.scope).id).id
    except NotFound:
        pass
    try:
        return svc.store.session(ref, principal.scope).id
    except NotFound:
        raise NotFound(f"no ticket or session {ref!r} among your clients") from None


_verified: weakref.WeakKeyDictionary[AuditLog, tuple[float, int, ChainStatus]] = weakref.WeakKeyDictionary()
_verifying = threading.Lock()


def chain_status(svc: Services) -> ChainStatus:
    """Verify the whole chain (blocking: call it off the event loop). A result is reused for
    :data:`VERIFIED_FOR_S` while no event was appended; one verification runs at a time."""
    with _verifying:
        try:
            last = browse.last_seq(svc.db)
            cached = _verified.get(svc.audit)
            if cached is not None and cached[1] == last and time.monotonic() - cached[0] < VERIFIED_FOR_S:
                return cached[2]
            try:
                report = svc.audit.verify()
            except AuditIntegrityError as exc:
                status = ChainStatus(ok=False, problem=exc.message, location=exc.location)
            else:
                newest = browse.event(svc.db, report.last_seq) if report.last_seq else None
                status = ChainStatus(ok=True, events=report.events, through=newest.ts if newest else None)
        except StoreError as exc:
            return ChainStatus(ok=False, problem=f"the audit trail could not be read: {exc.message}",
                               location="database")
        _verified[svc.audit] = (time.monotonic(), last, status)
        return status


# -- stats ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Day:
    day: date
    resolved: int
    escalated: int
    other: int
    """Failed (the user said no) or still open."""

    @property
    def tickets(self) -> int:
        return self.resolved + self.escalated + self.other


@dataclass
class StatsView:
    days: int
    total: StatsRow
    by_client: list[StatsRow]
    by_playbook: list[StatsRow]
    per_day: list[Day]


def resolved(row: StatsRow) -> int:
    """Tickets the run resolved, whatever the user answered but no (the same count as ``/api/stats``'s rate)."""
    return row.confirmed + row.partial + row.unconfirmed


def per_day(outcomes: list[TicketOutcome], first: date, last: date) -> list[Day]:
    """One :class:`Day` for every day from ``first`` to ``last`` (days without tickets are zeros)."""
    counts: dict[date, list[int]] = {}
    for o in outcomes:
        day = o.created_at.astimezone(UTC).date() if o.created_at.tzinfo else o.created_at.date()
        slot = counts.setdefault(day, [0, 0, 0])
        if o.result in ("confirmed", "partial", "unconfirmed"):
            slot[0] += 1
        elif o.result == "escalated":
            slot[1] += 1
        else:
            slot[2] += 1
    span = (last - first).days + 1
    return [Day(d, *counts.get(d, [0, 0, 0])) for d in (first + timedelta(days=i) for i in range(span))]


def stats_view(svc: Services, principal: Principal, days: int, now: datetime | None = None) -> StatsView:
    if days not in WINDOWS:
        raise ValueError(f"a window of {', '.join(map(str, WINDOWS))} days")
    now = now or utcnow()
    first = (now - timedelta(days=days - 1)).date()
    since = datetime.combine(first, datetime.min.time(), UTC)
    outcomes = svc.staff.stats.outcomes(principal.scope, since=since)
    return StatsView(days=days, total=aggregate(outcomes, None)[0], by_client=aggregate(outcomes, "client"),
                     by_playbook=aggregate(outcomes, "playbook"), per_day=per_day(outcomes, first, now.date()))


# -- devices --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeviceLine:
    device: Device
    client: str
    facts: int
    agent: Agent | None
    online: bool


@dataclass
class DevicesView:
    lines: list[DeviceLine]
    clients: list[Client]
    client: Client | None
    """The client the list is narrowed to."""


@dataclass
class DevicePage:
    line: DeviceLine
    facts: list[Fact]
    tickets: list[Ticket]


def _agents(svc: Services) -> dict[str, Agent]:
    return {a.id: a for a in svc.registry.agents()}


def _line(device: Device, facts: int, names: Mapping[str, str], agents: Mapping[str, Agent],
          online_ids: Collection[str]) -> DeviceLine:
    agent = agents.get(device.agent_id) if device.agent_id else None
    online = agent is not None and agent.revoked_at is None and agent.id in online_ids
    return DeviceLine(device, names.get(device.client_id, device.client_id), facts, agent, online)


def devices_view(svc: Services, principal: Principal, online: Collection[str], client: str = "") -> DevicesView:
    """``online``: the agents connected to any replica (:func:`console.presence.online_agents`)."""
    clients = visible_clients(svc, principal)
    names = {c.id: c.name for c in clients}
    chosen = _client_ref(svc, principal, client) if client else None
    agents = _agents(svc)
    lines = [_line(d, n, names, agents, online)
             for d, n in svc.staff.devices.devices(principal.scope, chosen.id if chosen else None)]
    return DevicesView(lines=lines, clients=clients, client=chosen)


def device_page(svc: Services, principal: Principal, device_id: str, online: Collection[str]) -> DevicePage:
    found = svc.staff.devices.device(device_id[:64], principal.scope)
    device = found.device
    names = {c.id: c.name for c in visible_clients(svc, principal)}
    line = _line(device, len(found.facts), names, _agents(svc), online)
    tickets = [t for t in svc.store.tickets(principal.scope, TICKETS_READ, client_id=device.client_id)
               if t.device_id == device.id][:DEVICE_TICKETS]
    return DevicePage(line=line, facts=found.facts, tickets=tickets)
