"""A decision or an answer taken on another replica reaches the session waiting for it: two servers'
services built on one real SQLite database file, with no Redis between them, so the waiting replica can only
learn of it from the stored row (re-read at least every ``RECHECK_S``): a lost broadcast delays the run, never
loses it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from mspclaw.pipeline import approvals as approvals_module
from mspclaw.pipeline import questions as questions_module
from mspclaw.settings import Settings
from mspclaw.store.database import Database
from mspclaw.store.runs import RunStore
from mspclaw.wiring import build

pytestmark = pytest.mark.anyio


async def test_a_decision_on_another_replica_wakes_the_waiting_session(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(approvals_module, "RECHECK_S", 0.2)
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    a = build(Settings(data_dir=tmp_path / "a", api_key="k" * 20, database_url=url, approval_timeout_s=60))
    b = build(Settings(data_dir=tmp_path / "b", api_key="k" * 20, database_url=url, approval_timeout_s=60))
    try:
        client = a.registry.add_client("Acme Dental")
        ticket, session = a.store.open_ticket(client_id=client.id, subject="disk full", body="",
                                              requester="maria@acme.example", device_id=None)
        waiting = asyncio.create_task(a.approvals.request(
            session_id=session.id, client_id=client.id, ticket_id=ticket.id, target="pc-17", tool="clear_temp_files",
            args={"older_than_days": 7}, reason="free space", call_id="call_1", agent_id="ag_1"))
        for _ in range(200):
            pending = b.store.approvals(None, status="pending")
            if pending:
                break
            await asyncio.sleep(0.02)
        (row,) = pending
        started = time.monotonic()
        await b.approvals.decide_async(row.id, approve=True, approver="Dana Scully", reason="ok", scope=None)
        grant = await asyncio.wait_for(waiting, 5)
        assert grant.approval_id == row.id and grant.approver == "Dana Scully"
        assert time.monotonic() - started < 2  # well before the 60 s deadline
    finally:
        a.close()
        b.close()


async def test_an_answer_relayed_on_another_replica_reaches_the_waiting_question(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(questions_module, "RECHECK_S", 0.2)
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    a = build(Settings(data_dir=tmp_path / "a", api_key="k" * 20, database_url=url, question_timeout_s=60))
    b = build(Settings(data_dir=tmp_path / "b", api_key="k" * 20, database_url=url, question_timeout_s=60))
    try:
        client = a.registry.add_client("Acme Dental")
        ticket, session = a.store.open_ticket(client_id=client.id, subject="printer", body="",
                                              requester="maria@acme.example", device_id=None)
        asking = asyncio.create_task(a.tickets.questions.ask(
            ticket=ticket, session=session, agent_id=None, call_id="call_q1", text="Which floor is the printer on?",
            choices=None))
        for _ in range(200):
            pending = RunStore(Database(b.engine)).questions(session.id, status="pending")
            if pending:
                break
            await asyncio.sleep(0.02)
        (question,) = pending
        await b.tickets.questions.answer_async(question.id, "the second", by="Maria (by phone, via Dana)",
                                               scope=None)
        assert await asyncio.wait_for(asking, 5) == "the second"
    finally:
        a.close()
        b.close()
