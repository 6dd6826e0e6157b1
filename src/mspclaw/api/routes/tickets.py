"""``/api/tickets``: open a ticket by hand, and what happened to it (steps, approvals, note, reply, tokens)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from mspclaw.api.auth import CallerDep, ServicesDep, require_caller
from mspclaw.api.routes.scope import client_in_scope
from mspclaw.api.routes.since import parse_since
from mspclaw.api.schemas.approvals import ApprovalOut
from mspclaw.api.schemas.errors import ErrorOut
from mspclaw.api.schemas.tickets import StepOut, TicketCreated, TicketIn, TicketOut
from mspclaw.engine.plan import StepRecord
from mspclaw.pipeline.notes import summarise
from mspclaw.pipeline.offload import run_store
from mspclaw.protocol.limits import CLIENT_REF_MAX

api = APIRouter(prefix="/api", dependencies=[Depends(require_caller)])


@api.post("/tickets", response_model=TicketCreated, status_code=202, tags=["tickets"])
async def create_ticket(body: TicketIn, svc: ServicesDep, caller: CallerDep) -> TicketCreated:
    """Open a ticket and start working on it; follow it with GET /api/tickets/{id} or /ws/sessions."""
    client = await run_store(svc.store, client_in_scope, svc, caller, body.client)
    sub = await svc.tickets.submit(client=client.id, subject=body.subject, body=body.body,
                                   requester=body.requester, device=body.device, scope=caller.scope,
                                   actor=caller.name)
    return TicketCreated(ticket_id=sub.ticket.id, session_id=sub.session.id, status=sub.ticket.status)


@api.get("/tickets", response_model=list[TicketOut], tags=["tickets"], responses={
    404: {"model": ErrorOut, "description": "No such client, or not one the caller may see."},
    409: {"model": ErrorOut, "description": "`since` is neither an ISO time nor an age."}})
def list_tickets(
    svc: ServicesDep, caller: CallerDep, limit: Annotated[int, Query(ge=1, le=500)] = 50,
    status: Annotated[str | None, Query(max_length=32, description="in_progress, resolved, escalated, "
                                        "reopened...")] = None,
    client: Annotated[str | None, Query(max_length=CLIENT_REF_MAX, description="Client id or exact name.")] = None,
    since: Annotated[str | None, Query(max_length=40, description="ISO time or age (30m, 12h, 7d).")] = None,
    playbook: Annotated[str | None, Query(max_length=100, description="Worked by this playbook.")] = None,
) -> list[TicketOut]:
    """The newest tickets the caller may see, newest first, optionally filtered."""
    client_id = client_in_scope(svc, caller, client).id if client is not None else None
    found = svc.store.tickets(caller.scope, limit, status=status, client_id=client_id, since=parse_since(since),
                              playbook=playbook)
    return [show_ticket(t.id, svc, caller) for t in found]


@api.get("/tickets/{ticket_id}", response_model=TicketOut, tags=["tickets"])
def show_ticket(ticket_id: str, svc: ServicesDep, caller: CallerDep) -> TicketOut:
    ticket = svc.store.ticket(ticket_id, caller.scope)
    session = svc.store.session_for(ticket.id)
    steps = []
    for s in svc.store.steps(session.id):
        obs = s.observation or {}
        rec = StepRecord(s.index, "", s.title, s.tool, s.args, s.ok, obs.get("output"), obs.get("error"),
                         bool(obs.get("skipped")))
        steps.append(StepOut(index=s.index, title=s.title, tool=s.tool, ok=s.ok, summary=summarise(rec),
                             args=s.args, observation=obs))
    approvals = [ApprovalOut.model_validate(a, from_attributes=True)
                 for a in svc.store.approvals(caller.scope, status=None) if a.session_id == session.id]
    tokens = svc.tickets.runs.token_totals(session.id)
    return TicketOut(id=ticket.id, client_id=ticket.client_id, psa=ticket.psa, external_id=ticket.external_id,
                     subject=ticket.subject, body=ticket.body,
                     requester=ticket.requester, device_id=ticket.device_id, status=ticket.status,
                     session_id=session.id, playbook=session.playbook, outcome=session.outcome,
                     reason=session.reason, note=session.note, reply=session.reply, steps=steps,
                     approvals=approvals, created_at=ticket.created_at, updated_at=ticket.updated_at,
                     model=session.model, prompt_tokens=tokens[0], completion_tokens=tokens[1])
