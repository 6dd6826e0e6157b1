"""Role-based access for every ``/api`` route and every session-socket frame, checked on the server.

Roles, each scoped to a set of clients (``None``: every client):

* ``viewer``: reads tickets, approvals, agents, devices, escalations, stats of its clients.
* ``tech``: a viewer who also opens tickets, decides approvals (as a registered technician who
  did not request the ticket), records feedback, forgets device facts, reads its clients' audit.
* ``admin``: a tech who also enrolls and revokes agents of its clients. An admin of **every**
  client also manages clients, API keys, technicians (their entries, login links and second
  factors), PSA jobs.

:data:`POLICY` names the rule of every route by method and path template. A route missing from
it is refused to everyone but an admin of every client (fail closed), and a test checks that
every route of the app has an entry. Client scope is then applied by each route's query, so a
caller never learns that another client's record exists (404, not 403).
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from mspclaw.errors import Forbidden
from mspclaw.pipeline.access import Principal


@dataclass(frozen=True)
class Rule:
    role: str
    every_client: bool = False
    """Only for a caller whose scope is every client (the route is not client-scoped)."""


VIEWER, TECH, ADMIN, GLOBAL_ADMIN = Rule("viewer"), Rule("tech"), Rule("admin"), Rule("admin", every_client=True)

POLICY: dict[tuple[str, str], Rule] = {
    # clients
    ("POST", "/api/clients"): GLOBAL_ADMIN,
    ("GET", "/api/clients"): VIEWER,
    ("GET", "/api/clients/{ref}"): VIEWER,
    # agents and enrollment
    ("POST", "/api/enrollments"): ADMIN,
    ("GET", "/api/enrollments"): ADMIN,
    ("POST", "/api/enrollments/{code_id}/revoke"): ADMIN,
    ("GET", "/api/agents"): VIEWER,
    ("GET", "/api/agents/lookup"): VIEWER,
    ("POST", "/api/agents/{agent_id}/revoke"): ADMIN,
    # tickets and approvals
    ("POST", "/api/tickets"): TECH,
    ("GET", "/api/tickets"): VIEWER,
    ("GET", "/api/tickets/{ticket_id}"): VIEWER,
    ("GET", "/api/approvals"): VIEWER,
    ("POST", "/api/approvals/{approval_id}/approve"): TECH,
    ("POST", "/api/approvals/{approval_id}/deny"): TECH,
    # questions to end users
    ("GET", "/api/questions"): VIEWER,
    ("POST", "/api/questions/{question_id}/answer"): TECH,
    # PSA intake (the queue is not client-scoped)
    ("POST", "/api/psa/{psa}/tickets/{ticket_id}/run"): GLOBAL_ADMIN,
    ("GET", "/api/jobs"): GLOBAL_ADMIN,
    ("GET", "/api/jobs/{job_id}"): GLOBAL_ADMIN,
    ("POST", "/api/jobs/{job_id}/retry"): GLOBAL_ADMIN,
    ("POST", "/api/jobs/{job_id}/cancel"): GLOBAL_ADMIN,
    # the technicians' own: who am I, device memory, stats, escalations, feedback, audit, keys, techs
    ("GET", "/api/me"): VIEWER,
    ("GET", "/api/devices"): VIEWER,
    ("GET", "/api/devices/{device_id}"): VIEWER,
    ("POST", "/api/devices/{device_id}/forget"): TECH,
    ("GET", "/api/stats"): VIEWER,
    ("GET", "/api/escalations"): VIEWER,
    ("GET", "/api/escalations/{escalation_id}"): VIEWER,
    ("POST", "/api/escalations/{escalation_id}/take"): TECH,
    ("POST", "/api/escalations/{escalation_id}/hand-over"): TECH,
    ("POST", "/api/escalations/{escalation_id}/close"): TECH,
    ("GET", "/api/notifications"): TECH,
    ("GET", "/api/tickets/{ticket_id}/feedback"): VIEWER,
    ("POST", "/api/tickets/{ticket_id}/feedback"): TECH,
    ("GET", "/api/audit"): TECH,
    ("POST", "/api/keys"): GLOBAL_ADMIN,
    ("GET", "/api/keys"): GLOBAL_ADMIN,
    ("POST", "/api/keys/{ref}/revoke"): GLOBAL_ADMIN,
    ("GET", "/api/techs"): GLOBAL_ADMIN,
    ("POST", "/api/techs/{ref}/login-link"): GLOBAL_ADMIN,
    # PSA accounts (config and secrets of the MSP's own PSA: not client-scoped)
    ("GET", "/api/psa-accounts"): GLOBAL_ADMIN,
    ("POST", "/api/psa-accounts"): GLOBAL_ADMIN,
    ("POST", "/api/psa-accounts/{name}/test"): GLOBAL_ADMIN,
    ("POST", "/api/psa-accounts/{name}/enable"): GLOBAL_ADMIN,
    ("POST", "/api/psa-accounts/{name}/disable"): GLOBAL_ADMIN,
    ("DELETE", "/api/psa-accounts/{name}"): GLOBAL_ADMIN,
    ("POST", "/api/techs"): GLOBAL_ADMIN,
    ("PATCH", "/api/techs/{ref}"): GLOBAL_ADMIN,
    ("DELETE", "/api/techs/{ref}"): GLOBAL_ADMIN,
    ("POST", "/api/techs/{ref}/reset-2fa"): GLOBAL_ADMIN,
    ("POST", "/api/logout"): VIEWER,
    # playbooks (not client-scoped: one works on every client's tickets)
    ("GET", "/api/playbooks"): VIEWER,
    ("GET", "/api/playbooks/{book_id}"): VIEWER,
    ("PUT", "/api/playbooks/{book_id}"): GLOBAL_ADMIN,
    ("POST", "/api/playbooks/{book_id}/match"): TECH,
    ("POST", "/api/playbooks/{book_id}/dry-run"): TECH,
}

SOCKET_FRAMES: dict[str, Rule] = {
    "start": TECH,
    "watch": VIEWER,
    "decide": TECH,
    "answer": TECH,
    "ping": VIEWER,
}


def check(rule: Rule | None, caller: Principal, what: str) -> None:
    if rule is None:
        if caller.at_least("admin") and caller.scope is None:
            return
        raise Forbidden(f"{what} has no access rule; only an admin of every client may use it")
    if not caller.at_least(rule.role):
        raise Forbidden(f"{what} needs the {rule.role} role; you are {caller.role}")
    if rule.every_client and caller.scope is not None:
        raise Forbidden(f"{what} needs an admin of every client; you are scoped to {len(caller.scope)} client(s)")


def authorize(request: Request, caller: Principal) -> None:
    """Refuse the request unless the caller's role allows the matched route."""
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    check(POLICY.get((request.method, path)), caller, f"{request.method} {path}")
