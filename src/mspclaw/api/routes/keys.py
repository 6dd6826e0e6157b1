"""``/api/keys``: named API keys for a role and clients; the key itself is shown once."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from mspclaw.api.auth import CallerDep, ServicesDep, require_caller
from mspclaw.api.schemas.keys import KeyCreated, KeyIn, KeyOut
from mspclaw.store.tables import ApiKeyRow

api = APIRouter(prefix="/api", dependencies=[Depends(require_caller)])


def _key_out(row: ApiKeyRow) -> KeyOut:
    return KeyOut.model_validate(row, from_attributes=True)


@api.post("/keys", response_model=KeyCreated, status_code=201, tags=["keys"])
def create_key(body: KeyIn, svc: ServicesDep, caller: CallerDep) -> KeyCreated:
    """Create a named API key for a role and clients. The key is in this answer only."""
    ids = [svc.registry.client(ref).id for ref in body.clients]
    row, key = svc.staff.keys.create(body.name, role=body.role, clients=ids, all_clients=body.all_clients,
                                     created_by=caller.name)
    svc.audit.append("api_key_created", actor=caller.name,
                     data={"key_id": row.id, "name": row.name, "role": row.role, "clients": row.clients,
                           "all_clients": row.all_clients})
    return KeyCreated(**_key_out(row).model_dump(), key=key)


@api.get("/keys", response_model=list[KeyOut], tags=["keys"])
def list_keys(svc: ServicesDep) -> list[KeyOut]:
    return [_key_out(r) for r in svc.staff.keys.list()]


@api.post("/keys/{ref}/revoke", response_model=KeyOut, tags=["keys"])
def revoke_key(ref: str, svc: ServicesDep, caller: CallerDep) -> KeyOut:
    row = svc.staff.keys.revoke(ref)
    svc.audit.append("api_key_revoked", actor=caller.name, data={"key_id": row.id, "name": row.name})
    return _key_out(row)
