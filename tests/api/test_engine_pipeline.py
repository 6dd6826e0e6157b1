"""The reasoning loop in the real pipeline: a scripted model, a real server, a real agent on loopback.

The model is a ``FunctionModel`` (no provider is called); the agent is the real daemon in this
event loop with the end user's answer source injected; tools are the real Linux ones.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.conftest import live_server, make_old_files
from tests.inprocess_agent import inprocess_agent

from mspclaw.connectors.base import PSATicket
from mspclaw.connectors.local import LocalPSA
from mspclaw.engine.messages import Message, ModelRequest, ModelResponse, ToolDef, ToolReturn
from mspclaw.engine.models.function import FunctionModel, call
from mspclaw.protocol.frames import AskUser

pytestmark = pytest.mark.anyio

DISK = {"subject": "disk almost full", "body": "I cannot save files, it says the disk is full",
        "requester": "maria@acme.example"}


def returns(messages: list[Message]) -> list[ToolReturn]:
    return [p for m in messages if isinstance(m, ModelRequest) for p in m.parts if isinstance(p, ToolReturn)]


def technician_script(messages: list[Message], tools: list[ToolDef]) -> ModelResponse:
    """Ask the user, ask again in other words (must not reach the user), clean with approval, resolve."""
    seen = returns(messages)
    match len(seen):
        case 0:
            return call("ask_user", {"question": "What is the name of your computer?"}, text="who is it")
        case 1:
            return call("ask_user", {"question": "What's your PC called?"}, text="asking again by mistake")
        case 2:
            assert seen[1].content == {"answer": seen[0].content["answer"]}
            return call("clear_temp_files", {"dry_run": False, "older_than_days": 7}, text="free space")
        case _:
            assert seen[2].error is None, seen[2].error
            return call("resolve", {"summary": f"deleted {seen[2].content['deleted']} files",
                                    "reply": "we freed some space on your computer."})


async def test_questions_are_asked_once_and_destructive_steps_wait_for_a_signed_approval(tmp_path: Path) -> None:
    temp = tmp_path / "temp"
    old = make_old_files(temp, 4)
    asked: list[AskUser] = []

    async def user(question: AskUser) -> str:
        if question.choices == ["yes", "no", "partial"]:
            return "yes"  # "did it work?" after the resolve (tests/api/test_feedback_device.py)
        asked.append(question)
        return "ACME-LT-07"

    async with live_server(tmp_path, model=FunctionModel(technician_script, name="function:tech")) as live:
        client = await live.client()
        code = await live.code(client)
        async with inprocess_agent(live.url, code, tmp_path / "agent", answers=user, temp_root=temp):
            created = (await live.http.post("/api/tickets", json={"client": client, **DISK})).json()
            approval = await live.wait_approval()
            assert approval["tool"] == "clear_temp_files" and all(p.exists() for p in old)
            await live.http.post(f"/api/approvals/{approval['id']}/approve", json={"approver": "Dana"})
            ticket = await live.wait_ticket(created["ticket_id"])
        assert ticket["status"] == "resolved", ticket["reason"]
        assert ticket["reason"] == "deleted 4 files" and not any(p.exists() for p in old)
        assert [q.text for q in asked] == ["What is the name of your computer?"], "the paraphrase was not asked"
        session_id = created["session_id"]
        questions = live.services.tickets.runs.questions(session_id)
        assert [(q.status, q.answer) for q in questions] == [("answered", "ACME-LT-07"), ("reused", "ACME-LT-07")]
        kinds = [e.kind for e in live.services.audit.query(session_id=session_id)]
        assert kinds.count("question_asked") == 1 and kinds.count("question_skipped") == 1
        assert live.services.tickets.runs.token_totals(session_id) == (40, 20)
        assert (ticket["model"], ticket["prompt_tokens"], ticket["completion_tokens"]) == ("function:tech", 40, 20)
        assert [s["tool"] for s in ticket["steps"]] == ["ask_user", "ask_user", "clear_temp_files", "resolve"]


async def test_an_answer_relayed_through_the_api_and_a_question_that_times_out(tmp_path: Path) -> None:
    def script(messages: list[Message], tools: list[ToolDef]) -> ModelResponse:
        seen = returns(messages)
        if not seen:
            return call("ask_user", {"question": "Is the printer turned on?"})
        if len(seen) == 1:
            return call("ask_user", {"question": "Which browser do you use?"})
        return call("escalate", {"reason": f"answers: {seen[0].content} / {seen[1].error}"})

    async with live_server(tmp_path, model=FunctionModel(script), question_timeout_s=1.5) as live:
        client = await live.client()
        code = await live.code(client)
        async with inprocess_agent(live.url, code, tmp_path / "agent"):  # no way to ask on this device
            created = (await live.http.post("/api/tickets", json={"client": client, **DISK})).json()
            for _ in range(100):
                pending = (await live.http.get("/api/questions")).json()
                if pending:
                    break
                await asyncio.sleep(0.05)
            r = await live.http.post(f"/api/questions/{pending[0]['id']}/answer",
                                     json={"answer": "yes", "by": "Maria on the phone"})
            assert r.status_code == 200 and r.json()["answered_by"].startswith("Maria on the phone")
            again = await live.http.post(f"/api/questions/{pending[0]['id']}/answer", json={"answer": "no"})
            assert again.status_code == 409
            ticket = await live.wait_ticket(created["ticket_id"])
        assert ticket["status"] == "escalated"
        assert "{'answer': 'yes'}" in ticket["reason"]
        assert "no_answer: the user did not answer 'Which browser do you use?'" in ticket["reason"]


async def test_a_question_on_a_psa_ticket_is_also_posted_as_a_public_reply(tmp_path: Path) -> None:
    psa = LocalPSA()

    def script(messages: list[Message], tools: list[ToolDef]) -> ModelResponse:
        seen = returns(messages)
        if not seen:
            return call("ask_user", {"question": "Is the printer turned on?", "choices": ["yes", "no"]})
        return call("resolve", {"summary": f"user says {seen[0].content['answer']}", "reply": "thanks"})

    async with live_server(tmp_path, model=FunctionModel(script), connectors={"local": psa}) as live:
        client = await live.client()
        code = await live.code(client)
        psa.add(PSATicket(id="91", company="acme", requester="tom@acme.example", subject="disk full",
                          body="no space left"))
        async with inprocess_agent(live.url, code, tmp_path / "agent"):  # the device cannot show a dialog
            sub = await live.services.tickets.submit(client=client, subject="disk full", body="no space left",
                                                     requester="tom@acme.example", device=None, psa="local",
                                                     external_id="91")
            for _ in range(100):
                notes = (await psa.get_ticket("91")).notes
                if notes:
                    break
                await asyncio.sleep(0.05)
            assert [(n.text, n.public) for n in notes] == [("A question for you: Is the printer turned on? (yes / no)",
                                                            True)]
            [question] = (await live.http.get("/api/questions")).json()
            assert question["channel"] == "agent+psa"
            await live.http.post(f"/api/questions/{question['id']}/answer", json={"answer": "no", "by": "Tom (PSA)"})
            ticket = await live.wait_ticket(sub.ticket.id)
        assert ticket["status"] == "resolved" and ticket["reason"] == "user says no"


async def test_the_users_reply_on_the_psa_ticket_answers_the_question(tmp_path: Path) -> None:
    """The user answers by replying on the ticket (a public note below our question), not on the device."""
    psa = LocalPSA()

    def script(messages: list[Message], tools: list[ToolDef]) -> ModelResponse:
        seen = returns(messages)
        if not seen:
            return call("ask_user", {"question": "Which printer do you use?"})
        return call("resolve", {"summary": f"user says {seen[0].content['answer']}", "reply": "thanks"})

    async with live_server(tmp_path, model=FunctionModel(script), connectors={"local": psa},
                           question_psa_poll_s=0.1) as live:
        client = await live.client()
        code = await live.code(client)
        psa.add(PSATicket(id="92", company="acme", requester="tom@acme.example", subject="printer",
                          body="cannot print"))
        async with inprocess_agent(live.url, code, tmp_path / "agent"):  # the device cannot show a dialog
            sub = await live.services.tickets.submit(client=client, subject="printer", body="cannot print",
                                                     requester="tom@acme.example", device=None, psa="local",
                                                     external_id="92")
            for _ in range(100):
                if (await psa.get_ticket("92")).notes:
                    break
                await asyncio.sleep(0.05)
            await psa.add_note("92", "A question for you: Which printer do you use?", public=False)  # not a reply
            await psa.add_note("92", "The big one by reception", public=True)
            ticket = await live.wait_ticket(sub.ticket.id)
        assert ticket["status"] == "resolved" and ticket["reason"] == "user says The big one by reception"
        [question] = live.services.tickets.runs.questions(ticket["session_id"])
        assert question.answered_by == "end user (reply on local)"
