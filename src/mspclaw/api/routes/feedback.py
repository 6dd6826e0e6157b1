"""``/api/tickets/{id}/feedback``: the end user's answer to "did it work?" after a ticket is resolved."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from mspclaw.api.auth import CallerDep, ServicesDep, require_caller
from mspclaw.api.schemas.feedback import FeedbackIn, FeedbackOut

api = APIRouter(prefix="/api", dependencies=[Depends(require_caller)])


@api.get("/tickets/{ticket_id}/feedback", response_model=FeedbackOut, tags=["tickets"])
def show_feedback(ticket_id: str, svc: ServicesDep, caller: CallerDep) -> FeedbackOut:
    return FeedbackOut.model_validate(svc.staff.feedback.store.for_ticket(ticket_id, caller.scope),
                                      from_attributes=True)


@api.post("/tickets/{ticket_id}/feedback", response_model=FeedbackOut, tags=["tickets"])
async def answer_feedback(ticket_id: str, body: FeedbackIn, svc: ServicesDep, caller: CallerDep) -> FeedbackOut:
    """Record the end user's answer to "did it work?" (from a chat bridge, the PSA reply, a phone call).
    "no" reopens the ticket for a technician with the whole history."""
    row = await svc.staff.feedback.answer(ticket_id, body.answer, by=f"{body.answered_by} (via {caller.name})",
                                          comment=body.comment, scope=caller.scope)
    return FeedbackOut.model_validate(row, from_attributes=True)
