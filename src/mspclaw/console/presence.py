"""Which agents are online for a console page, across every server replica.

A page is rendered by a sync view in a thread; presence is asked once per page, in the async route, and the
set handed to the view. Each client's agents cost one :meth:`ClientDispatcher.reachable` (a dictionary lookup
for those this replica holds, one Redis ``MGET`` for the rest; no Redis at all without a cluster).
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.concurrency import run_in_threadpool

from mspclaw.pipeline.access import Principal
from mspclaw.store.tables import Agent
from mspclaw.wiring import Services


async def online_of(svc: Services, agents: Iterable[Agent]) -> frozenset[str]:
    """The ids of ``agents`` (revoked ones never count) connected to any replica: one lookup per client."""
    by_client: dict[str, list[str]] = {}
    for agent in agents:
        if agent.revoked_at is None:
            by_client.setdefault(agent.client_id, []).append(agent.id)
    online: set[str] = set()
    for client_id, ids in by_client.items():
        online |= await svc.hub.for_client(client_id).reachable(ids)
    return frozenset(online)


async def online_agents(svc: Services, principal: Principal, client_id: str | None = None) -> frozenset[str]:
    """The ids of the agents of the clients ``principal`` sees (of ``client_id`` only, if given) connected to
    any replica."""
    agents = await run_in_threadpool(svc.registry.agents, client_id)
    return await online_of(svc, (a for a in agents if principal.sees(a.client_id)))
