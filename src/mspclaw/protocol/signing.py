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

from mspclaw.protocol.frames import Approval, ToolCall

_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def canonical_parts(call_id: str, tool: str, args: dict[str, Any], deadline: float,
                    approval: Approval | None) -> bytes:
    body = {
        "call_id": call_id,
        "tool": tool,
        "args": args,
        "deadline": deadline,
        "approval": None if approval is None else {
            "approval_id": approval.approval_id, "approver": approval.approver, "decided_at": approval.decided_at},
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
