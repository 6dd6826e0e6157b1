"""Tool-call signatures: the fast signer agrees with RFC 2104 HMAC, and the frame the dispatcher writes
directly decodes to the call it signed."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mspclaw.protocol.codec import decode_agent_frame, encode
from mspclaw.protocol.frames import Approval, ToolCall
from mspclaw.protocol.signing import Signer, canonical, canonical_parts, encode_call, sign_call, verify_call

KEY = bytes(range(32))

json_scalars = st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.text(max_size=20) | st.floats(
    allow_nan=False, allow_infinity=False)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
args_strategy = st.dictionaries(st.text(max_size=10), json_values, max_size=5)


@pytest.mark.parametrize("key", [b"", b"k", KEY, secrets.token_bytes(64), secrets.token_bytes(100)])
def test_the_signer_is_hmac_sha256(key: bytes) -> None:
    for message in (b"", b"x", secrets.token_bytes(300)):
        assert Signer(key).signature(message) == hmac.new(key, message, hashlib.sha256).hexdigest()


@settings(max_examples=200, deadline=None)
@given(args=args_strategy, call_id=st.text(min_size=1, max_size=20), tool=st.text(min_size=1, max_size=20),
       deadline=st.floats(0, 4e9), approved=st.booleans())
def test_an_encoded_call_decodes_to_the_call_it_signed(args: dict[str, Any], call_id: str, tool: str,
                                                        deadline: float, approved: bool) -> None:
    approval = Approval(approval_id="ap_1", approver="Dana \u00e9\n", decided_at=deadline / 2) if approved else None
    text = encode_call(Signer(KEY), call_id=call_id, tool=tool, args=args, deadline=deadline, approval=approval)
    call = decode_agent_frame(text)
    assert isinstance(call, ToolCall)
    assert (call.call_id, call.tool, call.args, call.deadline, call.approval) == (call_id, tool, args, deadline,
                                                                                 approval)
    assert verify_call(KEY, call) and Signer(KEY).verify(call)
    # the model path signs the same bytes
    model = sign_call(KEY, ToolCall(call_id=call_id, tool=tool, args=args, deadline=deadline, approval=approval))
    assert model.signature == call.signature
    assert decode_agent_frame(encode(model)) == call


def _signed(**changes: Any) -> ToolCall:
    base: dict[str, Any] = {"call_id": "call_1", "tool": "clear_temp_files", "args": {"dry_run": True},
                            "deadline": 100.5, "approval": None}
    text = encode_call(Signer(KEY), **base)
    call = decode_agent_frame(text)
    assert isinstance(call, ToolCall)
    return call.model_copy(update=changes)


@pytest.mark.parametrize("change", [
    {"call_id": "call_2"},
    {"tool": "reboot"},
    {"args": {"dry_run": False}},
    {"args": {"dry_run": True, "extra": 1}},
    {"deadline": 100.50001},
    {"approval": Approval(approval_id="ap_x", approver="Mallory", decided_at=1.0)},
    {"signature": "0" * 64},
])
def test_any_change_to_a_signed_call_breaks_its_signature(change: dict[str, Any]) -> None:
    assert Signer(KEY).verify(_signed())
    assert not Signer(KEY).verify(_signed(**change))
    assert not verify_call(KEY, _signed(**change))


def test_another_key_does_not_verify() -> None:
    assert not Signer(secrets.token_bytes(32)).verify(_signed())


def test_canonical_lines_cannot_run_into_each_other() -> None:
    # a newline inside a value is escaped by JSON, so it cannot fake a field boundary
    a = canonical_parts('a"\n"b', "t", {}, 1.0, None)
    b = canonical_parts("a", 'b"\n"t', {}, 1.0, None)
    assert a != b and a.count(b"\n") == b.count(b"\n") == 4


def test_the_canonical_form_and_the_frame_carry_the_same_deadline_text() -> None:
    # the five documented lines, byte for byte; an integer deadline is signed as the float the agent decodes
    assert canonical_parts("c1", "disk_usage", {"b": 1, "a": [1.5]}, 1700000000, None) == (
        b'"c1"\n"disk_usage"\n{"a":[1.5],"b":1}\n1700000000.0\nnull')
    text = encode_call(Signer(KEY), call_id="c1", tool="disk_usage", args={}, deadline=0.1 + 0.2)
    assert '"deadline":0.30000000000000004,' in text
    call = decode_agent_frame(text)
    assert isinstance(call, ToolCall) and Signer(KEY).verify(call)
    assert canonical(call).split(b"\n")[3] == b"0.30000000000000004"
