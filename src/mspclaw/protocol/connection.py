"""Sans-I/O state machines for the two ends of the agent channel.

Nothing here touches a socket or an event loop. A pump feeds received text to
:meth:`Connection.receive`, calls :meth:`Connection.tick` on a timer, sends whatever
:meth:`Connection.data_to_send` returns and reacts to the returned events. Time is always
passed in, so the whole protocol (handshake, heartbeats, call correlation and deadlines,
error frames) is tested synchronously.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import NamedTuple

from mspclaw.errors import ProtocolError, UnexpectedFrame, VersionMismatch
from mspclaw.protocol.codec import decode_agent_frame, encode
from mspclaw.protocol.frames import (
    MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
    AgentFrame,
    Error,
    Hello,
    Ping,
    Pong,
    ToolCall,
    ToolResult,
    Welcome,
)

CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008
CLOSE_PROTOCOL_VERSION = 4400
CLOSE_UNAUTHORIZED = 4401
CLOSE_HEARTBEAT = 4408
CLOSE_REPLACED = 4409

SILENCE_FACTOR = 3.0
"""A peer that sends nothing for this many heartbeat intervals is taken for dead."""

MAX_VIOLATIONS = 50
"""Protocol errors tolerated on one connection before it is closed."""


class State(enum.Enum):
    AWAITING_HELLO = "awaiting_hello"
    AWAITING_WELCOME = "awaiting_welcome"
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True)
class HelloReceived:
    hello: Hello


@dataclass(frozen=True)
class WelcomeReceived:
    welcome: Welcome


# The four per-call records are named tuples: built in C, where a frozen dataclass runs a Python
# ``__init__`` with ``object.__setattr__`` per field, on the path every tool call takes.


class FrameReceived(NamedTuple):
    """A frame the application handles itself (``tool_call`` on the agent, ``user_answer``...)."""

    frame: AgentFrame


class PendingCall(NamedTuple):
    """What the server remembers of a call it sent, until its result or its deadline."""

    call_id: str
    tool: str
    deadline: float


class CallCompleted(NamedTuple):
    call: PendingCall
    result: ToolResult


class CallExpired(NamedTuple):
    call: PendingCall


@dataclass(frozen=True)
class ProtocolViolation:
    """The peer sent something wrong; an ``error`` frame is already queued for it."""

    error: ProtocolError


@dataclass(frozen=True)
class PeerError:
    error: Error


@dataclass(frozen=True)
class Closed:
    code: int
    reason: str


ConnectionEvent = (
    HelloReceived
    | WelcomeReceived
    | FrameReceived
    | CallCompleted
    | CallExpired
    | ProtocolViolation
    | PeerError
    | Closed
)


@dataclass
class Connection:
    """State shared by both ends: outgoing buffer, liveness, violations, closing."""

    now: float
    heartbeat_interval: float = 30.0
    limit: int = MAX_FRAME_BYTES
    state: State = State.AWAITING_HELLO
    last_seen: float = 0.0
    violations: int = 0
    close_code: int | None = None
    _outgoing: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.last_seen = self.now

    # -- output ---------------------------------------------------------------------------------
    def send(self, frame: AgentFrame) -> None:
        if self.state is not State.CLOSED:
            self._outgoing.append(encode(frame))

    def data_to_send(self) -> list[str]:
        out, self._outgoing = self._outgoing, []
        return out

    def close(self, code: int, reason: str) -> Closed:
        self.state = State.CLOSED
        self.close_code = code
        return Closed(code, reason)

    # -- input ----------------------------------------------------------------------------------
    def receive(self, data: str | bytes, now: float) -> list[ConnectionEvent]:
        """Feed one received text frame; returns what the application must act on."""
        if self.state is State.CLOSED:
            return []
        self.last_seen = now
        try:
            frame = decode_agent_frame(data, self.limit)
        except ProtocolError as exc:
            return self._violation(exc)
        kind = type(frame)
        if kind is ToolResult or kind is ToolCall:  # the hot path: one each way per tool call
            try:
                return self._handle(frame, now)
            except ProtocolError as exc:
                return self._violation(exc, ref=_ref(frame))
        match frame:
            case Ping(seq=seq):
                self.send(Pong(seq=seq))
                return []
            case Pong():
                return []
            case Error():
                return self._peer_error(frame)
            case _:
                try:
                    return self._handle(frame, now)
                except ProtocolError as exc:
                    return self._violation(exc, ref=_ref(frame))

    def _peer_error(self, frame: Error) -> list[ConnectionEvent]:
        return [PeerError(frame)]

    def _violation(self, exc: ProtocolError, ref: str | None = None) -> list[ConnectionEvent]:
        self.violations += 1
        self.send(Error(code=exc.code, message=exc.message, ref=ref))
        events: list[ConnectionEvent] = [ProtocolViolation(exc)]
        if self.violations >= MAX_VIOLATIONS:
            events.append(self.close(CLOSE_POLICY, f"{self.violations} protocol errors"))
        return events

    def _handle(self, frame: AgentFrame, now: float) -> list[ConnectionEvent]:
        raise NotImplementedError

    def tick(self, now: float) -> list[ConnectionEvent]:
        """Advance time: heartbeats, silence detection, call deadlines."""
        if self.state is State.CLOSED:
            return []
        if now - self.last_seen > SILENCE_FACTOR * self.heartbeat_interval:
            silent = now - self.last_seen
            return [self.close(CLOSE_HEARTBEAT, f"no frame from peer for {silent:.0f} s")]
        return []


def _ref(frame: AgentFrame) -> str | None:
    return getattr(frame, "call_id", None) or getattr(frame, "question_id", None)


@dataclass
class ServerConnection(Connection):
    """The server's end: waits for ``hello``, answers ``welcome``, correlates tool calls."""

    hello: Hello | None = None
    pending: dict[str, PendingCall] = field(default_factory=dict)

    def _handle(self, frame: AgentFrame, now: float) -> list[ConnectionEvent]:
        if type(frame) is ToolResult and self.state is State.OPEN:  # the hot path: one per tool call
            call = self.pending.pop(frame.call_id, None)
            if call is None:
                raise UnexpectedFrame(f"tool_result for unknown or expired call {frame.call_id!r}")
            return [CallCompleted(call, frame)]
        if self.state is State.AWAITING_HELLO:
            if not isinstance(frame, Hello):
                raise UnexpectedFrame(f"expected 'hello' as the first frame, got {frame.kind!r}")
            if frame.protocol != PROTOCOL_VERSION:
                exc = VersionMismatch(
                    f"agent speaks protocol {frame.protocol}, this server speaks {PROTOCOL_VERSION}; "
                    "upgrade the agent or the server so both match"
                )
                self.send(Error(code=exc.code, message=exc.message))
                return [ProtocolViolation(exc), self.close(CLOSE_PROTOCOL_VERSION, exc.message)]
            self.hello = frame
            self.state = State.OPEN
            self.send(Welcome(heartbeat_interval=self.heartbeat_interval, server_time=now))
            return [HelloReceived(frame)]
        match frame:
            case Hello():
                raise UnexpectedFrame("'hello' was already received on this connection")
            case Welcome() | ToolCall() | Error():
                raise UnexpectedFrame(f"an agent may not send {frame.kind!r}")
            case _:
                return [FrameReceived(frame)]

    def take_result(self, data: str | bytes, now: float) -> CallCompleted | None:
        """The tool-call fast path: consume ``data`` if it is the result of a pending call, else change nothing.

        What :meth:`receive` does for such a frame, for a pump that resolves the caller right where the
        frame arrives (the socket's read callback) instead of waking its own task for it. Anything else
        (another kind, a bad frame, a result for no pending call, a connection not open) returns
        ``None`` with the connection untouched: pass the same ``data`` to :meth:`receive`, which handles
        it and answers the violations.
        """
        if self.state is not State.OPEN:
            return None
        try:
            frame = decode_agent_frame(data, self.limit)
        except ProtocolError:
            return None
        if type(frame) is not ToolResult:
            return None
        call = self.pending.pop(frame.call_id, None)
        if call is None:
            return None
        self.last_seen = now
        return CallCompleted(call, frame)

    def call(self, call: ToolCall) -> None:
        """Queue a tool call and remember it until its result or deadline."""
        self.call_encoded(PendingCall(call.call_id, call.tool, call.deadline), encode(call))

    def call_encoded(self, call: PendingCall, text: str) -> None:
        """:meth:`call` for a frame already encoded (by :func:`~mspclaw.protocol.signing.encode_call`)."""
        if self.state is not State.OPEN:
            raise UnexpectedFrame("cannot send a tool call before the handshake")
        self.pending[call.call_id] = call
        self._outgoing.append(text)

    def cancel(self, call_id: str) -> None:
        self.pending.pop(call_id, None)

    def tick(self, now: float) -> list[ConnectionEvent]:
        events = super().tick(now)
        expired = [c for c in self.pending.values() if c.deadline <= now]
        for call in expired:
            del self.pending[call.call_id]
        events.extend(CallExpired(c) for c in expired)
        return events


@dataclass
class AgentConnection(Connection):
    """The agent's end: sends ``hello``, pings on the server's interval, receives calls."""

    next_ping: float = 0.0
    ping_seq: int = 0

    def start(self, hello: Hello) -> None:
        self.state = State.AWAITING_WELCOME
        self.send(hello)

    def _handle(self, frame: AgentFrame, now: float) -> list[ConnectionEvent]:
        if type(frame) is ToolCall and self.state is State.OPEN:  # the hot path: one per tool call
            return [FrameReceived(frame)]
        if self.state is State.AWAITING_WELCOME:
            if not isinstance(frame, Welcome):
                raise UnexpectedFrame(f"expected 'welcome', got {frame.kind!r}")
            self.state = State.OPEN
            self.heartbeat_interval = frame.heartbeat_interval
            self.next_ping = now + frame.heartbeat_interval
            return [WelcomeReceived(frame)]
        match frame:
            case Hello() | Welcome() | ToolResult() | Error():
                raise UnexpectedFrame(f"a server may not send {frame.kind!r} now")
            case _:
                return [FrameReceived(frame)]

    def _peer_error(self, frame: Error) -> list[ConnectionEvent]:
        events: list[ConnectionEvent] = [PeerError(frame)]
        if frame.code == VersionMismatch.code and self.state is State.AWAITING_WELCOME:
            events.append(self.close(CLOSE_PROTOCOL_VERSION, frame.message))
        return events

    def result(self, result: ToolResult) -> None:
        self.send(result)

    def tick(self, now: float) -> list[ConnectionEvent]:
        events = super().tick(now)
        if self.state is State.OPEN and now >= self.next_ping:
            self.ping_seq += 1
            self.send(Ping(seq=self.ping_seq))
            self.next_ping = now + self.heartbeat_interval
        return events
