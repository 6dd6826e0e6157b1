"""What every console page and form shares: the session cookie, the security headers, the bounded form
reader with its same-origin check, the signed-in technician, the CSRF-checked staff form.

Route modules (``routes``, ``signin_routes``, ``sso``, ``escalations``, ``records``, ``admin``,
``psa_accounts``) build on these; a page answers HTML through :func:`html`, a refusal through
:func:`refused` or :func:`error`.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qs, urlsplit

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from mspclaw.console import pages
from mspclaw.console.signin import SECOND_FACTOR_TTL, ConsoleSignIn
from mspclaw.errors import Forbidden
from mspclaw.pipeline.access import Principal
from mspclaw.wiring import Services

SESSION_COOKIE = "mspclaw_console"
DUE_COOKIE = "mspclaw_console_2fa"
PRE_COOKIE = "mspclaw_console_pre"
NEXT_COOKIE = "mspclaw_console_next"
MAX_FORM_BYTES = 16_384
MAX_FORM_FIELDS = 20
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


def services_of(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


def signin_of(request: Request) -> ConsoleSignIn:
    sign: ConsoleSignIn = request.app.state.console
    return sign


Svc = Annotated[Services, Depends(services_of)]
Sign = Annotated[ConsoleSignIn, Depends(signin_of)]


def html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=HEADERS)


def redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303, headers=HEADERS)


def remote(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int | None = None) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/", httponly=True, samesite="lax",
                        secure=request.url.scheme == "https")


def clear_cookie(response: Response, request: Request, name: str) -> None:
    response.delete_cookie(name, path="/", httponly=True, samesite="lax", secure=request.url.scheme == "https")


async def read_form(request: Request) -> dict[str, str]:
    """The urlencoded form (bounded); a foreign ``Origin`` is refused as a forged request."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise Forbidden("this form was sent from another site")
    if origin == "null":
        raise Forbidden("this form was sent from another site")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise Forbidden("the form is too large")
    try:
        fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=MAX_FORM_FIELDS)
    except ValueError:  # more fields than allowed
        raise Forbidden(f"the form has more than {MAX_FORM_FIELDS} fields; send the console's own form") from None
    if any("\x00" in k or "\x00" in v for k, values in fields.items() for v in values):
        raise Forbidden("the form holds a NUL character, which no field of the console takes; remove it")
    return {k: v[0] for k, v in fields.items() if v}


def signed_in_as(request: Request, sign: ConsoleSignIn) -> tuple[Principal, str] | None:
    token = request.cookies.get(SESSION_COOKIE, "")
    principal = sign.principal(token) if token else None
    return None if principal is None else (principal, token)


def to_login(request: Request) -> RedirectResponse:
    response = redirect("/login")
    path = request.url.path
    if path.startswith("/") and not path.startswith("//") and len(path) < 200:
        set_cookie(response, request, NEXT_COOKIE, path, max_age=int(SECOND_FACTOR_TTL.total_seconds()) + 600)
    return response


def next_path(request: Request) -> str:
    path = request.cookies.get(NEXT_COOKIE, "/")
    return path if path.startswith("/") and not path.startswith("//") and not path.startswith("/login") else "/"


def refused(message: str, status: int = 403) -> HTMLResponse:
    return html(pages.error_page(status, message), status)


def error(status: int, message: str, user: Principal, csrf: str) -> HTMLResponse:
    """An error page for a signed-in technician (their navigation kept)."""
    return html(pages.error_page(status, message, user=user, csrf=csrf), status)


def viewer(request: Request, sign: ConsoleSignIn) -> tuple[Principal, str] | RedirectResponse:
    """For a page (GET): ``(principal, csrf)`` of the signed-in technician, else the redirect to sign in
    (which brings them back here afterwards)."""
    found = signed_in_as(request, sign)
    if found is None:
        return to_login(request)
    principal, token = found
    return principal, sign.csrf(token)


async def staff_form(request: Request, sign: ConsoleSignIn, *, expired: str, not_tech: str | None = None
                     ) -> tuple[dict[str, str], Principal, str] | Response:
    """A state-changing form of the signed-in technician with a valid CSRF token: ``(form, principal, csrf)``;
    else the response that refuses it (``not_tech``: the refusal for a viewer, when only technicians may)."""
    try:
        form = await read_form(request)
    except Forbidden as exc:
        return refused(exc.message)
    found = await run_in_threadpool(signed_in_as, request, sign)
    if found is None:
        return to_login(request)
    principal, token = found
    csrf = sign.csrf(token)
    if not sign.csrf_ok(token, form.get("csrf", "")):
        return html(pages.error_page(403, expired, user=principal, csrf=csrf), 403)
    if not_tech is not None and not principal.at_least("tech"):
        return html(pages.error_page(403, not_tech, user=principal, csrf=csrf), 403)
    return form, principal, csrf


def signed_in(request: Request, token: str, body: str | None = None) -> Response:
    response = html(body) if body is not None else redirect(next_path(request))
    set_cookie(response, request, SESSION_COOKIE, token)
    clear_cookie(response, request, DUE_COOKIE)
    clear_cookie(response, request, NEXT_COOKIE)
    return response
