"""The hub's per-client view of the fleet: a client's dispatcher sees its own agents and nobody else's,
kept right through connects, reconnects on a new socket and disconnects (the in-memory socket and the
real sans-I/O agent of test_hub_push)."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from tests.dispatch.test_hub_push import Agent, MemorySocket

from mspclaw.dispatch.hub import AgentIdentity, Hub
from mspclaw.errors import AgentOffline

pytestmark = pytest.mark.anyio


async def connect(hub: Hub, identity: AgentIdentity) -> tuple[MemorySocket, asyncio.Task[None], asyncio.Task[None]]:
    sock = MemorySocket(can_push=True)
    agent = Agent(sock, identity)
    serving = asyncio.create_task(hub.serve(identity, sock))
    answering = asyncio.create_task(agent.run())
    agent.hello()
    for _ in range(200):
        link = hub.link(identity.agent_id)
        if link is not None and link.transport is sock:
            break
        await asyncio.sleep(0.01)
    return sock, serving, answering


async def disconnect(sock: MemorySocket, serving: asyncio.Task[None], answering: asyncio.Task[None]) -> None:
    answering.cancel()
    sock.inbox.put_nowait(None)
    await serving


def ids(hub: Hub, client: str) -> set[str]:
    return {link.identity.agent_id for link in hub.for_client(client).online()}


async def test_each_client_sees_only_its_own_agents_through_connects_and_disconnects() -> None:
    hub = Hub(heartbeat_interval=30)
    agents = {f"ag_{c}{i}": AgentIdentity(f"ag_{c}{i}", f"cl_{c}", "device", secrets.token_bytes(32))
              for c in "ab" for i in range(3)}
    conns = {agent_id: await connect(hub, identity) for agent_id, identity in agents.items()}
    assert ids(hub, "cl_a") == {"ag_a0", "ag_a1", "ag_a2"}
    assert ids(hub, "cl_b") == {"ag_b0", "ag_b1", "ag_b2"}
    assert ids(hub, "cl_nobody") == set()
    with pytest.raises(AgentOffline):  # another client's agent is not reachable through this dispatcher
        await hub.for_client("cl_a").call_tool("ag_b0", "system_info", {}, timeout=1)

    # a reconnect on a new socket replaces the link; the old socket's end must not remove the new one
    old = conns["ag_a1"]
    conns["ag_a1"] = await connect(hub, agents["ag_a1"])
    for _ in range(200):
        if old[0].closed:
            break
        await asyncio.sleep(0.01)
    assert old[0].closed is not None, "the replaced connection was not closed"
    await disconnect(*old)  # its end comes after the new link's attach
    assert ids(hub, "cl_a") == {"ag_a0", "ag_a1", "ag_a2"}
    result = await hub.for_client("cl_a").call_tool("ag_a1", "system_info", {}, timeout=5)
    assert result.ok

    for agent_id in ("ag_a0", "ag_a1", "ag_a2"):
        await disconnect(*conns.pop(agent_id))
    assert ids(hub, "cl_a") == set() and "cl_a" not in hub._by_client
    assert ids(hub, "cl_b") == {"ag_b0", "ag_b1", "ag_b2"}
    for conn in conns.values():
        await disconnect(*conn)
    assert hub.online_count() == 0 and hub._by_client == {}
