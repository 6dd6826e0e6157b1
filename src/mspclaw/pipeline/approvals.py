"""Approval requests: stored, announced, decided once, and denied when nobody decides in time.

The waiter sleeps until the stored deadline (not a periodic sweep) or until a decision
wakes it. The decision itself is a conditional update in the database, so a technician's
approval racing the expiry has exactly one winner. An approval is bound to its tool call's id:
after a restart the same call finds the same row and waits for the same stored deadline again
(or takes the decision made meanwhile), so a restart neither re-asks nor extends the time.

A granted approval goes to the agent bound to the exact call id, tool, arguments, agent and expiry, and
signed with the server's Ed25519 key (:class:`ApprovalSigner`), whose public half the agent
pinned at enrollment.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from mspclaw.errors import ApprovalDenied, Conflict
from mspclaw.pipeline.approval_view import NOTE_LABEL, approval_facts, approval_statement
from mspclaw.pipeline.approvers import FIRST_APPROVAL, ApproverPolicy
from mspclaw.pipeline.audit_entry import AuditEntry
from mspclaw.pipeline.events import SessionEvents, woken_or_pushed
from mspclaw.pipeline.offload import run_store
from mspclaw.protocol.frames import Approval
from mspclaw.protocol.signing import approval_message, args_digest
from mspclaw.store.audit import AuditLog
from mspclaw.store.runs import RunStore
from mspclaw.store.tables import ApprovalRow, utcnow
from mspclaw.store.tickets import TicketStore

if TYPE_CHECKING:
    from mspclaw.pipeline.access import Principal
    from mspclaw.pipeline.notify import Notifier

EXPIRED_BY = "mspclaw (no decision in time)"
RECHECK_S = 5.0
"""A waiting approval reads its row again at least this often (a decision on another replica whose event was lost)."""


class ApprovalSigner:
    """Signs approval grants with the server's Ed25519 key (32 raw private bytes)."""

    def __init__(self, private_key: bytes) -> None:
        self._key = Ed25519PrivateKey.from_private_bytes(private_key)
        self.public_key = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @staticmethod
    def generate() -> bytes:
        from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

        return Ed25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    def sign(self, approval: Approval, *, call_id: str) -> Approval:
        """Sign ``approval`` for the one tool call ``call_id`` (the agent refuses it for any other call)."""
        return approval.model_copy(update={"signature": self._key.sign(approval_message(approval, call_id)).hex()})


class Approvals:
    def __init__(self, store: TicketStore, audit: AuditLog, events: SessionEvents, *, timeout_s: float,
                 signer: ApprovalSigner, runs: RunStore, policy: ApproverPolicy, notifier: Notifier,
                 grant_ttl_s: float = 300.0) -> None:
        self._store = store
        self._runs = runs
        self.policy = policy
        """Who may approve: a registered technician, not the requester; the two-person rule."""
        self.notifier = notifier
        """Approval requests to Slack/Teams (it sends nothing where the roster names no channel)."""
        self._audit = audit
        self._events = events
        self._signer = signer
        self.timeout_s = timeout_s
        self.grant_ttl_s = grant_ttl_s
        self._wakeups: dict[str, asyncio.Event] = {}

    @property
    def public_key_hex(self) -> str:
        return self._signer.public_key.hex()

    def pending(self, scope: Collection[str] | None) -> list[ApprovalRow]:
        return self._store.approvals(scope, status="pending")

    async def request(self, *, session_id: str, client_id: str, ticket_id: str, target: str, tool: str,
                      args: dict[str, Any], reason: str, call_id: str | None = None,
                      agent_id: str = "", verification: str = "", finding: str = "",
                      note_label: str = NOTE_LABEL) -> Approval:
        """``reason`` is the model's note, stored labelled as such after the server's ``verification``
        sentence and the latest ``finding`` (:func:`~mspclaw.pipeline.approval_view.approval_statement`)."""
        row = await run_store(self._runs, self._runs.approval_for_call, call_id) if call_id else None
        if row is None:
            deadline = utcnow() + timedelta(seconds=self.timeout_s)
            reason = approval_statement(verification=verification, finding=finding, note=reason,
                                        note_label=note_label)
            row = await run_store(self._store, self._store.request_approval, session_id=session_id,
                                  client_id=client_id, tool=tool, args=args, target=target, reason=reason,
                                  deadline=deadline, call_id=call_id)
            await self._audit.record("approval_requested", client_id=client_id, session_id=session_id,
                                     data={"approval_id": row.id, "tool": tool, "args": args, "target": target,
                                           "reason": reason, "deadline": deadline.isoformat(), "call_id": call_id})
            await self._events.emit_async(session_id, "approval_request", {
                "approval_id": row.id, "ticket_id": ticket_id, "tool": tool, "args": args, "target": target,
                "reason": reason, "deadline": deadline.isoformat(),
                "facts": approval_facts(tool, args, target).model_dump(mode="json")})
            await self.notifier.approval_requested(row, ticket_id)  # never fails the request
        if row.status == "pending":
            await self._wait(row, session_id)
        decided = await run_store(self._store, self._store.approval, row.id)
        if decided.status != "approved" or decided.decided_at is None:
            who = decided.approver or EXPIRED_BY
            why = f": {decided.decision_reason}" if decided.decision_reason else ""
            if decided.status == "expired":
                raise ApprovalDenied(
                    f"no technician decided on {tool} within {self.timeout_s:g} s, so it was not run", expired=True)
            raise ApprovalDenied(f"{tool} denied by {who}{why}")
        grant = Approval(approval_id=decided.id, approver=decided.approver or "",
                         decided_at=decided.decided_at.timestamp(), tool=tool, args_sha256=args_digest(args),
                         agent_id=agent_id, expires_at=utcnow().timestamp() + self.grant_ttl_s)
        return self._signer.sign(grant, call_id=call_id or "")  # no call id: bound to none, so refused by the agent

    async def _wait(self, row: ApprovalRow, session_id: str) -> None:
        """Sleep until a decision or the stored deadline, whichever comes first. A decision taken in this
        process wakes the waiter at once; one taken on another replica arrives as the session's
        ``approval_decision`` event (through Redis), and the stored row is read again at least every
        :data:`RECHECK_S` seconds, so a lost message delays the run, never loses the decision."""
        wake = self._wakeups.setdefault(row.id, asyncio.Event())
        events = self._events.subscribe(session_id)
        await run_store(self._store, self._store.update_session, session_id, status="awaiting_approval")
        try:
            # a decision may have landed before the event existed
            current = await run_store(self._store, self._store.approval, row.id)
            while current.status == "pending" and not wake.is_set():
                remaining = (row.deadline - utcnow()).total_seconds()
                if remaining <= 0:
                    await self._expire(row)
                    break
                await woken_or_pushed(wake, events, min(remaining, RECHECK_S))
                if not wake.is_set():
                    current = await run_store(self._store, self._store.approval, row.id)
        finally:
            self._wakeups.pop(row.id, None)
            self._events.unsubscribe(session_id, events)
        await run_store(self._store, self._store.update_session, session_id, status="running")

    async def _expire(self, row: ApprovalRow) -> None:
        try:
            await run_store(self._store, self._store.decide, row.id, status="expired", approver=EXPIRED_BY,
                            reason="no decision before the deadline")
        except Conflict:
            return  # a decision landed just in time
        await self._audit.record("approval_expired", client_id=row.client_id, session_id=row.session_id,
                                 data={"approval_id": row.id, "tool": row.tool})
        await self._events.emit_async(row.session_id, "approval_decision",
                                      {"approval_id": row.id, "status": "expired", "approver": EXPIRED_BY})

    def decide(self, approval_id: str, *, approve: bool, approver: str, reason: str,
               scope: Collection[str] | None, principal: Principal | None = None, via: str = "") -> ApprovalRow:
        """Record a technician's decision, from a thread that runs no event loop (a synchronous API
        route); raises NotFound outside the caller's clients. ``via`` names the channel it came through
        (``slack``), recorded with the decision in the audit trail and the session's events."""
        row, entry = self._settle(approval_id, approve=approve, approver=approver, reason=reason, scope=scope,
                                  principal=principal, via=via)
        entry.append(self._audit)
        return self._announce(row, entry)

    async def decide_async(self, approval_id: str, *, approve: bool, approver: str, reason: str,
                           scope: Collection[str] | None, principal: Principal | None = None,
                           via: str = "") -> ApprovalRow:
        """:meth:`decide` from the event loop (the session socket, Slack, the demo's technician)."""
        row, entry = await run_store(self._store, self._settle, approval_id, approve=approve, approver=approver,
                                     reason=reason, scope=scope, principal=principal, via=via)
        await entry.record(self._audit)
        await self._events.emit_async(row.session_id, "approval_decision", _decision(row, entry))
        return self._wake(row, entry)

    def _settle(self, approval_id: str, *, approve: bool, approver: str, reason: str,
                scope: Collection[str] | None, principal: Principal | None,
                via: str = "") -> tuple[ApprovalRow, AuditEntry]:
        """The decision stored, and the audit event that records it (a first of two approvals stays pending)."""
        approver = approver.strip()
        channel = {"via": via} if via else {}
        pending = self._store.approval(approval_id, scope)
        if principal is not None:  # who may approve
            who = self.policy.resolve(pending, principal, approver)
            decider = self.policy.second_approval(pending, who) if approve else who
            if decider is None:  # the first of two approvals (two-person rule): recorded, still pending
                return pending, AuditEntry(FIRST_APPROVAL, actor=who.label(), client_id=pending.client_id,
                                           session_id=pending.session_id,
                                           data={"approval_id": pending.id, "tool": pending.tool, **channel})
            approver = decider.label()
        if not approver:
            raise Conflict("an approval decision needs the approver's name")
        row = self._store.decide(approval_id, status="approved" if approve else "denied", approver=approver,
                                 reason=reason)
        return row, AuditEntry("approval_decided", actor=approver, client_id=row.client_id,
                               session_id=row.session_id,
                               data={"approval_id": row.id, "tool": row.tool, "status": row.status, "reason": reason,
                                     **channel})

    def _announce(self, row: ApprovalRow, entry: AuditEntry) -> ApprovalRow:
        self._events.emit(row.session_id, "approval_decision", _decision(row, entry))
        return self._wake(row, entry)

    def _wake(self, row: ApprovalRow, entry: AuditEntry) -> ApprovalRow:
        """Wake the session waiting for this approval, once it is decided (not after the first of two)."""
        wake = self._wakeups.get(row.id) if entry.kind != FIRST_APPROVAL else None
        if wake is not None:
            wake.set()
        return row


def _decision(row: ApprovalRow, entry: AuditEntry) -> dict[str, Any]:
    """The ``approval_decision`` event of a decision (``pending`` after the first of two approvals)."""
    channel = {"via": entry.data["via"]} if "via" in entry.data else {}
    if entry.kind == FIRST_APPROVAL:
        return {"approval_id": row.id, "status": "pending", "approver": entry.actor,
                "reason": f"first of two approvals of {row.tool}; a second technician must approve", **channel}
    return {"approval_id": row.id, "status": row.status, "approver": entry.actor, "reason": entry.data["reason"],
            **channel}
