"""The fleet: enrollment, agent authentication, revocation, and what the hub reports.

Everything here is audited, failures included: a bad enrollment code or a refused agent
credential leaves a trace with the remote address, never with the secret itself.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from mspclaw.dispatch import AgentIdentity, Hub
from mspclaw.errors import AuthError, EnrollmentError, ProtocolError
from mspclaw.pipeline.refusals import Refusals
from mspclaw.protocol.connection import CLOSE_UNAUTHORIZED
from mspclaw.protocol.frames import Hello, UserAnswer
from mspclaw.store.audit import AuditLog
from mspclaw.store.registry import EnrolledAgent, IssuedCode, Registry
from mspclaw.store.tables import Agent


class Fleet:
    def __init__(self, registry: Registry, audit: AuditLog, hub: Hub, *, enrollment_ttl_hours: float,
                 refusals: Refusals | None = None) -> None:
        self.registry = registry
        self.audit = audit
        self.refusals = refusals or Refusals(audit)
        """Refused upgrades and enrollments: counted, and only sampled into the audit trail."""
        self.hub = hub
        self.ttl = timedelta(hours=enrollment_ttl_hours)
        hub.observer = self
        self.on_answer: Callable[[str, str, UserAnswer], None] | None = None
        """Where answers from devices go (the question service); wired by the composition root."""

    def issue_code(self, client_id: str, *, role: str = "device", ttl_hours: float | None = None,
                   actor: str = "api") -> IssuedCode:
        ttl = timedelta(hours=ttl_hours) if ttl_hours else self.ttl
        issued = self.registry.issue_code(client_id, role=role, ttl=ttl)
        self.audit.append("enrollment_issued", actor=actor, client_id=client_id,
                          data={"role": role, "expires_at": issued.expires_at.isoformat()})
        return issued

    def enroll(self, code: str, *, remote: str, **hello: Any) -> EnrolledAgent:
        try:
            enrolled = self.registry.enroll(code, **hello)
        except EnrollmentError as exc:
            self.refusals.note("enrollment_refused", remote, code=exc.code,
                               data={"reason": exc.message, "hostname": str(hello.get("hostname"))[:255]})
            raise
        agent = enrolled.agent
        self.audit.append("agent_enrolled", actor=remote, client_id=agent.client_id,
                          data={"agent_id": agent.id, "hostname": agent.hostname, "os": agent.os, "role": agent.role})
        return enrolled

    def authenticate(self, bearer: str | None, *, remote: str) -> AgentIdentity:
        if not bearer:
            self.refusals.note("agent_refused", remote, code="no_credential", data={"reason": "no credential"})
            raise AuthError("the agent channel needs 'Authorization: Bearer AGENT_ID.CREDENTIAL'")
        try:
            agent = self.registry.authenticate(bearer)
        except AuthError as exc:
            self.refusals.note("agent_refused", remote, code=exc.code,
                               data={"agent_id": bearer.partition(".")[0][:40], "reason": exc.message})
            raise
        return AgentIdentity(agent.id, agent.client_id, agent.role, bytes.fromhex(agent.signing_key))

    async def revoke(self, agent_id: str, *, actor: str) -> Agent:
        agent = self.registry.revoke(agent_id)
        self.audit.append("agent_revoked", actor=actor, client_id=agent.client_id, data={"agent_id": agent.id})
        link = self.hub.link(agent_id)
        if link is not None:
            await link.transport.close(CLOSE_UNAUTHORIZED, "credential revoked")
        return agent

    # -- HubObserver ----------------------------------------------------------------------------
    def connected(self, identity: AgentIdentity, hello: Hello) -> None:
        self.registry.update_hello(identity.agent_id, hostname=hello.hostname, os_version=hello.os_version,
                                   agent_version=hello.agent_version, tools=hello.tools)

    def disconnected(self, identity: AgentIdentity, reason: str) -> None:
        self.registry.touch(identity.agent_id)

    def violation(self, identity: AgentIdentity, error: ProtocolError) -> None:
        self.audit.append("protocol_error", actor=identity.agent_id, client_id=identity.client_id,
                          data={"error_code": error.code, "message": error.message[:500]})

    def frame(self, identity: AgentIdentity, frame: Any) -> None:
        if isinstance(frame, UserAnswer):
            if self.on_answer is not None:
                self.on_answer(identity.client_id, identity.agent_id, frame)
                return
            self.audit.append("user_answer", actor=identity.agent_id, client_id=identity.client_id,
                              data={"question_id": frame.question_id, "answer": frame.answer[:500]})
