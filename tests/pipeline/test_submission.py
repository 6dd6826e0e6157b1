"""Submissions: a ticket opened is stored, audited and started; one outside the caller's clients is
refused with nothing stored; what a stopped process left unfinished is resumed once, audited."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from mspclaw.errors import Conflict, NotFound
from mspclaw.pipeline.routing import Route
from mspclaw.pipeline.session_ports import QuietSessions
from mspclaw.pipeline.submission import Submissions
from mspclaw.settings import Settings
from mspclaw.store.tables import Session, Ticket
from mspclaw.wiring import Services, build

pytestmark = pytest.mark.anyio


class HeldRun:
    """The runner: records what it was given and holds each run until released."""

    def __init__(self) -> None:
        self.started: list[tuple[str, bool, str]] = []
        self.release = asyncio.Event()

    async def process(self, ticket: Ticket, session: Session, route: Route, *, resumed: bool = False) -> None:
        self.started.append((ticket.id, resumed, route.reason))
        await self.release.wait()


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    svc = build(Settings(data_dir=tmp_path / "data", api_key="k" * 20))
    yield svc
    svc.close()


def submissions(svc: Services, run: HeldRun, quiet: QuietSessions | None = None) -> Submissions:
    return Submissions(registry=svc.registry, store=svc.store, router=svc.router, events=svc.events,
                       audit=svc.audit, hub=svc.hub, run=run, quiet=quiet or QuietSessions())


async def test_a_submitted_ticket_is_stored_audited_and_started(services: Services) -> None:
    client = services.registry.add_client("Acme Dental")
    run, quiet = HeldRun(), QuietSessions()
    subs = submissions(services, run, quiet)
    sub = await subs.submit(client=client.id, subject="disk full", body="no space", requester="tom@acme.example",
                            device=None, actor="tester")
    assert services.store.ticket(sub.ticket.id).subject == "disk full"
    (opened,) = services.audit.query(kind="ticket_opened")
    assert (opened.actor, opened.session_id, opened.data["ticket_id"]) == ("tester", sub.session.id, sub.ticket.id)
    assert [e.event for e in services.events.history(sub.session.id)] == ["started"]
    await asyncio.sleep(0)
    assert [(ticket_id, resumed) for ticket_id, resumed, _ in run.started] == [(sub.ticket.id, False)]
    assert subs.running(sub.session.id) and sub.session.id in quiet
    run.release.set()
    await subs.wait(sub.session.id)
    assert not subs.running(sub.session.id) and sub.session.id not in quiet  # forgotten with its run


async def test_a_ticket_outside_the_callers_clients_or_without_a_subject_is_refused(services: Services) -> None:
    mine, theirs = services.registry.add_client("Acme Dental"), services.registry.add_client("Beta Law")
    run = HeldRun()
    subs = submissions(services, run)
    with pytest.raises(NotFound):
        await subs.submit(client=theirs.id, subject="disk full", body="", requester="", device=None,
                          scope=[mine.id])
    with pytest.raises(Conflict):
        await subs.submit(client=mine.id, subject="  ", body="", requester="", device=None, scope=[mine.id])
    assert services.store.tickets() == [] and run.started == []
    assert services.audit.query(kind="ticket_opened") == []


async def test_a_client_row_the_caller_just_read_is_not_read_again_and_still_scoped(services: Services) -> None:
    """PSA intake found the client by the PSA's company: ``submit(client=row)`` opens the ticket for it without
    reading the client again, and the scope still applies to it."""
    mine, theirs = services.registry.add_client("Acme Dental"), services.registry.add_client("Beta Law")
    run = HeldRun()
    subs = submissions(services, run)
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        statements.append(" ".join(statement.split()))

    event.listen(services.engine, "before_cursor_execute", seen)
    try:
        with pytest.raises(NotFound):
            await subs.submit(client=theirs, subject="disk full", body="", requester="", device=None, scope=[mine.id])
        sub = await subs.submit(client=mine, subject="disk full", body="no space", requester="tom@acme.example",
                                device=None, scope=[mine.id])
    finally:
        event.remove(services.engine, "before_cursor_execute", seen)
    assert not [s for s in statements if "FROM clients" in s], statements
    assert services.store.ticket(sub.ticket.id).client_id == mine.id
    assert [t.id for t in services.store.tickets()] == [sub.ticket.id]
    run.release.set()
    await subs.wait(sub.session.id)


async def test_unfinished_sessions_are_resumed_once_and_audited(services: Services) -> None:
    client = services.registry.add_client("Acme Dental")
    left, _ = services.store.open_ticket(client_id=client.id, subject="printer", body="", requester="",
                                         device_id=None)
    done, done_session = services.store.open_ticket(client_id=client.id, subject="disk", body="", requester="",
                                                    device_id=None)
    services.store.update_session(done_session.id, status="resolved", outcome="resolved")
    run = HeldRun()
    subs = submissions(services, run)
    assert await subs.recover() == 1
    await subs.wait_or_recover(done.id)  # finished: nothing to resume
    waiting = asyncio.create_task(subs.wait_or_recover(left.id))  # already running here: waits, never twice
    await asyncio.sleep(0.05)
    assert run.started == [(left.id, True, "resumed after a restart")]
    (resumed,) = services.audit.query(kind="session_resumed")
    assert resumed.data == {"ticket_id": left.id, "status": "running"}
    run.release.set()
    await waiting
    await subs.shutdown()
