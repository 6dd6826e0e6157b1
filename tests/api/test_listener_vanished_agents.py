"""Agents that give up on their upgrade and vanish (as they do when they time out during a reconnect storm).

Real agent listener on uvloop (the product's loop, whose transports raise on a write after close), real
SQLite database, real TCP clients on loopback that send a valid, authenticated WebSocket upgrade request
and then close (FIN) or reset (RST) the connection without waiting for the answer: the listener ends
each of those connections quietly (nothing reaches the loop's exception handler) and the hub keeps none.
"""

from __future__ import annotations

import asyncio
import base64
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from mspclaw.api.server import start_agent_listener
from mspclaw.settings import Settings
from mspclaw.wiring import build

uvloop = pytest.importorskip("uvloop")


def test_upgrades_abandoned_by_their_agents_end_without_errors(tmp_path: Path) -> None:
    services = build(Settings(data_dir=tmp_path / "data", api_key="k" * 20))
    client = services.registry.add_client("Acme Dental")
    issued = services.registry.issue_code(client.id, role="device", ttl=timedelta(hours=1))
    enrolled = services.registry.enroll(issued.code, hostname="pc-1", os="linux", os_version="",
                                        agent_version="t", tools=["system_info"])
    errors: list[dict[str, Any]] = []

    async def scenario() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, context: errors.append(context))
        listener = await start_agent_listener(services, host="127.0.0.1", port=0)
        try:
            for abort in (False, True) * 5:
                request = (f"GET /ws/agent HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}"
                           f"\r\nSec-WebSocket-Version: 13\r\n"
                           f"Authorization: Bearer {enrolled.agent.id}.{enrolled.credential}\r\n\r\n")
                _reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
                writer.write(request.encode())
                if abort:
                    writer.transport.abort()
                else:
                    writer.close()
            for _ in range(100):
                await asyncio.sleep(0.02)
                if not listener.sockets:
                    break
            await asyncio.sleep(0.1)  # the pumps' done-callbacks have run
            assert not listener.sockets and services.hub.online_count() == 0
        finally:
            await listener.close()
            await services.activity.aclose()

    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(scenario())
        assert [str(context.get("exception") or context.get("message")) for context in errors] == []
    finally:
        services.close()
