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

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from mspclaw.console import pages, views
from mspclaw.console.http import (
    CATCH_UP_S,
    HEADERS,
    RELOADING,
    STREAM_S,
    Sign,
    Svc,
    html,
    redirect,
    signed_in_as,
    staff_form,
    to_login,
)
from mspclaw.console.presence import online_agents
from mspclaw.errors import Conflict, Forbidden, NotFound
from mspclaw.protocol.frames import Event

router = APIRouter(include_in_schema=False)

# -- pages ---------------------------------------------------------------------------------------------
@router.get("/")
async def home(request: Request, svc: Svc, sign: Sign) -> Response:
    current = await run_in_threadpool(signed_in_as, request, sign)
    if current is None:
        return to_login(request)
    principal, token = current
    online = await online_agents(svc, principal)
    page = await run_in_threadpool(views.home, svc, principal, online)
    return html(pages.home_page(page, user=principal, csrf=sign.csrf(token)))


@router.get("/tickets/{ticket_id}")
def ticket(ticket_id: str, request: Request, svc: Svc, sign: Sign) -> Response:
    current = signed_in_as(request, sign)
    if current is None:
        return to_login(request)
    principal, token = current
    try:
        page = views.ticket_page(svc, principal, ticket_id)
    except NotFound as exc:
        return html(pages.error_page(404, exc.message, user=principal, csrf=sign.csrf(token)), 404)
    return html(pages.ticket_page(page, user=principal, csrf=sign.csrf(token)))


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
def approval(approval_id: str, request: Request, svc: Svc, sign: Sign) -> Response:
    current = signed_in_as(request, sign)
    if current is None:
        return to_login(request)
    principal, token = current
    try:
        page = views.approval_page(svc, principal, approval_id)
    except NotFound as exc:
        return html(pages.error_page(404, exc.message, user=principal, csrf=sign.csrf(token)), 404)
    return html(pages.approval_page(page, user=principal, csrf=sign.csrf(token)))


@router.post("/approvals/{approval_id}/decide")
async def decide(approval_id: str, request: Request, svc: Svc, sign: Sign) -> Response:
    """Approve or deny through the one decision path (:meth:`~mspclaw.pipeline.approvals.Approvals.decide_async`):
    the approver rules apply; a second decision (a double click, a colleague first) changes nothing."""
    checked = await staff_form(request, sign, expired="The form expired or did not come from this console; open "
                                                       "the approval again.")
    if isinstance(checked, Response):
        return checked
    form, principal, csrf = checked
    decision, reason = form.get("decision", ""), form.get("reason", "").strip()[:500]
    try:
        page = await run_in_threadpool(views.approval_page, svc, principal, approval_id)
    except NotFound as exc:
        return html(pages.error_page(404, exc.message, user=principal, csrf=csrf), 404)
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
        return html(pages.error_page(404, exc.message, user=principal, csrf=csrf), 404)
    return redirect(f"/approvals/{page.approval.id}")


@router.post("/devices/{device_id}/forget")
async def forget_device(device_id: str, request: Request, svc: Svc, sign: Sign) -> Response:
    """Forget what MSPclaw remembers about a device (technicians and admins; audited), then back to the ticket."""
    checked = await staff_form(request, sign, expired="The form expired or did not come from this console.",
                                not_tech="Only technicians and admins make MSPclaw forget a device.")
    if isinstance(checked, Response):
        return checked
    form, principal, csrf = checked
    try:
        await run_in_threadpool(views.forget_device, svc, principal, device_id)
    except NotFound as exc:
        return html(pages.error_page(404, exc.message, user=principal, csrf=csrf), 404)
    back = form.get("back", "/")
    return redirect(back if back.startswith(("/tickets/", "/devices/")) and "//" not in back and len(back) < 100
                    else "/")


@router.post("/questions/{question_id}/answer")
async def answer_question(question_id: str, request: Request, svc: Svc, sign: Sign) -> Response:
    """Relay the end user's answer to a pending question (given by phone, in a chat), once; then back to the
    ticket. The same path as ``POST /api/questions/{id}/answer``."""
    checked = await staff_form(request, sign, expired="The form expired or did not come from this console.",
                                not_tech="Only technicians and admins relay answers.")
    if isinstance(checked, Response):
        return checked
    form, principal, csrf = checked
    by = form.get("by", "").strip()[:200] or "the user"
    try:
        await svc.tickets.questions.answer_async(question_id[:64], form.get("answer", "")[:1000],
                                                 by=f"{by} (via {principal.name})", scope=principal.scope)
    except NotFound as exc:
        return html(pages.error_page(404, exc.message, user=principal, csrf=csrf), 404)
    except Conflict as exc:
        return html(pages.error_page(409, exc.message, user=principal, csrf=csrf), 409)
    back = form.get("back", "/")
    return redirect(back if back.startswith("/tickets/") and len(back) < 100 else "/")


@router.get("/docs")
def docs() -> Response:
    """The API's operations, listed from ``/openapi.json`` by the console's own script (no CDN)."""
    return html(pages.docs_page())
