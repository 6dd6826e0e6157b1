"""Signatures on tool calls.

At enrollment an agent receives and pins a 32-byte key that only it and the server
know. The server signs every ``tool_call`` with HMAC-SHA256 over its canonical form
(call id, tool, arguments, deadline, approval); the agent refuses a call whose signature
does not verify, so a call cannot be forged or altered by anyone between the two, and a
destructive call cannot have its approval stripped or swapped. Standard library only, so
the agent keeps its two dependencies.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from mspclaw.protocol import ed25519
from mspclaw.protocol.frames import Approval, ToolCall

_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def canonical_parts(call_id: str, tool: str, args: dict[str, Any], deadline: float,
                    approval: Approval | None) -> bytes:
    body = {
        "call_id": call_id,
        "tool": tool,
        "args": args,
        "deadline": deadline,
        "approval": None if approval is None else approval.model_dump(mode="json"),
    }
    return _ENCODER.encode(body).encode()


def canonical(call: ToolCall) -> bytes:
    return canonical_parts(call.call_id, call.tool, call.args, call.deadline, call.approval)


def signature(key: bytes, message: bytes) -> str:
    return hmac.digest(key, message, hashlib.sha256).hex()


def signed_call(key: bytes, *, call_id: str, tool: str, args: dict[str, Any], deadline: float,
                approval: Approval | None = None) -> ToolCall:
    """Build a signed call in one step (the dispatcher's hot path)."""
    sig = signature(key, canonical_parts(call_id, tool, args, deadline, approval))
    return ToolCall(call_id=call_id, tool=tool, args=args, deadline=deadline, approval=approval, signature=sig)


def sign_call(key: bytes, call: ToolCall) -> ToolCall:
    """Return ``call`` with its ``signature`` set."""
    return call.model_copy(update={"signature": signature(key, canonical(call))})


def verify_call(key: bytes, call: ToolCall) -> bool:
    return hmac.compare_digest(signature(key, canonical(call)), call.signature)


# --- approvals (Ed25519) -------------------------------------------------------------------------


def args_digest(args: dict[str, Any]) -> str:
    """SHA-256 of the arguments' canonical JSON: what an approval binds."""
    return hashlib.sha256(_ENCODER.encode(args).encode()).hexdigest()


def approval_message(approval: Approval) -> bytes:
    """The bytes the server signs: every field of the grant but the signature itself."""
    return b"mspclaw-approval-v1:" + _ENCODER.encode(approval.model_dump(mode="json", exclude={"signature"})).encode()


def check_approval(public_key: bytes, approval: Approval, *, tool: str, args: dict[str, Any], agent_id: str,
                   now: float) -> str | None:
    """Why this grant does not let ``tool(args)`` run on ``agent_id`` now, or ``None`` when it does."""
    if not approval.signature:
        return "the approval is not signed by the server"
    try:
        sig = bytes.fromhex(approval.signature)
    except ValueError:
        return "the approval signature is not hex"
    if not ed25519.verify(public_key, approval_message(approval), sig):
        return "the approval signature does not verify against the pinned server key"
    if approval.tool != tool:
        return f"the approval is for {approval.tool!r}, not {tool!r}"
    if approval.args_sha256 != args_digest(args):
        return "the approval was given for other arguments"
    if approval.agent_id != agent_id:
        return "the approval is for another agent"
    if approval.expires_at <= now:
        return f"the approval expired {now - approval.expires_at:.0f} s ago"
    return None
