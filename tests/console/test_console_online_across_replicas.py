"""The console says an agent is online when it is connected to *another* server replica, not only to the
one serving the page.

Real services only: a live server (``wiring.build`` + uvicorn, its own SQLite) with ``MSPCLAW_REDIS_URL`` on a
``redis-server`` of this test's own on a free loopback port, and a second replica (a real :class:`Hub` with
its :class:`Cluster` on the same Redis) holding the agent over the real sans-I/O agent connection and
executor. A technician signs in over HTTP with TOTP and reads the home page, the devices pages and the admin
pages; when the agent disconnects from the other replica, every page says offline again.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from tests.conftest import live_server
from tests.console.signing_in import DANA, register, signed_in
from tests.dispatch.cluster_replicas import (
    OwnRedis,
    connect,
    make_agent,
    start_replica,
    wait_for_holder,
)

pytestmark = pytest.mark.anyio


def agent_state(page: str, agent_id: str) -> str:
    row = re.search(rf'<tr data-agent="{agent_id}">.*?</tr>', page, re.S)
    assert row, page[:2000]
    state = re.search(r'class="status (online|offline)"', row.group(0))
    assert state, row.group(0)
    return state.group(1)


async def test_pages_show_an_agent_held_by_another_replica_as_online(tmp_path: Path) -> None:
    redis = OwnRedis()
    await redis.start()
    try:
        async with live_server(tmp_path / "a", workers=0, redis_url=redis.url) as live:
            register(live, DANA)
            acme = await live.client("Acme Dental")
            enrolled = live.services.registry.enroll(await live.code(acme), hostname="acme-pc", os="linux",
                                                     os_version="12", agent_version="1", tools=["system_info"])
            agent_id = enrolled.agent.id
            (device,) = live.services.registry.devices(acme)
            other = await start_replica(redis.url, "mspclaw:", "replica-b")
            dana, _ = await signed_in(live, DANA["email"])
            try:
                # nobody holds it yet: offline everywhere
                assert agent_state((await dana.get("/admin/agents")).text, agent_id) == "offline"

                identity, executor, journal = make_agent(agent_id, acme, tmp_path, {})
                held = await connect(other.hub, identity, executor)
                cluster = live.services.cluster
                assert cluster is not None
                await wait_for_holder(cluster, agent_id, ("replica-b", acme))
                assert not live.services.hub.is_online(agent_id), "the page's replica does not hold the agent"

                assert agent_state((await dana.get("/admin/agents")).text, agent_id) == "online"
                overview = (await dana.get("/admin")).text
                assert re.search(r"Agents online\D*1\b", overview), overview[:3000]
                clients = (await dana.get("/admin/clients")).text
                assert '<td class="online">1</td><td class="offline">0</td>' in clients
                home = (await dana.get("/")).text
                assert '<td class="online">1</td>' in home and "acme-pc (device)" in home
                assert "(offline)" not in home
                devices = (await dana.get("/devices")).text
                assert '<td class="online">online</td>' in devices
                assert "online</b>" in (await dana.get(f"/devices/{device.id}")).text

                # gone from the other replica: offline again on every page
                await held.disconnect()
                await wait_for_holder(cluster, agent_id, None)
                assert agent_state((await dana.get("/admin/agents")).text, agent_id) == "offline"
                assert '<td class="offline">offline</td>' in (await dana.get("/devices")).text
                assert "acme-pc (device) (offline)" in (await dana.get("/")).text
                journal.close()
            finally:
                await dana.aclose()
                await other.stop()
    finally:
        redis.stop()
        await asyncio.sleep(0)
