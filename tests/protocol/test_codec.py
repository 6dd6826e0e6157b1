"""The codec refuses each kind of bad frame with the matching error and a message that says what to fix."""

from __future__ import annotations

import json

import pytest

from mspclaw.errors import FrameTooLarge, MalformedFrame, UnknownKind
from mspclaw.protocol.codec import AGENT_KINDS, SESSION_KINDS, decode_agent_frame, decode_session_frame, encode
from mspclaw.protocol.frames import (
    MAX_FRAME_BYTES,
    Approval,
    Hello,
    Start,
    ToolCall,
    ToolResult,
)


def test_every_design_frame_kind_is_in_the_agent_union() -> None:
    assert {"hello", "welcome", "tool_call", "tool_result", "ask_user", "user_answer",
            "notify_user", "show_secret", "secret_shown", "ping", "pong", "error"} == AGENT_KINDS
    assert {"start", "watch", "decide", "answer", "event", "error"} <= SESSION_KINDS


def test_round_trip_keeps_every_field() -> None:
    call = ToolCall(call_id="c1", tool="disk_usage", args={"paths": ["/"]}, deadline=12.5,
                    approval=Approval(approval_id="ap_1", approver="Dana", decided_at=3.0), signature="ab")
    assert decode_agent_frame(encode(call)) == call
    hello = Hello(protocol=1, agent_id="ag_1", client_id="cl_1", role="device", hostname="pc", os="linux",
                  tools=["disk_usage"])
    assert decode_agent_frame(encode(hello).encode()) == hello


def test_bad_json_is_malformed() -> None:
    with pytest.raises(MalformedFrame, match="not valid JSON"):
        decode_agent_frame("{nope")


def test_non_object_is_malformed() -> None:
    with pytest.raises(MalformedFrame, match="JSON object"):
        decode_agent_frame("[1, 2]")


def test_unknown_kind_names_the_known_ones() -> None:
    with pytest.raises(UnknownKind, match=r"'launch_missiles'.*tool_call"):
        decode_agent_frame(json.dumps({"kind": "launch_missiles"}))


def test_missing_field_is_named() -> None:
    with pytest.raises(MalformedFrame, match="call_id"):
        decode_agent_frame(json.dumps({"kind": "tool_result", "ok": True}))


def test_extra_fields_are_refused() -> None:
    frame = json.loads(encode(ToolResult(call_id="c", ok=True)))
    frame["surprise"] = 1
    with pytest.raises(MalformedFrame, match="surprise"):
        decode_agent_frame(json.dumps(frame))


def test_oversized_frame_is_refused_before_parsing() -> None:
    big = json.dumps({"kind": "tool_result", "call_id": "c", "ok": True, "output": "x" * MAX_FRAME_BYTES})
    with pytest.raises(FrameTooLarge, match="limit"):
        decode_agent_frame(big)


def test_session_frames_decode() -> None:
    start = Start(client_id="cl_1", subject="disk full")
    assert decode_session_frame(encode(start)) == start
    with pytest.raises(UnknownKind):
        decode_session_frame(json.dumps({"kind": "tool_call"}))


def test_encode_writes_what_model_dump_json_writes() -> None:
    """``encode`` calls the serializer directly; its text must stay that of ``model_dump_json()``."""
    frames = [
        ToolCall(call_id="c1", tool="disk_usage", args={"paths": ["/"], "n": 1.5}, deadline=12.5,
                 approval=Approval(approval_id="ap_1", approver="Dana", decided_at=3.0), signature="ab"),
        ToolResult(call_id="c1", ok=False, output={"nested": [1, None, "é"]}, duration_ms=7),
        Hello(protocol=1, agent_id="ag", client_id="cl", role="device", hostname="h", os="linux", tools=["a"]),
        Start(client_id="cl", subject="s", body="b", requester="r"),
    ]
    for frame in frames:
        assert encode(frame) == frame.model_dump_json()
