"""Enrollment codes are single-use and expiring; agent credentials can be revoked."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from tests.conftest import live_server
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

pytestmark = pytest.mark.anyio

HELLO = {"hostname": "pc-01", "os": "linux", "os_version": "12", "agent_version": "0.1.0", "tools": ["disk_usage"]}


async def test_code_works_once_and_stores_only_digests(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live:
        client = await live.client()
        code = await live.code(client)
        async with httpx.AsyncClient(base_url=live.url) as anon:
            first = await anon.post("/enroll", json={"code": code, **HELLO})
            assert first.status_code == 200
            body = first.json()
            assert body["client_id"] == client and len(bytes.fromhex(body["server_key"])) == 32
            assert body["agent_url"] == live.agent_url, "enrollment names where the agent channel listens"
            again = await anon.post("/enroll", json={"code": code, **HELLO})
            assert again.status_code == 401 and "already used" in again.json()["detail"]["message"]
            unknown = await anon.post("/enroll", json={"code": "enr_made_up", **HELLO})
            assert unknown.status_code == 401 and "unknown enrollment code" in unknown.json()["detail"]["message"]
        agent = live.services.registry.agent(body["agent_id"])
        assert body["credential"] not in agent.credential_hash
        db_text = (tmp_path / "data" / "mspclaw.db").read_bytes()
        assert code.encode() not in db_text and body["credential"].encode() not in db_text
        audit = "".join(p.read_text() for p in (tmp_path / "data" / "audit").glob("*.jsonl"))
        assert code not in audit and body["credential"] not in audit
        assert "enrollment_refused" in audit


async def test_expired_code_is_refused(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live:
        client = await live.client()
        code = await live.code(client, ttl_hours=0.0001)
        await asyncio.sleep(0.5)
        async with httpx.AsyncClient(base_url=live.url) as anon:
            r = await anon.post("/enroll", json={"code": code, **HELLO})
        assert r.status_code == 401 and "expired" in r.json()["detail"]["message"]


async def test_concurrent_use_of_one_code_enrolls_one_agent(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live:
        client = await live.client()
        code = await live.code(client)
        async with httpx.AsyncClient(base_url=live.url) as anon:
            results = await asyncio.gather(*(anon.post("/enroll", json={"code": code, **HELLO}) for _ in range(8)))
        assert sorted(r.status_code for r in results) == [200] + [401] * 7
        assert len(live.services.registry.agents(client)) == 1


async def test_revoked_agent_is_disconnected_and_refused(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live:
        client = await live.client()
        agent_id = await live.start_agent(client)
        state = json.loads((tmp_path / "agent-state" / "agent.json").read_text())
        r = await live.http.post(f"/api/agents/{agent_id}/revoke")
        assert r.status_code == 200 and r.json()["revoked"] is True
        for _ in range(50):
            if not live.services.hub.is_online(agent_id):
                break
            await asyncio.sleep(0.1)
        assert not live.services.hub.is_online(agent_id)
        bearer = f"{state['agent_id']}.{state['credential']}"
        with pytest.raises(InvalidStatus) as info:  # refused before the upgrade
            await connect(live.agent_url, additional_headers={"Authorization": f"Bearer {bearer}"})
        assert info.value.response.status_code == 401 and b"revoked" in info.value.response.body
        # the real agent process gives up with a clear exit code instead of retrying forever
        proc = live.agents[0]
        assert await asyncio.wait_for(proc.wait(), 30) == 3
