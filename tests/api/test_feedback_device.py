""""Did it work?" asked on the user's device after a resolve, answered there, and acted on.

Real server, the deterministic playbook model and the shipped ``disk_full`` playbook, the real agent
daemon in this event loop with only the end user's answer source injected.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import Live, live_server
from tests.inprocess_agent import inprocess_agent

from mspclaw.protocol.frames import AskUser

pytestmark = pytest.mark.anyio


async def feedback(live: Live, ticket_id: str, seconds: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        r = await live.http.get(f"/api/tickets/{ticket_id}/feedback")
        if r.status_code == 200 and r.json()["status"] not in ("pending", "asked", "open"):
            body: dict[str, Any] = r.json()
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"no feedback on {ticket_id}")


@pytest.mark.parametrize(("answer", "recorded", "status"), [("no", "failed", "reopened"),
                                                           ("yes", "confirmed", "resolved")])
async def test_the_user_answers_on_their_device_and_no_reopens_the_ticket(tmp_path: Path, answer: str,
                                                                         recorded: str, status: str) -> None:
    asked: list[AskUser] = []

    async def user(question: AskUser) -> str:
        asked.append(question)
        return answer

    async with live_server(tmp_path) as live:
        client = await live.client()
        async with inprocess_agent(live.url, await live.code(client), tmp_path / "agent", answers=user,
                                   temp_root=tmp_path / "empty-temp"):
            created = (await live.http.post("/api/tickets", json={
                "client": client, "subject": "disk full", "body": "my disk is almost full",
                "requester": "maria@acme.example"})).json()
            got = await feedback(live, created["ticket_id"])
        assert [q.choices for q in asked] == [["yes", "no", "partial"]] and "Did this fix" in asked[0].text
        assert got["status"] == recorded and "device" in got["answered_by"]
        ticket = (await live.http.get(f"/api/tickets/{created['ticket_id']}")).json()
        assert ticket["outcome"] == "resolved" and ticket["status"] == status
