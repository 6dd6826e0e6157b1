"""Logins: ``/auth/login``, ``/auth/refresh`` and one-time links at ``/auth/link/{token}`` (no bearer:
these make one), and for a caller who has one, ``/api/me`` and ``/api/logout``."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from mspclaw.api.auth import CallerDep, ServicesDep, require_caller
from mspclaw.api.schemas.auth import LoginIn, MeOut, RefreshIn, TokensOut
from mspclaw.console import pages
from mspclaw.console.http import PRE_COOKIE, html, set_cookie, signin_of
from mspclaw.pipeline.access import Tokens

open_router = APIRouter()
api = APIRouter(prefix="/api", dependencies=[Depends(require_caller)])


def _remote(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _tokens(t: Tokens) -> TokensOut:
    return TokensOut(access_token=t.access_token, refresh_token=t.refresh_token, expires_in=t.expires_in)


@open_router.post("/auth/login", response_model=TokensOut, tags=["auth"],
                  responses={401: {"description": "wrong e-mail or password"}, 429: {"description": "throttled"}})
def login(body: LoginIn, request: Request, svc: ServicesDep) -> TokensOut:
    """A technician logs in with e-mail and password; gets a short-lived JWT and a refresh token."""
    return _tokens(svc.staff.access.login(body.email, body.password, remote=_remote(request)))


@open_router.post("/auth/refresh", response_model=TokensOut, tags=["auth"])
def refresh(body: RefreshIn, request: Request, svc: ServicesDep) -> TokensOut:
    """Trade a refresh token (once) for a new access token and refresh token."""
    return _tokens(svc.staff.access.refresh(body.refresh_token, remote=_remote(request)))


@open_router.get("/auth/link/{token}", response_class=HTMLResponse, tags=["auth"])
def link_page(token: str, request: Request) -> HTMLResponse:
    """A page with one button that lands in the console (``POST /login/link``); the link is spent only by that
    POST (mail scanners only GET). ``POST /auth/link/{token}`` still trades it for tokens, for API clients.
    The button's form carries a CSRF token bound to this browser's pending sign-in (no login CSRF)."""
    sign = signin_of(request)
    pre = request.cookies.get(PRE_COOKIE, "")
    pre = pre if 20 <= len(pre) <= 100 else secrets.token_urlsafe(24)
    response = html(pages.link_page(sign.csrf(pre), token[:512]))
    set_cookie(response, request, PRE_COOKIE, pre)
    return response


@open_router.post("/auth/link/{token}", response_model=TokensOut, tags=["auth"])
def redeem_link(token: str, request: Request, svc: ServicesDep) -> TokensOut:
    """Spend a one-time login link for a token pair."""
    return _tokens(svc.staff.access.redeem_link(token, remote=_remote(request)))


@api.get("/me", response_model=MeOut, tags=["auth"])
def me(caller: CallerDep) -> MeOut:
    return MeOut(name=caller.name, kind=caller.kind, role=caller.role, email=caller.email,
                 clients=sorted(caller.scope) if caller.scope is not None else None)


@api.post("/logout", tags=["auth"])
def logout(svc: ServicesDep, caller: CallerDep) -> dict[str, int]:
    """Revoke every refresh token of the calling technician (access tokens expire on their own)."""
    return {"revoked": svc.staff.access.logout(caller)}
