"""What every console page and form shares: the session cookie, the security headers, the bounded form
reader with its same-origin check, the signed-in technician, the CSRF-checked staff form.

Route modules (``routes``, ``signin_routes``, ``sso``, ``escalations``, ``records``, ``admin``,
``psa_accounts``, ``builder``) build on these; a page answers HTML through :func:`html`, a refusal through
:func:`refused` or :meth:`Viewer.error`.

A route states who may see it by its parameters: ``me: ViewerPage`` (anyone signed in), ``me: Annotated[Viewer,
Depends(page(check))]`` (``check`` names the refusal of a role), ``sent: Annotated[Posted, Depends(sent_form(
expired, check))]`` for a state-changing form. A visitor not signed in is sent to ``/login`` (and brought back
afterwards); anyone else refused is answered the page :class:`Refused` carries, by the handler
:func:`install_refusals` sets on the app.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qs, urlsplit

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from mspclaw.console import pages
from mspclaw.console.signin import SECOND_FACTOR_TTL, ConsoleSignIn
from mspclaw.errors import Forbidden, NotFound
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


@dataclass(frozen=True)
class Viewer:
    """The signed-in technician a page is for, with the CSRF token its forms carry."""

    principal: Principal
    csrf: str

    def error(self, status: int, message: str) -> HTMLResponse:
        """An error page for them (their navigation kept)."""
        return error(status, message, self.principal, self.csrf)

    @contextmanager
    def not_found_page(self) -> Iterator[None]:
        """A :class:`~mspclaw.errors.NotFound` in the block answers the 404 page (raised as :class:`Refused`)."""
        try:
            yield
        except NotFound as exc:
            raise Refused(self.error(404, exc.message)) from None


@dataclass(frozen=True)
class Posted(Viewer):
    """A state-changing form sent by :attr:`principal`, its CSRF token checked: the form's fields."""

    form: dict[str, str]


class Refused(Exception):
    """A page or form refused (by a dependency below, or :meth:`Viewer.not_found_page`): ``response`` answers it
    (the sign-in redirect, a 403 or 404 page). Not an :class:`~mspclaw.errors.MSPClawError`: it carries an answer,
    not a failure, and only the console raises it."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


async def _answer_refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refused)
    return exc.response


def install_refusals(app: FastAPI) -> None:
    """Answer every :class:`Refused` on ``app`` with the response it carries."""
    app.add_exception_handler(Refused, _answer_refused)


Check = Callable[[Principal], str | None]
"""Why a principal may not do something (the message of the 403 page), or ``None``."""


def anyone(principal: Principal) -> str | None:
    return None


def needs(role: str, message: str) -> Check:
    """Refused with ``message`` below ``role`` (``tech``, ``admin``)."""
    return lambda principal: None if principal.at_least(role) else message


def page(check: Check = anyone) -> Callable[[Request, ConsoleSignIn], Viewer]:
    """A dependency for a page (GET): the signed-in :class:`Viewer` whom ``check`` lets in; else :class:`Refused`
    with the redirect to sign in (which brings them back here afterwards) or the 403 page. It is sync, so FastAPI
    runs it (and the session read) off the event loop."""

    def signed_in_viewer(request: Request, sign: Sign) -> Viewer:
        found = signed_in_as(request, sign)
        if found is None:
            raise Refused(to_login(request))
        principal, token = found
        me = Viewer(principal, sign.csrf(token))
        refusal = check(principal)
        if refusal:
            raise Refused(me.error(403, refusal))
        return me

    return signed_in_viewer


ViewerPage = Annotated[Viewer, Depends(page())]
"""A page for everyone signed in (viewers too)."""


async def sender(request: Request, sign: ConsoleSignIn, sent_csrf: str, *, expired: str, check: Check) -> Viewer:
    """Who sent a form with the CSRF token ``sent_csrf``, when signed in, the token theirs and ``check`` lets them
    in; else :class:`Refused` (``expired``: the refusal of a missing or foreign token)."""
    found = await run_in_threadpool(signed_in_as, request, sign)
    if found is None:
        raise Refused(to_login(request))
    principal, token = found
    me = Viewer(principal, sign.csrf(token))
    if not sign.csrf_ok(token, sent_csrf):
        raise Refused(me.error(403, expired))
    refusal = check(principal)
    if refusal:
        raise Refused(me.error(403, refusal))
    return me


async def _form_or_refused(request: Request) -> dict[str, str]:
    try:
        return await read_form(request)
    except Forbidden as exc:
        raise Refused(refused(exc.message)) from None


def sent_form(expired: str, check: Check = anyone) -> Callable[[Request, ConsoleSignIn], Awaitable[Posted]]:
    """A dependency for a state-changing form: the bounded same-origin form of the signed-in technician with a
    valid CSRF token, as :class:`Posted`; else :class:`Refused` (see :func:`sender`)."""

    async def checked_form(request: Request, sign: Sign) -> Posted:
        form = await _form_or_refused(request)
        me = await sender(request, sign, form.get("csrf", ""), expired=expired, check=check)
        return Posted(me.principal, me.csrf, form)

    return checked_form


def sign_in_form(cookie: str, expired: str) -> Callable[[Request, ConsoleSignIn], Awaitable[dict[str, str]]]:
    """A dependency for a form of a sign-in step, before a session exists: the bounded same-origin form whose
    CSRF token is bound to the value of ``cookie`` (the pending sign-in); else :class:`Refused` (``expired``)."""

    async def checked_form(request: Request, sign: Sign) -> dict[str, str]:
        form = await _form_or_refused(request)
        if not sign.csrf_ok(request.cookies.get(cookie, ""), form.get("csrf", "")):
            raise Refused(refused(expired))
        return form

    return checked_form


def signed_in(request: Request, token: str, body: str | None = None) -> Response:
    response = html(body) if body is not None else redirect(next_path(request))
    set_cookie(response, request, SESSION_COOKIE, token)
    clear_cookie(response, request, DUE_COOKIE)
    clear_cookie(response, request, NEXT_COOKIE)
    return response
