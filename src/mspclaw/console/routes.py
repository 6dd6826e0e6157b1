"""The console's pages: home, ticket (with its live timeline), approval, API docs.

Pages answer HTML, never JSON; none is in the OpenAPI document. Every state-changing form is
checked for its CSRF token (:meth:`~mspclaw.console.signin.ConsoleSignIn.csrf_ok`) and, where the
browser sends one, a same-origin ``Origin`` header. A record outside the signed-in technician's
clients is "not found", exactly as in the API.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from mspclaw.console import pages, views
from mspclaw.console.http import (
    CATCH_UP_S,
    HEADERS,
    RELOADING,
    STREAM_S,
    Posted,
    Sign,
    Svc,
    ViewerPage,
    html,
    needs,
    redirect,
    sent_form,
    signed_in_as,
)
from mspclaw.console.presence import online_agents
from mspclaw.errors import Conflict, Forbidden, NotFound
from mspclaw.protocol.frames import Event

router = APIRouter(include_in_schema=False)
_EXPIRED = "The form expired or did not come from this console."
ApprovalForm = Annotated[Posted, Depends(sent_form(
    "The form expired or did not come from this console; open the approval again."))]
ForgetForm = Annotated[Posted, Depends(sent_form(
    _EXPIRED, needs("tech", "Only technicians and admins make MSPclaw forget a device.")))]
AnswerForm = Annotated[Posted, Depends(sent_form(
    _EXPIRED, needs("tech", "Only technicians and admins relay answers.")))]

# -- pages ---------------------------------------------------------------------------------------------
@router.get("/")
async def home(me: ViewerPage, svc: Svc) -> Response:
    online = await online_agents(svc, me.principal)
    page = await run_in_threadpool(views.home, svc, me.principal, online)
    return html(pages.home_page(page, user=me.principal, csrf=me.csrf))


@router.get("/tickets/{ticket_id}")
def ticket(ticket_id: str, me: ViewerPage, svc: Svc) -> Response:
    with me.not_found_page():
        page = views.ticket_page(svc, me.principal, ticket_id)
    return html(pages.ticket_page(page, user=me.principal, csrf=me.csrf))


def _sse(ev: Event) -> str:
    payload = {"seq": ev.seq, "event": ev.event, "html": pages.event_line(ev.seq, ev.event, ev.data),
               "reload": ev.event in RELOADING}
    return f"id: {ev.seq}\nevent: timeline\ndata: {json.dumps(payload)}\n\n"


@router.get("/tickets/{ticket_id}/events")
async def ticket_events(ticket_id: str, request: Request, svc: Svc, sign: Sign, after: int = 0) -> Response:
    """The ticket's session events as server-sent events, from ``after`` (or ``Last-Event-ID``) on."""
    current = await run_in_threadpool(signed_in_as, request, sign)
    if current is None:
        return Response(status_code=401, headers=HEADERS)
    principal, token = current
    try:
        found = await run_in_threadpool(svc.store.ticket, ticket_id[:64], principal.scope)
    except NotFound:
        return Response(status_code=404, headers=HEADERS)
    session = await run_in_threadpool(svc.store.session_for, found.id)
    last = request.headers.get("last-event-id", "")
    start = int(last) if last.isascii() and last.isdigit() and len(last) < 12 else max(0, min(after, 2**31))

    async def stream() -> AsyncIterator[str]:
        queue = svc.events.subscribe(session.id)
        seen = start
        loop = asyncio.get_running_loop()
        end = loop.time() + STREAM_S
        try:
            yield "retry: 2000\n\n"
            while loop.time() < end:
                for ev in await run_in_threadpool(svc.events.history, session.id, seen):
                    seen = ev.seq
                    yield _sse(ev)
                try:
                    ev = await asyncio.wait_for(queue.get(), CATCH_UP_S)
                except TimeoutError:
                    if await request.is_disconnected() or await run_in_threadpool(sign.principal, token) is None:
                        return
                    yield ": still here\n\n"
                    continue
                if ev.seq == seen + 1:
                    seen = ev.seq
                    yield _sse(ev)
                # an event out of order: the next turn reads the gap from the store
        finally:
            svc.events.unsubscribe(session.id, queue)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={**HEADERS, "X-Accel-Buffering": "no"})


@router.get("/approvals/{approval_id}")
def approval(approval_id: str, me: ViewerPage, svc: Svc) -> Response:
    with me.not_found_page():
        page = views.approval_page(svc, me.principal, approval_id)
    return html(pages.approval_page(page, user=me.principal, csrf=me.csrf))


@router.post("/approvals/{approval_id}/decide")
async def decide(approval_id: str, sent: ApprovalForm, svc: Svc) -> Response:
    """Approve or deny through the one decision path (:meth:`~mspclaw.pipeline.approvals.Approvals.decide_async`):
    the approver rules apply; a second decision (a double click, a colleague first) changes nothing."""
    form, principal, csrf = sent.form, sent.principal, sent.csrf
    decision, reason = form.get("decision", ""), form.get("reason", "").strip()[:500]
    with sent.not_found_page():
        page = await run_in_threadpool(views.approval_page, svc, principal, approval_id)
    if not principal.at_least("tech"):
        return html(pages.approval_page(page, user=principal, csrf=csrf,
                                         message="Only technicians and admins decide approvals."), 403)
    if decision not in ("approve", "deny") or (decision == "deny" and not reason):
        return html(pages.approval_page(page, user=principal, csrf=csrf,
                                         message="Say why you deny it: the reason goes to the audit trail and the "
                                                 "ticket." if decision == "deny" else "Choose approve or deny."),
                     400)
    try:
        await svc.approvals.decide_async(page.approval.id, approve=decision == "approve", approver="",
                                         reason=reason, scope=principal.scope, principal=principal, via="console")
    except (Conflict, Forbidden) as exc:
        status = 409 if isinstance(exc, Conflict) else 403
        page = await run_in_threadpool(views.approval_page, svc, principal, approval_id)
        return html(pages.approval_page(page, user=principal, csrf=csrf, message=exc.message), status)
    except NotFound as exc:
        return sent.error(404, exc.message)
    return redirect(f"/approvals/{page.approval.id}")


@router.post("/devices/{device_id}/forget")
async def forget_device(device_id: str, sent: ForgetForm, svc: Svc) -> Response:
    """Forget what MSPclaw remembers about a device (technicians and admins; audited), then back to the ticket."""
    with sent.not_found_page():
        await run_in_threadpool(views.forget_device, svc, sent.principal, device_id)
    back = sent.form.get("back", "/")
    return redirect(back if back.startswith(("/tickets/", "/devices/")) and "//" not in back and len(back) < 100
                    else "/")


@router.post("/questions/{question_id}/answer")
async def answer_question(question_id: str, sent: AnswerForm, svc: Svc) -> Response:
    """Relay the end user's answer to a pending question (given by phone, in a chat), once; then back to the
    ticket. The same path as ``POST /api/questions/{id}/answer``."""
    form, principal = sent.form, sent.principal
    by = form.get("by", "").strip()[:200] or "the user"
    try:
        await svc.tickets.questions.answer_async(question_id[:64], form.get("answer", "")[:1000],
                                                 by=f"{by} (via {principal.name})", scope=principal.scope)
    except NotFound as exc:
        return sent.error(404, exc.message)
    except Conflict as exc:
        return sent.error(409, exc.message)
    back = form.get("back", "/")
    return redirect(back if back.startswith("/tickets/") and len(back) < 100 else "/")


@router.get("/docs")
def docs() -> Response:
    """The API's operations, listed from ``/openapi.json`` by the console's own script (no CDN)."""
    return html(pages.docs_page())
