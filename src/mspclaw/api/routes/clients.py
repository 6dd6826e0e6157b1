"""``/api/clients``: the MSP's client companies."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from mspclaw.api.auth import CallerDep, ServicesDep, require_caller
from mspclaw.api.routes.scope import client_in_scope
from mspclaw.api.schemas.clients import ClientIn, ClientOut
from mspclaw.store.tables import Client

api = APIRouter(prefix="/api", dependencies=[Depends(require_caller)])


@api.post("/clients", response_model=ClientOut, status_code=201, tags=["clients"])
def create_client(body: ClientIn, svc: ServicesDep, caller: CallerDep) -> Client:
    client = svc.registry.add_client(body.name, body.psa_refs)
    svc.audit.append("client_created", actor=caller.name, client_id=client.id, data={"name": client.name})
    return client


@api.get("/clients", response_model=list[ClientOut], tags=["clients"])
def list_clients(svc: ServicesDep, caller: CallerDep) -> list[Client]:
    return [c for c in svc.registry.clients() if caller.scope is None or c.id in caller.scope]


@api.get("/clients/{ref}", response_model=ClientOut, tags=["clients"])
def show_client(ref: str, svc: ServicesDep, caller: CallerDep) -> Client:
    return client_in_scope(svc, caller, ref)
