"""The session's ports, built from explicit dependencies: a question device memory already answers is
not asked again (and the session counts as having asked); a session that asked nothing stays quiet
until it closes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from mspclaw.engine.plan import PlanQuestion
from mspclaw.pipeline.durable import CallLedger
from mspclaw.pipeline.handover import Recipient
from mspclaw.pipeline.session_ports import QuietSessions, RunContext, SessionQuestions
from mspclaw.settings import Settings
from mspclaw.wiring import Services, build

pytestmark = pytest.mark.anyio


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    svc = build(Settings(data_dir=tmp_path / "data", api_key="k" * 20))
    yield svc
    svc.close()


def test_a_session_is_quiet_until_it_asks_and_forgotten_when_it_closes() -> None:
    quiet = QuietSessions()
    quiet.opened("s1")
    quiet.opened("s2")
    quiet.asked("s2")
    assert "s1" in quiet and "s2" not in quiet
    assert quiet.closed("s1") is True and quiet.closed("s2") is False
    assert "s1" not in quiet and quiet.closed("s1") is False


async def test_a_question_device_memory_answers_is_not_asked_again(services: Services) -> None:
    client = services.registry.add_client("Acme Dental")
    issued = services.registry.issue_code(client.id, ttl=timedelta(hours=1))
    agent = services.registry.enroll(issued.code, hostname="pc-7", os="linux", os_version="", agent_version="",
                                     tools=[]).agent
    device = next(d for d in services.registry.devices(client.id) if d.agent_id == agent.id)
    await services.staff.learning.record(device.id, {"location": "2nd floor"}, source="answer:location",
                                         client_id=client.id)
    ticket, session = services.store.open_ticket(client_id=client.id, subject="printer", body="",
                                                 requester="tom@acme.example", device_id=device.id)
    quiet = QuietSessions()
    quiet.opened(session.id)
    ctx = RunContext(ticket, session, device.id, agent.id, CallLedger(session.id, fresh=True),
                     Recipient(client_id=client.id, device_agent_id=None, device_name=None, psa=None,
                               external_id=None), quiet)
    floor = PlanQuestion(fact="location", text="Which floor is your desk on?")
    questions = SessionQuestions(ctx, questions=services.tickets.questions, runs=services.tickets.runs,
                                 learning=services.staff.learning, playbook_questions={"location": floor})
    assert await questions.ask("Which floor is your desk on?", None) == "2nd floor"
    (row,) = services.tickets.runs.questions(session.id)
    assert (row.status, row.answer) == ("reused", "2nd floor")
    assert session.id not in quiet  # it asked: at its close, what it asked is looked for
    (skipped,) = services.audit.query(kind="question_skipped")
    assert skipped.session_id == session.id
