"""``/api/escalations`` and ``/api/notifications``: structured hand-offs to technicians and the
Slack/Teams deliveries that announced them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from mspclaw.api.auth import CallerDep, ServicesDep, require_caller
from mspclaw.api.schemas.escalations import EscalationOut, NotificationOut

api = APIRouter(prefix="/api", dependencies=[Depends(require_caller)])


@api.get("/escalations", response_model=list[EscalationOut], tags=["escalations"])
def list_escalations(svc: ServicesDep, caller: CallerDep, ticket: str | None = None,
                     limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[EscalationOut]:
    rows = svc.staff.escalation_store.escalations(caller.scope, ticket_id=ticket, limit=limit)
    return [EscalationOut.model_validate(r, from_attributes=True) for r in rows]


@api.get("/escalations/{escalation_id}", response_model=EscalationOut, tags=["escalations"])
def show_escalation(escalation_id: str, svc: ServicesDep, caller: CallerDep) -> EscalationOut:
    return EscalationOut.model_validate(svc.staff.escalation_store.get(escalation_id, caller.scope),
                                        from_attributes=True)


@api.get("/notifications", response_model=list[NotificationOut], tags=["escalations"])
def list_notifications(svc: ServicesDep, caller: CallerDep, ref: str | None = None,
                       limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[NotificationOut]:
    """Slack/Teams deliveries with their attempts and last error (payloads stay server-side)."""
    rows = svc.staff.escalation_store.notifications(caller.scope, ref_id=ref, limit=limit)
    return [NotificationOut.model_validate(r, from_attributes=True) for r in rows]
