"""The fleet: enrollment, agent authentication, revocation, and what the hub reports.

Everything here is audited, failures included: a bad enrollment code or a refused agent
credential leaves a trace with the remote address, never with the secret itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any, Protocol

from mspclaw.dispatch import AgentIdentity, Hub
from mspclaw.errors import AuthError, EnrollmentError, ProtocolError
from mspclaw.pipeline.audit_entry import AuditEntry
from mspclaw.pipeline.refusals import Refusals
from mspclaw.protocol.connection import CLOSE_UNAUTHORIZED
from mspclaw.protocol.frames import Hello, UserAnswer
from mspclaw.store.audit import AuditLog
from mspclaw.store.registry import EnrolledAgent, IssuedCode, Registry
from mspclaw.store.tables import Agent

log = logging.getLogger(__name__)


class DeviceAnswers(Protocol):
    """Where answers from devices go (:class:`~mspclaw.pipeline.questions.Answers`)."""

    async def from_agent(self, client_id: str, agent_id: str, frame: UserAnswer) -> None: ...


class AgentActivity:
    """What the hub reports of live agents, kept: hellos and disconnects in the registry, protocol
    violations in the audit trail, users' answers to whoever asked. Built before the hub (it is the
    hub's observer), so it needs nothing that needs the hub.

    The hub calls it synchronously from its reading loop; whatever awaits (an audit write, an answer)
    runs as a task of its own, which :meth:`drain` and :meth:`aclose` wait for."""

    def __init__(self, registry: Registry, audit: AuditLog, answers: DeviceAnswers) -> None:
        self._registry, self._audit, self._answers = registry, audit, answers
        self._tasks: set[asyncio.Task[None]] = set()

    def connected(self, identity: AgentIdentity, hello: Hello) -> None:
        self._registry.update_hello(identity.agent_id, hostname=hello.hostname, os_version=hello.os_version,
                                    agent_version=hello.agent_version, tools=hello.tools)

    def disconnected(self, identity: AgentIdentity, reason: str) -> None:
        self._registry.touch(identity.agent_id)

    def violation(self, identity: AgentIdentity, error: ProtocolError) -> None:
        self._spawn(self._record("protocol_error", actor=identity.agent_id, client_id=identity.client_id,
                                 data={"error_code": error.code, "message": error.message[:500]}))

    def frame(self, identity: AgentIdentity, frame: Any) -> None:
        if isinstance(frame, UserAnswer):
            self._spawn(self._answers.from_agent(identity.client_id, identity.agent_id, frame))

    async def _record(self, kind: str, *, actor: str, client_id: str, data: dict[str, Any]) -> None:
        await self._audit.record(kind, actor=actor, client_id=client_id, data=data)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("agent activity not kept", exc_info=task.exception())

    async def drain(self) -> None:
        """Wait until what the hub has reported so far is kept."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def aclose(self) -> None:
        await self.drain()


class Fleet:
    def __init__(self, registry: Registry, audit: AuditLog, hub: Hub, *, enrollment_ttl_hours: float,
                 refusals: Refusals) -> None:
        self.registry = registry
        self.audit = audit
        self.refusals = refusals
        """Refused upgrades and enrollments: counted, and only sampled into the audit trail."""
        self.hub = hub
        self.ttl = timedelta(hours=enrollment_ttl_hours)

    def issue_code(self, client_id: str, *, role: str = "device", ttl_hours: float | None = None,
                   actor: str = "api") -> IssuedCode:
        """A single-use enrollment code, from a thread that runs no event loop (a synchronous API route)."""
        issued, entry = self._issue(client_id, role=role, ttl_hours=ttl_hours, actor=actor)
        entry.append(self.audit)
        return issued

    async def issue_code_async(self, client_id: str, *, role: str = "device", ttl_hours: float | None = None,
                               actor: str = "api") -> IssuedCode:
        """:meth:`issue_code` from the event loop (the demo, an async route)."""
        issued, entry = self._issue(client_id, role=role, ttl_hours=ttl_hours, actor=actor)
        await entry.record(self.audit)
        return issued

    def _issue(self, client_id: str, *, role: str, ttl_hours: float | None,
               actor: str) -> tuple[IssuedCode, AuditEntry]:
        ttl = timedelta(hours=ttl_hours) if ttl_hours else self.ttl
        issued = self.registry.issue_code(client_id, role=role, ttl=ttl)
        return issued, AuditEntry("enrollment_issued", actor=actor, client_id=client_id,
                                  data={"role": role, "expires_at": issued.expires_at.isoformat()})

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
        await self.audit.record("agent_revoked", actor=actor, client_id=agent.client_id, data={"agent_id": agent.id})
        link = self.hub.link(agent_id)
        if link is not None:
            await link.transport.close(CLOSE_UNAUTHORIZED, "credential revoked")
        return agent
