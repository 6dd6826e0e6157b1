"""Durable resume: SIGKILL the server mid-session, start it again, and every session completes.

The server is a real process (``tests/resume_server.py``: the real app on SQLite with a scripted
model); the agent is the real daemon in this test's event loop, whose ``clear_temp_files`` is a
counting stand-in registered under the catalogue name (so signature, schema, Ed25519 approval
and journal gates all apply). Three sessions are caught by the kill: one awaiting an approval,
one awaiting the end user's answer, one with an approved destructive call running on the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import free_port
from tests.inprocess_agent import CountingCleaner, inprocess_agent

from mspclaw.agent.tools import bind
from mspclaw.tools.catalogue import ClearTempFilesArgs

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]


def start_server(data: Path, port: int, key: str, log: Path, agent_port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MSPCLAW_DATA_DIR": str(data), "MSPCLAW_PORT": str(port), "MSPCLAW_API_KEY": key,
           "MSPCLAW_AGENT_PORT": str(agent_port),
           "MSPCLAW_APPROVAL_TIMEOUT_S": "120", "MSPCLAW_QUESTION_TIMEOUT_S": "120", "MSPCLAW_WORKERS": "0"}
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "tests.resume_server"], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)


async def until(check: Any, what: str, seconds: float = 30) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            value = await check()
            if value:
                return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_sigkill_with_sessions_paused_and_a_call_in_flight_then_restart_completes_each(tmp_path: Path) -> None:
    port, agent_port, key = free_port(), free_port(), "test_" + secrets.token_urlsafe(12)
    data, log = tmp_path / "data", tmp_path / "server.log"
    cleaner = CountingCleaner(hold_s=30)
    server = start_server(data, port, key, log, agent_port)
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=10) as http:
            await until(lambda: _ok(http, "/healthz"), "the server to start")
            client = (await http.post("/api/clients", json={"name": "Acme"})).json()["id"]
            code = (await http.post("/api/enrollments", json={"client": client})).json()["code"]
            async with inprocess_agent(url, code, tmp_path / "agent",
                                       tools={"clear_temp_files": bind(ClearTempFilesArgs, cleaner)}) as agent:
                tickets = {}
                for scenario in ("approval", "question", "inflight"):
                    r = await http.post("/api/tickets", json={"client": client, "subject": "disk full",
                                                              "body": f"my disk is full (scenario {scenario})"})
                    tickets[scenario] = r.json()["ticket_id"]

                async def paused() -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
                    approvals = (await http.get("/api/approvals")).json()
                    questions = (await http.get("/api/questions")).json()
                    return (approvals, questions) if len(approvals) == 2 and len(questions) == 1 else None

                approvals, _ = await until(paused, "two approvals and one question")
                inflight = next(a for a in approvals if a["args"]["older_than_days"] == 1)
                await http.post(f"/api/approvals/{inflight['id']}/approve", json={"approver": "Dana"})
                assert await asyncio.to_thread(cleaner.started.wait, 15), "the approved call never started"

                server.send_signal(signal.SIGKILL)  # no shutdown of any kind
                server.wait(10)
                agent.daemon.connected.clear()
                server = start_server(data, port, key, log, agent_port)
                await until(lambda: _ok(http, "/healthz"), "the server to start again")
                await until(lambda: _true(agent.daemon.connected.is_set()), "the agent to reconnect")

                pending = (await http.get("/api/approvals")).json()
                assert [a["args"]["older_than_days"] for a in pending] == [7], "the same approval, not a new one"
                r = await http.post(f"/api/approvals/{pending[0]['id']}/approve", json={"approver": "Sam"})
                assert r.status_code == 200
                [question] = await until(lambda: _json(http, "/api/questions"), "the stored question")
                assert question["text"] == "Is the printer turned on?"
                await http.post(f"/api/questions/{question['id']}/answer", json={"answer": "yes it is"})
                cleaner.release.set()

                async def finished() -> dict[str, dict[str, Any]] | None:
                    out = {s: (await http.get(f"/api/tickets/{t}")).json() for s, t in tickets.items()}
                    return out if all(t["status"] in ("resolved", "escalated") for t in out.values()) else None

                done = await until(finished, "every ticket to finish")
        assert {s: t["status"] for s, t in done.items()} == dict.fromkeys(tickets, "resolved"), {
            s: t["reason"] for s, t in done.items()}
        assert done["question"]["reason"] == "ask_user: {'answer': 'yes it is'}"
        assert done["approval"]["reason"].startswith("clear_temp_files: {'deleted': 3")
        assert done["inflight"]["reason"].startswith("clear_temp_files: {'deleted': 3")
        assert cleaner.runs == Counter({7: 1, 1: 1}), "each destructive call ran exactly once"
        assert [s["tool"] for s in done["inflight"]["steps"]] == ["clear_temp_files", "resolve"]
    finally:
        cleaner.release.set()
        if server.poll() is None:
            server.terminate()
            server.wait(10)


async def _ok(http: httpx.AsyncClient, path: str) -> bool:
    return (await http.get(path)).status_code == 200


async def _json(http: httpx.AsyncClient, path: str) -> Any:
    return (await http.get(path)).json()


async def _true(value: bool) -> bool:
    return value
