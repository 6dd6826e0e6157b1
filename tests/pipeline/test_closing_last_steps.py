"""A run's last steps, written behind, go to the closing: a resolved run's are stored in the same write as its
end (one statement on PostgreSQL), an escalated run's before its observers run, because the structured hand-off
lists them. On a real store: a SQLite file, and a schema of its own on the PostgreSQL at ``TEST_POSTGRES_URL``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.private_schema import postgres_schema
from tests.store.statement_log import statements_seen

from mspclaw.connectors.base import PSATicket
from mspclaw.connectors.local import LocalPSA
from mspclaw.engine.plan import RunResult
from mspclaw.pipeline.closing import Closing, FinishedRun
from mspclaw.pipeline.notes import ReplyCheck
from mspclaw.pipeline.routing import Route
from mspclaw.pipeline.session_ports import QuietSessions
from mspclaw.playbooks.loader import load_dir
from mspclaw.settings import Settings
from mspclaw.store.tickets import StepWrite
from mspclaw.wiring import Services, build

pytestmark = pytest.mark.anyio
NO_ROUTE = Route(None, None, False, "no device")
T0 = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    if request.param == "sqlite":
        yield None
        return
    yield from postgres_schema("laststeps")


@pytest.fixture
async def services(tmp_path: Path, database_url: str | None) -> AsyncIterator[Services]:
    psa = LocalPSA([PSATicket(id="41", company="acme", requester="tom@acme.example", subject="disk", body="")])
    svc = build(Settings(data_dir=tmp_path / "data", api_key="k" * 20, database_url=database_url),
                connectors={"local": psa})
    yield svc
    svc.close()


class StepsSeen:
    """An observer that notes which steps were stored when the run's end was being written."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.at_closing: list[str] = []

    async def on_closing(self, run: FinishedRun) -> None:
        self.at_closing = [s.title for s in self.svc.store.steps(run.session.id)]

    async def on_closed(self, run: FinishedRun) -> None:
        pass


def last_steps() -> list[StepWrite]:
    return [StepWrite(title=f"step {n}", tool="disk_usage", args={}, ok=True, observation={"output": {"n": n}},
                      data={"index": n}, created_at=T0) for n in (1, 2)]


async def close(svc: Services, outcome: str) -> tuple[StepsSeen, list[str], str]:
    seen = StepsSeen(svc)
    closing = Closing(store=svc.store, runs=svc.tickets.runs, audit=svc.audit, hub=svc.hub, events=svc.events,
                      connectors={}, reply_check=ReplyCheck(), quiet=QuietSessions(), observers=[seen])
    client = svc.registry.add_client("Acme")
    t, s = svc.store.open_ticket(client_id=client.id, subject="disk full", body="", requester="tom@acme.example",
                                 device_id=None, started=True)
    book = next(b for b in load_dir() if b.id == "disk_full")
    result = RunResult(outcome=outcome, reason="done", reply="All clear.")  # type: ignore[arg-type]  # a str
    with statements_seen(*svc.db.engines) as statements:
        await closing.close(t, s, book, result, "done", NO_ROUTE, [], last_steps())
    return seen, [s for s in statements if "INSERT INTO steps" in s], s.id


async def test_a_resolved_runs_last_steps_are_stored_with_its_end(services: Services) -> None:
    seen, writes, session_id = await close(services, "resolved")
    assert seen.at_closing == []  # not yet: they go with the end
    assert [s.title for s in services.store.steps(session_id)] == ["step 1", "step 2"]
    events = [(e.seq, e.event) for e in services.events.history(session_id)]
    assert events[-3:] == [(2, "step"), (3, "step"), (4, "final_answer")]  # in order, the end last
    assert [(e.seq, e.event) for e in services.store.events(session_id)][-3:] == events[-3:]
    if services.engine.dialect.name == "postgresql":
        assert len(writes) == 1 and "UPDATE sessions" in writes[0], writes  # the steps and the end: one statement


async def test_an_escalated_runs_last_steps_are_stored_before_its_observers_run(services: Services) -> None:
    seen, _, session_id = await close(services, "escalated")
    assert seen.at_closing == ["step 1", "step 2"]  # the hand-off lists what was tried
    events = [(e.seq, e.event) for e in services.events.history(session_id)]
    assert events[-3:] == [(2, "step"), (3, "step"), (4, "escalation")]
