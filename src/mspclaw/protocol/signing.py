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

from mspclaw.protocol.frames import ToolCall


def canonical(call: ToolCall) -> bytes:
    body = {
        "call_id": call.call_id,
        "tool": call.tool,
        "args": call.args,
        "deadline": call.deadline,
        "approval": call.approval.model_dump() if call.approval else None,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def sign_call(key: bytes, call: ToolCall) -> ToolCall:
    """Return ``call`` with its ``signature`` set."""
    sig = hmac.new(key, canonical(call), hashlib.sha256).hexdigest()
    return call.model_copy(update={"signature": sig})


def verify_call(key: bytes, call: ToolCall) -> bool:
    expected = hmac.new(key, canonical(call), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, call.signature)
