"""Who is calling. For now one bootstrap admin key (``MSPCLAW_API_KEY``) that sees every
client; named, scoped keys and technician logins arrive with the issue on RBAC, and every
route already takes its scope from :class:`Caller`."""

from __future__ import annotations

import hmac
from collections.abc import Collection
from dataclasses import dataclass

from fastapi import Request

from mspclaw.errors import AuthError


@dataclass(frozen=True)
class Caller:
    name: str
    scope: Collection[str] | None
    """Client ids this caller may see; ``None`` is every client."""


def bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def check_api_key(api_key: str, header: str | None) -> Caller:
    token = bearer(header)
    if token is None:
        raise AuthError("missing 'Authorization: Bearer <MSPCLAW_API_KEY>' header")
    if not hmac.compare_digest(token.encode(), api_key.encode()):
        raise AuthError("wrong API key")
    return Caller("admin", None)


def require_caller(request: Request) -> Caller:
    """FastAPI dependency for every ``/api`` route."""
    return check_api_key(request.app.state.services.api_key, request.headers.get("authorization"))
