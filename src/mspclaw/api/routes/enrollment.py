"""Enrollment: a technician issues a single-use code for a client (``POST /api/enrollments``); the
agent spends it at ``POST /enroll`` for its credential, the keys it pins and where to connect."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from mspclaw.api.agent_listener import AGENT_PATH
from mspclaw.api.auth import CallerDep, ServicesDep, require_caller
from mspclaw.api.routes.scope import client_in_scope
from mspclaw.api.schemas.enrollment import (
    EnrollmentCodeOut,
    EnrollmentIn,
    EnrollmentOut,
    EnrollRequest,
    EnrollResponse,
)
from mspclaw.errors import NotFound
from mspclaw.wiring import Services

open_router = APIRouter()
api = APIRouter(prefix="/api", dependencies=[Depends(require_caller)])


@open_router.post("/enroll", response_model=EnrollResponse, tags=["agents"],
                  responses={401: {"description": "unknown, expired or used code"}})
def enroll(body: EnrollRequest, request: Request, svc: ServicesDep) -> EnrollResponse:
    """Spend a single-use enrollment code: the agent gets its credential and the key it pins."""
    remote = request.client.host if request.client else "unknown"
    enrolled = svc.fleet.enroll(body.code, remote=remote, hostname=body.hostname, os=body.os,
                                os_version=body.os_version, agent_version=body.agent_version, tools=body.tools)
    agent = enrolled.agent
    return EnrollResponse(agent_id=agent.id, client_id=agent.client_id, role=agent.role,
                          credential=enrolled.credential, server_key=agent.signing_key,
                          approval_key=svc.approvals.public_key_hex, agent_url=_agent_url(request, svc))


def _agent_url(request: Request, svc: Services) -> str:
    """``MSPCLAW_AGENT_URL``, else the agent listener's port on the host the agent enrolled with."""
    if svc.settings.agent_url:
        return svc.settings.agent_url
    port = getattr(request.app.state, "agent_port", None) or svc.settings.agent_port
    scheme = "wss" if request.url.scheme == "https" else "ws"
    return str(request.url.replace(scheme=scheme, port=port, path=AGENT_PATH, query="", fragment=""))


@api.post("/enrollments", response_model=EnrollmentOut, status_code=201, tags=["agents"])
def create_enrollment(body: EnrollmentIn, svc: ServicesDep, caller: CallerDep) -> EnrollmentOut:
    client = client_in_scope(svc, caller, body.client)
    issued = svc.fleet.issue_code(client.id, role=body.role, ttl_hours=body.ttl_hours, actor=caller.name)
    return EnrollmentOut(id=issued.id, code=issued.code, client_id=issued.client_id, role=issued.role,
                         expires_at=issued.expires_at)


@api.get("/enrollments", response_model=list[EnrollmentCodeOut], tags=["agents"])
def list_enrollments(svc: ServicesDep, caller: CallerDep, client: str | None = None) -> list[EnrollmentCodeOut]:
    """Enrollment codes that can still be spent (not used, not expired), newest first; never the code."""
    client_id = client_in_scope(svc, caller, client).id if client else None
    return [EnrollmentCodeOut.model_validate(c, from_attributes=True) for c in svc.fleet.open_codes(client_id)
            if caller.scope is None or c.client_id in caller.scope]


@api.post("/enrollments/{code_id}/revoke", response_model=EnrollmentCodeOut, tags=["agents"])
def revoke_enrollment(code_id: str, svc: ServicesDep, caller: CallerDep) -> EnrollmentCodeOut:
    """Revoke an unspent enrollment code: it expires now."""
    code = svc.registry.code(code_id[:64])
    if caller.scope is not None and code.client_id not in caller.scope:
        raise NotFound(f"no enrollment code {code_id!r}")
    revoked = svc.fleet.revoke_code(code.id, actor=caller.name)
    return EnrollmentCodeOut.model_validate(revoked, from_attributes=True)
