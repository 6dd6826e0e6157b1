"""Who is calling: :class:`~mspclaw.pipeline.access.Principal` from the bearer token, checked
against the route's rule in :mod:`mspclaw.api.rbac`.

Every route takes its client scope from :class:`Caller`; the bootstrap ``MSPCLAW_API_KEY`` is
an admin of every client, named API keys and technician tokens carry their own role and scope.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from mspclaw.api.rbac import authorize
from mspclaw.pipeline.access import Principal
from mspclaw.wiring import Services

Caller = Principal


def bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def authenticate(services: Services, header: str | None) -> Caller:
    return services.staff.access.authenticate(bearer(header))


def require_caller(request: Request) -> Caller:
    """FastAPI dependency for every ``/api`` route: authenticate, then check the route's rule."""
    caller = authenticate(request.app.state.services, request.headers.get("authorization"))
    request.state.caller_name = caller.name
    authorize(request, caller)
    return caller


async def services(request: Request) -> Services:
    """FastAPI dependency: the app's :class:`~mspclaw.wiring.Services`. A coroutine, so FastAPI calls it on
    the event loop: a plain function dependency is run on its thread pool, a thread hop per request
    for an attribute read."""
    svc: Services = request.app.state.services
    return svc


CallerDep = Annotated[Caller, Depends(require_caller)]
ServicesDep = Annotated[Services, Depends(services)]
