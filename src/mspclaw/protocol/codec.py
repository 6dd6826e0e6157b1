"""Decode and encode frames: size limit first, then JSON, then the ``kind``, then the schema.

Decoding happens here and nowhere else; each failure raises the matching
:class:`~mspclaw.errors.ProtocolError` with a message that says what to fix.
"""

from __future__ import annotations

import json
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
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedFrame(f"frame is not valid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise MalformedFrame("frame must be a JSON object with a 'kind' field")
    kind = obj.get("kind")
    if kind not in kinds:
        raise UnknownKind(f"unknown frame kind {kind!r}; expected one of: {', '.join(sorted(kinds))}")
    try:
        return adapter.validate_python(obj)
    except ValidationError as exc:
        raise MalformedFrame(f"invalid {kind} frame: {_describe(exc)}") from exc


def decode_agent_frame(data: str | bytes, limit: int = MAX_FRAME_BYTES) -> AgentFrame:
    """Parse one agent-channel frame or raise a :class:`~mspclaw.errors.ProtocolError`."""
    return _decode(data, _AGENT, AGENT_KINDS, limit)


def decode_session_frame(data: str | bytes, limit: int = MAX_FRAME_BYTES) -> SessionFrame:
    """Parse one session-channel frame or raise a :class:`~mspclaw.errors.ProtocolError`."""
    return _decode(data, _SESSION, SESSION_KINDS, limit)


def encode(frame: BaseModel) -> str:
    """Serialise a frame as compact JSON text."""
    return frame.model_dump_json()
