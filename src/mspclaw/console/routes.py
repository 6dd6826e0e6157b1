"""The console's pages: sign-in, home, ticket (with its live timeline), approval, API docs.

Pages answer HTML, never JSON; none is in the OpenAPI document. Every state-changing form is
checked for its CSRF token (:meth:`~mspclaw.console.signin.ConsoleSignIn.csrf_ok`) and, where the
browser sends one, a same-origin ``Origin`` header. A record outside the signed-in technician's
clients is "not found", exactly as in the API.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from typing import Annotated
from urllib.parse import parse_qs, urlsplit

import segno
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from mspclaw.console import pages, totp, views
from mspclaw.console.signin import SECOND_FACTOR_TTL, ConsoleSignIn
from mspclaw.errors import AuthError, Conflict, Forbidden, NotFound, TooManyAttempts
from mspclaw.pipeline.access import Principal
from mspclaw.protocol.frames import Event
from mspclaw.wiring import Services

SESSION_COOKIE = "mspclaw_console"
DUE_COOKIE = "mspclaw_console_2fa"
PRE_COOKIE = "mspclaw_console_pre"
NEXT_COOKIE = "mspclaw_console_next"
MAX_FORM_BYTES = 16_384
STREAM_S = 3600.0
"""A live timeline stream ends after this long (the browser reconnects where it stopped)."""
CATCH_UP_S = 5.0
"""While no event is pushed, the stream reads the store this often (events written by another replica)."""
RELOADING = ("matched", "approval_request", "approval_decision", "question", "final_answer", "escalation")
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # no-referrer would make Chromium send `Origin: null` on our own forms
    "Cache-Control": "no-store",
}

router = APIRouter(include_in_schema=False)


def _services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


def _signin(request: Request) -> ConsoleSignIn:
    sign: ConsoleSignIn = request.app.state.console
    return sign


Svc = Annotated[Services, Depends(_services)]
Sign = Annotated[ConsoleSignIn, Depends(_signin)]


def _html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=HEADERS)


def _redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303, headers=HEADERS)


def _remote(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _set(response: Response, request: Request, name: str, value: str, max_age: int | None = None) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/", httponly=True, samesite="lax",
                        secure=request.url.scheme == "https")


def _clear(response: Response, request: Request, name: str) -> None:
    response.delete_cookie(name, path="/", httponly=True, samesite="lax", secure=request.url.scheme == "https")


async def _form(request: Request) -> dict[str, str]:
    """The urlencoded form (bounded); a foreign ``Origin`` is refused as a forged request."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise Forbidden("this form was sent from another site")
    if origin == "null":
        raise Forbidden("this form was sent from another site")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise Forbidden("the form is too large")
    fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=20)
    return {k: v[0] for k, v in fields.items() if v}


def _current(request: Request, sign: ConsoleSignIn) -> tuple[Principal, str] | None:
    token = request.cookies.get(SESSION_COOKIE, "")
    principal = sign.principal(token) if token else None
    return None if principal is None else (principal, token)


def _to_login(request: Request) -> RedirectResponse:
    response = _redirect("/login")
    path = request.url.path
    if path.startswith("/") and not path.startswith("//") and len(path) < 200:
        _set(response, request, NEXT_COOKIE, path, max_age=int(SECOND_FACTOR_TTL.total_seconds()) + 600)
    return response


def _next(request: Request) -> str:
    path = request.cookies.get(NEXT_COOKIE, "/")
    return path if path.startswith("/") and not path.startswith("//") and not path.startswith("/login") else "/"


def _refused(message: str, status: int = 403) -> HTMLResponse:
    return _html(pages.error_page(status, message), status)


# -- signing in ---------------------------------------------------------------------------------------
@router.get("/login")
def login_form(request: Request, sign: Sign) -> Response:
    if _current(request, sign) is not None:
        return _redirect("/")
    pre = request.cookies.get(PRE_COOKIE) or secrets.token_urlsafe(24)
    response = _html(pages.login_page(sign.csrf(pre)))
    _set(response, request, PRE_COOKIE, pre)
    return response


@router.post("/login")
async def login(request: Request, sign: Sign) -> Response:
    try:
        form = await _form(request)
    except Forbidden as exc:
        return _refused(exc.message)
    pre = request.cookies.get(PRE_COOKIE, "")
    if not sign.csrf_ok(pre, form.get("csrf", "")):
        return _refused("The sign-in form expired or did not come from this console; open the sign-in page again.")
    email = form.get("email", "")[:320]
    try:
        due = await run_in_threadpool(sign.password, email, form.get("password", ""), remote=_remote(request))
    except (AuthError, TooManyAttempts) as exc:
        status = 429 if isinstance(exc, TooManyAttempts) else 401
        return _html(pages.login_page(sign.csrf(pre), error=exc.message, email=email), status)
    return _second_factor(request, sign, due)


def _second_factor(request: Request, sign: ConsoleSignIn, due: str) -> Response:
    tech = sign.due(due)
    response = _redirect("/login/code" if tech is not None and sign.enrolled(tech) else "/login/enrol")
    _set(response, request, DUE_COOKIE, due, max_age=int(SECOND_FACTOR_TTL.total_seconds()))
    _clear(response, request, PRE_COOKIE)
    return response


@router.post("/login/link")
async def login_link(request: Request, sign: Sign) -> Response:
    """Spend a one-time login link (the page at ``/auth/link/{token}`` posts here): the second factor follows.
    The link itself is the unguessable credential; a replayed or expired one is refused."""
    try:
        form = await _form(request)
    except Forbidden as exc:
        return _refused(exc.message)
    try:
        due = await run_in_threadpool(sign.link, form.get("token", ""), remote=_remote(request))
    except AuthError as exc:
        return _html(pages.error_page(401, f"This login link cannot be used: {exc.message}"), 401)
    return _second_factor(request, sign, due)


def _due(request: Request, sign: ConsoleSignIn) -> tuple[str, bool] | None:
    due = request.cookies.get(DUE_COOKIE, "")
    tech = sign.due(due) if due else None
    return None if tech is None else (due, sign.enrolled(tech))


@router.get("/login/code")
def code_form(request: Request, sign: Sign) -> Response:
    found = _due(request, sign)
    if found is None:
        return _redirect("/login")
    if not found[1]:
        return _redirect("/login/enrol")
    return _html(pages.code_page(sign.csrf(found[0])))


def _signed_in(request: Request, token: str, body: str | None = None) -> Response:
    response = _html(body) if body is not None else _redirect(_next(request))
    _set(response, request, SESSION_COOKIE, token)
    _clear(response, request, DUE_COOKIE)
    _clear(response, request, NEXT_COOKIE)
    return response


async def _second_factor_form(request: Request, sign: ConsoleSignIn) -> tuple[dict[str, str], str] | Response:
    """A form of the second-factor step (code or enrolment) with its CSRF token bound to the pending sign-in:
    ``(form, due)``; else the response that refuses it."""
    try:
        form = await _form(request)
    except Forbidden as exc:
        return _refused(exc.message)
    due = request.cookies.get(DUE_COOKIE, "")
    if not sign.csrf_ok(due, form.get("csrf", "")):
        return _refused("The form expired or did not come from this console; sign in again.")
    return form, due


@router.post("/login/code")
async def code(request: Request, sign: Sign) -> Response:
    checked = await _second_factor_form(request, sign)
    if isinstance(checked, Response):
        return checked
    form, due = checked
    try:
        signed = await run_in_threadpool(sign.verify, due, form.get("code", ""), remote=_remote(request))
    except AuthError as exc:
        if sign.due(due) is None:
            return _html(pages.login_page(sign.csrf(request.cookies.get(PRE_COOKIE, "") or due), error=exc.message),
                         401)
        return _html(pages.code_page(sign.csrf(due), error=exc.message), 401)
    return _signed_in(request, signed.token)


def _qr(uri: str) -> str:
    return str(segno.make(uri, error="m").svg_inline(scale=5, dark="#111", light="#fff"))


@router.get("/login/enrol")
def enrol_form(request: Request, sign: Sign) -> Response:
    found = _due(request, sign)
    if found is None:
        return _redirect("/login")
    if found[1]:
        return _redirect("/login/code")
    tech = sign.due(found[0])
    assert tech is not None
    secret = sign.enrolment_secret(tech)
    return _html(pages.enrol_page(sign.csrf(found[0]), qr_svg=_qr(totp.provisioning_uri(secret, account=tech.email)),
                                  secret=secret))


@router.post("/login/enrol")
async def enrol(request: Request, sign: Sign) -> Response:
    checked = await _second_factor_form(request, sign)
    if isinstance(checked, Response):
        return checked
    form, due = checked
    tech = sign.due(due)
    try:
        signed = await run_in_threadpool(sign.confirm_enrolment, due, form.get("code", ""), remote=_remote(request))
    except AuthError as exc:
        if tech is None or sign.due(due) is None:
            return _redirect("/login")
        secret = sign.enrolment_secret(tech)
        return _html(pages.enrol_page(sign.csrf(due), qr_svg=_qr(totp.provisioning_uri(secret, account=tech.email)),
                                      secret=secret, error=exc.message), 401)
    return _signed_in(request, signed.token, pages.recovery_page(signed.recovery_codes))


@router.post("/logout")
async def logout(request: Request, sign: Sign) -> Response:
    try:
        form = await _form(request)
    except Forbidden as exc:
        return _refused(exc.message)
    current = _current(request, sign)
    if current is None:
        return _redirect("/login")
    principal, token = current
    if not sign.csrf_ok(token, form.get("csrf", "")):
        return _refused("The form expired or did not come from this console.")
    await run_in_threadpool(sign.sign_out, token, principal)
    response = _redirect("/login")
    _clear(response, request, SESSION_COOKIE)
    return response


# -- pages ---------------------------------------------------------------------------------------------
@router.get("/")
def home(request: Request, svc: Svc, sign: Sign) -> Response:
    current = _current(request, sign)
    if current is None:
        return _to_login(request)
    principal, token = current
    return _html(pages.home_page(views.home(svc, principal), user=principal, csrf=sign.csrf(token)))


@router.get("/tickets/{ticket_id}")
def ticket(ticket_id: str, request: Request, svc: Svc, sign: Sign) -> Response:
    current = _current(request, sign)
    if current is None:
        return _to_login(request)
    principal, token = current
    try:
        page = views.ticket_page(svc, principal, ticket_id)
    except NotFound as exc:
        return _html(pages.error_page(404, exc.message, user=principal, csrf=sign.csrf(token)), 404)
    return _html(pages.ticket_page(page, user=principal, csrf=sign.csrf(token)))


def _sse(ev: Event) -> str:
    payload = {"seq": ev.seq, "event": ev.event, "html": pages.event_line(ev.seq, ev.event, ev.data),
               "reload": ev.event in RELOADING}
    return f"id: {ev.seq}\nevent: timeline\ndata: {json.dumps(payload)}\n\n"


@router.get("/tickets/{ticket_id}/events")
async def ticket_events(ticket_id: str, request: Request, svc: Svc, sign: Sign, after: int = 0) -> Response:
    """The ticket's session events as server-sent events, from ``after`` (or ``Last-Event-ID``) on."""
    current = await run_in_threadpool(_current, request, sign)
    if current is None:
        return Response(status_code=401, headers=HEADERS)
    principal, token = current
    try:
        found = await run_in_threadpool(svc.store.ticket, ticket_id[:64], principal.scope)
    except NotFound:
        return Response(status_code=404, headers=HEADERS)
    session = await run_in_threadpool(svc.store.session_for, found.id)
    last = request.headers.get("last-event-id", "")
    start = int(last) if last.isdigit() and len(last) < 12 else max(0, min(after, 2**31))

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
    current = _current(request, sign)
    if current is None:
        return _to_login(request)
    principal, token = current
    try:
        page = views.approval_page(svc, principal, approval_id)
    except NotFound as exc:
        return _html(pages.error_page(404, exc.message, user=principal, csrf=sign.csrf(token)), 404)
    return _html(pages.approval_page(page, user=principal, csrf=sign.csrf(token)))


async def _staff_form(request: Request, sign: ConsoleSignIn, *, expired: str, not_tech: str | None = None
                      ) -> tuple[dict[str, str], Principal, str] | Response:
    """A state-changing form of the signed-in technician with a valid CSRF token: ``(form, principal, csrf)``;
    else the response that refuses it (``not_tech``: the refusal for a viewer, when only technicians may)."""
    try:
        form = await _form(request)
    except Forbidden as exc:
        return _refused(exc.message)
    current = await run_in_threadpool(_current, request, sign)
    if current is None:
        return _to_login(request)
    principal, token = current
    csrf = sign.csrf(token)
    if not sign.csrf_ok(token, form.get("csrf", "")):
        return _html(pages.error_page(403, expired, user=principal, csrf=csrf), 403)
    if not_tech is not None and not principal.at_least("tech"):
        return _html(pages.error_page(403, not_tech, user=principal, csrf=csrf), 403)
    return form, principal, csrf


@router.post("/approvals/{approval_id}/decide")
async def decide(approval_id: str, request: Request, svc: Svc, sign: Sign) -> Response:
    """Approve or deny through the one decision path (:meth:`~mspclaw.pipeline.approvals.Approvals.decide_async`):
    the approver rules apply; a second decision (a double click, a colleague first) changes nothing."""
    checked = await _staff_form(request, sign, expired="The form expired or did not come from this console; open "
                                                       "the approval again.")
    if isinstance(checked, Response):
        return checked
    form, principal, csrf = checked
    decision, reason = form.get("decision", ""), form.get("reason", "").strip()[:500]
    try:
        page = await run_in_threadpool(views.approval_page, svc, principal, approval_id)
    except NotFound as exc:
        return _html(pages.error_page(404, exc.message, user=principal, csrf=csrf), 404)
    if not principal.at_least("tech"):
        return _html(pages.approval_page(page, user=principal, csrf=csrf,
                                         message="Only technicians and admins decide approvals."), 403)
    if decision not in ("approve", "deny") or (decision == "deny" and not reason):
        return _html(pages.approval_page(page, user=principal, csrf=csrf,
                                         message="Say why you deny it: the reason goes to the audit trail and the "
                                                 "ticket." if decision == "deny" else "Choose approve or deny."),
                     400)
    try:
        await svc.approvals.decide_async(page.approval.id, approve=decision == "approve", approver="",
                                         reason=reason, scope=principal.scope, principal=principal, via="console")
    except (Conflict, Forbidden) as exc:
        status = 409 if isinstance(exc, Conflict) else 403
        page = await run_in_threadpool(views.approval_page, svc, principal, approval_id)
        return _html(pages.approval_page(page, user=principal, csrf=csrf, message=exc.message), status)
    except NotFound as exc:
        return _html(pages.error_page(404, exc.message, user=principal, csrf=csrf), 404)
    return _redirect(f"/approvals/{page.approval.id}")


@router.post("/devices/{device_id}/forget")
async def forget_device(device_id: str, request: Request, svc: Svc, sign: Sign) -> Response:
    """Forget what MSPclaw remembers about a device (technicians and admins; audited), then back to the ticket."""
    checked = await _staff_form(request, sign, expired="The form expired or did not come from this console.",
                                not_tech="Only technicians and admins make MSPclaw forget a device.")
    if isinstance(checked, Response):
        return checked
    form, principal, csrf = checked
    try:
        await run_in_threadpool(views.forget_device, svc, principal, device_id)
    except NotFound as exc:
        return _html(pages.error_page(404, exc.message, user=principal, csrf=csrf), 404)
    back = form.get("back", "/")
    return _redirect(back if back.startswith("/tickets/") and len(back) < 100 else "/")


@router.post("/questions/{question_id}/answer")
async def answer_question(question_id: str, request: Request, svc: Svc, sign: Sign) -> Response:
    """Relay the end user's answer to a pending question (given by phone, in a chat), once; then back to the
    ticket. The same path as ``POST /api/questions/{id}/answer``."""
    checked = await _staff_form(request, sign, expired="The form expired or did not come from this console.",
                                not_tech="Only technicians and admins relay answers.")
    if isinstance(checked, Response):
        return checked
    form, principal, csrf = checked
    by = form.get("by", "").strip()[:200] or "the user"
    try:
        await svc.tickets.questions.answer_async(question_id[:64], form.get("answer", "")[:1000],
                                                 by=f"{by} (via {principal.name})", scope=principal.scope)
    except NotFound as exc:
        return _html(pages.error_page(404, exc.message, user=principal, csrf=csrf), 404)
    except Conflict as exc:
        return _html(pages.error_page(409, exc.message, user=principal, csrf=csrf), 409)
    back = form.get("back", "/")
    return _redirect(back if back.startswith("/tickets/") and len(back) < 100 else "/")


@router.get("/docs")
def docs() -> Response:
    """The API's operations, listed from ``/openapi.json`` by the console's own script (no CDN)."""
    return _html(pages.docs_page())
