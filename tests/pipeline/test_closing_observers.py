"""What a finished run sets off: an escalated run becomes a structured escalation; a resolved one asks
"did it work?"; a model's run leaves its tokens and cost. The composition root wires all of them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mspclaw.connectors.local import LocalPSA
from mspclaw.engine.models.function import FunctionModel, answer
from mspclaw.engine.plan import RunResult
from mspclaw.errors import NotFound
from mspclaw.pipeline.closing import Closing, RunObserver
from mspclaw.pipeline.closing_observers import AskFeedbackOnClose, EscalateOnClose, RecordUsageOnClose
from mspclaw.pipeline.notes import ReplyCheck
from mspclaw.pipeline.routing import Route
from mspclaw.pipeline.session_ports import QuietSessions
from mspclaw.settings import Settings
from mspclaw.store.tables import Session, Ticket
from mspclaw.wiring import Services, build

pytestmark = pytest.mark.anyio
NO_ROUTE = Route(None, None, False, "no device")
RESOLVED = RunResult(outcome="resolved", reason="freed 2 GB", reply="Your disk has room again.")


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    svc = build(Settings(data_dir=tmp_path / "data", api_key="k" * 20))
    yield svc
    await svc.staff.feedback.aclose()
    await svc.staff.notifier.aclose()
    svc.close()


def closing(svc: Services, observers: list[RunObserver]) -> Closing:
    return Closing(store=svc.store, runs=svc.tickets.runs, audit=svc.audit, hub=svc.hub, events=svc.events,
                   connectors={}, reply_check=ReplyCheck(), quiet=QuietSessions(), observers=observers)


def ticket(svc: Services) -> tuple[Ticket, Session]:
    client = svc.registry.add_client(f"Acme {len(svc.registry.clients())}")
    return svc.store.open_ticket(client_id=client.id, subject="disk full", body="", requester="tom@acme.example",
                                 device_id=None)


async def test_an_escalated_run_becomes_a_structured_escalation_and_a_resolved_one_does_not(
        services: Services) -> None:
    observer = EscalateOnClose(services.staff.escalations)
    t, s = ticket(services)
    run = await closing(services, [observer]).close(t, s, None, None, "cannot route: no device", NO_ROUTE, [])
    (row,) = services.staff.escalation_store.escalations(None, ticket_id=t.id, limit=10)
    assert row.kind == "unknown_device" and run.note.startswith("MSPclaw: ESCALATED (unknown device)")
    assert services.store.session(s.id).note == run.note
    t2, s2 = ticket(services)
    await closing(services, [observer]).close(t2, s2, None, RESOLVED, RESOLVED.reason, NO_ROUTE, [])
    assert services.staff.escalation_store.escalations(None, ticket_id=t2.id, limit=10) == []


async def test_a_resolved_run_asks_whether_it_worked(services: Services) -> None:
    feedback = services.staff.feedback
    observer = AskFeedbackOnClose(feedback)
    t, s = ticket(services)
    run = await closing(services, [observer]).close(t, s, None, RESOLVED, RESOLVED.reason, NO_ROUTE, [])
    assert run.reply.endswith(feedback.question) and services.store.session(s.id).reply == run.reply
    assert feedback.store.for_ticket(t.id).status == "pending"
    t2, s2 = ticket(services)
    run = await closing(services, [observer]).close(t2, s2, None, None, "cannot route: no device", NO_ROUTE, [])
    assert feedback.question not in run.reply
    with pytest.raises(NotFound):
        feedback.store.for_ticket(t2.id)


async def test_a_models_run_leaves_its_tokens_and_cost(services: Services) -> None:
    model = FunctionModel(lambda messages, tools: answer("done"), name="openai:gpt-test", price_per_mtok=(2.0, 8.0))
    observer = RecordUsageOnClose(services.tickets.runs, services.staff.usage, model)
    t, s = ticket(services)
    services.tickets.runs.add_turn(s.id, 1, model=model.name, response={}, prompt_tokens=1000, completion_tokens=500)
    await closing(services, [observer]).close(t, s, None, RESOLVED, RESOLVED.reason, NO_ROUTE, [])
    t2, s2 = ticket(services)  # the engine never ran: nothing spent, nothing recorded
    await closing(services, [observer]).close(t2, s2, None, None, "cannot route: no device", NO_ROUTE, [])
    spent = {o.ticket_id: (o.model, o.tokens, round(o.cost_usd, 9)) for o in services.staff.stats.outcomes(None)}
    assert spent[t.id] == ("openai:gpt-test", 1500, 0.006)
    assert spent[t2.id][1:] == (0, 0.0)


async def test_the_composition_root_wires_every_observer(tmp_path: Path) -> None:
    """A pipeline built by wiring escalates, asks for feedback and, with a model, records its usage."""
    without = build(Settings(data_dir=tmp_path / "a", api_key="k" * 20))
    model = FunctionModel(lambda messages, tools: answer("done"))
    with_model = build(Settings(data_dir=tmp_path / "b", api_key="k" * 20), model=model,
                       connectors={"local": LocalPSA()})
    try:
        assert [type(o) for o in without.tickets.run.closing.observers] == [EscalateOnClose, AskFeedbackOnClose]
        assert [type(o) for o in with_model.tickets.run.closing.observers] == [
            EscalateOnClose, AskFeedbackOnClose, RecordUsageOnClose]
        assert with_model.hub.observer is with_model.activity
    finally:
        without.close()
        with_model.close()
