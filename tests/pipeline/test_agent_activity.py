"""What the hub reports of live agents is kept: a protocol violation in the audit trail (written from
the event loop without blocking it), a user's answer to a question of the agent's own client, never
to another client's."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from mspclaw.dispatch import AgentIdentity
from mspclaw.errors import MalformedFrame
from mspclaw.protocol.frames import UserAnswer
from mspclaw.settings import Settings
from mspclaw.store.tables import QuestionRow, utcnow
from mspclaw.wiring import Services, build

pytestmark = pytest.mark.anyio


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    svc = build(Settings(data_dir=tmp_path / "data", api_key="k" * 20))
    yield svc
    await svc.activity.aclose()
    svc.close()


def pending_question(svc: Services, client_name: str) -> QuestionRow:
    client = svc.registry.add_client(client_name)
    _, session = svc.store.open_ticket(client_id=client.id, subject="printer", body="", requester="", device_id=None)
    return svc.tickets.runs.add_question(session_id=session.id, client_id=client.id, call_id=None,
                                         text="Which printer?", choices=None, channel="agent",
                                         deadline=utcnow() + timedelta(minutes=5))


async def test_a_protocol_violation_is_audited(services: Services) -> None:
    identity = AgentIdentity("ag_1", "cl_1", "device", b"k" * 32)
    services.activity.violation(identity, MalformedFrame("not JSON"))
    await services.activity.drain()
    (event,) = services.audit.query(kind="protocol_error")
    assert (event.actor, event.client_id, event.data["message"]) == ("ag_1", "cl_1", "not JSON")


async def test_an_answer_from_a_device_settles_only_its_own_clients_question(services: Services) -> None:
    mine, theirs = pending_question(services, "Acme Dental"), pending_question(services, "Beta Law")
    identity = AgentIdentity("ag_1", mine.client_id, "device", b"k" * 32)
    services.activity.frame(identity, UserAnswer(question_id=theirs.id, answer="the one by the door"))
    services.activity.frame(identity, UserAnswer(question_id=mine.id, answer="the one by the door"))
    await services.activity.drain()
    runs = services.tickets.runs
    assert runs.question(theirs.id).status == "pending"
    answered = runs.question(mine.id)
    assert (answered.status, answered.answer, answered.answered_by) == (
        "answered", "the one by the door", "end user on ag_1")
    (event,) = services.audit.query(kind="question_answered")
    assert event.data == {"question_id": mine.id}


async def test_an_enrollment_code_issued_from_the_event_loop_is_audited(services: Services) -> None:
    client = services.registry.add_client("Acme Dental")
    issued = await services.fleet.issue_code_async(client.id, role="site", ttl_hours=1, actor="demo")
    (event,) = services.audit.query(kind="enrollment_issued")
    assert (event.actor, event.client_id, event.data["role"]) == ("demo", client.id, "site")
    enrolled = await asyncio.to_thread(  # as the enrollment route does: a sync route runs on a worker thread
        functools.partial(services.fleet.enroll, issued.code, remote="127.0.0.1", hostname="site-1", os="linux",
                          os_version="", agent_version="", tools=[]))
    assert enrolled.agent.role == "site"
