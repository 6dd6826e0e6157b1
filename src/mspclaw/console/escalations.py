"""Escalations in the console: the list, take one, hand it over to another technician, close it; the questions
waiting for an answer a technician can relay.

Every change goes through :class:`~mspclaw.pipeline.escalation_handling.EscalationHandling`, the path of
``POST /api/escalations/{id}/take|hand-over|close``: the same rules, the same audit events (``via: console``).
Another client's escalation is "not found"; a viewer reads but does not act; a form without its CSRF token
changes nothing.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from mspclaw.console import escalation_pages as render
from mspclaw.console.escalation_pages import EscalationLine, EscalationView, QuestionLine
from mspclaw.console.http import Posted, Svc, ViewerPage, html, needs, redirect, sent_form
from mspclaw.errors import Conflict, Forbidden, InvalidRequest, NotFound
from mspclaw.pipeline.access import Principal
from mspclaw.pipeline.escalation import Escalation
from mspclaw.store.tables import Client, Ticket
from mspclaw.wiring import Services

router = APIRouter(include_in_schema=False)

LIST_LIMIT = 200
"""The most escalations one list shows."""
QUESTIONS_LIMIT = 200
_ORDER = {"open": 0, "handed_over": 1, "taken": 1, "closed": 2}
Show = Literal["open", "mine", "all"]


# -- read models ---------------------------------------------------------------------------------------
class _Lookup:
    """Tickets and clients of one page, each read once, in the principal's scope."""

    def __init__(self, svc: Services, principal: Principal) -> None:
        self._svc, self._scope = svc, principal.scope
        self._tickets: dict[str, Ticket] = {}
        self._clients: dict[str, Client] = {}

    def ticket(self, ticket_id: str) -> Ticket:
        if ticket_id not in self._tickets:
            self._tickets[ticket_id] = self._svc.store.ticket(ticket_id, self._scope)
        return self._tickets[ticket_id]

    def client(self, client_id: str) -> Client:
        if client_id not in self._clients:
            self._clients[client_id] = self._svc.registry.client(client_id)
        return self._clients[client_id]


def escalation_lines(svc: Services, principal: Principal, show: Show) -> list[EscalationLine]:
    store = svc.staff.escalation_store
    if show == "mine":
        rows = store.escalations(principal.scope, limit=LIST_LIMIT, held_by=principal.email or "",
                                 states=["taken", "handed_over"])
    elif show == "open":
        rows = store.escalations(principal.scope, limit=LIST_LIMIT, states=["open", "taken", "handed_over"])
    else:
        rows = store.escalations(principal.scope, limit=LIST_LIMIT)
    rows.sort(key=lambda r: (_ORDER.get(r.state, 3), -r.created_at.timestamp()))
    seen = _Lookup(svc, principal)
    return [EscalationLine(r, seen.ticket(r.ticket_id), seen.client(r.client_id)) for r in rows]


def escalation_view(svc: Services, principal: Principal, escalation_id: str) -> EscalationView:
    row = svc.staff.escalation_store.get(escalation_id[:64], principal.scope)
    try:
        handoff: Escalation | None = Escalation.model_validate(row.body)
    except ValidationError:
        handoff = None
    return EscalationView(row, svc.store.ticket(row.ticket_id, principal.scope), svc.registry.client(row.client_id),
                          handoff, svc.staff.handling.technicians_for(row))


def question_lines(svc: Services, principal: Principal) -> list[QuestionLine]:
    seen = _Lookup(svc, principal)
    lines = []
    questions = svc.tickets.runs.questions(scope=principal.scope, status="pending")
    for q in sorted(questions, key=lambda q: q.deadline)[:QUESTIONS_LIMIT]:
        session = svc.store.session(q.session_id, principal.scope)
        lines.append(QuestionLine(q, seen.ticket(session.ticket_id), seen.client(q.client_id)))
    return lines


# -- pages ---------------------------------------------------------------------------------------------
@router.get("/escalations")
def escalations(me: ViewerPage, svc: Svc, show: str = "open") -> Response:
    chosen: Show = "mine" if show == "mine" else "all" if show == "all" else "open"
    lines = escalation_lines(svc, me.principal, chosen)
    return html(render.escalations_page(lines, show=chosen, user=me.principal, csrf=me.csrf))


@router.get("/escalations/{escalation_id}")
def escalation(escalation_id: str, me: ViewerPage, svc: Svc) -> Response:
    with me.not_found_page():
        view = escalation_view(svc, me.principal, escalation_id)
    return html(render.escalation_page(view, user=me.principal, csrf=me.csrf))


@router.get("/questions")
def questions(me: ViewerPage, svc: Svc) -> Response:
    return html(render.questions_page(question_lines(svc, me.principal), user=me.principal, csrf=me.csrf))


# -- forms ---------------------------------------------------------------------------------------------
ActForm = Annotated[Posted, Depends(sent_form(
    "The form expired or did not come from this console; open the escalation again.",
    needs("tech", "Only technicians and admins take, hand over and close escalations.")))]


async def _act(action: str, escalation_id: str, sent: Posted, svc: Services) -> Response:
    form, principal = sent.form, sent.principal
    handling = svc.staff.handling
    try:
        match action:
            case "take":
                row = await handling.take(escalation_id, principal, via="console")
            case "hand-over":
                row = await handling.hand_over(escalation_id, principal, to=form.get("to", "")[:320],
                                               note=form.get("note", ""), via="console")
            case _:
                row = await handling.close(escalation_id, principal, resolution=form.get("resolution", ""),
                                           via="console")
    except NotFound as exc:
        return sent.error(404, exc.message)
    except (Conflict, Forbidden, InvalidRequest) as exc:
        status = 409 if isinstance(exc, Conflict) else 403 if isinstance(exc, Forbidden) else 400
        try:
            view = await run_in_threadpool(escalation_view, svc, principal, escalation_id)
        except NotFound as missing:
            return sent.error(404, missing.message)
        return html(render.escalation_page(view, user=principal, csrf=sent.csrf, message=exc.message), status)
    return redirect(f"/escalations/{row.id}")


@router.post("/escalations/{escalation_id}/take")
async def take(escalation_id: str, sent: ActForm, svc: Svc) -> Response:
    """Take the escalation: the signed-in technician holds it from now on."""
    return await _act("take", escalation_id, sent, svc)


@router.post("/escalations/{escalation_id}/hand-over")
async def hand_over(escalation_id: str, sent: ActForm, svc: Svc) -> Response:
    """Hand the escalation to another technician of its client, with a note; they are notified."""
    return await _act("hand-over", escalation_id, sent, svc)


@router.post("/escalations/{escalation_id}/close")
async def close(escalation_id: str, sent: ActForm, svc: Svc) -> Response:
    """Close the escalation with its resolution (an internal note on the PSA ticket)."""
    return await _act("close", escalation_id, sent, svc)
