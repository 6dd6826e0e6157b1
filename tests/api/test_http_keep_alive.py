"""An idle keep-alive connection outlives the clients' own idle limit.

httpx (the CLI's and most Python clients' library) keeps an idle connection 5 s and then reuses it;
uvicorn's default also closed idle connections after 5 s, so a request sent at that instant met a
closing socket and the client saw a reset (a CI run failed this way in ``tests/cli``). The real
server on loopback is asked twice on one connection, the second time after httpx's idle limit.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from tests.conftest import live_server

from mspclaw.api.server import HTTP_KEEP_ALIVE_S

HTTPX_IDLE_S = httpx.Limits().keepalive_expiry or 5.0  # its default, None only when set so


def test_the_server_keeps_idle_connections_longer_than_clients_do() -> None:
    assert HTTPX_IDLE_S + 5 < HTTP_KEEP_ALIVE_S  # and than a proxy's 60 s
    assert HTTP_KEEP_ALIVE_S > 60


async def _ask(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n")
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    await asyncio.wait_for(reader.readexactly(length), 10)
    return head.split(b"\r\n", 1)[0]


@pytest.mark.anyio
async def test_a_connection_idle_past_httpx_expiry_still_answers(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live:
        port = int(live.url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            assert await _ask(reader, writer) == b"HTTP/1.1 200 OK"
            await asyncio.sleep(HTTPX_IDLE_S + 0.5)
            assert await _ask(reader, writer) == b"HTTP/1.1 200 OK"  # uvicorn's 5 s default had closed it
        finally:
            writer.close()
            await writer.wait_closed()
