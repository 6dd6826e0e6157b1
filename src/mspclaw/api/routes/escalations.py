"""``/api/escalations`` and ``/api/notifications``: structured hand-offs to technicians (taken, handed over,
closed through :class:`~mspclaw.pipeline.escalation_handling.EscalationHandling`) and the Slack/Teams deliveries
that announced them."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from mspclaw.api.auth import CallerDep, ServicesDep, require_caller
from mspclaw.api.schemas.escalations import CloseIn, EscalationOut, HandOverIn, NotificationOut

api = APIRouter(prefix="/api", dependencies=[Depends(require_caller)])


@api.get("/escalations", response_model=list[EscalationOut], tags=["escalations"])
def list_escalations(svc: ServicesDep, caller: CallerDep, ticket: str | None = None,
                     state: Annotated[Literal["open", "taken", "handed_over", "closed"] | None, Query(
                         description="Only escalations in this state")] = None,
                     mine: Annotated[bool, Query(description="Only those the calling technician holds")] = False,
                     limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[EscalationOut]:
    rows = svc.staff.escalation_store.escalations(caller.scope, ticket_id=ticket, limit=limit,
                                                  states=None if state is None else [state],
                                                  held_by=(caller.email or "") if mine else None)
    return [EscalationOut.model_validate(r, from_attributes=True) for r in rows]


@api.post("/escalations/{escalation_id}/take", response_model=EscalationOut, tags=["escalations"])
async def take_escalation(escalation_id: str, svc: ServicesDep, caller: CallerDep) -> EscalationOut:
    """The calling technician holds the escalation from now on. 409 names who holds it when someone else does,
    or who closed it."""
    row = await svc.staff.handling.take(escalation_id, caller)
    return EscalationOut.model_validate(row, from_attributes=True)


@api.post("/escalations/{escalation_id}/hand-over", response_model=EscalationOut, tags=["escalations"])
async def hand_over_escalation(escalation_id: str, body: HandOverIn, svc: ServicesDep,
                               caller: CallerDep) -> EscalationOut:
    """Hand the escalation to another technician who serves its client, with a note; they are notified on the
    client's Slack/Teams channels. Only its holder or an admin hands over one that is held."""
    row = await svc.staff.handling.hand_over(escalation_id, caller, to=body.to, note=body.note)
    return EscalationOut.model_validate(row, from_attributes=True)


@api.post("/escalations/{escalation_id}/close", response_model=EscalationOut, tags=["escalations"])
async def close_escalation(escalation_id: str, body: CloseIn, svc: ServicesDep, caller: CallerDep) -> EscalationOut:
    """Close the escalation with its resolution (written to the PSA ticket as an internal note). Closing a closed
    one is a 409 that says who closed it."""
    row = await svc.staff.handling.close(escalation_id, caller, resolution=body.resolution)
    return EscalationOut.model_validate(row, from_attributes=True)


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
