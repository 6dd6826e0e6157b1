"""Submitting and resuming tickets: open a ticket and its session, start its run as a task, resume
what a stopped process left unfinished, and know which runs are under way here."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

from mspclaw.dispatch import Hub
from mspclaw.errors import Conflict, NotFound
from mspclaw.observability import logs
from mspclaw.pipeline.closing import FinishedRun
from mspclaw.pipeline.events import SessionEvents
from mspclaw.pipeline.offload import run_store
from mspclaw.pipeline.routing import Route, Router
from mspclaw.pipeline.session_ownership import SessionOwnership
from mspclaw.pipeline.session_ports import QuietSessions
from mspclaw.playbooks.matcher import Match
from mspclaw.store.audit import AuditLog
from mspclaw.store.registry import Registry
from mspclaw.store.tables import Client, Device, Session, Ticket
from mspclaw.store.tickets import OpeningEvent, TicketStore

UNFINISHED = ("running", "awaiting_approval", "awaiting_answer")


@dataclass(frozen=True)
class PSACompany:
    """A ticket's client named by its PSA's company id (PSA intake): found in the trip that opens the ticket."""

    psa: str
    company: str


class UnknownCompany(NotFound):
    """No client maps to the PSA's company (:class:`PSACompany`); nothing was opened."""


def _needs_subject(subject: str) -> None:
    if not subject.strip():
        raise Conflict("a ticket needs a subject")


@dataclass(frozen=True)
class Submitted:
    ticket: Ticket
    session: Session


class Runner(Protocol):
    """What runs a ticket to its close (:class:`~mspclaw.pipeline.run.TicketRun`), returning how it closed."""

    async def process(self, ticket: Ticket, session: Session, route: Route, *,
                      resumed: bool = False) -> FinishedRun | None: ...


@runtime_checkable
class MatchesAtOpen(Protocol):
    """A runner that matches a ticket where it is opened (:meth:`~mspclaw.pipeline.run.TicketRun.match_at_open`):
    its ``matched`` event, when it returns one, is stored with the open, and the run is told so by ``route.found``."""

    def match_at_open(self, subject: str, body: str, route: Route) -> tuple[Match, OpeningEvent | None]: ...


class Submissions:
    def __init__(self, *, registry: Registry, store: TicketStore, router: Router, events: SessionEvents,
                 audit: AuditLog, hub: Hub, run: Runner, quiet: QuietSessions,
                 sessions: SessionOwnership | None = None) -> None:
        """``sessions``: each run under its session's lease, so one replica drives it (``None``: one process)."""
        self._registry, self._store, self._router, self._events = registry, store, router, events
        self._audit, self._hub, self._run, self._quiet = audit, hub, run, quiet
        self._tasks: dict[str, asyncio.Task[str | None]] = {}
        self.sessions = sessions
        self._match_at_open = run.match_at_open if isinstance(run, MatchesAtOpen) else None

    async def submit(self, *, client: str | Client | PSACompany, subject: str, body: str, requester: str,
                     device: str | None, scope: Collection[str] | None = None, psa: str | None = None,
                     external_id: str | None = None, actor: str = "api",
                     requester_name: str | None = None) -> Submitted:
        """Open a ticket (``client`` outside ``scope`` is :class:`NotFound`) and start its run; returns at
        once, with ``ticket_opened`` durable in the audit trail. ``client``: its id or name, its row when the
        caller has just read it, or a :class:`PSACompany` (PSA intake), found with the ticket's other reads
        (:class:`UnknownCompany` when no client maps to it)."""
        if not isinstance(client, PSACompany):
            _needs_subject(subject)
        lease = self.sessions.new_lease() if self.sessions is not None else None
        asked = asyncio.get_running_loop().time()

        def open_it() -> tuple[Ticket, Session, Route, OpeningEvent | None]:
            """The client, the route and the stored ticket: reads and one write, in one go off the loop when
            the database is a server (``run_store``), so no round trip of them holds the event loop."""
            client_row, route = self._client_and_route(client, scope, device=device, requester=requester)
            if isinstance(client, PSACompany):  # after the company: an unknown one is escalated with its note
                _needs_subject(subject)
            facts: dict[str, str] | None = {} if route.device is not None else None  # the run's next read
            matched: list[tuple[Match, OpeningEvent | None]] = []
            at_open = self._match_at_open

            def then(stored_subject: str, stored_body: str) -> OpeningEvent | None:
                """The ticket matched on its stored text; its ``matched`` event stored with it, when it can be."""
                assert at_open is not None
                matched.append(at_open(stored_subject, stored_body, route))
                return matched[0][1]

            ticket, session = self._store.open_ticket(
                client_id=client_row.id, subject=subject, body=body, requester=requester,
                device_id=route.device.id if route.device else None, psa=psa, external_id=external_id,
                agent_id=route.agent_id, started=True, requester_name=requester_name, lease=lease,
                facts_into=facts, then=then if at_open is not None else None)
            announced = matched[0] if matched and matched[0][1] is not None else None
            if facts is not None or announced is not None:
                route = replace(route, facts=facts if facts is not None else route.facts,
                                found=announced[0] if announced is not None else None)
            return ticket, session, route, (announced[1] if announced is not None else None)

        ticket, session, route, opening = await run_store(self._store, open_it)
        if lease is not None and self.sessions is not None:  # its lease was taken with it
            self.sessions.opened(session.id, asked)
        # stored with the session (seq 1, then 2); pushed now, though no one can be watching a session this new
        self._events.announce(session.id, 1, "started", {"ticket_id": ticket.id, "subject": ticket.subject})
        if opening is not None:
            self._events.announce(session.id, 2, opening.event, opening.data)
        await self._audit.record("ticket_opened", **_opened(ticket, session, actor))
        self._quiet.opened(session.id)
        self._start(ticket, session, route, resumed=False, claimed=lease is not None)
        return Submitted(ticket, session)

    def _client_and_route(self, client: str | Client | PSACompany, scope: Collection[str] | None, *,
                          device: str | None, requester: str) -> tuple[Client, Route]:
        """The ticket's client (outside ``scope``: :class:`NotFound`) and route; a :class:`PSACompany`'s
        client and its devices in one read (:class:`UnknownCompany` when no client maps to it)."""
        route: Route | None = None
        if isinstance(client, PSACompany):
            found = self._router.route_company(client.psa, client.company, device=device, requester=requester)
            if found is None:
                raise UnknownCompany(f"no client maps to {client.psa} company {client.company!r}")
            client_row, route = found
        else:
            client_row = client if isinstance(client, Client) else self._registry.client(client)
        if scope is not None and client_row.id not in scope:
            raise NotFound(f"no client {client!r}")  # another client's: reveal nothing
        if route is None:
            route = self._router.route(client_row.id, device=device, requester=requester)
        return client_row, route

    def _start(self, ticket: Ticket, session: Session, route: Route, *, resumed: bool, claimed: bool) -> None:
        self._tasks[session.id] = asyncio.get_running_loop().create_task(
            self._process(ticket, session, route, resumed=resumed, claimed=claimed))

    async def _process(self, ticket: Ticket, session: Session, route: Route, *, resumed: bool,
                       claimed: bool) -> str | None:
        """Run it (under its lease, with session ownership); the outcome it closed with here, if it did."""
        logs.bind(ticket_id=ticket.id, session_id=session.id, client_id=ticket.client_id, agent_id=route.agent_id)
        closed: list[FinishedRun | None] = []

        async def work() -> None:
            closed.append(await self._run.process(ticket, session, route, resumed=resumed))

        try:
            if self.sessions is None:
                await work()
            else:  # a new session's lease was taken with it, a resumed one's before it was resumed
                await self.sessions.run(session.id, work, claimed=claimed)
            return closed[0].outcome if closed and closed[0] is not None else None
        finally:
            self._tasks.pop(session.id, None)
            self._quiet.closed(session.id)

    def running(self, session_id: str) -> bool:
        return session_id in self._tasks

    async def wait(self, session_id: str) -> str | None:
        """Wait for the session's run under way here; the outcome it closed the ticket with (``None``: no run
        under way here, or one that ended without closing it here)."""
        task = self._tasks.get(session_id)
        return await asyncio.shield(task) if task is not None else None

    async def shutdown(self) -> None:
        if self.sessions is not None:
            self.sessions.stop()  # resumes nothing more here: what this replica releases now is for the others
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    def find_external(self, psa: str, external_id: str) -> str | None:
        """Our ticket id for a PSA ticket we have already opened."""
        found = self._store.find_external(psa, external_id)
        return found.id if found else None

    async def wait_or_recover(self, ticket_id: str) -> None:
        """Wait for a ticket running here; settle one a dead process left unfinished."""
        session = await run_store(self._store, self._store.session_for, ticket_id)
        if session.id not in self._tasks and session.status in UNFINISHED and (
                self.sessions is None or await self.sessions.claim(session.id)):  # not while another replica runs it
            await self._resume(session)
        await self.wait(session.id)

    async def recover(self) -> int:
        """Resume the sessions a previous process left unfinished, each from its last persisted step."""
        if self.sessions is not None:  # only those no live replica holds, each leased here first
            return await self.sessions.recover(self._tasks, self._resume_id)
        orphans = await run_store(self._store, self._store.unfinished_sessions)
        for session in orphans:
            await self._resume(session)
        return len(orphans)

    async def _resume_id(self, session_id: str) -> None:
        await self._resume(await run_store(self._store, self._store.session, session_id))

    async def _resume(self, session: Session) -> None:
        if session.id in self._tasks:
            return

        def read() -> tuple[Ticket, Device | None]:
            ticket = self._store.ticket(session.ticket_id)
            return ticket, (self._registry.find_device(ticket.client_id, ticket.device_id) if ticket.device_id
                            else None)
        ticket, device = await run_store(self._store, read)
        if session.id in self._tasks:  # another caller resumed it while this one read (off the loop)
            return
        agent_id = session.agent_id or (device.agent_id if device else None)
        route = Route(device, agent_id, bool(agent_id and self._hub.is_online(agent_id)), "resumed after a restart")
        # started before the first await, so a second caller finds it running; the audit line is queued
        # before the run's first step can be
        self._start(ticket, session, route, resumed=True, claimed=True)
        await self._audit.record("session_resumed", client_id=session.client_id, session_id=session.id,
                                 data={"ticket_id": ticket.id, "status": session.status})


def _opened(ticket: Ticket, session: Session, actor: str) -> dict[str, Any]:
    return {"actor": actor, "client_id": ticket.client_id, "session_id": session.id,
            "data": {"ticket_id": ticket.id, "subject": ticket.subject, "requester": ticket.requester,
                     "psa": ticket.psa, "external_id": ticket.external_id}}
