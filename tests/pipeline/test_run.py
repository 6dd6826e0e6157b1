"""A ticket's run up to the engine: where it cannot go on (nothing fits, no device, no site agent, a
playbook gone since a restart, an internal error) it ends in the closing with the reason, never in
silence, and the match it made is announced first."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from mspclaw.pipeline.closing import Closing, FinishedRun
from mspclaw.pipeline.notes import ReplyCheck
from mspclaw.pipeline.routing import Route
from mspclaw.pipeline.run import TicketRun
from mspclaw.pipeline.session_ports import QuietSessions
from mspclaw.playbooks.loader import load_dir
from mspclaw.playbooks.schema import Playbook
from mspclaw.settings import Settings
from mspclaw.store.tables import Device, Session, Ticket
from mspclaw.wiring import Services, build

pytestmark = pytest.mark.anyio
NO_ROUTE = Route(None, None, False, "no device named in the ticket")


class Closed:
    """The run's last observer: what each closed run ended with."""

    def __init__(self) -> None:
        self.runs: list[FinishedRun] = []

    async def on_closing(self, run: FinishedRun) -> None:
        pass

    async def on_closed(self, run: FinishedRun) -> None:
        self.runs.append(run)


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    svc = build(Settings(data_dir=tmp_path / "data", api_key="k" * 20))
    yield svc
    svc.close()


def ticket_run(svc: Services, closed: Closed, playbooks: list[Playbook] | None = None) -> TicketRun:
    quiet = QuietSessions()
    closing = Closing(store=svc.store, runs=svc.tickets.runs, audit=svc.audit, hub=svc.hub, events=svc.events,
                      connectors={}, reply_check=ReplyCheck(), quiet=quiet, observers=[closed])
    return TicketRun(store=svc.store, runs=svc.tickets.runs, audit=svc.audit, hub=svc.hub, router=svc.router,
                     events=svc.events, approvals=svc.approvals, questions=svc.tickets.questions,
                     learning=svc.staff.learning, handover=svc.tickets.handover, closing=closing, quiet=quiet,
                     playbooks=load_dir() if playbooks is None else playbooks, connectors={}, model=None)


def ticket(svc: Services, subject: str, body: str = "") -> tuple[Ticket, Session]:
    client = svc.registry.add_client(f"Acme {len(svc.registry.clients())}")
    return svc.store.open_ticket(client_id=client.id, subject=subject, body=body, requester="tom@acme.example",
                                 device_id=None, started=True)


def enrolled_device(svc: Services, client_id: str) -> Device:
    issued = svc.registry.issue_code(client_id, ttl=timedelta(hours=1))
    agent = svc.registry.enroll(issued.code, hostname="pc-7", os="linux", os_version="", agent_version="",
                                tools=[]).agent
    return next(d for d in svc.registry.devices(client_id) if d.agent_id == agent.id)


def events(svc: Services, session: Session) -> list[str]:
    return [e.event for e in svc.events.history(session.id)]


async def test_a_ticket_nothing_fits_is_announced_unmatched_and_escalated(services: Services) -> None:
    closed = Closed()
    t, s = ticket(services, "Quarterly sales figures for the board", "Please prepare the slides by Friday")
    device = enrolled_device(services, t.client_id)
    await ticket_run(services, closed).process(t, s, Route(device, device.agent_id, False, "asset"))
    (run,) = closed.runs
    assert run.outcome == "escalated" and run.reason.startswith("no playbook fits") and run.playbook is None
    matched = next(e for e in services.events.history(s.id) if e.event == "matched")
    assert matched.data["playbook"] is None
    assert services.store.session(s.id).outcome == "escalated"


async def test_a_device_playbook_without_a_device_cannot_route(services: Services) -> None:
    closed = Closed()
    t, s = ticket(services, "Disk full", "no space left on my laptop")
    await ticket_run(services, closed).process(t, s, NO_ROUTE)
    (run,) = closed.runs
    assert run.reason == "cannot route: no device named in the ticket"
    assert "matched" not in events(services, s)  # nowhere to run it: nothing announced


async def test_an_account_playbook_without_a_site_agent_closes_with_the_routers_reason(services: Services) -> None:
    closed = Closed()
    t, s = ticket(services, "Password expired, need a reset", "I cannot log in, my password expired")
    await ticket_run(services, closed).process(t, s, NO_ROUTE)
    (run,) = closed.runs
    assert run.playbook is not None and run.playbook.id == "password_reset"
    assert run.outcome == "escalated" and "site agent" in run.reason
    assert "matched" in events(services, s)


async def test_a_resumed_run_whose_playbook_is_gone_escalates(services: Services) -> None:
    closed = Closed()
    t, s = ticket(services, "Disk full")
    services.store.update_session(s.id, playbook="retired_book")
    await ticket_run(services, closed).process(t, services.store.session(s.id), NO_ROUTE, resumed=True)
    (run,) = closed.runs
    assert run.reason == "playbook retired_book is no longer installed; resume impossible"
    assert events(services, s)[:2] == ["started", "resumed"]


async def test_an_internal_error_escalates_with_its_reason(services: Services) -> None:
    closed = Closed()
    disk = next(b for b in load_dir() if b.id == "disk_full")
    bad_step = disk.steps[0].model_copy(update={"tool": "no_such_tool", "required": True})
    broken = disk.model_copy(update={"steps": [bad_step, *disk.steps[1:]]})  # edited after loading
    t, s = ticket(services, "Disk full", "no space left on my laptop")
    await ticket_run(services, closed, [broken]).process(t, s, NO_ROUTE)
    (run,) = closed.runs
    assert run.reason.startswith("internal error: UnknownTool") and run.outcome == "escalated"
    assert services.store.session(s.id).outcome == "escalated"
