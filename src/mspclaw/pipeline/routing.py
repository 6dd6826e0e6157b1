"""Which device and which agent act on a ticket (DESIGN section 3)."""

from __future__ import annotations

from dataclasses import dataclass

from mspclaw.dispatch import Hub
from mspclaw.store.registry import Registry
from mspclaw.store.tables import Device


@dataclass(frozen=True)
class Route:
    device: Device | None
    agent_id: str | None
    online: bool
    reason: str


class Router:
    def __init__(self, registry: Registry, hub: Hub) -> None:
        self._registry = registry
        self._hub = hub

    def route(self, client_id: str, *, device: str | None, requester: str | None) -> Route:
        """The ticket's device: the named asset, else the requester's primary device, else the only one."""
        devices = self._registry.devices(client_id)
        chosen: Device | None = None
        why = ""
        if device:
            chosen = self._registry.find_device(client_id, device)
            why = f"asset {device!r} on the ticket" if chosen else ""
            if chosen is None:
                return Route(None, None, False, f"the ticket names device {device!r}, which this client does not have")
        if chosen is None and requester:
            owned = [d for d in devices if d.primary_user and d.primary_user.lower() == requester.lower()]
            if len(owned) == 1:
                chosen, why = owned[0], f"primary device of {requester}"
        if chosen is None:
            if len(devices) == 1:
                chosen, why = devices[0], "the client's only device"
            elif not devices:
                return Route(None, None, False, "this client has no enrolled device")
            else:
                return Route(None, None, False,
                             f"this client has {len(devices)} devices and the ticket does not say which one")
        online = chosen.agent_id is not None and self._hub.is_online(chosen.agent_id)
        state = "online" if online else "offline"
        return Route(chosen, chosen.agent_id, online, f"{why}; its agent is {state}")
