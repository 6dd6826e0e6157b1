"""The PSA client and the proxy environment variables.

The rules (``mspclaw.connectors.proxies``) are checked as a table; then over loopback: a CONNECT
proxy written here tunnels an ``https`` request to a TLS server with a certificate made for the
test (the proxy sees the CONNECT line and encrypted bytes only), ``NO_PROXY`` sends the same
request straight to the server, a proxy that refuses the tunnel is a PSA error, and a proxy
scheme we cannot speak is a configuration error naming the variable.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from tests.connectors.test_transport import keep_answering, raw_server, self_signed

from mspclaw.connectors.http import PSAHttp
from mspclaw.connectors.proxies import ProxySettings, RoutingTransport
from mspclaw.connectors.transport import StreamTransport, default_transport
from mspclaw.errors import ConfigError, PSAUnavailable

pytestmark = pytest.mark.anyio

PROXY = "http://proxy.example:3128"


@pytest.mark.parametrize(("env", "url", "expected"), [
    ({}, "https://psa.example/api", None),
    ({"HTTPS_PROXY": PROXY}, "https://psa.example/api", ("HTTPS_PROXY", PROXY)),
    ({"HTTPS_PROXY": PROXY}, "http://psa.example/api", None),  # http URLs use HTTP_PROXY
    ({"https_proxy": PROXY, "HTTPS_PROXY": "http://other:1"}, "https://psa.example/", ("https_proxy", PROXY)),
    ({"HTTP_PROXY": PROXY}, "http://psa.example/api", ("HTTP_PROXY", PROXY)),
    ({"ALL_PROXY": PROXY}, "https://psa.example/api", ("ALL_PROXY", PROXY)),
    ({"ALL_PROXY": "http://all:1", "HTTPS_PROXY": PROXY}, "https://psa.example/", ("HTTPS_PROXY", PROXY)),
    ({"HTTPS_PROXY": PROXY, "NO_PROXY": "*"}, "https://psa.example/", None),
    ({"HTTPS_PROXY": PROXY, "NO_PROXY": "example.com"}, "https://psa.example.com/", None),
    ({"HTTPS_PROXY": PROXY, "no_proxy": ".example.com"}, "https://example.com/", None),
    ({"HTTPS_PROXY": PROXY, "NO_PROXY": "example.com"}, "https://badexample.com/", ("HTTPS_PROXY", PROXY)),
    ({"HTTPS_PROXY": PROXY, "NO_PROXY": "other.net, PSA.Example."}, "https://psa.example/", None),
    ({"HTTPS_PROXY": PROXY, "NO_PROXY": "psa.example:8443"}, "https://psa.example:8443/", None),
    ({"HTTPS_PROXY": PROXY, "NO_PROXY": "psa.example:8443"}, "https://psa.example/", ("HTTPS_PROXY", PROXY)),
    ({"HTTPS_PROXY": PROXY, "NO_PROXY": "10.0.0.0/8"}, "https://10.20.30.40/", None),
    ({"HTTPS_PROXY": PROXY, "NO_PROXY": "10.0.0.0/8"}, "https://11.0.0.1/", ("HTTPS_PROXY", PROXY)),
    ({"HTTPS_PROXY": PROXY, "NO_PROXY": "127.0.0.1"}, "https://127.0.0.1:9/", None),
    ({"HTTPS_PROXY": PROXY, "NO_PROXY": "::1"}, "https://[::1]:9/", None),
    ({"HTTPS_PROXY": PROXY, "NO_PROXY": "localhost"}, "https://127.0.0.1/", ("HTTPS_PROXY", PROXY)),
    ({"HTTPS_PROXY": PROXY, "NO_PROXY": ""}, "https://localhost/", ("HTTPS_PROXY", PROXY)),
])
def test_which_proxy_carries_a_request(env: dict[str, str], url: str, expected: tuple[str, str] | None) -> None:
    assert ProxySettings.from_environ(env).proxy_for(httpx.URL(url)) == expected


def test_the_default_transport_is_direct_unless_a_proxy_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    assert type(default_transport()) is StreamTransport
    monkeypatch.setenv("HTTPS_PROXY", PROXY)
    assert isinstance(default_transport(), RoutingTransport)
    monkeypatch.setenv("NO_PROXY", "*")
    assert type(default_transport()) is StreamTransport


@dataclass
class ConnectProxy:
    """A CONNECT proxy on loopback: records each request line and the bytes it relayed to the server."""

    refuse: bool = False
    port: int = 0
    lines: list[bytes] = field(default_factory=list)
    relayed: bytearray = field(default_factory=bytearray)


@asynccontextmanager
async def connect_proxy(*, refuse: bool = False) -> AsyncIterator[ConnectProxy]:
    state = ConnectProxy(refuse=refuse)
    tasks: set[asyncio.Task[None]] = set()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, record: bool) -> None:
        try:
            while data := await reader.read(65536):
                if record:
                    state.relayed += data
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        line = head.split(b"\r\n", 1)[0]
        state.lines.append(line)
        method, target, _ = line.split(b" ", 2)
        if method != b"CONNECT" or state.refuse:
            writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\ncontent-length: 0\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        host, _, port = target.rpartition(b":")
        up_reader, up_writer = await asyncio.open_connection(host.decode(), int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))

    def track(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(serve(reader, writer))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    server = await asyncio.start_server(track, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)


@pytest.fixture
def proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


async def test_an_https_psa_behind_a_proxy_is_reached_through_a_connect_tunnel(
        proxy_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    server_tls, cert_file = self_signed(tmp_path)
    proxy_env.setenv("SSL_CERT_FILE", str(cert_file))
    async with raw_server(keep_answering, tls=server_tls) as psa, connect_proxy() as proxy:
        proxy_env.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
        async with PSAHttp(service="Test PSA", base_url=f"https://localhost:{psa.port}",
                           headers={"Authorization": "Bearer psa-token-123"}) as http:
            for _ in range(2):
                r = await http.request("GET", "/api/tickets/7")
                assert r.json() == {"ok": True}
        assert proxy.lines == [f"CONNECT localhost:{psa.port} HTTP/1.1".encode()]  # one tunnel, kept alive
        assert psa.connections == 1 and len(psa.requests) == 2
        assert psa.requests[0].startswith(b"GET /api/tickets/7 HTTP/1.1\r\n")
        assert b"psa-token-123" in psa.requests[0]
        assert proxy.relayed and b"psa-token-123" not in proxy.relayed and b"GET /api" not in proxy.relayed


async def test_no_proxy_sends_the_request_straight_to_the_psa(proxy_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    server_tls, cert_file = self_signed(tmp_path)
    proxy_env.setenv("SSL_CERT_FILE", str(cert_file))
    async with raw_server(keep_answering, tls=server_tls) as psa, connect_proxy() as proxy:
        proxy_env.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
        proxy_env.setenv("NO_PROXY", "other.example,localhost")
        async with PSAHttp(service="Test PSA", base_url=f"https://localhost:{psa.port}") as http:
            assert (await http.request("GET", "/tickets/7")).json() == {"ok": True}
        assert proxy.lines == [] and psa.connections == 1


async def test_a_proxy_that_refuses_the_tunnel_is_psa_unavailable(proxy_env: pytest.MonkeyPatch) -> None:
    async with connect_proxy(refuse=True) as proxy:
        proxy_env.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
        sleeps: list[float] = []

        async def no_wait(seconds: float) -> None:
            sleeps.append(seconds)

        async with PSAHttp(service="Test PSA", base_url="https://psa.invalid", max_retries=1, sleep=no_wait) as http:
            with pytest.raises(PSAUnavailable, match=r"Test PSA connection failed during GET /tickets/7"):
                await http.request("GET", "/tickets/7")
        assert proxy.lines[0] == b"CONNECT psa.invalid:443 HTTP/1.1"


async def test_a_proxy_scheme_we_cannot_speak_is_a_configuration_error(proxy_env: pytest.MonkeyPatch) -> None:
    proxy_env.setenv("ALL_PROXY", "socks5://127.0.0.1:1080")
    async with PSAHttp(service="Test PSA", base_url="https://psa.invalid") as http:
        with pytest.raises(ConfigError, match=r"ALL_PROXY names a socks5:// proxy"):
            await http.request("GET", "/tickets/7")
