"""Logins: ``/auth/login``, ``/auth/refresh`` and one-time links at ``/auth/link/{token}`` (no bearer:
these make one), and for a caller who has one, ``/api/me`` and ``/api/logout``."""

from __future__ import annotations

import html

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from mspclaw.api.auth import CallerDep, ServicesDep, require_caller
from mspclaw.api.schemas.auth import LoginIn, MeOut, RefreshIn, TokensOut
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


_LINK_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign in · MSPclaw</title>
<link rel="stylesheet" href="/static/console/console.css"></head>
<body data-page="link"><header><a class="brand" href="/">MSPclaw</a></header><main>
<section class="card narrow"><h1>Sign in with a one-time link</h1>
<p>This link signs you in to the console once; your second factor follows.</p>
<form method="post" action="/login/link"><input type="hidden" name="token" value="{token}">
<button type="submit" id="use-link">Sign in</button></form></section></main></body></html>"""


@open_router.get("/auth/link/{token}", response_class=HTMLResponse, tags=["auth"])
def link_page(token: str) -> HTMLResponse:
    """A page with one button that lands in the console (``POST /login/link``); the link is spent only by that
    POST (mail scanners only GET). ``POST /auth/link/{token}`` still trades it for tokens, for API clients."""
    return HTMLResponse(_LINK_PAGE.format(token=html.escape(token[:512])),
                        headers={"Referrer-Policy": "same-origin", "Cache-Control": "no-store"})


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
