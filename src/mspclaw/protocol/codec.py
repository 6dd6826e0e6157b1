"""Decode and encode frames: size limit first, then JSON, then the ``kind``, then the schema.

Decoding happens here and nowhere else; each failure raises the matching
:class:`~mspclaw.errors.ProtocolError` with a message that says what to fix.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from mspclaw.errors import FrameTooLarge, MalformedFrame, UnknownKind
from mspclaw.protocol.frames import MAX_FRAME_BYTES, AgentFrame, SessionFrame

_AGENT: TypeAdapter[AgentFrame] = TypeAdapter(AgentFrame)
_SESSION: TypeAdapter[SessionFrame] = TypeAdapter(SessionFrame)


def _kinds(adapter: TypeAdapter[Any]) -> frozenset[str]:
    schema = adapter.json_schema()
    mapping = schema.get("discriminator", {}).get("mapping", {})
    return frozenset(mapping)


AGENT_KINDS = _kinds(_AGENT)
SESSION_KINDS = _kinds(_SESSION)


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"][1:]) or "frame"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


# One pass in pydantic-core: JSON parsing, the ``kind`` tag and the frame's schema. The core
# validators are called directly: ``TypeAdapter.validate_json`` adds only keyword handling in Python,
# and an agent frame is decoded twice per tool call.
_AGENT_JSON = _AGENT.validator.validate_json
_SESSION_JSON = _SESSION.validator.validate_json


def _explain(exc: ValidationError, kinds: frozenset[str]) -> MalformedFrame | UnknownKind:
    first = exc.errors()[0]
    match first["type"]:
        case "json_invalid":
            return MalformedFrame(f"frame is not valid JSON: {first['msg']}")
        case "dict_type" | "model_type" | "model_attributes_type":
            return MalformedFrame("frame must be a JSON object with a 'kind' field")
        case "union_tag_invalid" | "union_tag_not_found":
            tag = (first.get("ctx") or {}).get("tag")
            what = f"unknown frame kind {tag!r}" if tag is not None else "frame has no 'kind' field"
            return UnknownKind(f"{what}; expected one of: {', '.join(sorted(kinds))}")
    kind = first["loc"][0] if first["loc"] else "frame"
    return MalformedFrame(f"invalid {kind} frame: {_describe(exc)}")


def _decode(data: str | bytes, validate: Callable[[str | bytes], Any], kinds: frozenset[str], limit: int) -> Any:
    if len(data) > limit:
        raise FrameTooLarge(f"frame of {len(data)} bytes is over the {limit}-byte limit")
    try:
        return validate(data)
    except ValidationError as exc:
        raise _explain(exc, kinds) from exc


def decode_agent_frame(data: str | bytes, limit: int = MAX_FRAME_BYTES) -> AgentFrame:
    """Parse one agent-channel frame or raise a :class:`~mspclaw.errors.ProtocolError`."""
    frame: AgentFrame = _decode(data, _AGENT_JSON, AGENT_KINDS, limit)
    return frame


def decode_session_frame(data: str | bytes, limit: int = MAX_FRAME_BYTES) -> SessionFrame:
    """Parse one session-channel frame or raise a :class:`~mspclaw.errors.ProtocolError`."""
    frame: SessionFrame = _decode(data, _SESSION_JSON, SESSION_KINDS, limit)
    return frame


def encode(frame: BaseModel) -> str:
    """Serialise a frame as compact JSON text (what ``model_dump_json()`` gives, without its keyword handling)."""
    return type(frame).__pydantic_serializer__.to_json(frame).decode()
