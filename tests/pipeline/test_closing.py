"""The closing of a run: the note and reply its observers amend are the ones stored, written to the PSA
ticket and announced; a failed write-back is audited; whatever the run asked that is still pending
expires; a model's reply that carries a foreign link is replaced by the playbook's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from mspclaw.connectors.base import PSANote, PSATicket
from mspclaw.connectors.local import LocalPSA
from mspclaw.engine.plan import RunResult
from mspclaw.pipeline.closing import Closing, FinishedRun, RunObserver
from mspclaw.pipeline.notes import ReplyCheck
from mspclaw.pipeline.routing import Route
from mspclaw.pipeline.session_ports import QuietSessions
from mspclaw.playbooks.loader import load_dir
from mspclaw.settings import Settings
from mspclaw.store.tables import Session, Ticket, utcnow
from mspclaw.wiring import Services, build

pytestmark = pytest.mark.anyio
NO_ROUTE = Route(None, None, False, "no device")


class Recording:
    """An observer that amends the words and notes what it saw, and when."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.seen: list[tuple[str, str | None]] = []

    async def on_closing(self, run: FinishedRun) -> None:
        self.seen.append(("closing", self.svc.store.session(run.session.id).outcome))
        run.note += "\nAmended: yes"
        run.reply += "\nP.S."

    async def on_closed(self, run: FinishedRun) -> None:
        self.seen.append(("closed", self.svc.store.session(run.session.id).outcome))


@pytest.fixture
def psa() -> LocalPSA:
    return LocalPSA([PSATicket(id="41", company="acme", requester="tom@acme.example", subject="disk", body="")])


@pytest.fixture
async def services(tmp_path: Path, psa: LocalPSA) -> AsyncIterator[Services]:
    svc = build(Settings(data_dir=tmp_path / "data", api_key="k" * 20), connectors={"local": psa})
    yield svc
    svc.close()


def closing(svc: Services, psa: LocalPSA, observers: list[RunObserver], quiet: QuietSessions | None = None) -> Closing:
    return Closing(store=svc.store, runs=svc.tickets.runs, audit=svc.audit, hub=svc.hub, events=svc.events,
                   connectors={"local": psa}, reply_check=ReplyCheck(["https://help.msp.example"]),
                   quiet=quiet or QuietSessions(), observers=observers)


def ticket(svc: Services, external_id: str = "41") -> tuple[Ticket, Session]:
    client = svc.registry.add_client(f"Acme {external_id}")
    return svc.store.open_ticket(client_id=client.id, subject="disk full", body="", requester="tom@acme.example",
                                 device_id=None, psa="local", external_id=external_id)


async def test_observers_amend_the_words_before_they_are_stored_and_see_the_close_after(
        services: Services, psa: LocalPSA) -> None:
    observer = Recording(services)
    t, s = ticket(services)
    run = await closing(services, psa, [observer]).close(t, s, None, None, "cannot route: no device", NO_ROUTE, [])
    assert observer.seen == [("closing", None), ("closed", "escalated")]
    stored = services.store.session(s.id)
    assert (stored.note, stored.reply) == (run.note, run.reply)
    assert run.note.endswith("Amended: yes") and run.reply.endswith("P.S.")
    psa_ticket = await psa.get_ticket("41")
    assert psa_ticket.notes == [PSANote(run.note, False), PSANote(run.reply, True)]
    assert psa_ticket.status == "escalated"
    assert services.events.history(s.id)[-1].data["note"] == run.note
    (written,) = services.audit.query(kind="note_written")
    assert written.data["note"] == run.note


async def test_a_failed_write_back_is_audited_and_the_close_stands(services: Services, psa: LocalPSA) -> None:
    t, s = ticket(services, external_id="404")  # the PSA has no such ticket
    await closing(services, psa, []).close(t, s, None, None, "cannot route: no device", NO_ROUTE, [])
    assert services.store.session(s.id).outcome == "escalated"
    (failed,) = services.audit.query(kind="psa_writeback_failed")
    assert failed.data["ticket_id"] == t.id and failed.data["psa"] == "local"


async def test_what_a_run_asked_and_left_pending_expires_at_its_close(services: Services, psa: LocalPSA) -> None:
    t, s = ticket(services)
    runs = services.tickets.runs
    question = runs.add_question(session_id=s.id, client_id=t.client_id, call_id=None, text="Which printer?",
                                 choices=None, channel="api", deadline=utcnow() + timedelta(minutes=5))
    quiet = QuietSessions()
    quiet.opened(s.id)
    quiet.asked(s.id)
    await closing(services, psa, [], quiet).close(t, s, None, None, "cannot route: no device", NO_ROUTE, [])
    assert runs.question(question.id).status == "expired"


async def test_a_model_reply_with_a_foreign_link_is_replaced_by_the_playbooks(
        services: Services, psa: LocalPSA) -> None:
    book = next(b for b in load_dir() if b.id == "disk_full")
    t, s = ticket(services)
    result = RunResult(outcome="resolved", reason="freed 2 GB",
                       reply="All done! Check https://evil.example/login to confirm.")
    run = await closing(services, psa, []).close(t, s, book, result, result.reason, NO_ROUTE, [])
    assert "evil.example" not in run.reply and services.store.session(s.id).reply == run.reply
    assert "the assistant's reply was not sent" in run.note
    assert services.store.session(s.id).outcome == "resolved"
