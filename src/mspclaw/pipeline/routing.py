"""Which device and which agent act on a ticket (DESIGN section 3).

The device comes from, in order: the ticket's asset, the requester's primary device (device
memory), the client's only device (only when it has no recorded primary user or is the
requester's, so one user's ticket never runs tools on another user's machine). A device whose
agent was revoked is never chosen. Requester and primary user are compared as e-mail addresses
(``Name <addr>`` and case do not matter). Every refusal says what a technician should do about
it, because it ends up in the ticket's internal note.

With several server replicas, :meth:`Router.route` (synchronous, it may run off the event loop) sees the
agents of this replica; :meth:`Router.confirm` then asks the hub whether an agent it found offline here is
online on another replica, and :meth:`Router.find_site_agent` looks for a site agent on every replica.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace

from mspclaw.dispatch import Hub
from mspclaw.pipeline.identity import address
from mspclaw.playbooks.matcher import Match
from mspclaw.store.registry import Registry, pick_device
from mspclaw.store.tables import Agent, Client, Device


@dataclass(frozen=True)
class Route:
    device: Device | None
    agent_id: str | None
    online: bool
    reason: str
    facts: Mapping[str, str] | None = None
    """The device's known facts, read with the ticket's open (``None``: not read; the run reads them)."""
    found: Match | None = None
    """The matcher's verdict on the ticket, reached at its open (``None``: not yet; the run matches it)."""


@dataclass(frozen=True)
class SiteRoute:
    """The client's site agent that would run a playbook's site tools, or why there is none."""

    agent_id: str | None
    hostname: str | None
    reason: str


def _may_fall_back(device: Device, requester: str) -> bool:
    """The only device serves a ticket only if it has no recorded primary user or is the requester's own."""
    return not (device.primary_user or "").strip() or address(device.primary_user) == requester


class Router:
    def __init__(self, registry: Registry, hub: Hub) -> None:
        self._registry = registry
        self._hub = hub

    def client_for(self, psa: str, company: str) -> Client | None:
        """The client whose ``psa_refs[psa]`` is the PSA's company id (the first by name if several are)."""
        return self._registry.client_by_psa_ref(psa, company)

    def route_company(self, psa: str, company: str, *, device: str | None,
                      requester: str | None) -> tuple[Client, Route] | None:
        """:meth:`client_for` and :meth:`route` for its client, from one read (``None``: no client maps to it)."""
        found = self._registry.routable_client_by_psa_ref(psa, company)
        if found is None:
            return None
        return found.client, self._route(found.devices, found.revoked, device=device, requester=requester)

    def route(self, client_id: str, *, device: str | None, requester: str | None) -> Route:
        everyone, revoked = self._registry.devices_for_routing(client_id)  # one read
        return self._route(everyone, revoked, device=device, requester=requester)

    def _route(self, everyone: list[Device], revoked: frozenset[str], *, device: str | None,
               requester: str | None) -> Route:
        """The route among a client's devices (``everyone``), never to one whose agent is ``revoked``."""
        devices = [d for d in everyone if d.agent_id is None or d.agent_id not in revoked]
        chosen: Device | None = None
        why = ""
        if device:
            chosen = pick_device(devices, device)
            if chosen is None and (gone := pick_device(everyone, device)) is not None:
                return Route(None, None, False,
                             f"the ticket names device {gone.hostname}, whose agent {gone.agent_id} was revoked; "
                             "enroll the machine again with `mspclaw enroll CLIENT` if it is trusted again")
            if chosen is None:
                return Route(None, None, False,
                             f"the ticket names device {device!r}, which has no MSPclaw agent at this client; "
                             "install one with `mspclaw enroll CLIENT` on that machine, or correct the ticket's asset")
            why = f"asset {device!r} on the ticket"
        wanted = address(requester) if requester and requester.strip() else ""
        if chosen is None and wanted:
            owned = [d for d in devices if d.primary_user and address(d.primary_user) == wanted]
            if len(owned) == 1:
                chosen, why = owned[0], f"primary device of {requester}"
        if chosen is None:
            if len(devices) == 1 and _may_fall_back(devices[0], wanted):
                chosen, why = devices[0], "the client's only device"
            elif len(devices) == 1:
                return Route(None, None, False,
                             f"the client's only device, {devices[0].hostname}, is {devices[0].primary_user}'s and "
                             f"the ticket is from {requester or 'an unnamed requester'}; set the ticket's asset, or "
                             "record the requester's primary device")
            elif not devices:
                revoked_note = f" ({len(everyone)} with a revoked agent)" if everyone else ""
                return Route(None, None, False,
                             f"this client has no enrolled device{revoked_note}; "
                             "enroll the user's machine with `mspclaw enroll CLIENT`")
            else:
                return Route(None, None, False,
                             f"this client has {len(devices)} devices and the ticket does not say which one; "
                             "set the ticket's asset, or record the requester's primary device")
        if chosen.agent_id is None:
            return Route(chosen, None, False,
                         f"{why}: {chosen.hostname} has no agent; install one with `mspclaw enroll CLIENT`")
        online = self._hub.is_online(chosen.agent_id)
        state = "online" if online else OFFLINE
        return Route(chosen, chosen.agent_id, online, f"{why}; its agent is {state}")

    async def confirm(self, route: Route) -> Route:
        """``route``, online if its agent, offline on this replica, is connected to another one.

        A route found online, or with no agent, is returned as it is, without a lookup."""
        if route.online or route.agent_id is None or route.device is None:
            return route
        if not await self._hub.online_anywhere(route.agent_id, route.device.client_id):
            return route
        why = route.reason.removesuffix(f"; its agent is {OFFLINE}")
        return replace(route, online=True, reason=f"{why}; its agent is online (on another server replica)")

    def site_agent(self, client_id: str, tools: Collection[str]) -> SiteRoute:
        """The client's site agent online on this replica that offers the most of ``tools`` (all, ideally)."""
        sites = [_Site(link.identity.agent_id, link.hello.hostname, link.tools)
                 for link in self._hub.for_client(client_id).online() if link.identity.role == "site"]
        return _best_site(sites, set(tools))

    async def find_site_agent(self, client_id: str, tools: Collection[str]) -> SiteRoute:
        """:meth:`site_agent` over every replica: this one's site agents first; without one, the client's
        enrolled, unrevoked site agents (tools as they last said in their hello) that another replica holds."""
        here = self.site_agent(client_id, tools)
        if here.agent_id is not None or self._hub.cluster is None:
            return here
        enrolled = {a.id: a for a in await asyncio.to_thread(self._site_agents, client_id)}
        online = await self._hub.for_client(client_id).reachable(list(enrolled)) if enrolled else frozenset()
        sites = [_Site(a.id, a.hostname, frozenset(str(t) for t in a.tools or ())) for a in enrolled.values()
                 if a.id in online]
        return _best_site(sites, set(tools)) if sites else here

    def _site_agents(self, client_id: str) -> list[Agent]:
        return [a for a in self._registry.agents(client_id)[:MAX_SITE_AGENTS]
                if a.role == "site" and a.revoked_at is None]


OFFLINE = "offline (check that the machine is on and the agent service runs)"

MAX_SITE_AGENTS = 1000
"""A client's agents looked at for a site agent on another replica (one presence ``MGET`` for all)."""


@dataclass(frozen=True)
class _Site:
    agent_id: str
    hostname: str
    tools: frozenset[str]


def _best_site(sites: list[_Site], wanted: set[str]) -> SiteRoute:
    if not sites:
        return SiteRoute(None, None, "this client has no site agent online to run account and directory tools; "
                                     "enroll one with `mspclaw enroll CLIENT --role site`, configure it with "
                                     "`mspclaw site add ad|entra ...` and start it")
    best = max(sites, key=lambda site: (len(wanted & site.tools), site.hostname))
    missing = sorted(wanted - best.tools)
    if missing and not wanted & best.tools:
        return SiteRoute(None, None, f"the client's site agent {best.hostname} offers none of "
                                     f"{', '.join(sorted(wanted))}; configure its directory with "
                                     "`mspclaw site add ad|entra ...` and restart it")
    why = f"site agent {best.hostname} holds the client's directory"
    if missing:
        why += f" (it does not offer {', '.join(missing)})"
    return SiteRoute(best.agent_id, best.hostname, why)
