"""Decode and encode frames: size limit first, then JSON, then the ``kind``, then the schema.

Decoding happens here and nowhere else; each failure raises the matching
:class:`~mspclaw.errors.ProtocolError` with a message that says what to fix.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from mspclaw.errors import FrameTooLarge, MalformedFrame, UnknownKind
from mspclaw.protocol.frames import MAX_FRAME_BYTES, AgentFrame, SessionFrame

F = TypeVar("F")

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


def _decode(data: str | bytes, adapter: TypeAdapter[F], kinds: frozenset[str], limit: int) -> F:
    if len(data) > limit:
        raise FrameTooLarge(f"frame of {len(data)} bytes is over the {limit}-byte limit")
    try:
        # One pass in pydantic-core: JSON parsing, the ``kind`` tag and the frame's schema.
        return adapter.validate_json(data)
    except ValidationError as exc:
        raise _explain(exc, kinds) from exc


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


def decode_agent_frame(data: str | bytes, limit: int = MAX_FRAME_BYTES) -> AgentFrame:
    """Parse one agent-channel frame or raise a :class:`~mspclaw.errors.ProtocolError`."""
    return _decode(data, _AGENT, AGENT_KINDS, limit)


def decode_session_frame(data: str | bytes, limit: int = MAX_FRAME_BYTES) -> SessionFrame:
    """Parse one session-channel frame or raise a :class:`~mspclaw.errors.ProtocolError`."""
    return _decode(data, _SESSION, SESSION_KINDS, limit)


def encode(frame: BaseModel) -> str:
    """Serialise a frame as compact JSON text."""
    return frame.model_dump_json()
