"""The durable-run store on SQLite and PostgreSQL: turns in order, token totals, questions settled once."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from mspclaw.errors import Conflict, NotFound
from mspclaw.store.database import Database
from mspclaw.store.registry import Registry
from mspclaw.store.runs import RunStore
from mspclaw.store.tables import utcnow
from mspclaw.store.tickets import TicketStore


def opened(engine: Engine) -> tuple[RunStore, TicketStore, str, str]:
    store_db = Database(engine)
    client = Registry(store_db).add_client("Acme")
    store = TicketStore(store_db)
    _, session = store.open_ticket(client_id=client.id, subject="s", body="", requester="", device_id=None)
    return RunStore(store_db), store, client.id, session.id


def test_turns_replay_in_order_and_tokens_add_up(engine: Engine) -> None:
    runs, _, _, session_id = opened(engine)
    assert runs.token_totals(session_id) == (0, 0)
    for seq in (1, 2, 3):
        runs.add_turn(session_id, seq, model="openai:gpt", response={"kind": "response", "parts": [], "n": seq},
                      prompt_tokens=100 * seq, completion_tokens=seq)
    assert [t.response["n"] for t in runs.turns(session_id)] == [1, 2, 3]
    assert runs.token_totals(session_id) == (600, 6)
    with pytest.raises(Conflict, match=r"turn 2 of session .* is already stored"):
        runs.add_turn(session_id, 2, model="x", response={}, prompt_tokens=0, completion_tokens=0)


def test_an_approval_and_a_question_are_found_by_their_call_id(engine: Engine) -> None:
    runs, store, client_id, session_id = opened(engine)
    call_id = f"call_{session_id}_1"
    assert runs.approval_for_call(call_id) is None and runs.question_for_call(call_id) is None
    row = store.request_approval(session_id=session_id, client_id=client_id, tool="clear_temp_files", args={},
                                 target="pc", reason="r", deadline=utcnow() + timedelta(minutes=5), call_id=call_id)
    found = runs.approval_for_call(call_id)
    assert found is not None and found.id == row.id


def test_a_question_is_settled_once_even_under_a_race(engine: Engine) -> None:
    runs, _, client_id, session_id = opened(engine)
    question = runs.add_question(session_id=session_id, client_id=client_id, call_id="c1", text="Is it on?",
                                 choices=["yes", "no"], channel="agent", deadline=utcnow() + timedelta(minutes=1))
    results: list[object] = []

    def answer(text: str) -> None:
        try:
            results.append(runs.settle_question(question.id, status="answered", answer=text, answered_by=text))
        except Conflict as exc:
            results.append(exc)

    threads = [threading.Thread(target=answer, args=(f"user{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(isinstance(r, Conflict) for r in results) == 3
    settled = runs.question(question.id)
    assert settled.status == "answered" and settled.answer == settled.answered_by
    assert runs.questions(session_id, status="pending") == []
    with pytest.raises(NotFound):
        runs.question(question.id, scope=["cl_other"])


def test_what_a_closing_session_still_has_pending_is_its_own_undecided_approvals_and_questions(
        engine: Engine) -> None:
    runs, store, client_id, session_id = opened(engine)
    _, other = store.open_ticket(client_id=client_id, subject="other", body="", requester="", device_id=None)
    deadline = utcnow() + timedelta(minutes=5)
    mine = [store.request_approval(session_id=session_id, client_id=client_id, tool="clear_temp_files", args={},
                                   target="pc", reason="r", deadline=deadline) for _ in range(2)]
    store.request_approval(session_id=other.id, client_id=client_id, tool="clear_temp_files", args={},
                           target="pc", reason="r", deadline=deadline)
    asked = [runs.add_question(session_id=sid, client_id=client_id, call_id=None, text="Is it on?", choices=[],
                               channel="agent", deadline=deadline) for sid in (session_id, session_id, other.id)]
    assert sorted(store.pending_approval_ids(session_id)) == sorted(a.id for a in mine)
    assert sorted(runs.pending_question_ids(session_id)) == sorted(q.id for q in asked[:2])
    store.decide(mine[0].id, status="approved", approver="dana")
    runs.settle_question(asked[0].id, status="answered", answer="yes", answered_by="tom")
    assert store.pending_approval_ids(session_id) == [mine[1].id]
    assert runs.pending_question_ids(session_id) == [asked[1].id]
    assert store.pending_approval_ids("ss_nobody") == [] and runs.pending_question_ids("ss_nobody") == []
