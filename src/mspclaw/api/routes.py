"""REST routes under /api (API key) and the agent enrollment route."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from mspclaw import __version__
from mspclaw.api.agent_listener import AGENT_PATH
from mspclaw.api.auth import Caller, CallerDep, ServicesDep, require_caller
from mspclaw.api.schemas import (
    AgentOut,
    AnswerIn,
    ApprovalOut,
    ClientIn,
    ClientOut,
    DecisionIn,
    EnrollmentIn,
    EnrollmentOut,
    EnrollRequest,
    EnrollResponse,
    JobOut,
    LookupOut,
    QuestionOut,
    StepOut,
    TicketCreated,
    TicketIn,
    TicketOut,
)
from mspclaw.engine.plan import StepRecord
from mspclaw.errors import NotFound
from mspclaw.pipeline.notes import summarise
from mspclaw.store.tables import Agent, ApprovalRow, Client
from mspclaw.tools.site import ACCOUNT_TOOLS
from mspclaw.wiring import Services

open_router = APIRouter()
api = APIRouter(prefix="/api", dependencies=[Depends(require_caller)])


def _client_in_scope(svc: Services, caller: Caller, ref: str) -> Client:
    client = svc.registry.client(ref)
    if caller.scope is not None and client.id not in caller.scope:
        raise NotFound(f"no client {ref!r}")
    return client


@open_router.get("/healthz", tags=["health"])
def healthz(svc: ServicesDep) -> dict[str, object]:
    return {"status": "ok", "version": __version__, "agents_online": svc.hub.online_count()}


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


# -- clients --------------------------------------------------------------------------------------
@api.post("/clients", response_model=ClientOut, status_code=201, tags=["clients"])
def create_client(body: ClientIn, svc: ServicesDep, caller: CallerDep) -> Client:
    client = svc.registry.add_client(body.name, body.psa_refs)
    svc.audit.append("client_created", actor=caller.name, client_id=client.id, data={"name": client.name})
    return client


@api.get("/clients", response_model=list[ClientOut], tags=["clients"])
def list_clients(svc: ServicesDep, caller: CallerDep) -> list[Client]:
    return [c for c in svc.registry.clients() if caller.scope is None or c.id in caller.scope]


@api.get("/clients/{ref}", response_model=ClientOut, tags=["clients"])
def show_client(ref: str, svc: ServicesDep, caller: CallerDep) -> Client:
    return _client_in_scope(svc, caller, ref)


# -- enrollments and agents -----------------------------------------------------------------------
@api.post("/enrollments", response_model=EnrollmentOut, status_code=201, tags=["agents"])
def create_enrollment(body: EnrollmentIn, svc: ServicesDep, caller: CallerDep) -> EnrollmentOut:
    client = _client_in_scope(svc, caller, body.client)
    issued = svc.fleet.issue_code(client.id, role=body.role, ttl_hours=body.ttl_hours, actor=caller.name)
    return EnrollmentOut(code=issued.code, client_id=issued.client_id, role=issued.role,
                         expires_at=issued.expires_at)


def _agent_out(svc: Services, agent: Agent) -> AgentOut:
    return AgentOut(id=agent.id, client_id=agent.client_id, role=agent.role, hostname=agent.hostname, os=agent.os,
                    os_version=agent.os_version, agent_version=agent.agent_version, tools=agent.tools,
                    online=svc.hub.is_online(agent.id), revoked=agent.revoked_at is not None,
                    last_seen_at=agent.last_seen_at)


@api.get("/agents", response_model=list[AgentOut], tags=["agents"])
def list_agents(svc: ServicesDep, caller: CallerDep, client: str | None = None) -> list[AgentOut]:
    client_id = _client_in_scope(svc, caller, client).id if client else None
    return [_agent_out(svc, a) for a in svc.registry.agents(client_id)
            if caller.scope is None or a.client_id in caller.scope]


@api.get("/agents/lookup", response_model=LookupOut, tags=["agents"])
def lookup_agent(svc: ServicesDep, caller: CallerDep, client: Annotated[str, Query()],
                 device: str | None = None, requester: str | None = None) -> LookupOut:
    """Which agents would act on a ticket from this client, and why: the device agent for device
    playbooks, the site agent for account and directory playbooks (which need no device)."""
    c = _client_in_scope(svc, caller, client)
    route = svc.router.route(c.id, device=device, requester=requester)
    site = svc.router.site_agent(c.id, ACCOUNT_TOOLS)
    return LookupOut(client_id=c.id, device_id=route.device.id if route.device else None,
                     hostname=route.device.hostname if route.device else None, agent_id=route.agent_id,
                     online=route.online, reason=route.reason, site_agent_id=site.agent_id,
                     site_hostname=site.hostname, site_reason=site.reason)


@api.post("/agents/{agent_id}/revoke", response_model=AgentOut, tags=["agents"])
async def revoke_agent(agent_id: str, svc: ServicesDep, caller: CallerDep) -> AgentOut:
    agent = svc.registry.agent(agent_id)
    if caller.scope is not None and agent.client_id not in caller.scope:
        raise NotFound(f"no agent {agent_id!r}")
    return _agent_out(svc, await svc.fleet.revoke(agent_id, actor=caller.name))


# -- tickets --------------------------------------------------------------------------------------
@api.post("/tickets", response_model=TicketCreated, status_code=202, tags=["tickets"])
async def create_ticket(body: TicketIn, svc: ServicesDep, caller: CallerDep) -> TicketCreated:
    """Open a ticket and start working on it; follow it with GET /api/tickets/{id} or /ws/sessions."""
    client = _client_in_scope(svc, caller, body.client)
    sub = svc.tickets.submit(client=client.id, subject=body.subject, body=body.body, requester=body.requester,
                             device=body.device, scope=caller.scope, actor=caller.name)
    return TicketCreated(ticket_id=sub.ticket.id, session_id=sub.session.id, status=sub.ticket.status)


def _approval_out(row: ApprovalRow) -> ApprovalOut:
    return ApprovalOut.model_validate(row, from_attributes=True)


@api.get("/tickets", response_model=list[TicketOut], tags=["tickets"])
def list_tickets(svc: ServicesDep, caller: CallerDep, limit: Annotated[int, Query(ge=1, le=500)] = 50,
                 ) -> list[TicketOut]:
    return [show_ticket(t.id, svc, caller) for t in svc.store.tickets(caller.scope, limit)]


@api.get("/tickets/{ticket_id}", response_model=TicketOut, tags=["tickets"])
def show_ticket(ticket_id: str, svc: ServicesDep, caller: CallerDep) -> TicketOut:
    ticket = svc.store.ticket(ticket_id, caller.scope)
    session = svc.store.session_for(ticket.id)
    steps = []
    for s in svc.store.steps(session.id):
        obs = s.observation or {}
        rec = StepRecord(s.index, "", s.title, s.tool, s.args, s.ok, obs.get("output"), obs.get("error"),
                         bool(obs.get("skipped")))
        steps.append(StepOut(index=s.index, title=s.title, tool=s.tool, ok=s.ok, summary=summarise(rec),
                             args=s.args, observation=obs))
    approvals = [_approval_out(a) for a in svc.store.approvals(caller.scope, status=None)
                 if a.session_id == session.id]
    tokens = svc.tickets.runs.token_totals(session.id)
    return TicketOut(id=ticket.id, client_id=ticket.client_id, psa=ticket.psa, external_id=ticket.external_id,
                     subject=ticket.subject, body=ticket.body,
                     requester=ticket.requester, device_id=ticket.device_id, status=ticket.status,
                     session_id=session.id, playbook=session.playbook, outcome=session.outcome,
                     reason=session.reason, note=session.note, reply=session.reply, steps=steps,
                     approvals=approvals, created_at=ticket.created_at, updated_at=ticket.updated_at,
                     model=session.model, prompt_tokens=tokens[0], completion_tokens=tokens[1])


# -- approvals ------------------------------------------------------------------------------------
@api.get("/approvals", response_model=list[ApprovalOut], tags=["approvals"])
def list_approvals(svc: ServicesDep, caller: CallerDep, status: str | None = "pending") -> list[ApprovalOut]:
    return [_approval_out(a) for a in svc.store.approvals(caller.scope, status=status or None)]


@api.post("/approvals/{approval_id}/approve", response_model=ApprovalOut, tags=["approvals"])
def approve(approval_id: str, body: DecisionIn, svc: ServicesDep, caller: CallerDep) -> ApprovalOut:
    return _approval_out(svc.approvals.decide(approval_id, approve=True, approver=body.approver,
                                              reason=body.reason, scope=caller.scope, principal=caller))


@api.post("/approvals/{approval_id}/deny", response_model=ApprovalOut, tags=["approvals"])
def deny(approval_id: str, body: DecisionIn, svc: ServicesDep, caller: CallerDep) -> ApprovalOut:
    return _approval_out(svc.approvals.decide(approval_id, approve=False, approver=body.approver,
                                              reason=body.reason, scope=caller.scope, principal=caller))


# -- questions to end users -----------------------------------------------------------------------
@api.get("/questions", response_model=list[QuestionOut], tags=["questions"])
def list_questions(svc: ServicesDep, caller: CallerDep, status: str | None = "pending") -> list[QuestionOut]:
    rows = svc.tickets.runs.questions(scope=caller.scope, status=status or None)
    return [QuestionOut.model_validate(row, from_attributes=True) for row in rows]


@api.post("/questions/{question_id}/answer", response_model=QuestionOut, tags=["questions"])
def answer_question(question_id: str, body: AnswerIn, svc: ServicesDep, caller: CallerDep) -> QuestionOut:
    """Relay the end user's answer (from a phone call, a chat); a question is answered once."""
    row = svc.tickets.questions.answer(question_id, body.answer, by=f"{body.by} (via {caller.name})",
                                       scope=caller.scope)
    return QuestionOut.model_validate(row, from_attributes=True)


# -- PSA intake -----------------------------------------------------------------------------------
WEBHOOK_PREFIX = "/webhooks/"
MAX_WEBHOOK_BYTES = 1024 * 1024
"""Enforced while the body is read, before the signature is checked (:mod:`mspclaw.api.body_limit`)."""


@open_router.post(WEBHOOK_PREFIX + "{psa}", status_code=202, tags=["webhooks"],
                  responses={401: {"description": "bad or missing signature"}, 404: {"description": "unknown PSA"},
                             413: {"description": f"body over {MAX_WEBHOOK_BYTES} bytes"},
                             429: {"description": "too many deliveries from this address; see Retry-After"}})
async def webhook(psa: str, request: Request, svc: ServicesDep) -> dict[str, object]:
    """Verify a PSA's webhook, enqueue the ticket once, and answer at once (the work runs in a worker)."""
    body = await request.body()  # at most MAX_WEBHOOK_BYTES: the app's BodyLimit answered 413 to more
    remote = request.client.host if request.client else "unknown"
    job, created = await svc.intake.accept_webhook(psa, request.headers, body, remote=remote)
    return {"job_id": job.id, "duplicate": not created}


@api.post("/psa/{psa}/tickets/{ticket_id}/run", response_model=JobOut, status_code=202, tags=["jobs"])
def run_ticket(psa: str, ticket_id: str, svc: ServicesDep, caller: CallerDep) -> JobOut:
    """Process one PSA ticket by hand (again, if it was processed or failed before)."""
    svc.intake.connector(psa)
    job, created = svc.intake.enqueue(psa, ticket_id, source=f"manual:{caller.name}")
    if not created and job.status in ("done", "dead", "cancelled"):
        job = svc.jobs.retry(job.id)
    return JobOut.model_validate(job, from_attributes=True)


@api.get("/jobs", response_model=list[JobOut], tags=["jobs"])
def list_jobs(svc: ServicesDep, status: str | None = None,
              limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[JobOut]:
    return [JobOut.model_validate(j, from_attributes=True) for j in svc.jobs.list(status=status, limit=limit)]


@api.get("/jobs/{job_id}", response_model=JobOut, tags=["jobs"])
def show_job(job_id: str, svc: ServicesDep) -> JobOut:
    return JobOut.model_validate(svc.jobs.get(job_id), from_attributes=True)


@api.post("/jobs/{job_id}/retry", response_model=JobOut, tags=["jobs"])
def retry_job(job_id: str, svc: ServicesDep, caller: CallerDep) -> JobOut:
    job = svc.jobs.retry(job_id)
    svc.audit.append("job_retried", actor=caller.name, data={"job_id": job_id})
    return JobOut.model_validate(job, from_attributes=True)


@api.post("/jobs/{job_id}/cancel", response_model=JobOut, tags=["jobs"])
def cancel_job(job_id: str, svc: ServicesDep, caller: CallerDep) -> JobOut:
    job = svc.jobs.cancel(job_id)
    svc.audit.append("job_cancelled", actor=caller.name, data={"job_id": job_id})
    return JobOut.model_validate(job, from_attributes=True)
