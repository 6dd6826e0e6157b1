"""Wire protocol between agents, the server and session watchers. No I/O in this package."""

from mspclaw.protocol.codec import decode_agent_frame, decode_session_frame, encode
from mspclaw.protocol.frames import MAX_FRAME_BYTES, PROTOCOL_VERSION

__all__ = ["MAX_FRAME_BYTES", "PROTOCOL_VERSION", "decode_agent_frame", "decode_session_frame", "encode"]
