"""Signing in to the console: password, then the TOTP second factor (enrolment with a QR code and recovery
codes the first time); a one-time login link lands here too; signing out.

Every form carries a CSRF token bound to the pending sign-in (before a session exists) or to the session,
and a new session token is issued on every sign-in (no fixation).
"""

from __future__ import annotations

import secrets
from typing import Annotated

import segno
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from mspclaw.console import pages, sso, totp
from mspclaw.console.http import (
    DUE_COOKIE,
    PRE_COOKIE,
    SESSION_COOKIE,
    Sign,
    clear_cookie,
    html,
    read_form,
    redirect,
    refused,
    remote,
    set_cookie,
    sign_in_form,
    signed_in,
    signed_in_as,
)
from mspclaw.console.signin import SECOND_FACTOR_TTL, ConsoleSignIn
from mspclaw.errors import AuthError, Forbidden, TooManyAttempts

router = APIRouter(include_in_schema=False)
PasswordForm = Annotated[dict[str, str], Depends(sign_in_form(
    PRE_COOKIE, "The sign-in form expired or did not come from this console; open the sign-in page again."))]
LinkForm = Annotated[dict[str, str], Depends(sign_in_form(
    PRE_COOKIE, "This sign-in page expired or did not come from this console; open the login link again."))]
SecondFactorForm = Annotated[dict[str, str], Depends(sign_in_form(
    DUE_COOKIE, "The form expired or did not come from this console; sign in again."))]
"""A form of the second-factor step (code or enrolment), its CSRF token bound to the pending sign-in."""


@router.get("/login")
def login_form(request: Request, sign: Sign) -> Response:
    if signed_in_as(request, sign) is not None:
        return redirect("/")
    pre = request.cookies.get(PRE_COOKIE) or secrets.token_urlsafe(24)
    response = html(pages.login_page(sign.csrf(pre), providers=sso.buttons(request)))
    set_cookie(response, request, PRE_COOKIE, pre)
    return response


@router.post("/login")
async def login(request: Request, sign: Sign, form: PasswordForm) -> Response:
    pre = request.cookies.get(PRE_COOKIE, "")
    email = form.get("email", "")[:320]
    try:
        due = await run_in_threadpool(sign.password, email, form.get("password", ""), remote=remote(request))
    except (AuthError, TooManyAttempts) as exc:
        status = 429 if isinstance(exc, TooManyAttempts) else 401
        return html(pages.login_page(sign.csrf(pre), error=exc.message, email=email,
                                     providers=await run_in_threadpool(sso.buttons, request)), status)
    return await run_in_threadpool(_second_factor, request, sign, due)  # reads the pending sign-in


def _second_factor(request: Request, sign: ConsoleSignIn, due: str) -> Response:
    tech = sign.due(due)
    response = redirect("/login/code" if tech is not None and sign.enrolled(tech) else "/login/enrol")
    set_cookie(response, request, DUE_COOKIE, due, max_age=int(SECOND_FACTOR_TTL.total_seconds()))
    clear_cookie(response, request, PRE_COOKIE)
    return response


@router.post("/login/link")
async def login_link(request: Request, sign: Sign, form: LinkForm) -> Response:
    """Spend a one-time login link (the page at ``/auth/link/{token}`` posts here): the second factor follows.
    The link itself is the unguessable credential; a replayed or expired one is refused, and so is a form
    without the CSRF token of the link's page (another site cannot sign this browser in as someone else)."""
    try:
        due = await run_in_threadpool(sign.link, form.get("token", ""), remote=remote(request))
    except AuthError as exc:
        return html(pages.error_page(401, f"This login link cannot be used: {exc.message}"), 401)
    return await run_in_threadpool(_second_factor, request, sign, due)  # reads the pending sign-in


def _due(request: Request, sign: ConsoleSignIn) -> tuple[str, bool] | None:
    due = request.cookies.get(DUE_COOKIE, "")
    tech = sign.due(due) if due else None
    return None if tech is None else (due, sign.enrolled(tech))


@router.get("/login/code")
def code_form(request: Request, sign: Sign) -> Response:
    found = _due(request, sign)
    if found is None:
        return redirect("/login")
    if not found[1]:
        return redirect("/login/enrol")
    return html(pages.code_page(sign.csrf(found[0])))


@router.post("/login/code")
async def code(request: Request, sign: Sign, form: SecondFactorForm) -> Response:
    due = request.cookies.get(DUE_COOKIE, "")
    try:
        signed = await run_in_threadpool(sign.verify, due, form.get("code", ""), remote=remote(request))
    except AuthError as exc:
        if await run_in_threadpool(sign.due, due) is None:
            return html(pages.login_page(sign.csrf(request.cookies.get(PRE_COOKIE, "") or due), error=exc.message),
                         401)
        return html(pages.code_page(sign.csrf(due), error=exc.message), 401)
    return signed_in(request, signed.token)


def _qr(uri: str) -> str:
    return str(segno.make(uri, error="m").svg_inline(scale=5, dark="#111", light="#fff"))


@router.get("/login/enrol")
def enrol_form(request: Request, sign: Sign) -> Response:
    found = _due(request, sign)
    if found is None:
        return redirect("/login")
    if found[1]:
        return redirect("/login/code")
    tech = sign.due(found[0])
    assert tech is not None
    secret = sign.enrolment_secret(tech)
    return html(pages.enrol_page(sign.csrf(found[0]), qr_svg=_qr(totp.provisioning_uri(secret, account=tech.email)),
                                  secret=secret))


@router.post("/login/enrol")
async def enrol(request: Request, sign: Sign, form: SecondFactorForm) -> Response:
    due = request.cookies.get(DUE_COOKIE, "")
    tech = await run_in_threadpool(sign.due, due)
    try:
        signed = await run_in_threadpool(sign.confirm_enrolment, due, form.get("code", ""), remote=remote(request))
    except AuthError as exc:
        if tech is None or await run_in_threadpool(sign.due, due) is None:
            return redirect("/login")
        secret = await run_in_threadpool(sign.enrolment_secret, tech)
        return html(pages.enrol_page(sign.csrf(due), qr_svg=_qr(totp.provisioning_uri(secret, account=tech.email)),
                                      secret=secret, error=exc.message), 401)
    return signed_in(request, signed.token, pages.recovery_page(signed.recovery_codes))


@router.post("/logout")
async def logout(request: Request, sign: Sign) -> Response:
    try:
        form = await read_form(request)
    except Forbidden as exc:
        return refused(exc.message)
    current = await run_in_threadpool(signed_in_as, request, sign)
    if current is None:
        return redirect("/login")
    principal, token = current
    if not sign.csrf_ok(token, form.get("csrf", "")):
        return refused("The form expired or did not come from this console.")
    await run_in_threadpool(sign.sign_out, token, principal)
    response = redirect("/login")
    clear_cookie(response, request, SESSION_COOKIE)
    return response
