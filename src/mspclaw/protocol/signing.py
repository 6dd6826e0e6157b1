"""Signatures on tool calls.

At enrollment an agent receives and pins a 32-byte key that only it and the server
know. The server signs every ``tool_call`` with HMAC-SHA256 over its canonical form
(call id, tool, arguments, deadline, approval); the agent refuses a call whose signature
does not verify, so a call cannot be forged or altered by anyone between the two, and a
destructive call cannot have its approval stripped or swapped. Standard library only, so
the agent keeps its two dependencies.

The canonical form is five lines, each one JSON value, in a fixed order::

    "<call_id>"
    "<tool>"
    {<args, keys sorted, compact>}
    <deadline as Python's shortest round-trip float repr, which is also valid JSON>
    null | {<every field of the approval, keys sorted, compact>}

JSON strings cannot contain a raw newline, so the lines cannot run into each other. Every tool call
is signed by the server and verified by the agent, so this is the hot path of the wire protocol:
:class:`Signer` keeps the HMAC's inner and outer SHA-256 states for its key and only copies them per
message (OpenSSL 3 spends more time setting up an HMAC than hashing a call), and :func:`encode_call`
writes the signed frame's JSON text directly instead of building and serialising a model.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from json.encoder import encode_basestring_ascii as _quote
from typing import Any

from mspclaw.protocol import ed25519
from mspclaw.protocol.frames import Approval, ToolCall

_SORTED = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode
_BLOCK = 64  # SHA-256 block size
_TRANS_36 = bytes(b ^ 0x36 for b in range(256))
_TRANS_5C = bytes(b ^ 0x5C for b in range(256))
"""HMAC's inner and outer pads (RFC 2104) as translation tables: ``key.translate(_TRANS_36)`` is the key XOR 0x36."""


def canonical_parts(call_id: str, tool: str, args: dict[str, Any], deadline: float,
                    approval: Approval | None) -> bytes:
    """The bytes a call's signature covers (see the module docstring)."""
    return _canonical(_quote(call_id), _quote(tool), _SORTED(args) if args else "{}", repr(float(deadline)),
                      approval)


def _canonical(quoted_id: str, quoted_tool: str, encoded_args: str, encoded_deadline: str,
               approval: Approval | None) -> bytes:
    """``encoded_deadline`` is ``repr(float(deadline))``: :func:`encode_call` writes the same text into the frame."""
    encoded_approval = "null" if approval is None else _SORTED(approval.model_dump(mode="json"))
    return f"{quoted_id}\n{quoted_tool}\n{encoded_args}\n{encoded_deadline}\n{encoded_approval}".encode()


def canonical(call: ToolCall) -> bytes:
    return canonical_parts(call.call_id, call.tool, call.args, call.deadline, call.approval)


class Signer:
    """HMAC-SHA256 under one key, with the key's padded blocks hashed once (RFC 2104)."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_BLOCK, b"\0")
        # one per agent connection: a translation table, as the hmac module pads, not a generator (~30 µs)
        self._inner = hashlib.sha256(key.translate(_TRANS_36))
        self._outer = hashlib.sha256(key.translate(_TRANS_5C))

    def signature(self, message: bytes) -> str:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()

    def sign_parts(self, call_id: str, tool: str, args: dict[str, Any], deadline: float,
                   approval: Approval | None) -> str:
        return self.signature(canonical_parts(call_id, tool, args, deadline, approval))

    def verify(self, call: ToolCall) -> bool:
        args = call.args
        message = _canonical(_quote(call.call_id), _quote(call.tool), _SORTED(args) if args else "{}",
                             repr(float(call.deadline)), call.approval)
        return hmac.compare_digest(self.signature(message), call.signature)


def signature(key: bytes, message: bytes) -> str:
    return hmac.digest(key, message, hashlib.sha256).hex()


def encode_call(signer: Signer, *, call_id: str, tool: str, args: dict[str, Any], deadline: float,
                approval: Approval | None = None) -> str:
    """The JSON text of a signed ``tool_call`` frame, as :func:`~mspclaw.protocol.codec.encode` of the
    equivalent :class:`ToolCall` would read back (the dispatcher's hot path).

    ``args`` must be JSON values; the frame carries them in the canonical (sorted) form the signature
    covers, which is also what the agent decodes.
    """
    encoded_deadline = repr(float(deadline))  # once: the float-to-text conversion is not free
    quoted_id, quoted_tool = _quote(call_id), _quote(tool)
    encoded_args = _SORTED(args) if args else "{}"
    sig = signer.signature(_canonical(quoted_id, quoted_tool, encoded_args, encoded_deadline, approval))
    encoded_approval = "null" if approval is None else approval.model_dump_json()
    return (f'{{"kind":"tool_call","call_id":{quoted_id},"tool":{quoted_tool},"args":{encoded_args},'
            f'"deadline":{encoded_deadline},"approval":{encoded_approval},"signature":"{sig}"}}')


def signed_call(key: bytes, *, call_id: str, tool: str, args: dict[str, Any], deadline: float,
                approval: Approval | None = None) -> ToolCall:
    """Build a signed :class:`ToolCall` model in one step."""
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
    return hashlib.sha256(_SORTED(args).encode()).hexdigest()


def approval_message(approval: Approval, call_id: str | None = None) -> bytes:
    """The bytes the server signs: the call id the grant is for, then every field but the signature.

    ``mspclaw-approval-v2`` binds the grant to one tool call (``call_id``), so a grant for one call
    cannot let another call with the same tool, arguments and agent run. ``call_id=None`` gives the
    unbound ``mspclaw-approval-v1`` form older servers signed; :func:`check_approval` recognises it
    only to refuse it with a reason that says so.
    """
    fields = _SORTED(approval.model_dump(mode="json", exclude={"signature"}))
    if call_id is None:
        return b"mspclaw-approval-v1:" + fields.encode()
    return f"mspclaw-approval-v2:{_quote(call_id)}\n{fields}".encode()


def check_approval(public_key: bytes, approval: Approval, *, call_id: str, tool: str, args: dict[str, Any],
                   agent_id: str, now: float) -> str | None:
    """Why this grant does not let call ``call_id``, ``tool(args)``, run on ``agent_id`` now, or ``None``.

    Only grants bound to ``call_id`` (``mspclaw-approval-v2``) are accepted. A grant in the unbound v1
    form is refused explicitly (its server predates call binding and must be upgraded), not silently.
    """
    if not approval.signature:
        return "the approval is not signed by the server"
    try:
        sig = bytes.fromhex(approval.signature)
    except ValueError:
        return "the approval signature is not hex"
    if not ed25519.verify(public_key, approval_message(approval, call_id), sig):
        if ed25519.verify(public_key, approval_message(approval), sig):
            return ("the approval is not bound to a tool call (the unbound v1 form of a server older than this "
                    "agent); upgrade the MSPclaw server, which then signs approvals for one call each")
        return (f"the approval signature does not verify for call {call_id!r} against the pinned server key "
                "(it was given for another call, or signed by another key)")
    if approval.tool != tool:
        return f"the approval is for {approval.tool!r}, not {tool!r}"
    if approval.args_sha256 != args_digest(args):
        return "the approval was given for other arguments"
    if approval.agent_id != agent_id:
        return "the approval is for another agent"
    if approval.expires_at <= now:
        return f"the approval expired {now - approval.expires_at:.0f} s ago"
    return None
