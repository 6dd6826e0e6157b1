"""The fleet: enrollment, agent authentication, revocation, and what the hub reports.

Everything here is audited, failures included: a bad enrollment code or a refused agent
credential leaves a trace with the remote address, never with the secret itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any, Protocol

from mspclaw.dispatch import AgentIdentity, Hub
from mspclaw.errors import AuthError, EnrollmentError, ProtocolError
from mspclaw.pipeline.audit_entry import AuditEntry
from mspclaw.pipeline.refusals import Refusals
from mspclaw.protocol.frames import Hello, UserAnswer
from mspclaw.store.audit import AuditLog
from mspclaw.store.registry import (
    MAX_VERIFY_BATCH,
    AgentCredential,
    AgentSeen,
    EnrolledAgent,
    IssuedCode,
    Registry,
)
from mspclaw.store.tables import Agent, Enrollment, utcnow

log = logging.getLogger(__name__)


class DeviceAnswers(Protocol):
    """Where answers from devices go (:class:`~mspclaw.pipeline.questions.Answers`)."""

    async def from_agent(self, client_id: str, agent_id: str, frame: UserAnswer) -> None: ...


SEEN_GATHER_S = 0.05
"""How long the first hello or disconnect of a burst waits for others to share its transaction."""
SEEN_BATCH = 1000
"""Hellos and disconnects written per transaction at most."""


class AgentActivity:
    """What the hub reports of live agents, kept: hellos and disconnects in the registry, protocol
    violations in the audit trail, users' answers to whoever asked. Built before the hub (it is the
    hub's observer), so it needs nothing that needs the hub.

    The hub calls it synchronously from its reading loop; whatever awaits (an audit write, an answer)
    runs as a task of its own, which :meth:`drain` and :meth:`aclose` wait for.

    Hellos and disconnects are group-committed: each one replaces the agent's pending entry (so a
    flapping agent costs one row), and one writer task gathers a burst for :data:`SEEN_GATHER_S`,
    then writes it on a worker thread in transactions of up to :data:`SEEN_BATCH` rows. A reconnect
    storm of 10,000 agents costs about ten transactions instead of 10,000 commits on the event loop.
    The pending entries are bounded by the fleet (one per agent)."""

    def __init__(self, registry: Registry, audit: AuditLog, answers: DeviceAnswers) -> None:
        self._registry, self._audit, self._answers = registry, audit, answers
        self._tasks: set[asyncio.Task[None]] = set()
        self._seen: dict[str, AgentSeen] = {}
        self._writer: asyncio.Task[None] | None = None

    def connected(self, identity: AgentIdentity, hello: Hello) -> None:
        self._note(AgentSeen(identity.agent_id, utcnow(), hello.hostname, hello.os_version, hello.agent_version,
                             tuple(hello.tools)))

    def disconnected(self, identity: AgentIdentity, reason: str) -> None:
        pending = self._seen.get(identity.agent_id)
        now = utcnow()  # a hello not yet written keeps its fields, with the later time
        self._note(AgentSeen(identity.agent_id, now) if pending is None or pending.hostname is None
                   else dataclasses.replace(pending, seen_at=now))

    def _note(self, seen: AgentSeen) -> None:
        self._seen[seen.agent_id] = seen
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write_seen())

    async def _write_seen(self) -> None:
        try:
            while self._seen:
                await asyncio.sleep(SEEN_GATHER_S)
                batch, self._seen = list(self._seen.values()), {}
                for start in range(0, len(batch), SEEN_BATCH):
                    try:
                        await asyncio.to_thread(self._registry.record_seen, batch[start:start + SEEN_BATCH])
                    except Exception:  # last-seen data: lost for this batch, the next hello writes it again
                        log.exception("could not record %d agents' hellos and disconnects",
                                      len(batch[start:start + SEEN_BATCH]))
        finally:
            self._writer = None

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
        while self._tasks or self._writer is not None:
            if self._writer is not None:
                await asyncio.gather(self._writer, return_exceptions=True)
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
        self._waiting: list[tuple[str, str, asyncio.Future[AgentIdentity]]] = []
        """Upgrades waiting for the next read (:meth:`authenticate_soon`); bounded by the open sockets."""
        self._verifier: asyncio.Task[None] | None = None

    def issue_code(self, client_id: str, *, role: str = "device", ttl_hours: float | None = None,
                   actor: str = "api") -> IssuedCode:
        """A single-use enrollment code, from a thread that runs no event loop (a synchronous API route)."""
        issued, entry = self._issue(client_id, role=role, ttl_hours=ttl_hours, actor=actor)
        entry.append(self.audit)
        return issued

    async def issue_code_async(self, client_id: str, *, role: str = "device", ttl_hours: float | None = None,
                               actor: str = "api") -> IssuedCode:
        """:meth:`issue_code` from the event loop (the demo, an async route)."""
        issued, entry = await asyncio.to_thread(self._issue, client_id, role=role, ttl_hours=ttl_hours, actor=actor)
        await entry.record(self.audit)
        return issued

    def _issue(self, client_id: str, *, role: str, ttl_hours: float | None,
               actor: str) -> tuple[IssuedCode, AuditEntry]:
        ttl = timedelta(hours=ttl_hours) if ttl_hours else self.ttl
        issued = self.registry.issue_code(client_id, role=role, ttl=ttl)
        return issued, AuditEntry("enrollment_issued", actor=actor, client_id=client_id,
                                  data={"code_id": issued.id, "role": role,
                                        "expires_at": issued.expires_at.isoformat()})

    def open_codes(self, client_id: str | None = None) -> list[Enrollment]:
        """Enrollment codes that can still be spent (their id, client, role and expiry; never the code)."""
        return self.registry.open_codes(client_id)

    def revoke_code(self, code_id: str, *, actor: str) -> Enrollment:
        """Revoke an unspent enrollment code (it expires now); audited."""
        enr = self.registry.revoke_code(code_id)
        self.audit.append("enrollment_revoked", actor=actor, client_id=enr.client_id,
                          data={"code_id": enr.id, "role": enr.role})
        return enr

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
        """Check an agent's upgrade now, with one read of its row on the calling thread."""
        if not bearer:
            raise self._no_credential(remote)
        try:
            agent = self.registry.verify_agent(bearer)
        except AuthError as exc:
            self._refused(bearer, remote, exc)
            raise
        return _identity(agent)

    def authenticate_soon(self, bearer: str | None, *, remote: str) -> asyncio.Future[AgentIdentity]:
        """:meth:`authenticate` for the agent listener, from the event loop: the upgrades that arrive while a
        read is under way share the next one (:meth:`Registry.verify_agents`, up to
        :data:`~mspclaw.store.registry.MAX_VERIFY_BATCH` per read, on a worker thread), so a reconnect storm
        costs one database round trip per batch and never blocks the loop on one. Each read is fresh: a
        revocation through any replica refuses the next upgrade."""
        loop = asyncio.get_running_loop()
        verdict: asyncio.Future[AgentIdentity] = loop.create_future()
        if not bearer:
            verdict.set_exception(self._no_credential(remote))
            return verdict
        self._waiting.append((bearer, remote, verdict))
        if self._verifier is None:
            self._verifier = loop.create_task(self._verify_waiting())
        return verdict

    async def _verify_waiting(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[:MAX_VERIFY_BATCH], self._waiting[MAX_VERIFY_BATCH:]
                try:
                    verdicts: list[AgentCredential | AuthError] = await asyncio.to_thread(
                        self.registry.verify_agents, [bearer for bearer, _, _ in batch])
                except Exception as exc:  # the database is unreachable: this batch is refused, the next tries
                    for _, _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (bearer, remote, future), found in zip(batch, verdicts, strict=True):
                    if isinstance(found, AuthError):
                        self._refused(bearer, remote, found)
                        if not future.done():
                            future.set_exception(found)
                    elif not future.done():
                        future.set_result(_identity(found))
        finally:
            self._verifier = None

    def _no_credential(self, remote: str) -> AuthError:
        self.refusals.note("agent_refused", remote, code="no_credential", data={"reason": "no credential"})
        return AuthError("the agent channel needs 'Authorization: Bearer AGENT_ID.CREDENTIAL'")

    def _refused(self, bearer: str, remote: str, exc: AuthError) -> None:
        self.refusals.note("agent_refused", remote, code=exc.code,
                           data={"agent_id": bearer.partition(".")[0][:40], "reason": exc.message})

    async def revoke(self, agent_id: str, *, actor: str) -> Agent:
        agent = await asyncio.to_thread(self.registry.revoke, agent_id)
        await self.audit.record("agent_revoked", actor=actor, client_id=agent.client_id, data={"agent_id": agent.id})
        await self.hub.disconnect(agent_id, agent.client_id, "credential revoked")  # on whichever replica holds it
        return agent


def _identity(agent: AgentCredential) -> AgentIdentity:
    return AgentIdentity(agent.agent_id, agent.client_id, agent.role, bytes.fromhex(agent.signing_key))
