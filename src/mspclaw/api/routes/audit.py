"""``/api/audit``: the audit trail of the caller's clients."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from mspclaw.api.auth import CallerDep, ServicesDep, require_caller
from mspclaw.api.routes.since import parse_since
from mspclaw.api.schemas.audit import AuditOut
from mspclaw.errors import NotFound
from mspclaw.protocol.limits import SEQ_MAX

api = APIRouter(prefix="/api", dependencies=[Depends(require_caller)])


@api.get("/audit", response_model=list[AuditOut], tags=["audit"])
def audit(svc: ServicesDep, caller: CallerDep, client: str | None = None, session: str | None = None,
          kind: str | None = None, since: str | None = None,
          after_seq: Annotated[int, Query(ge=0, le=SEQ_MAX)] = 0,
          limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[AuditOut]:
    """Audit events of the caller's clients (an admin of every client also sees events of no client)."""
    ids = None if caller.scope is None else list(caller.scope)
    if client:
        found = svc.registry.client(client)
        if not caller.sees(found.id):
            raise NotFound(f"no client {client!r}")
        ids = [found.id]
    events = svc.audit.query(client_ids=ids, session_id=session, kind=kind, since=parse_since(since),
                             after_seq=after_seq, limit=limit)
    return [AuditOut(seq=e.seq, ts=e.ts, kind=e.kind, actor=e.actor, client_id=e.client_id,
                     session_id=e.session_id, data=e.data, hash=e.hash) for e in events]
