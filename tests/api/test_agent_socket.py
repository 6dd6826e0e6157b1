"""Bad input on the agent channel, client isolation and replay, over real WebSockets on loopback.

The peer here is a scripted agent built on the protocol's own sans-I/O ``AgentConnection``:
it speaks the real wire format, and lets a test send exactly the bad frame it wants.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import Live, live_server
from websockets.asyncio.client import ClientConnection, connect

from mspclaw.errors import AgentOffline, ToolRefused, ToolTimeout, UnknownTool
from mspclaw.protocol.codec import decode_agent_frame, encode
from mspclaw.protocol.frames import (
    MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
    Error,
    ErrorInfo,
    Hello,
    ToolCall,
    ToolResult,
    Welcome,
)
from mspclaw.protocol.signing import verify_call

pytestmark = pytest.mark.anyio


def enroll(live: Live, client_id: str, host: str, role: str = "device") -> tuple[str, str, bytes]:
    issued = live.services.registry.issue_code(client_id, role=role, ttl=timedelta(hours=1))
    enrolled = live.services.registry.enroll(issued.code, hostname=host, os="linux", os_version="",
                                             agent_version="t", tools=["system_info"])
    return enrolled.agent.id, enrolled.credential, bytes.fromhex(enrolled.agent.signing_key)


class Peer:
    """A scripted agent: hello, then answers calls with ``answer(call)``."""

    def __init__(self, live: Live, client_id: str, host: str, version: int = PROTOCOL_VERSION,
                 role: str = "device", tools: tuple[str, ...] = ("system_info",)) -> None:
        self.agent_id, self.credential, self.key = enroll(live, client_id, host, role)
        self.role, self.tools = role, list(tools)
        self.client_id, self.host, self.live, self.version = client_id, host, live, version
        self.calls: list[ToolCall] = []
        self.errors: list[Error] = []

    async def open(self) -> ClientConnection:
        ws = await connect(self.live.agent_url, compression=None,
                           additional_headers={"Authorization": f"Bearer {self.agent_id}.{self.credential}"})
        await ws.send(encode(Hello(protocol=self.version, agent_id=self.agent_id, client_id=self.client_id,
                                   role=self.role, hostname=self.host, os="linux",
                                   tools=self.tools)))
        return ws

    async def serve(self, ws: ClientConnection, answer: Any = None) -> None:
        async for text in ws:
            frame = decode_agent_frame(text)
            if isinstance(frame, ToolCall):
                assert verify_call(self.key, frame)
                self.calls.append(frame)
                result = answer(frame) if answer else ToolResult(call_id=frame.call_id, ok=True, output={"h": 1})
                if result is not None:
                    await ws.send(encode(result))
            elif isinstance(frame, Error):
                self.errors.append(frame)


async def online(live: Live, agent_id: str) -> None:
    for _ in range(100):
        if live.services.hub.is_online(agent_id):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("peer never came online")


async def test_each_bad_frame_gets_an_error_frame_is_audited_and_harms_nobody(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live:
        client = await live.client()
        good, bad = Peer(live, client, "good-pc"), Peer(live, client, "bad-pc")
        good_ws = await good.open()
        serving = asyncio.create_task(good.serve(good_ws))
        await online(live, good.agent_id)
        bad_ws = await bad.open()
        assert isinstance(decode_agent_frame(await bad_ws.recv()), Welcome)
        sends = ["{not json", json.dumps({"kind": "launch"}), json.dumps({"kind": "tool_result"}),
                 json.dumps({"kind": "tool_result", "call_id": "x", "ok": True, "output": "y" * MAX_FRAME_BYTES}),
                 encode(ToolResult(call_id="never-sent", ok=True))]
        codes = []
        for text in sends:
            await bad_ws.send(text)
            frame = decode_agent_frame(await bad_ws.recv())
            assert isinstance(frame, Error) and frame.message
            codes.append(frame.code)
        assert codes == ["bad_frame", "unknown_kind", "bad_frame", "frame_too_large", "unexpected_frame"]
        # the good agent still works, and so does the bad one's connection
        result = await live.services.hub.for_client(client).call_tool(good.agent_id, "system_info", {}, timeout=5)
        assert result.ok and result.output == {"h": 1}
        assert live.services.hub.is_online(bad.agent_id)
        await live.services.activity.drain()  # audited off the agent's reading loop
        audited = [e.data["error_code"] for e in live.services.audit.query(kind="protocol_error")]
        assert audited == codes
        await bad_ws.close()
        await good_ws.close()
        serving.cancel()


async def test_wrong_protocol_version_is_refused_clearly(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live:
        client = await live.client()
        peer = Peer(live, client, "old-pc", version=PROTOCOL_VERSION + 1)
        ws = await peer.open()
        frame = decode_agent_frame(await ws.recv())
        assert isinstance(frame, Error) and frame.code == "version_mismatch" and "upgrade" in frame.message
        await ws.wait_closed()
        assert ws.close_code == 4400
        assert not live.services.hub.is_online(peer.agent_id)


async def test_hello_claiming_another_identity_is_refused(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live:
        a, b = await live.client("A"), await live.client("B")
        peer = Peer(live, a, "pc")
        peer.client_id = b  # lie about the client in hello
        ws = await peer.open()
        await ws.wait_closed()
        assert ws.close_code == 4401 and not live.services.hub.is_online(peer.agent_id)


async def test_an_agent_of_another_client_cannot_be_called(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live:
        a, b = await live.client("A"), await live.client("B")
        peer = Peer(live, b, "b-pc")
        ws = await peer.open()
        serving = asyncio.create_task(peer.serve(ws))
        await online(live, peer.agent_id)
        with pytest.raises(AgentOffline):
            await live.services.hub.for_client(a).call_tool(peer.agent_id, "system_info", {}, timeout=2)
        assert peer.calls == []
        assert [link.identity.agent_id for link in live.services.hub.for_client(a).online()] == []
        ok = await live.services.hub.for_client(b).call_tool(peer.agent_id, "system_info", {}, timeout=2)
        assert ok.ok
        serving.cancel()
        await ws.close()


async def test_timeout_refusal_and_unknown_tool_are_typed(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live:
        client = await live.client()
        peer = Peer(live, client, "pc")
        ws = await peer.open()

        def answer(call: ToolCall) -> ToolResult | None:
            if call.args.get("mode") == "silent":
                return None
            return ToolResult(call_id=call.call_id, ok=False,
                              error=ErrorInfo(code="approval_required", message="needs approval"))

        serving = asyncio.create_task(peer.serve(ws, answer))
        await online(live, peer.agent_id)
        dispatcher = live.services.hub.for_client(client)
        started = time.monotonic()
        with pytest.raises(ToolTimeout):
            await dispatcher.call_tool(peer.agent_id, "system_info", {"mode": "silent"}, timeout=0.5)
        assert time.monotonic() - started < 2
        with pytest.raises(ToolRefused) as info:
            await dispatcher.call_tool(peer.agent_id, "system_info", {}, timeout=2)
        assert info.value.refusal_code == "approval_required"
        with pytest.raises(UnknownTool, match="does not offer"):
            await dispatcher.call_tool(peer.agent_id, "clear_temp_files", {}, timeout=2)
        serving.cancel()
        await ws.close()


async def test_a_call_cut_by_a_reconnect_is_resent_with_the_same_call_id(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live:
        client = await live.client()
        peer = Peer(live, client, "flaky-pc")
        first = await peer.open()
        await online(live, peer.agent_id)

        async def drop_on_first_call() -> None:
            async for text in first:
                if '"tool_call"' in str(text):
                    frame = decode_agent_frame(text)
                    assert isinstance(frame, ToolCall)
                    peer.calls.append(frame)
                    await first.close()
                    return

        dropper = asyncio.create_task(drop_on_first_call())
        call = asyncio.create_task(live.services.hub.for_client(client).call_tool(
            peer.agent_id, "system_info", {}, timeout=5, reconnect_grace=5))
        await dropper
        second = await peer.open()
        serving = asyncio.create_task(peer.serve(second))
        result = await call
        assert result.ok
        assert len(peer.calls) == 2 and peer.calls[0].call_id == peer.calls[1].call_id
        serving.cancel()
        await second.close()


async def test_a_tool_the_device_lacks_goes_to_the_clients_site_agent(tmp_path: Path) -> None:
    from mspclaw.playbooks.loader import load_dir

    book = next(b for b in load_dir() if b.id == "slow_computer")
    async with live_server(tmp_path) as live:
        live.services.tickets.playbooks = [book]
        client = await live.client()
        device = Peer(live, client, "pc", tools=("system_info", "top_processes"))
        site = Peer(live, client, "site-server", role="site", tools=("disk_usage",))
        other = await live.client("Other")
        foreign_site = Peer(live, other, "their-server", role="site", tools=("disk_usage",))

        def answer(call: ToolCall) -> ToolResult:
            outputs: dict[str, Any] = {
                "system_info": {"memory": {"total_bytes": 100, "available_bytes": 50},
                                "load_average": {"1m": 0.1}, "cpu": {"count": 2}, "cpu_overloaded": False},
                "top_processes": {"processes": []},
                "disk_usage": {"filesystems": [{"mount_point": "/", "percent_used": 40}]},
            }
            return ToolResult(call_id=call.call_id, ok=True, output=outputs[call.tool])

        sockets = [await p.open() for p in (device, site, foreign_site)]
        tasks = [asyncio.create_task(p.serve(ws, answer)) for p, ws in zip((device, site, foreign_site), sockets,
                                                                           strict=True)]
        for p in (device, site, foreign_site):
            await online(live, p.agent_id)
        created = (await live.http.post("/api/tickets", json={"client": client, "subject": "pc very slow"})).json()
        ticket = await live.wait_ticket(created["ticket_id"])
        assert ticket["status"] == "resolved", ticket["reason"]
        assert [c.tool for c in device.calls] == ["system_info", "top_processes", "top_processes"]
        assert [c.tool for c in site.calls] == ["disk_usage"] and foreign_site.calls == []
        for task in tasks:
            task.cancel()
        for ws in sockets:
            await ws.close()


async def test_a_silent_agent_and_a_socket_that_never_says_hello_are_closed(tmp_path: Path) -> None:
    """Heartbeat supervision, through the real ticker of a live server with a 0.2 s interval: an agent
    that goes quiet after its hello is closed with 4408 once three intervals pass, and a socket that
    authenticates but never says hello is closed with 4401; other agents stay connected."""
    async with live_server(tmp_path, heartbeat_interval_s=0.2) as live:
        client = await live.client("A")
        quiet, mute, chatty = (Peer(live, client, host) for host in ("quiet", "mute", "chatty"))
        quiet_ws = await quiet.open()
        assert isinstance(decode_agent_frame(await quiet_ws.recv()), Welcome)
        mute_ws = await connect(live.agent_url, compression=None,
                                additional_headers={"Authorization": f"Bearer {mute.agent_id}.{mute.credential}"})
        chatty_ws = await chatty.open()
        assert isinstance(decode_agent_frame(await chatty_ws.recv()), Welcome)
        started = time.monotonic()

        async def keep_talking() -> None:
            seq = 0
            while True:
                seq += 1
                await chatty_ws.send(json.dumps({"kind": "ping", "seq": seq}))
                await asyncio.sleep(0.05)

        talker = asyncio.create_task(keep_talking())
        try:
            await asyncio.wait_for(quiet_ws.wait_closed(), 5)
            await asyncio.wait_for(mute_ws.wait_closed(), 5)
            assert quiet_ws.close_code == 4408 and mute_ws.close_code == 4401
            assert time.monotonic() - started >= 0.5  # not before three silent intervals
            assert not live.services.hub.is_online(quiet.agent_id)
            assert live.services.hub.is_online(chatty.agent_id)
        finally:
            talker.cancel()
            await chatty_ws.close()
