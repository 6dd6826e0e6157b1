"""A ticket matched where it is opened: when its ``matched`` event needs nothing more (no model triage, a
place to run), it is stored with the open (``seq`` 2, the session's playbook set) and the run announces it
no second time; otherwise the run matches and announces as before. A session resumed after a restart
runs the playbook stored with its open."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.pipeline.test_run import Closed, enrolled_device, events, ticket_run

from mspclaw.pipeline.run import TicketRun
from mspclaw.pipeline.session_ports import QuietSessions
from mspclaw.pipeline.submission import Submissions
from mspclaw.settings import Settings
from mspclaw.wiring import Services, build

pytestmark = pytest.mark.anyio


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    svc = build(Settings(data_dir=tmp_path / "data", api_key="k" * 20))
    yield svc
    svc.close()


def submissions(svc: Services, run: TicketRun) -> Submissions:
    return Submissions(registry=svc.registry, store=svc.store, router=svc.router, events=svc.events,
                       audit=svc.audit, hub=svc.hub, run=run, quiet=QuietSessions())


async def test_a_playbook_that_can_run_is_announced_with_the_open_and_only_then(services: Services) -> None:
    closed = Closed()
    subs = submissions(services, ticket_run(services, closed))
    client = services.registry.add_client("Acme Dental")
    sub = await subs.submit(client=client.id, subject="Password expired, need a reset",
                            body="I cannot log in, my password expired", requester="tom@acme.example", device=None)
    # stored by the open itself: the run has not started yet
    assert [(e.seq, e.event) for e in services.events.history(sub.session.id)] == [(1, "started"), (2, "matched")]
    assert services.events.history(sub.session.id)[1].data["playbook"] == "password_reset"
    assert (services.store.session(sub.session.id).playbook, sub.session.playbook) == ("password_reset",) * 2
    assert await subs.wait(sub.session.id) == "escalated"
    (run,) = closed.runs
    assert run.playbook is not None and run.playbook.id == "password_reset" and "site agent" in run.reason
    assert events(services, sub.session).count("matched") == 1


async def test_nothing_fitting_on_a_device_is_announced_with_the_open_and_escalated(services: Services) -> None:
    closed = Closed()
    subs = submissions(services, ticket_run(services, closed))
    client = services.registry.add_client("Acme Dental")
    enrolled_device(services, client.id)
    sub = await subs.submit(client=client.id, subject="Quarterly sales figures for the board",
                            body="Please prepare the slides by Friday", requester="tom@acme.example", device="pc-7")
    assert events(services, sub.session) == ["started", "matched"]
    assert services.events.history(sub.session.id)[1].data["playbook"] is None
    assert await subs.wait(sub.session.id) == "escalated"
    (run,) = closed.runs
    assert run.reason.startswith("no playbook fits") and run.playbook is None
    assert events(services, sub.session).count("matched") == 1


async def test_nowhere_to_run_it_is_neither_announced_at_the_open_nor_later(services: Services) -> None:
    closed = Closed()
    subs = submissions(services, ticket_run(services, closed))
    client = services.registry.add_client("Acme Dental")
    sub = await subs.submit(client=client.id, subject="Disk full", body="no space left on my laptop",
                            requester="tom@acme.example", device=None)
    assert events(services, sub.session) == ["started"]
    await subs.wait(sub.session.id)
    (run,) = closed.runs
    assert run.reason.startswith("cannot route") and "matched" not in events(services, sub.session)


async def test_a_session_matched_at_its_open_resumes_with_that_playbook(services: Services) -> None:
    """A process that stopped right after the open: the session resumed runs the playbook stored with it,
    and announces no second match."""
    closed = Closed()
    run = ticket_run(services, closed)
    client = services.registry.add_client("Acme Dental")
    subs = submissions(services, run)
    sub = await subs.submit(client=client.id, subject="Password expired, need a reset",
                            body="I cannot log in, my password expired", requester="tom@acme.example", device=None)
    await subs.wait(sub.session.id)
    services.store.update_session(sub.session.id, status="running", outcome=None)  # as if it had stopped there
    closed.runs.clear()
    resumed = Submissions(registry=services.registry, store=services.store, router=services.router,
                          events=services.events, audit=services.audit, hub=services.hub,
                          run=ticket_run(services, closed), quiet=QuietSessions())
    assert await resumed.recover() == 1
    await resumed.wait(sub.session.id)
    (again,) = closed.runs
    assert again.playbook is not None and again.playbook.id == "password_reset"
    assert events(services, sub.session).count("matched") == 1 and "resumed" in events(services, sub.session)
