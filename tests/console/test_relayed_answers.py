"""A question to the end user waits on the console's home page; a technician relays the answer the user gave
by phone from the ticket page, once, and the run goes on with it. A scripted model (``FunctionModel``), the
real server and a real agent in this event loop whose user never answers on the device."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from tests.conftest import live_server
from tests.console.signing_in import DANA, EVE, csrf_of, register, signed_in
from tests.inprocess_agent import inprocess_agent

from mspclaw.engine.messages import Message, ModelRequest, ModelResponse, ToolDef, ToolReturn
from mspclaw.engine.models.function import FunctionModel, call
from mspclaw.protocol.frames import AskUser

pytestmark = pytest.mark.anyio
TICKET = {"subject": "disk almost full", "body": "I cannot save files, it says the disk is full",
          "requester": "maria@acme.example"}


def script(messages: list[Message], tools: list[ToolDef]) -> ModelResponse:
    seen = [p for m in messages if isinstance(m, ModelRequest) for p in m.parts if isinstance(p, ToolReturn)]
    if not seen:
        return call("ask_user", {"question": "Which folder do you save into?"}, text="where is it")
    return call("resolve", {"summary": f"folder: {seen[0].content['answer']}", "reply": "thanks, noted."})


async def test_a_technician_relays_the_users_answer(tmp_path: Path) -> None:
    never = asyncio.Event()

    async def silent_user(question: AskUser) -> str:
        await never.wait()  # the user does not answer on the device: they phoned the helpdesk
        return ""

    async with live_server(tmp_path, model=FunctionModel(script, name="function:ask")) as live:
        register(live, DANA, EVE)
        client = await live.client("Acme Dental")
        await live.client("Beta Law")
        code = await live.code(client)
        async with inprocess_agent(live.url, code, tmp_path / "agent", answers=silent_user):
            created = (await live.http.post("/api/tickets", json={"client": client, **TICKET})).json()
            for _ in range(200):
                pending = (await live.http.get("/api/questions")).json()
                if pending:
                    break
                await asyncio.sleep(0.05)
            (question,) = pending
            dana, _ = await signed_in(live, DANA["email"])
            eve, _ = await signed_in(live, EVE["email"])
            try:
                home = (await dana.get("/")).text
                waiting = home[home.index('id="waiting"'):home.index('id="running"')]
                assert "Which folder do you save into?" in waiting and 'class="countdown"' in waiting
                page = (await dana.get(f"/tickets/{created['ticket_id']}")).text
                assert f'action="/questions/{question["id"]}/answer"' in page
                relay = f"/questions/{question['id']}/answer"
                form = {"csrf": csrf_of(page), "answer": "the Documents folder", "by": "Maria, by phone",
                        "back": f"/tickets/{created['ticket_id']}"}
                assert (await dana.post(relay, data={k: v for k, v in form.items() if k != "csrf"})).status_code \
                    == 403
                eve_form = {**form, "csrf": csrf_of((await eve.get("/")).text)}
                assert (await eve.post(relay, data=eve_form)).status_code == 404  # another client's
                r = await dana.post(relay, data=form)
                assert r.status_code == 303 and r.headers["location"] == f"/tickets/{created['ticket_id']}"
                again = await dana.post(relay, data={**form, "answer": "the Desktop"})
                assert again.status_code == 409
                done = await live.wait_ticket(created["ticket_id"])
                assert done["status"] == "resolved" and done["reason"] == "folder: the Documents folder"
                shown = (await dana.get(f"/tickets/{created['ticket_id']}")).text
                relayed = r"the Documents folder</b> \(Maria, by phone \(via Dana Scully\)\)"
                assert re.search(relayed, shown), shown[-3000:]
            finally:
                never.set()
                await dana.aclose()
                await eve.aclose()
