"""The sans-I/O state machines, driven synchronously with an explicit clock."""

from __future__ import annotations

import json

from mspclaw.errors import VersionMismatch
from mspclaw.protocol.codec import decode_agent_frame, encode
from mspclaw.protocol.connection import (
    CLOSE_HEARTBEAT,
    CLOSE_POLICY,
    CLOSE_PROTOCOL_VERSION,
    MAX_VIOLATIONS,
    AgentConnection,
    CallCompleted,
    CallExpired,
    Closed,
    FrameReceived,
    HelloReceived,
    PendingCall,
    ProtocolViolation,
    ServerConnection,
    State,
    WelcomeReceived,
)
from mspclaw.protocol.frames import PROTOCOL_VERSION, Error, Hello, Ping, Pong, ToolCall, ToolResult, Welcome


def hello(version: int = PROTOCOL_VERSION) -> Hello:
    return Hello(protocol=version, agent_id="ag_1", client_id="cl_1", role="device", hostname="pc", os="linux",
                 tools=["disk_usage"])


def pair(now: float = 0.0) -> tuple[ServerConnection, AgentConnection]:
    """Both ends, handshake done, with frames carried across by hand."""
    server = ServerConnection(now=now, heartbeat_interval=10)
    agent = AgentConnection(now=now)
    agent.start(hello())
    events = []
    for text in agent.data_to_send():
        events += server.receive(text, now)
    assert [type(e) for e in events] == [HelloReceived]
    for text in server.data_to_send():
        assert [type(e) for e in agent.receive(text, now)] == [WelcomeReceived]
    return server, agent


def decoded(texts: list[str]) -> list[object]:
    return [decode_agent_frame(t) for t in texts]


def test_handshake_sets_heartbeat_from_welcome() -> None:
    server, agent = pair()
    assert server.state is State.OPEN and agent.state is State.OPEN
    assert agent.heartbeat_interval == 10
    assert server.hello is not None and server.hello.agent_id == "ag_1"


def test_frame_before_hello_is_refused_with_error_frame() -> None:
    server = ServerConnection(now=0)
    events = server.receive(encode(Ping(seq=1)), 0)
    assert events == []  # pings are always answered, even before hello
    events = server.receive(encode(ToolResult(call_id="x", ok=True)), 0)
    assert isinstance(events[0], ProtocolViolation)
    (err,) = decoded(server.data_to_send())[1:]
    assert isinstance(err, Error) and err.code == "unexpected_frame" and "hello" in err.message
    assert server.state is State.AWAITING_HELLO


def test_wrong_version_is_refused_clearly_and_closed() -> None:
    server = ServerConnection(now=0)
    events = server.receive(encode(hello(version=99)), 0)
    assert isinstance(events[-1], Closed) and events[-1].code == CLOSE_PROTOCOL_VERSION
    (err,) = decoded(server.data_to_send())
    assert isinstance(err, Error) and err.code == VersionMismatch.code
    assert "99" in err.message and str(PROTOCOL_VERSION) in err.message
    # the agent side understands the refusal and closes too
    agent = AgentConnection(now=0)
    agent.start(hello(version=99))
    events = agent.receive(encode(err), 0)
    assert any(isinstance(e, Closed) and e.code == CLOSE_PROTOCOL_VERSION for e in events)


def test_tool_call_is_correlated_with_its_result() -> None:
    server, agent = pair()
    call = ToolCall(call_id="c1", tool="disk_usage", deadline=100)
    server.call(call)
    (sent,) = server.data_to_send()
    (received,) = agent.receive(sent, 1)
    assert isinstance(received, FrameReceived) and received.frame == call
    agent.result(ToolResult(call_id="c1", ok=True, output={"x": 1}))
    (back,) = agent.data_to_send()
    (done,) = server.receive(back, 2)
    assert isinstance(done, CallCompleted) and done.call == PendingCall("c1", "disk_usage", 100.0)
    assert done.result.output == {"x": 1}
    assert server.pending == {}


def test_take_result_consumes_exactly_what_receive_would_complete() -> None:
    server, agent = pair()
    server.call(ToolCall(call_id="c1", tool="disk_usage", deadline=100))
    server.data_to_send()
    agent.result(ToolResult(call_id="c1", ok=True, output={"x": 1}))
    (back,) = agent.data_to_send()
    done = server.take_result(back, 7)
    assert isinstance(done, CallCompleted) and done.call == PendingCall("c1", "disk_usage", 100.0)
    assert done.result.output == {"x": 1}
    assert server.pending == {} and server.last_seen == 7
    assert server.data_to_send() == []
    assert server.take_result(back, 8) is None, "a result is taken once"


def test_take_result_leaves_everything_else_untouched_for_receive() -> None:
    fresh = ServerConnection(now=0)
    result = encode(ToolResult(call_id="c1", ok=True))
    assert fresh.take_result(result, 1) is None and fresh.state is State.AWAITING_HELLO  # before the handshake
    server, _ = pair()
    server.call(ToolCall(call_id="c1", tool="disk_usage", deadline=100))
    server.data_to_send()
    for other in (encode(Ping(seq=1)), "{not json", encode(ToolResult(call_id="nobody", ok=True)), "x" * (2 << 20)):
        assert server.take_result(other, 5) is None
        assert server.last_seen == 0 and server.violations == 0 and server.data_to_send() == []
        assert set(server.pending) == {"c1"}
    # what it left is handled by receive, violations answered as always
    assert [type(e) for e in server.receive(encode(ToolResult(call_id="nobody", ok=True)), 6)] == [ProtocolViolation]
    (err,) = decoded(server.data_to_send())
    assert isinstance(err, Error) and err.ref == "nobody"
    server.receive(encode(Ping(seq=1)), 6)
    assert decoded(server.data_to_send()) == [Pong(seq=1)]


def test_result_for_unknown_call_is_an_error_not_a_crash() -> None:
    server, _ = pair()
    events = server.receive(encode(ToolResult(call_id="nobody", ok=True)), 1)
    assert isinstance(events[0], ProtocolViolation)
    (err,) = decoded(server.data_to_send())
    assert isinstance(err, Error) and err.ref == "nobody"
    assert server.state is State.OPEN


def test_call_deadline_expires() -> None:
    server, _ = pair()
    server.call(ToolCall(call_id="c1", tool="disk_usage", deadline=5))
    assert server.tick(4) == []
    (expired,) = server.tick(5)
    assert isinstance(expired, CallExpired) and expired.call.call_id == "c1"
    assert server.pending == {}


def test_agent_pings_on_interval_and_server_answers() -> None:
    server, agent = pair()
    assert agent.tick(9) == [] and agent.data_to_send() == []
    agent.tick(10)
    (ping_text,) = agent.data_to_send()
    assert decode_agent_frame(ping_text) == Ping(seq=1)
    server.receive(ping_text, 10)
    (pong_text,) = server.data_to_send()
    assert decode_agent_frame(pong_text) == Pong(seq=1)


def test_silent_peer_is_closed_after_three_intervals() -> None:
    server, _ = pair()
    assert server.tick(29) == []
    (closed,) = server.tick(31)
    assert isinstance(closed, Closed) and closed.code == CLOSE_HEARTBEAT
    assert server.state is State.CLOSED


def test_bad_frames_get_error_frames_and_connection_stays_open() -> None:
    server, _ = pair()
    for bad in ["{oops", json.dumps({"kind": "nope"}), json.dumps({"kind": "tool_result"})]:
        events = server.receive(bad, 1)
        assert isinstance(events[0], ProtocolViolation)
    codes = [f.code for f in decoded(server.data_to_send()) if isinstance(f, Error)]
    assert codes == ["bad_frame", "unknown_kind", "bad_frame"]
    assert server.state is State.OPEN


def test_a_flood_of_bad_frames_closes_the_connection() -> None:
    server, _ = pair()
    events = []
    for _ in range(MAX_VIOLATIONS):
        events += server.receive("garbage", 1)
    assert isinstance(events[-1], Closed) and events[-1].code == CLOSE_POLICY


def test_agent_refuses_frames_a_server_may_not_send() -> None:
    _, agent = pair()
    events = agent.receive(encode(Welcome(heartbeat_interval=1, server_time=0)), 1)
    assert isinstance(events[0], ProtocolViolation)
