"""``/api/agents``: enrolled agents, their online state, revocation, and which agent would act on a ticket."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from mspclaw.api.auth import CallerDep, ServicesDep, require_caller
from mspclaw.api.routes.scope import client_in_scope
from mspclaw.api.schemas.agents import AgentOut, LookupOut
from mspclaw.errors import NotFound
from mspclaw.store.tables import Agent
from mspclaw.tools.site import ACCOUNT_TOOLS
from mspclaw.wiring import Services

api = APIRouter(prefix="/api", dependencies=[Depends(require_caller)])


def _agent_out(svc: Services, agent: Agent, online: bool | None = None) -> AgentOut:
    return AgentOut(id=agent.id, client_id=agent.client_id, role=agent.role, hostname=agent.hostname, os=agent.os,
                    os_version=agent.os_version, agent_version=agent.agent_version, tools=agent.tools,
                    online=svc.hub.is_online(agent.id) if online is None else online,
                    revoked=agent.revoked_at is not None, last_seen_at=agent.last_seen_at)


@api.get("/agents", response_model=list[AgentOut], tags=["agents"])
async def list_agents(svc: ServicesDep, caller: CallerDep, client: str | None = None) -> list[AgentOut]:
    """Enrolled agents, each online if connected to any server replica (one presence lookup per client)."""
    client_id = (await asyncio.to_thread(client_in_scope, svc, caller, client)).id if client else None
    agents = [a for a in await asyncio.to_thread(svc.registry.agents, client_id)
              if caller.scope is None or a.client_id in caller.scope]
    by_client: dict[str, list[str]] = {}
    for agent in agents:
        if agent.revoked_at is None:
            by_client.setdefault(agent.client_id, []).append(agent.id)
    online: set[str] = set()
    for owner, ids in by_client.items():
        online |= await svc.hub.for_client(owner).reachable(ids)
    return [_agent_out(svc, a, a.id in online) for a in agents]


@api.get("/agents/lookup", response_model=LookupOut, tags=["agents"])
async def lookup_agent(svc: ServicesDep, caller: CallerDep, client: Annotated[str, Query()],
                       device: str | None = None, requester: str | None = None) -> LookupOut:
    """Which agents would act on a ticket from this client, and why: the device agent for device
    playbooks, the site agent for account and directory playbooks (which need no device); online on
    any server replica."""
    c = await asyncio.to_thread(client_in_scope, svc, caller, client)
    route = await svc.router.confirm(await asyncio.to_thread(svc.router.route, c.id, device=device,
                                                             requester=requester))
    site = await svc.router.find_site_agent(c.id, ACCOUNT_TOOLS)
    return LookupOut(client_id=c.id, device_id=route.device.id if route.device else None,
                     hostname=route.device.hostname if route.device else None, agent_id=route.agent_id,
                     online=route.online, reason=route.reason, site_agent_id=site.agent_id,
                     site_hostname=site.hostname, site_reason=site.reason)


@api.post("/agents/{agent_id}/revoke", response_model=AgentOut, tags=["agents"])
async def revoke_agent(agent_id: str, svc: ServicesDep, caller: CallerDep) -> AgentOut:
    agent = await asyncio.to_thread(svc.registry.agent, agent_id)
    if caller.scope is not None and agent.client_id not in caller.scope:
        raise NotFound(f"no agent {agent_id!r}")
    return _agent_out(svc, await svc.fleet.revoke(agent_id, actor=caller.name))
