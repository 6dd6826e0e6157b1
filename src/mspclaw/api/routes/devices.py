"""``/api/devices``: devices and what MSPclaw remembers about each (device memory), and forgetting it."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from mspclaw.api.auth import CallerDep, ServicesDep, require_caller
from mspclaw.api.schemas.devices import DeviceDetail, DeviceOut, FactOut, ForgetOut
from mspclaw.errors import NotFound
from mspclaw.store.tables import Device

api = APIRouter(prefix="/api", dependencies=[Depends(require_caller)])


def _device_out(d: Device, facts: int) -> DeviceOut:
    return DeviceOut(id=d.id, client_id=d.client_id, hostname=d.hostname, os=d.os, agent_id=d.agent_id,
                     primary_user=d.primary_user, facts=facts)


@api.get("/devices", response_model=list[DeviceOut], tags=["devices"])
def list_devices(svc: ServicesDep, caller: CallerDep, client: str | None = None) -> list[DeviceOut]:
    client_id = None
    if client:
        found = svc.registry.client(client)
        if not caller.sees(found.id):
            raise NotFound(f"no client {client!r}")
        client_id = found.id
    return [_device_out(d, n) for d, n in svc.staff.devices.devices(caller.scope, client_id)]


@api.get("/devices/{device_id}", response_model=DeviceDetail, tags=["devices"])
def show_device(device_id: str, svc: ServicesDep, caller: CallerDep) -> DeviceDetail:
    found = svc.staff.devices.device(device_id, caller.scope)
    base = _device_out(found.device, len(found.facts))
    return DeviceDetail(**base.model_dump(), known=[FactOut(key=f.key, value=f.value, source=f.source,
                                                            updated_at=f.updated_at) for f in found.facts])


@api.post("/devices/{device_id}/forget", response_model=ForgetOut, tags=["devices"])
def forget_device(device_id: str, svc: ServicesDep, caller: CallerDep) -> ForgetOut:
    """Remove every fact MSPclaw learned about a device (and its primary user); audited."""
    device = svc.staff.devices.device(device_id, caller.scope).device
    keys = svc.staff.devices.forget(device_id, caller.scope)
    svc.audit.append("device_forgotten", actor=caller.name, client_id=device.client_id,
                     data={"device_id": device_id, "hostname": device.hostname, "keys": keys})
    return ForgetOut(device_id=device_id, forgotten=keys)
