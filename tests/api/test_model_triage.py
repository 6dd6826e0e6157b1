"""Tickets no playbook matches confidently go to the configured model, which may only pick a category of
the catalogue or "not automatable"; the must-not-automate layer still wins and never asks it. The model
is scripted (``FunctionModel``); the server and the agent are real."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.conftest import Live, live_server, make_old_files
from tests.inprocess_agent import inprocess_agent

from mspclaw.engine.messages import Message, ModelResponse, ToolDef
from mspclaw.engine.models.function import FunctionModel, call

pytestmark = pytest.mark.anyio

VAGUE = {"subject": "help please", "body": "same thing as last week, it is happening again on my PC",
         "requester": "maria@acme.example"}


def sorter(category: str) -> FunctionModel:
    def turn(messages: list[Message], tools: list[ToolDef]) -> ModelResponse:
        if [t.name for t in tools] == ["classify_ticket"]:
            return call("classify_ticket", {"category": category, "reason": "it reads like the last one"})
        return call("escalate", {"reason": "scripted run ends here"})

    return FunctionModel(turn, name="function:sorter")


async def run(live: Live, tmp_path: Path, ticket: dict[str, str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    client = await live.client()
    async with inprocess_agent(live.url, await live.code(client), tmp_path / "agent"):
        created = (await live.http.post("/api/tickets", json={"client": client, **ticket})).json()
        done = await live.wait_ticket(created["ticket_id"])
    audit = (await live.http.get("/api/audit", params={"kind": "model_triage"})).json()
    return done, audit


async def test_the_model_picks_a_category_and_its_playbook_runs(tmp_path: Path) -> None:
    make_old_files(tmp_path / "temp", 2)
    async with live_server(tmp_path, model=sorter("disk_full")) as live:
        done, audit = await run(live, tmp_path, VAGUE)
    assert done["playbook"] == "disk_full", done
    [event] = audit
    assert event["data"]["category"] == "disk_full" and event["data"]["playbook"] == "disk_full"
    assert event["data"]["input_tokens"] > 0 and event["data"]["model"] == "function:sorter"
    assert "it reads like the last one" in event["data"]["reason"]


async def test_not_automatable_goes_to_a_technician_with_the_reason(tmp_path: Path) -> None:
    async with live_server(tmp_path, model=sorter("not_automatable")) as live:
        done, audit = await run(live, tmp_path, VAGUE)
    assert done["status"] == "escalated" and done["playbook"] is None
    assert "not automatable" in done["reason"]
    assert audit[0]["data"]["category"] is None


async def test_a_ticket_the_must_not_layer_stops_never_reaches_the_model(tmp_path: Path) -> None:
    model = sorter("disk_full")
    phishing = {"subject": "Suspicious email", "body": "I got a phishing mail asking for my password",
                "requester": "maria@acme.example"}
    async with live_server(tmp_path, model=model) as live:
        done, audit = await run(live, tmp_path, phishing)
    assert done["status"] == "escalated" and done["playbook"] is None
    assert model.calls == 0 and audit == []
