"""Tickets, their sessions, step records, session events, tool calls and approvals.

Every read that a caller can reach takes the set of client ids it may see, so scoping is
part of the query, not a check after it.

The writes the pipeline makes for every ticket (session updates, steps, events, tool calls) are
prebuilt Core statements with bound parameters, each one transaction: building an ORM unit of
work and a fresh statement for every row cost two to three times the write itself. A step's
``index`` and an event's ``seq`` are computed by the INSERT itself (one statement, no read
before it). They are prepared once (:class:`~mspclaw.store.fastsql.FastSQL`, the database's fast path).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import (
    CTE,
    JSON,
    CursorResult,
    Insert,
    Select,
    Table,
    Update,
    bindparam,
    exc,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from mspclaw.errors import Conflict, NotFound
from mspclaw.store.database import Database
from mspclaw.store.fastsql import Transaction
from mspclaw.store.redact import redact_json, redact_optional, redact_text
from mspclaw.store.session_leases import FORGET, HeldLease, NewSessionLease
from mspclaw.store.tables import (
    ApprovalRow,
    DeviceFact,
    OwnershipLease,
    Session,
    SessionEvent,
    Step,
    Ticket,
    ToolCallRow,
    new_id,
    utcnow,
)

Scope = Collection[str] | None
"""Client ids the caller may see; ``None`` means every client (the admin key)."""


S = TypeVar("S", bound=Select[Any])

_SESSIONS = cast("Table", Session.__table__)
_TICKETS = cast("Table", Ticket.__table__)
_STEPS = cast("Table", Step.__table__)
_EVENTS = cast("Table", SessionEvent.__table__)
_CALLS = cast("Table", ToolCallRow.__table__)
_LEASES = cast("Table", OwnershipLease.__table__)
_FACTS = cast("Table", DeviceFact.__table__)
_LEASE_COLUMNS = ("name", "holder", "token", "expires_at", "updated_at")


def _scoped(stmt: S, column: Any, scope: Scope) -> S:
    return stmt if scope is None else stmt.where(column.in_(list(scope)))


def _next_number(table: Table, column: str) -> Any:
    """``(SELECT coalesce(max(column), 0) + 1 ... WHERE session_id = :p_session_id)``, for an INSERT's VALUES."""
    return (select(func.coalesce(func.max(table.c[column]), 0) + 1)
            .where(table.c.session_id == bindparam("p_session_id")).scalar_subquery())


def _params(table: Table, *columns: str) -> dict[str, Any]:
    """``{column: :p_column}`` with each parameter of its column's type (JSON, UTC datetimes)."""
    return {name: bindparam(f"p_{name}", type_=table.c[name].type) for name in columns}


_ADD_EVENT: Insert = (
    insert(_EVENTS)
    .values(seq=_next_number(_EVENTS, "seq"), **_params(_EVENTS, "session_id", "event", "data", "created_at"))
    .returning(_EVENTS.c.id, _EVENTS.c.seq)
)
_ADD_STEP: Insert = (
    insert(_STEPS)
    .values(index=_next_number(_STEPS, "index"),
            **_params(_STEPS, "session_id", "title", "tool", "args", "ok", "observation", "created_at"))
    .returning(_STEPS.c.id, _STEPS.c.index)
)
_RECORD_CALL: Insert = insert(_CALLS).values(**_params(
    _CALLS, "call_id", "session_id", "client_id", "agent_id", "tool", "args", "approval_id", "status", "created_at"))
_FINISH_CALL: Update = update(_CALLS).where(_CALLS.c.call_id == bindparam("p_id")).values(**_params(
    _CALLS, "status", "output", "error_code", "error_message", "duration_ms", "finished_at"))
MAX_CALLS_PER_WRITE = 16
"""Finished calls stored with one step, at most (a step reports one; the bound keeps the statement small)."""
_CALL_COLUMNS = ("call_id", "session_id", "client_id", "agent_id", "tool", "args", "approval_id", "status", "output",
                 "error_code", "error_message", "duration_ms", "created_at", "finished_at")
_CALL_RESULT = ("status", "output", "error_code", "error_message", "duration_ms", "finished_at")


@functools.cache
def _save_call(dialect: str, prefix: str = "c_") -> Insert:
    """A finished call's row (``prefix`` parameters), its result replacing that of a row already there
    (a call recorded as pending by an earlier version, sent again after a restart)."""
    make = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = make(_CALLS).values({c: bindparam(f"{prefix}{c}", type_=_CALLS.c[c].type) for c in _CALL_COLUMNS})
    return stmt.on_conflict_do_update(index_elements=[_CALLS.c.call_id],
                                      set_={c: stmt.excluded[c] for c in _CALL_RESULT})


@dataclass(frozen=True)
class StepWrite:
    """A step to store, with its event and the rows of the calls it reports (:meth:`TicketStore.add_steps`)."""

    title: str
    tool: str | None
    args: dict[str, Any]
    ok: bool | None
    observation: dict[str, Any]
    data: dict[str, Any]
    """The data of its event (``step``)."""
    created_at: datetime
    calls: tuple[FinishedCall, ...] = ()
    event: str = "step"


@dataclass(frozen=True)
class FinishedCall:
    """A tool call that has its result: stored in one write with the step that reports it
    (:meth:`TicketStore.add_step_and_event`), or by itself (:meth:`TicketStore.save_calls`)."""

    call_id: str
    session_id: str | None
    client_id: str
    agent_id: str
    tool: str
    args: dict[str, Any]
    approval_id: str | None
    ok: bool
    output: dict[str, Any] | None
    error_code: str | None
    error_message: str | None
    duration_ms: int | None
    created_at: datetime
    """When it was sent."""

    def values(self, prefix: str = "c_") -> dict[str, Any]:
        """Its row's columns as ``prefix`` parameters, redacted."""
        row = {"call_id": self.call_id, "session_id": self.session_id, "client_id": self.client_id,
               "agent_id": self.agent_id, "tool": self.tool, "args": redact_json(self.args),
               "approval_id": self.approval_id, "status": "ok" if self.ok else "error",
               "output": redact_json(self.output) if self.output is not None else None,
               "error_code": self.error_code, "error_message": redact_optional(self.error_message),
               "duration_ms": self.duration_ms, "created_at": self.created_at, "finished_at": utcnow()}
        return {f"{prefix}{name}": value for name, value in row.items()}


def _calls_of(steps: Sequence[StepWrite]) -> list[FinishedCall]:
    """The calls the ``steps`` report, checked against the bounds of one write."""
    calls = [call for step in steps for call in step.calls]
    if len(steps) > MAX_STEPS_PER_WRITE or len(calls) > MAX_CALLS_PER_WRITE:
        raise ValueError(f"{len(steps)} steps and {len(calls)} calls in one write; at most {MAX_STEPS_PER_WRITE} "
                         f"and {MAX_CALLS_PER_WRITE}")
    return calls


def _step_rows(steps: Sequence[StepWrite]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Each step's row and its event's row, redacted like every write."""
    return [({"title": redact_text(step.title), "tool": step.tool, "args": redact_json(step.args), "ok": step.ok,
              "observation": redact_json(step.observation), "created_at": step.created_at},
             {"event": step.event, "data": redact_json(step.data), "created_at": step.created_at})
            for step in steps]


def _step_params(rows: list[tuple[dict[str, Any], dict[str, Any]]], calls: Sequence[FinishedCall]) -> dict[str, Any]:
    """The ``s<k>_``, ``e<k>_`` and ``c<i>_`` parameters of :func:`_steps_pg` (``p_session_id`` apart)."""
    params: dict[str, Any] = {}
    for k, (step_row, event_row) in enumerate(rows, 1):
        params.update({f"s{k}_{name}": value for name, value in step_row.items()})
        params.update({f"e{k}_{name}": value for name, value in event_row.items()})
    for i, call in enumerate(calls):
        params.update(call.values(f"c{i}_"))
    return params


_SET_TICKET_STATUS: Update = update(_TICKETS).where(_TICKETS.c.id == bindparam("p_id")).values(
    **_params(_TICKETS, "status", "updated_at"))


@functools.cache
def _update_session(columns: tuple[str, ...]) -> Update:
    """The UPDATE of these session columns (and ``updated_at``), built once per set of columns."""
    return update(_SESSIONS).where(_SESSIONS.c.id == bindparam("p_id")).values(
        **_params(_SESSIONS, *columns, "updated_at"))


def _bound(values: dict[str, Any]) -> dict[str, Any]:
    return {f"p_{name}": value for name, value in values.items()}


# PostgreSQL: the writes of one store call as ONE statement (data-modifying CTEs), run in autocommit
# mode: one round trip and the server's commit, instead of BEGIN, a round trip per statement and
# COMMIT. A statement is atomic, as the transaction was; every sub-statement sees the same snapshot,
# and foreign keys are checked at the statement's end, so a session may reference the ticket inserted
# beside it. SQLite has no INSERT or UPDATE inside WITH: there the writes stay one transaction.


def _columns_insert(table: Table, prefix: str, columns: tuple[str, ...]) -> Insert:
    """``INSERT INTO table (columns) VALUES (:prefix_column, ...)``, each parameter of its column's type."""
    return insert(table).values({c: bindparam(f"{prefix}{c}", type_=table.c[c].type) for c in columns})


_INSERT_LEASE: Insert = _columns_insert(_LEASES, "l_", _LEASE_COLUMNS)


_DEVICE_FACTS: Select[Any] = select(_FACTS.c.key, _FACTS.c.value).where(_FACTS.c.device_id == bindparam("t_device_id"))
"""The known facts of the ticket's device (``t_device_id``), read with its open (SQLite: in its transaction)."""


_SECOND_EVENT: Insert = insert(_EVENTS).values(
    seq=2, **{name: bindparam(f"e2_{name}", type_=_EVENTS.c[name].type)
              for name in ("session_id", "event", "data", "created_at")})
"""A new session's second event (``e2_`` parameters), stored with its open beside the first: its ``seq`` is 2
(two inserts of one statement see the same snapshot, so the first's ``max + 1`` cannot number it)."""


@functools.cache
def _open_ticket_pg(ticket: tuple[str, ...], session: tuple[str, ...], started: bool,
                    leased: bool = False, facts: bool = False, second: bool = False) -> Select[Any]:
    """A ticket (``t_`` parameters), its session (``s_``), if ``started`` its first event (``p_``) and, if
    ``second``, its second (:data:`_SECOND_EVENT`), if ``leased`` its session's lease (``l_``) and, if
    ``facts``, a column ``facts``: the known facts of the ticket's device as one JSON object (``NULL``
    without any)."""
    new_ticket = _columns_insert(_TICKETS, "t_", ticket).returning(_TICKETS.c.id).cte("new_ticket")
    new_session = _columns_insert(_SESSIONS, "s_", session).returning(_SESSIONS.c.id).cte("new_session")
    also = [_INSERT_LEASE.returning(_LEASES.c.name).cte("new_lease")] if leased else []
    if second:
        also.append(_SECOND_EVENT.returning(_EVENTS.c.seq).cte("second_event"))
    known = [select(func.json_object_agg(_FACTS.c.key, _FACTS.c.value, type_=JSON)).where(
        _FACTS.c.device_id == bindparam("t_device_id")).scalar_subquery().label("facts")] if facts else []
    if not started:
        return select(new_session.c.id, *known).add_cte(new_ticket, *also)
    new_event = _ADD_EVENT.cte("new_event")
    return select(new_event.c.seq, *known).add_cte(new_ticket, new_session, *also)


@functools.cache
def _step_and_event_pg(calls: int = 0) -> Select[Any]:
    """:data:`_ADD_STEP` and :data:`_ADD_EVENT` (the same ``p_session_id`` and ``p_created_at``), and the
    rows of ``calls`` finished calls (``c0_``, ``c1_``, ... parameters)."""
    new_step, new_event = _ADD_STEP.cte("new_step"), _ADD_EVENT.cte("new_event")
    saved = [_save_call("postgresql", f"c{i}_").returning(_CALLS.c.call_id).cte(f"saved_call_{i}")
             for i in range(calls)]
    stmt = select(new_step.c.id, new_step.c.index, new_event.c.id.label("event_id"), new_event.c.seq)
    return stmt.add_cte(*saved) if saved else stmt


MAX_STEPS_PER_WRITE = 8
"""Steps stored in one write, at most (:meth:`TicketStore.add_steps`); with :data:`MAX_CALLS_PER_WRITE` calls in
all, the statement shapes are few (one prepared statement each)."""
_STEP_COLUMNS = ("title", "tool", "args", "ok", "observation", "created_at")
_EVENT_COLUMNS = ("event", "data", "created_at")


def _numbered_insert(table: Table, column: str, k: int, prefix: str, columns: tuple[str, ...]) -> Insert:
    """An INSERT of one row of ``table`` for the session ``p_session_id``, ``column`` numbered the k-th after the
    session's highest (``coalesce(max, 0) + k``: inserts of one statement see the same snapshot, so the k-th
    of them takes ``+ k``), its other ``columns`` from ``prefix`` parameters."""
    number = (select(func.coalesce(func.max(table.c[column]), 0) + k)
              .where(table.c.session_id == bindparam("p_session_id")).scalar_subquery())
    return insert(table).values({column: number, "session_id": bindparam("p_session_id"),
                                 **{c: bindparam(f"{prefix}{c}", type_=table.c[c].type) for c in columns}})


def _step_ctes(steps: int, calls: int) -> tuple[list[CTE], list[CTE]]:
    """The inserts of ``steps`` steps (``s1_``, ``s2_``, ... parameters) numbered after the session's last
    (``p_session_id``) and of the rows of ``calls`` finished calls (``c0_``, ...), and the inserts of the steps'
    events (``e1_``, ...), each returning its ``seq``."""
    saved = [_save_call("postgresql", f"c{i}_").returning(_CALLS.c.call_id).cte(f"saved_call_{i}")
             for i in range(calls)]
    new_steps = [_numbered_insert(_STEPS, "index", k, f"s{k}_", _STEP_COLUMNS).returning(_STEPS.c.id)
                 .cte(f"new_step_{k}") for k in range(1, steps + 1)]
    new_events = [_numbered_insert(_EVENTS, "seq", k, f"e{k}_", _EVENT_COLUMNS).returning(_EVENTS.c.seq)
                  .cte(f"new_step_event_{k}") for k in range(1, steps + 1)]
    return [*saved, *new_steps], new_events


@functools.cache
def _steps_pg(steps: int, calls: int) -> Select[Any]:
    """:func:`_step_ctes` as one statement: the events' ``seq`` in order."""
    writes, new_events = _step_ctes(steps, calls)
    return select(*(event.c.seq.label(f"seq_{k}") for k, event in enumerate(new_events, 1))).add_cte(*writes)


@functools.cache
def _event_and_session_pg(columns: tuple[str, ...]) -> Select[Any]:
    """:data:`_ADD_EVENT` and the UPDATE of these session columns (``p_id``, ``p_updated_at``)."""
    new_event = _ADD_EVENT.cte("new_event")
    updated = _update_session(columns).returning(_SESSIONS.c.id).cte("updated_session")
    return select(new_event.c.id, new_event.c.seq).add_cte(updated)


@functools.cache
def _event_and_row_pg(row: Insert) -> Select[Any]:
    """:data:`_ADD_EVENT` and ``row``, an INSERT of another table (parameters named after its columns)."""
    new_event = _ADD_EVENT.cte("new_event")
    added = row.returning(*cast("Table", row.table).primary_key.columns).cte("added_row")
    return select(new_event.c.id, new_event.c.seq).add_cte(added)


_CLOSE_TICKET: Update = update(_TICKETS).where(_TICKETS.c.id == bindparam("p_ticket_id")).values(
    **_params(_TICKETS, "status", "updated_at"))
_CLOSING_COLUMNS = ("note", "outcome", "reason", "reply", "status")


@functools.cache
def _close_session_pg(leased: bool = False, steps: int = 0, calls: int = 0) -> Select[Any]:
    """The session's end (``p_id``), the ticket's status (``p_ticket_id``, the same ``p_status``), the
    event that announces it and, if ``leased``, the delete of the session's lease (``HeldLease.params``);
    before the event, ``steps`` steps with their events and the rows of ``calls`` calls (as :func:`_steps_pg`)."""
    closed = _update_session(_CLOSING_COLUMNS).returning(_SESSIONS.c.id).cte("closed_session")
    ticket = _CLOSE_TICKET.returning(_TICKETS.c.id).cte("closed_ticket")
    also = [FORGET.returning(_LEASES.c.name).cte("forgotten_lease")] if leased else []
    if steps or calls:
        writes, step_events = _step_ctes(steps, calls)
        also += [*writes, *step_events]
        new_event = _numbered_insert(_EVENTS, "seq", steps + 1, "p_", _EVENT_COLUMNS).returning(
            _EVENTS.c.id, _EVENTS.c.seq).cte("new_event")
    else:
        new_event = _ADD_EVENT.cte("new_event")
    return select(new_event.c.seq).add_cte(closed, ticket, *also)


_FIND_EXTERNAL: Select[Any] = select(_TICKETS).where(_TICKETS.c.psa == bindparam("psa"),
                                                     _TICKETS.c.external_id == bindparam("external_id")).limit(1)
_TICKET_BY_ID: Select[Any] = select(_TICKETS).where(_TICKETS.c.id == bindparam("id"))
_INSERT_TICKET: Insert = insert(_TICKETS)
_INSERT_SESSION: Insert = insert(_SESSIONS)
_PENDING_APPROVALS: Select[Any] = select(ApprovalRow.id).where(
    ApprovalRow.session_id == bindparam("session_id"), ApprovalRow.status == "pending")


_OPENING_COLUMNS = frozenset({"playbook", "model", "agent_id"})
"""The session columns an :class:`OpeningEvent` may set."""


@dataclass(frozen=True)
class OpeningEvent:
    """A new session's second event, stored with its open (:meth:`TicketStore.open_ticket`'s ``then``), and
    the session columns it announces (``playbook``, ``model``)."""

    event: str
    data: dict[str, Any]
    session_values: dict[str, Any]


class ExternalTicketExists(Conflict):
    """A PSA ticket already has its ticket here (``psa`` and ``external_id`` are unique): nothing was opened."""

    def __init__(self, ticket_id: str, psa: str, external_id: str) -> None:
        super().__init__(f"{psa} ticket {external_id!r} is already ticket {ticket_id}")
        self.ticket_id = ticket_id


class TicketStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._sessions = db.sessions
        self._fast = fast = db.fast
        """For the per-ticket statements, prepared once."""
        self._add_event, self._add_step = fast.prepare(_ADD_EVENT), fast.prepare(_ADD_STEP)
        self._record_call, self._finish_call = fast.prepare(_RECORD_CALL), fast.prepare(_FINISH_CALL)
        self._save_call = fast.prepare(_save_call(db.dialect))
        self._set_ticket_status = fast.prepare(_SET_TICKET_STATUS)
        self._find_external, self._ticket_by_id = fast.prepare(_FIND_EXTERNAL), fast.prepare(_TICKET_BY_ID)
        self._insert_ticket, self._insert_session = fast.prepare(_INSERT_TICKET), fast.prepare(_INSERT_SESSION)
        self._insert_lease, self._forget_lease = fast.prepare(_INSERT_LEASE), fast.prepare(FORGET)
        self._pending_approvals = fast.prepare(_PENDING_APPROVALS)
        self._device_facts = fast.prepare(_DEVICE_FACTS)
        self._one_statement = db.dialect == "postgresql"
        """Several writes of one call as one statement (``_..._pg``), or as one transaction (SQLite)."""

    @property
    def commits_wait_for_server(self) -> bool:
        """Whether a commit waits for a database server's round trip and WAL flush (PostgreSQL),
        rather than a local file write (SQLite)."""
        return self._db.commits_wait_for_server

    # -- tickets and sessions -------------------------------------------------------------------
    def open_ticket(self, *, client_id: str, subject: str, body: str, requester: str,
                    device_id: str | None, psa: str | None = None, external_id: str | None = None,
                    agent_id: str | None = None, started: bool = False,
                    requester_name: str | None = None, lease: NewSessionLease | None = None,
                    facts_into: dict[str, str] | None = None,
                    then: Callable[[str, str], OpeningEvent | None] | None = None) -> tuple[Ticket, Session]:
        """A new ticket and its session (bound to ``agent_id`` when the route already names it).

        ``started``: the session's first event, ``started`` with the ticket's id and subject, is
        stored in the same transaction; being the first, its ``seq`` is 1. ``lease``: the session's
        lease (``store/session_leases.py``) is taken in it too, with the token
        :data:`~mspclaw.store.session_leases.NEW_SESSION_TOKEN`: one write for all of them.

        A PSA ticket (``psa``, ``external_id``) that already has its ticket here raises
        :class:`ExternalTicketExists` with that ticket's id, and nothing is written. ``facts_into``: filled
        with the known facts of the device (``device_id``; ``RunStore.device_facts``), read in the same
        statement (a run reads them next: one round trip fewer).

        ``then`` (with ``started``): called with the stored (redacted) subject and body before anything is
        written; the :class:`OpeningEvent` it returns is the session's second event (``seq`` 2), its
        ``session_values`` the new session's columns, all in the same write (``None``: no second event)."""
        now = utcnow()
        subject, body = redact_text(subject), redact_text(body)  # users paste passwords into tickets
        second = then(subject, body) if then is not None and started else None
        ticket = {"id": new_id("tk"), "client_id": client_id, "subject": subject, "body": body,
                  "requester": requester, "requester_name": requester_name, "device_id": device_id, "psa": psa,
                  "external_id": external_id, "status": "in_progress", "created_at": now, "updated_at": now}
        session_id = new_id("ss")
        session = {"id": session_id, "ticket_id": ticket["id"], "client_id": client_id, "agent_id": agent_id,
                   "playbook": None, "model": "playbook", "status": "running", "outcome": None, "note": None,
                   "reply": None, "reason": None, "created_at": now, "updated_at": now}
        event = _bound({"session_id": session["id"], "event": "started", "created_at": now,
                        "data": {"ticket_id": ticket["id"], "subject": subject}})
        also: dict[str, Any] | None = None
        if second is not None:
            session.update({k: redact_text(v) if isinstance(v, str) else v
                            for k, v in second.session_values.items() if k in _OPENING_COLUMNS})
            also = {"session_id": session_id, "event": second.event, "data": redact_json(second.data),
                    "created_at": now}
        leased = lease.row(session_id, now) if lease is not None else None
        try:
            facts = self._open(ticket, session, event if started else None, leased,
                               facts_into is not None and device_id is not None, also)
        except exc.IntegrityError:
            # the PSA ticket's ticket exists (its unique key), so its caller need not look it up first
            found = self.find_external(psa, external_id) if psa is not None and external_id is not None else None
            if found is None:
                raise
            raise ExternalTicketExists(found.id, psa or "", external_id or "") from None
        if facts_into is not None and facts:
            facts_into.update(facts)
        return Ticket(**ticket), Session(**session)

    def _open(self, ticket: dict[str, Any], session: dict[str, Any], event: dict[str, Any] | None,
              leased: dict[str, Any] | None, facts: bool,
              second: dict[str, Any] | None = None) -> dict[str, str] | None:
        """The writes of :meth:`open_ticket`; with ``facts``, the device's known facts too; ``second``: the
        session's second event (after ``event``)."""
        started = event is not None
        if self._one_statement:
            stmt = self._fast.prepare(_open_ticket_pg(tuple(ticket), tuple(session), started, leased is not None,
                                                      facts, second is not None))
            row = self._fast.one(stmt, {**{f"t_{k}": v for k, v in ticket.items()},
                                  **{f"s_{k}": v for k, v in session.items()}, **(event or {}),
                                  **({f"l_{k}": v for k, v in leased.items()} if leased is not None else {}),
                                  **({f"e2_{k}": v for k, v in second.items()} if second is not None else {})})
            return dict(row[1] or {}) if facts else None
        with self._fast.transaction() as tx:
            tx.execute(self._insert_ticket, ticket)
            tx.execute(self._insert_session, session)
            if event is not None:
                tx.one(self._add_event, event)
                if second is not None:
                    tx.one(self._add_event, _bound(second))
            if leased is not None:
                tx.execute(self._insert_lease, {f"l_{k}": v for k, v in leased.items()})
            return ({key: value for key, value in tx.all(self._device_facts, {"t_device_id": ticket["device_id"]})}
                    if facts else None)

    def ticket(self, ticket_id: str, scope: Scope = None) -> Ticket:
        if scope is None:
            row = self._fast.mapping(self._ticket_by_id, {"id": ticket_id})
            if row is None:
                raise NotFound(f"no ticket {ticket_id!r}")
            return Ticket(**row)
        with self._sessions() as db:
            stmt = _scoped(select(Ticket).where(Ticket.id == ticket_id), Ticket.client_id, scope)
            found = db.scalars(stmt).first()
        if found is None:
            raise NotFound(f"no ticket {ticket_id!r}")
        return found

    def tickets(self, scope: Scope = None, limit: int = 100, *, status: str | None = None,
                client_id: str | None = None, since: datetime | None = None,
                playbook: str | None = None) -> list[Ticket]:
        """The newest ``limit`` tickets the scope may see, optionally only those with this status, of
        this client, opened at or after ``since``, or worked by this playbook."""
        stmt = _scoped(select(Ticket), Ticket.client_id, scope)
        if status is not None:
            stmt = stmt.where(Ticket.status == status)
        if client_id is not None:
            stmt = stmt.where(Ticket.client_id == client_id)
        if since is not None:
            stmt = stmt.where(Ticket.created_at >= since)
        if playbook is not None:
            stmt = stmt.where(Ticket.id.in_(select(Session.ticket_id).where(Session.playbook == playbook)))
        with self._sessions() as db:
            return list(db.scalars(stmt.order_by(Ticket.created_at.desc()).limit(limit)))

    def find_external(self, psa: str, external_id: str) -> Ticket | None:
        row = self._fast.mapping(self._find_external, {"psa": psa, "external_id": external_id})
        return Ticket(**row) if row is not None else None

    def session_for(self, ticket_id: str) -> Session:
        with self._sessions() as db:
            found = db.scalars(
                select(Session).where(Session.ticket_id == ticket_id).order_by(Session.created_at.desc())
            ).first()
        if found is None:
            raise NotFound(f"ticket {ticket_id!r} has no session")
        return found

    def session(self, session_id: str, scope: Scope = None) -> Session:
        with self._sessions() as db:
            stmt = _scoped(select(Session).where(Session.id == session_id), Session.client_id, scope)
            found = db.scalars(stmt).first()
        if found is None:
            raise NotFound(f"no session {session_id!r}")
        return found

    def update_session(self, session_id: str, **values: Any) -> None:
        values = {key: redact_text(value) if isinstance(value, str) else value for key, value in values.items()}
        stmt = self._fast.prepare(_update_session(tuple(sorted(values))))
        self._fast.run(stmt, {"p_id": session_id, **_bound(values), "p_updated_at": utcnow()})

    def set_ticket_status(self, ticket_id: str, status: str) -> None:
        self._fast.run(self._set_ticket_status, {"p_id": ticket_id, "p_status": status, "p_updated_at": utcnow()})

    def close_session(self, session_id: str, ticket_id: str, *, outcome: str, note: str, reply: str,
                      reason: str, event: tuple[str, dict[str, Any]] | None = None,
                      lease: HeldLease | None = None, steps: Sequence[StepWrite] = ()) -> int | None:
        """A run's end in one transaction: the session's outcome, note and reply, the ticket's status,
        given ``(name, data)`` the session event that announces it (its ``seq`` is returned) and, given the
        session's ``lease``, its delete (only while its holder holds it with its token: a finished session is
        never resumed, and ``ownership_leases`` keeps only unfinished sessions' leases). ``steps``: the run's
        last steps, stored before the event as :meth:`add_steps` would (their events' ``seq`` are the ones
        just before the returned one); with steps, ``event`` is required."""
        now = utcnow()
        seq: int | None = None
        note, reply, reason = redact_text(note), redact_text(reply), redact_text(reason)
        event = (event[0], redact_json(event[1])) if event is not None else None
        if steps and event is None:
            raise ValueError("steps are stored at a run's end only with the event that announces it")
        calls = _calls_of(steps)
        rows = _step_rows(steps)
        if event is not None and self._one_statement:
            params: dict[str, Any] = {
                "p_id": session_id, "p_ticket_id": ticket_id, "p_note": note, "p_outcome": outcome,
                "p_reason": reason, "p_reply": reply, "p_status": outcome, "p_updated_at": now,
                **_bound({"session_id": session_id, "event": event[0], "data": event[1], "created_at": now}),
                **(lease.params() if lease is not None else {})}
            params.update(_step_params(rows, calls))
            (seq,) = self._fast.one(self._fast.prepare(_close_session_pg(lease is not None, len(steps), len(calls))),
                                    params)
            return int(seq)
        closing = self._fast.prepare(_update_session(_CLOSING_COLUMNS))
        with self._fast.transaction() as tx:
            self._write_steps(tx, session_id, rows, calls)
            tx.execute(closing, {"p_id": session_id, "p_note": note, "p_outcome": outcome, "p_reason": reason,
                                 "p_reply": reply, "p_status": outcome, "p_updated_at": now})
            tx.execute(self._set_ticket_status, {"p_id": ticket_id, "p_status": outcome, "p_updated_at": now})
            if event is not None:
                _, seq = tx.one(self._add_event, _bound({"session_id": session_id, "event": event[0],
                                                         "data": event[1], "created_at": now}))
            if lease is not None:
                tx.execute(self._forget_lease, lease.params())
        return seq

    def unfinished_sessions(self) -> list[Session]:
        with self._sessions() as db:
            return list(db.scalars(select(Session).where(
                Session.status.in_(["running", "awaiting_approval", "awaiting_answer"]))))

    # -- steps and events -----------------------------------------------------------------------
    def add_step(self, session_id: str, *, title: str, tool: str | None, args: dict[str, Any],
                 ok: bool | None, observation: dict[str, Any]) -> Step:
        values = {"session_id": session_id, "title": redact_text(title), "tool": tool, "args": redact_json(args),
                  "ok": ok, "observation": redact_json(observation), "created_at": utcnow()}
        step_id, index = self._fast.one(self._add_step, _bound(values))
        return Step(id=step_id, index=index, **values)

    def add_step_and_event(self, session_id: str, *, title: str, tool: str | None, args: dict[str, Any],
                           ok: bool | None, observation: dict[str, Any], event: str, data: dict[str, Any],
                           calls: Sequence[FinishedCall] = ()) -> tuple[Step, SessionEvent]:
        """:meth:`add_step` and :meth:`add_event` in one transaction (a step is announced as it is stored),
        with the rows of the tool ``calls`` the step reports (one write per tool call: its row, its result
        and its step; on PostgreSQL one statement)."""
        if len(calls) > MAX_CALLS_PER_WRITE:
            raise ValueError(f"{len(calls)} calls for one step; at most {MAX_CALLS_PER_WRITE} (store them with "
                             "save_calls first)")
        now = utcnow()
        step = {"session_id": session_id, "title": redact_text(title), "tool": tool, "args": redact_json(args),
                "ok": ok, "observation": redact_json(observation), "created_at": now}
        announced = {"session_id": session_id, "event": event, "data": redact_json(data), "created_at": now}
        if self._one_statement:
            saved = {k: v for i, call in enumerate(calls) for k, v in call.values(f"c{i}_").items()}
            step_id, index, event_id, seq = self._fast.one(self._fast.prepare(_step_and_event_pg(len(calls))),
                                                           {**_bound(step), **_bound(announced), **saved})
            return (Step(id=step_id, index=index, **step), SessionEvent(id=event_id, seq=seq, **announced))
        with self._fast.transaction() as tx:
            for call in calls:
                tx.execute(self._save_call, call.values())
            step_id, index = tx.one(self._add_step, _bound(step))
            event_id, seq = tx.one(self._add_event, _bound(announced))
        return (Step(id=step_id, index=index, **step), SessionEvent(id=event_id, seq=seq, **announced))

    def add_steps(self, session_id: str, steps: Sequence[StepWrite]) -> list[int]:
        """Several steps in one write, each with its event, and the rows of the calls they report: one statement
        on PostgreSQL, one transaction on SQLite. Returns the events' ``seq``, in order. At most
        :data:`MAX_STEPS_PER_WRITE` steps and :data:`MAX_CALLS_PER_WRITE` calls in all."""
        calls = _calls_of(steps)
        if not steps:
            return []
        rows = _step_rows(steps)
        if self._one_statement:
            params = {"p_session_id": session_id, **_step_params(rows, calls)}
            return [int(seq) for seq in self._fast.one(self._fast.prepare(_steps_pg(len(steps), len(calls))), params)]
        with self._fast.transaction() as tx:
            return self._write_steps(tx, session_id, rows, calls)

    def _write_steps(self, tx: Transaction, session_id: str, rows: list[tuple[dict[str, Any], dict[str, Any]]],
                     calls: Sequence[FinishedCall]) -> list[int]:
        """:meth:`add_steps` in a transaction of several statements (SQLite)."""
        seqs: list[int] = []
        for call in calls:
            tx.execute(self._save_call, call.values())
        for step_row, event_row in rows:
            tx.one(self._add_step, _bound({"session_id": session_id, **step_row}))
            _, seq = tx.one(self._add_event, _bound({"session_id": session_id, **event_row}))
            seqs.append(int(seq))
        return seqs

    def steps(self, session_id: str) -> list[Step]:
        with self._sessions() as db:
            return list(db.scalars(select(Step).where(Step.session_id == session_id).order_by(Step.index)))

    def add_event(self, session_id: str, event: str, data: dict[str, Any], *,
                  session_values: dict[str, Any] | None = None) -> SessionEvent:
        """Append an event; ``session_values`` are session columns updated in the same transaction."""
        values = {"session_id": session_id, "event": event, "data": redact_json(data), "created_at": utcnow()}
        if session_values:
            session_values = {k: redact_text(v) if isinstance(v, str) else v for k, v in session_values.items()}
        if not session_values:
            event_id, seq = self._fast.one(self._add_event, _bound(values))
            return SessionEvent(id=event_id, seq=seq, **values)
        columns = tuple(sorted(session_values))
        if self._one_statement:
            event_id, seq = self._fast.one(self._fast.prepare(_event_and_session_pg(columns)), {
                **_bound(values), "p_id": session_id, **_bound(session_values),
                "p_updated_at": values["created_at"]})
            return SessionEvent(id=event_id, seq=seq, **values)
        updating = self._fast.prepare(_update_session(columns))
        with self._fast.transaction() as tx:
            event_id, seq = tx.one(self._add_event, _bound(values))
            tx.execute(updating, {"p_id": session_id, **_bound(session_values), "p_updated_at": values["created_at"]})
        return SessionEvent(id=event_id, seq=seq, **values)

    def add_event_with_row(self, session_id: str, event: str, data: dict[str, Any], row: Insert,
                           row_values: Mapping[str, Any]) -> SessionEvent:
        """Append an event and insert a row of another table that it announces (``row``: a plain INSERT built
        once, ``row_values``: a value for each of its columns), both or neither: one statement on
        PostgreSQL, one transaction on SQLite. A failing insert (a duplicate) raises the driver's
        ``IntegrityError`` and stores no event."""
        values = {"session_id": session_id, "event": event, "data": redact_json(data), "created_at": utcnow()}
        if self._one_statement:
            event_id, seq = self._fast.one(self._fast.prepare(_event_and_row_pg(row)), {**_bound(values), **row_values})
            return SessionEvent(id=event_id, seq=seq, **values)
        with self._fast.transaction() as tx:
            tx.execute(self._fast.prepare(row), row_values)
            event_id, seq = tx.one(self._add_event, _bound(values))
        return SessionEvent(id=event_id, seq=seq, **values)

    def events(self, session_id: str, after_seq: int = 0) -> list[SessionEvent]:
        with self._sessions() as db:
            stmt = (select(SessionEvent).where(SessionEvent.session_id == session_id, SessionEvent.seq > after_seq)
                    .order_by(SessionEvent.seq))
            return list(db.scalars(stmt))

    # -- tool calls -----------------------------------------------------------------------------
    def record_call(self, *, call_id: str, session_id: str | None, client_id: str, agent_id: str, tool: str,
                    args: dict[str, Any], approval_id: str | None) -> None:
        self._fast.run(self._record_call, _bound({
            "call_id": call_id, "session_id": session_id, "client_id": client_id, "agent_id": agent_id,
            "tool": tool, "args": redact_json(args), "approval_id": approval_id, "status": "pending",
            "created_at": utcnow()}))

    def finish_call(self, call_id: str, *, ok: bool, output: dict[str, Any] | None, error_code: str | None,
                    error_message: str | None, duration_ms: int | None) -> None:
        self._fast.run(self._finish_call, {"p_id": call_id, **_bound({
            "status": "ok" if ok else "error", "output": redact_json(output) if output is not None else None,
            "error_code": error_code, "error_message": redact_optional(error_message), "duration_ms": duration_ms,
            "finished_at": utcnow()})})

    def save_calls(self, calls: Sequence[FinishedCall]) -> None:
        """Finished calls' rows with no step to go with (a call whose failure ends the run)."""
        if len(calls) == 1:
            self._fast.run(self._save_call, calls[0].values())
            return
        with self._fast.transaction() as tx:
            for call in calls:
                tx.execute(self._save_call, call.values())

    def calls(self, session_id: str) -> list[ToolCallRow]:
        with self._sessions() as db:
            stmt = select(ToolCallRow).where(ToolCallRow.session_id == session_id).order_by(ToolCallRow.created_at)
            return list(db.scalars(stmt))

    # -- approvals ------------------------------------------------------------------------------
    def request_approval(self, *, session_id: str, client_id: str, tool: str, args: dict[str, Any],
                         target: str, reason: str, deadline: datetime, call_id: str | None = None) -> ApprovalRow:
        row = ApprovalRow(id=new_id("ap"), session_id=session_id, client_id=client_id, tool=tool, args=args,
                          target=target, reason=reason, deadline=deadline, call_id=call_id)
        with self._sessions.begin() as db:
            db.add(row)
        return row

    def pending_approval_ids(self, session_id: str) -> list[str]:
        """The ids of a session's approvals still waiting for a decision."""
        return [row[0] for row in self._fast.read(self._pending_approvals, {"session_id": session_id})]

    def approval(self, approval_id: str, scope: Scope = None) -> ApprovalRow:
        with self._sessions() as db:
            stmt = _scoped(select(ApprovalRow).where(ApprovalRow.id == approval_id), ApprovalRow.client_id, scope)
            found = db.scalars(stmt).first()
        if found is None:
            raise NotFound(f"no approval {approval_id!r}")
        return found

    def approvals(self, scope: Scope = None, status: str | None = "pending") -> list[ApprovalRow]:
        stmt = _scoped(select(ApprovalRow), ApprovalRow.client_id, scope).order_by(ApprovalRow.created_at)
        if status is not None:
            stmt = stmt.where(ApprovalRow.status == status)
        with self._sessions() as db:
            return list(db.scalars(stmt))

    def decide(self, approval_id: str, *, status: str, approver: str, reason: str = "") -> ApprovalRow:
        """Record a decision once: a second decision, or one after expiry, is a :class:`Conflict`."""
        now = utcnow()
        with self._sessions.begin() as db:
            result = cast("CursorResult[Any]", db.execute(
                update(ApprovalRow)
                .where(ApprovalRow.id == approval_id, ApprovalRow.status == "pending")
                .values(status=status, approver=approver, decision_reason=reason, decided_at=now)
            ))
            if result.rowcount != 1:
                current = db.get(ApprovalRow, approval_id)
                if current is None:
                    raise NotFound(f"no approval {approval_id!r}")
                raise Conflict(f"approval {approval_id} is already {current.status}"
                               + (f" by {current.approver}" if current.approver else ""))
            row = db.get(ApprovalRow, approval_id)
            assert row is not None
        return row
