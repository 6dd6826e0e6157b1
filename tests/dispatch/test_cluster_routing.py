"""Tickets on one server replica act through agents another replica holds: routing, tools, questions to the
user, the temporary password shown on the user's device and the final reply all cross replicas.

Real services only: two servers (``wiring.build`` + uvicorn + the agent listener) sharing one PostgreSQL
database (a schema of this test's own on the loopback test server) and a ``redis-server`` of this test's
own on a free loopback port. The user's device is the real agent daemon over a real WebSocket to server A,
running the real Linux tools, its user's dialogs scripted. The client's site agent is the same daemon,
enrolled with a site code on server B, whose directory is scripted (the AD and Entra integrations are
proven against Samba and the spec-checked Graph tenant in ``tests/site`` and ``tests/api/test_site_accounts.py``);
what is under test here is that every message reaches the agent on whichever replica holds it.
The reasoning model is a scripted ``FunctionModel``; no provider is called.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from redis.asyncio import Redis
from tests.conftest import Live, live_server
from tests.dispatch.cluster_replicas import OwnRedis
from tests.inprocess_agent import inprocess_agent
from tests.store.conftest import provision

from mspclaw.agent.daemon import AgentDaemon
from mspclaw.agent.enroll import EnrollRequest, enroll
from mspclaw.agent.executor import Executor, offered_tools
from mspclaw.agent.journal import Journal
from mspclaw.agent.tools import ToolContext, ToolFn, WithSecret
from mspclaw.engine.messages import Message, ModelRequest, ModelResponse, ToolDef, ToolReturn
from mspclaw.engine.models.function import FunctionModel, call
from mspclaw.errors import AgentOffline
from mspclaw.protocol.frames import AskUser, Secret, ShowSecret

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

USER = "maria@acme.example"
DEVICE = "acme-lt-11"
WHERE = "Which folder do you keep your work in?"


def _returns(messages: list[Message]) -> list[ToolReturn]:
    return [p for m in messages if isinstance(m, ModelRequest) for p in m.parts if isinstance(p, ToolReturn)]


def technician(messages: list[Message], tools: list[ToolDef]) -> ModelResponse:
    """A disk ticket: a diagnostic on the device, a question to its user, a reply. A password ticket: look the
    account up, reset it (the server asks the requester on their device and a technician first), reply."""
    seen = _returns(messages)
    for done in seen:
        assert done.error is None, f"{done.name}: {done.error}"
    if any(t.name == "reset_password" for t in tools):
        match len(seen):
            case 0:
                return call("directory_user", {"username": USER})
            case 1:
                return call("reset_password", {"username": USER})
            case _:
                return call("resolve", {"summary": f"temporary password set ({seen[1].content['handed_over']})",
                                        "reply": "we set a temporary password and showed it on your computer."})
    match len(seen):
        case 0:
            return call("disk_usage", {})
        case 1:
            return call("ask_user", {"question": WHERE})
        case _:
            free = min(fs["free_bytes"] for fs in seen[0].content["filesystems"])
            return call("resolve", {"summary": f"{seen[1].content['answer']}; {free} bytes free at least",
                                    "reply": "your disk has room; we checked your Documents folder."})


class Desk:
    """The user's computer: answers questions and shows secrets as its user would."""

    def __init__(self) -> None:
        self.asked: list[AskUser] = []
        self.shown: list[Secret] = []

    async def answer(self, question: AskUser) -> str | None:
        self.asked.append(question)
        if question.choices == ["yes", "no", "partial"]:
            return "yes"  # "did it work?" after a resolve
        if "Did you ask for this?" in question.text:
            return "Yes, it was me"
        return "Documents" if question.text == WHERE else None

    async def show(self, frame: ShowSecret) -> bool:
        self.shown.append(frame.secret)
        return True


class Directory:
    """The site agent's directory: one user, whose password the reset replaces."""

    def __init__(self) -> None:
        self.password = "Old-" + secrets.token_urlsafe(8)
        self.resets: list[dict[str, Any]] = []
        self.approved: list[str] = []

    def tools(self) -> dict[str, ToolFn]:
        def directory_user(args: BaseModel, context: ToolContext) -> dict[str, Any]:
            return {"username": args.model_dump()["username"], "found": True, "enabled": True, "locked": False}

        def reset_password(args: BaseModel, context: ToolContext) -> WithSecret:
            request = args.model_dump()
            self.resets.append(request)
            self.password = "Tmp-" + secrets.token_urlsafe(10)
            return WithSecret({"reset": True, "must_change_at_logon": True},
                              Secret(type="temporary_password", account=request["username"], value=self.password))

        return {"directory_user": directory_user, "reset_password": reset_password}


@contextlib.asynccontextmanager
async def site_agent(live: Live, client: str, directory: Directory, tmp: Path) -> AsyncIterator[AgentDaemon]:
    """The client's site agent (the real daemon, offering only its directory's tools), enrolled on ``live``."""
    registry = directory.tools()
    code = await live.code(client, role="site")
    state = await asyncio.to_thread(enroll, live.url, EnrollRequest(
        code=code, hostname="acme-site", os="linux", os_version="test", agent_version="test",
        tools=offered_tools(registry)))
    tmp.mkdir(parents=True, exist_ok=True)
    journal = Journal(tmp / "journal.db")
    executor = Executor(key=state.key, registry=registry, journal=journal, context=ToolContext(temp_roots=()),
                        approval_key=state.approval_public_key, agent_id=state.agent_id)
    daemon = AgentDaemon(server=live.url, state=state, executor=executor, backoff_initial=0.05, backoff_max=0.3,
                         tick_interval=0.1)
    task = asyncio.create_task(daemon.run())
    try:
        await asyncio.wait_for(daemon.connected.wait(), 15)
        yield daemon
    finally:
        daemon.stop()
        await asyncio.wait_for(task, 15)
        journal.close()


async def until(what: str, check: Any, seconds: float = 10.0) -> float:
    """Await ``check()`` until it is true; the seconds it took."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"{what} (waited {seconds:g} s)")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def open_ticket(live: Live, client: str, subject: str, body: str) -> dict[str, Any]:
    r = await live.http.post("/api/tickets", json={"client": client, "subject": subject, "body": body,
                                                   "requester": USER, "device": DEVICE})
    assert r.status_code == 202, r.text
    created: dict[str, Any] = r.json()
    return created


async def approve(live: Live, directory: Directory) -> dict[str, Any]:
    approval = await live.wait_approval(seconds=30)
    assert len(directory.resets) == len(directory.approved), "nothing changed before a technician approved"
    directory.approved.append(approval["id"])
    r = await live.http.post(f"/api/approvals/{approval['id']}/approve", json={"approver": "Dana"})
    assert r.status_code == 200, r.text
    return approval


async def lookup(live: Live, client: str) -> dict[str, Any]:
    r = await live.http.get("/api/agents/lookup", params={"client": client, "device": DEVICE})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


@contextlib.asynccontextmanager
async def two_replicas(tmp_path: Path) -> AsyncIterator[tuple[Live, Live, str]]:
    redis = OwnRedis()
    await redis.start()
    model = FunctionModel(technician, name="function:tech")
    try:
        with provision("postgres", tmp_path) as db:
            shared: dict[str, Any] = {"database_url": db.url, "redis_url": redis.url, "workers": 0, "model": model}
            async with live_server(tmp_path / "a", **shared) as a:
                # one MSP, one approval key: an agent enrolled on either replica verifies the other's grants
                (tmp_path / "b" / "data").mkdir(parents=True)
                shutil.copy2(tmp_path / "a" / "data" / "approval_signing_key",
                             tmp_path / "b" / "data" / "approval_signing_key")
                async with live_server(tmp_path / "b", **shared) as b:
                    yield a, b, redis.url
    finally:
        redis.stop()


async def test_a_ticket_on_one_replica_is_worked_through_agents_the_other_one_holds(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    desk, directory = Desk(), Directory()
    async with two_replicas(tmp_path) as (a, b, redis_url):
        client = await a.client()
        async with inprocess_agent(a.url, await a.code(client), tmp_path / "desk", answers=desk.answer,
                                   secrets=desk.show, hostname=DEVICE) as device, \
                site_agent(b, client, directory, tmp_path / "site") as site_daemon:
            device_id, site_id = device.state.agent_id, site_daemon.hello.agent_id
            assert a.services.hub.is_online(device_id) and not b.services.hub.is_online(device_id)
            assert b.services.hub.is_online(site_id) and not a.services.hub.is_online(site_id)
            await until("server B sees the device online on A",
                        lambda: b.services.hub.online_anywhere(device_id, client))
            seen_from_b = await lookup(b, client)
            assert seen_from_b["agent_id"] == device_id and seen_from_b["online"] is True, seen_from_b
            assert "another server replica" in seen_from_b["reason"]
            listed = (await b.http.get("/api/agents", params={"client": client})).json()
            assert {agent["id"]: agent["online"] for agent in listed} == {device_id: True, site_id: True}
            assert not await b.services.hub.online_anywhere(device_id, "another-client"), \
                "another client's agent does not exist for the caller"

            # 1. routed from B to the device on A: its diagnostic runs there, its user answers there
            disk = await open_ticket(b, client, "disk almost full", "I cannot save files, the disk is full")
            done = await b.wait_ticket(disk["ticket_id"], seconds=60)
            assert done["status"] == "resolved", done["reason"]
            assert done["reason"].startswith("Documents; ") and "bytes free at least" in done["reason"]
            assert [s["tool"] for s in done["steps"]][:3] == ["disk_usage", "ask_user", "resolve"]
            [question] = b.services.tickets.runs.questions(disk["session_id"])
            assert (question.status, question.answer, question.answered_by) == (
                "answered", "Documents", f"end user on {device_id}"), "answered on the device, settled on B"
            assert [q.text for q in desk.asked if q.choices is None] == [WHERE]
            await until("the reply reaches the device on A", lambda: _said(caplog, "we checked your Documents"))

            # 2. a password reset from B: confirmed on the device (A), run by the site agent (B), the temporary
            # password shown on the device (A)
            reset = await open_ticket(b, client, "Forgot my password", "I forgot my password, please reset it")
            approval = await approve(b, directory)
            assert approval["tool"] == "reset_password"
            done = await b.wait_ticket(reset["ticket_id"], seconds=60)
            assert done["status"] == "resolved", done["reason"]
            assert f"'device': '{DEVICE}'" in done["reason"] and "'to': 'device'" in done["reason"]
            [secret] = desk.shown
            assert (secret.value, secret.account) == (directory.password, USER)
            assert directory.resets[-1]["requested_by"] == USER
            assert "device_confirmation" in directory.resets[-1]["verified_by"], "confirmed on the device on A"
            assert secret.value not in str(done) and secret.value not in caplog.text
            assert not await _kept_in_redis(redis_url, secret.value), "it crossed Redis, and stayed nowhere there"
            await until("the second reply reaches the device", lambda: _said(caplog, "showed it on your computer"))

            # 3. the reverse: from A, whose site agent is on B, for the device on A
            seen_from_a = await lookup(a, client)
            assert seen_from_a["site_agent_id"] == site_id, seen_from_a
            again = await open_ticket(a, client, "Password expired", "My password expired, I need a new one")
            approval = await approve(a, directory)
            assert approval["tool"] == "reset_password"
            done = await a.wait_ticket(again["ticket_id"], seconds=60)
            assert done["status"] == "resolved", done["reason"]
            assert len(desk.shown) == 2 and desk.shown[-1].value == directory.password

            # a revoked agent is refused on every replica at once: revoked on A, held by B
            r = await a.http.post(f"/api/agents/{site_id}/revoke")
            assert r.status_code == 200, r.text
            assert not await a.services.hub.online_anywhere(site_id, client), "offline on A as soon as revoked"
            took = await until("B closes the revoked agent's connection",
                               lambda: _true(b.services.hub.link(site_id) is None), seconds=5)
            assert took < 1.0
            assert not await b.services.hub.online_anywhere(site_id, client)
            with pytest.raises(AgentOffline):
                await a.services.hub.for_client(client).call_tool(site_id, "directory_user", {"username": USER},
                                                                  timeout=5)
            await asyncio.sleep(0.5)  # the daemon's reconnects are refused by either replica
            assert b.services.hub.link(site_id) is None and a.services.hub.link(site_id) is None
            assert (await lookup(b, client))["site_agent_id"] is None

        # an agent on no replica is offline everywhere
        for live in (a, b):
            await until("the device is offline everywhere",
                        lambda live=live: _not(live.services.hub.online_anywhere(device_id, client)), seconds=6)
        from_b = await lookup(b, client)
        listed = (await b.http.get("/api/agents", params={"client": client})).json()
        assert {agent["id"]: (agent["online"], agent["revoked"]) for agent in listed} == {
            device_id: (False, False), site_id: (False, True)}
        assert from_b["agent_id"] == device_id and from_b["online"] is False and "offline" in from_b["reason"]
        with pytest.raises(AgentOffline):
            await b.services.hub.for_client(client).notify_user(device_id, "anyone there?")


async def _kept_in_redis(url: str, text: str) -> bool:
    redis = Redis.from_url(url)
    try:
        async for key in redis.scan_iter():
            if await redis.type(key) == b"string" and text.encode() in (await redis.get(key) or b""):
                return True
        return False
    finally:
        await redis.aclose()


async def _said(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return any(r.getMessage().startswith("message for the user: ") and text in r.getMessage()
               for r in caplog.records)


async def _true(value: bool) -> bool:
    return value


async def _not(value: Any) -> bool:
    return not await value
