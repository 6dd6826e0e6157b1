"""StreamTransport against real HTTP servers on loopback.

Two kinds of server: a real uvicorn (what the local PSA runs on, and what most of our connector
tests use), and a raw asyncio TCP server whose answers each test writes byte for byte, to show
the framing rules (chunked, close-delimited, interim 1xx, a server closing an idle connection,
broken answers, timeouts) and TLS with a certificate made for the test.
"""

from __future__ import annotations

import asyncio
import datetime
import gzip
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tests.conftest import free_port, listening_socket

from mspclaw.connectors.http import PSAHttp
from mspclaw.connectors.transport import StreamTransport, proxy_configured
from mspclaw.errors import PSAUnavailable

pytestmark = pytest.mark.anyio

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "RawServer"], Awaitable[None]]


class RawServer:
    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[bytes] = []
        self.port = 0

    async def read_request(self, reader: asyncio.StreamReader) -> bytes | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        body = await reader.readexactly(length)
        self.requests.append(head + body)
        return head + body


@asynccontextmanager
async def raw_server(handler: Handler, *, tls: ssl.SSLContext | None = None) -> AsyncIterator[RawServer]:
    state = RawServer()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        try:
            await handler(reader, writer, state)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=tls)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()


def answer(body: bytes = b'{"ok": true}', *, status: bytes = b"200 OK", extra: bytes = b"") -> bytes:
    return (b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body)


async def keep_answering(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: RawServer) -> None:
    while await state.read_request(reader) is not None:
        writer.write(answer())
        await writer.drain()


async def test_keep_alive_reuses_one_connection_and_sends_what_httpx_built() -> None:
    async with raw_server(keep_answering) as server, httpx.AsyncClient(
            transport=StreamTransport(), base_url=f"http://127.0.0.1:{server.port}") as client:
        for i in range(5):
            r = await client.post("/api/v1/tickets/7/notes", json={"text": f"note {i}"}, params={"x": "1 2"},
                                  headers={"Authorization": "Bearer t"})
            assert r.status_code == 200 and r.json() == {"ok": True} and r.reason_phrase == "OK"
        assert server.connections == 1
        first = server.requests[0]
        assert first.startswith(b"POST /api/v1/tickets/7/notes?x=1+2 HTTP/1.1\r\n")
        assert b"\r\nauthorization: Bearer t\r\n" in first.lower().replace(b"bearer", b"Bearer")
        assert first.endswith(b'{"text":"note 0"}')


async def test_against_real_uvicorn_with_gzip_and_chunked_answers() -> None:
    async def app(scope: dict[str, object], receive: Callable[[], Awaitable[dict[str, object]]],
                  send: Callable[[dict[str, object]], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")  # type: ignore[operator]
            if not message.get("more_body"):
                break
        if scope["path"] == "/gzip":
            data = gzip.compress(b'{"zipped": "' + b"x" * 1000 + b'"}')
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-encoding", b"gzip"), (b"content-length", str(len(data)).encode())]})
            await send({"type": "http.response.body", "body": data})
            return
        # no content-length and two body messages: uvicorn answers chunked
        await send({"type": "http.response.start", "status": 201, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"echo:", "more_body": True})
        await send({"type": "http.response.body", "body": body})

    sock = listening_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient(transport=StreamTransport(), base_url=f"http://127.0.0.1:{port}") as client:
            r = await client.post("/chunked", content=b"abc")
            assert (r.status_code, r.text, r.headers["transfer-encoding"]) == (201, "echo:abc", "chunked")
            r = await client.get("/gzip")
            assert r.json() == {"zipped": "x" * 1000}
            r = await client.post("/chunked", content=b"again")  # the same connection, still framed right
            assert r.text == "echo:again"
    finally:
        server.should_exit = True
        await task


async def test_a_close_delimited_answer_and_connection_close_are_not_reused() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: RawServer) -> None:
        await state.read_request(reader)
        if state.connections == 1:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end")
        else:
            writer.write(answer(extra=b"connection: close\r\n"))
        await writer.drain()

    async with raw_server(handler) as server, httpx.AsyncClient(
            transport=StreamTransport(), base_url=f"http://127.0.0.1:{server.port}") as client:
        assert (await client.get("/")).text == "until the end"
        assert (await client.get("/")).json() == {"ok": True}
        assert (await client.get("/")).json() == {"ok": True}
        assert server.connections == 3


async def test_interim_answers_are_skipped_and_head_and_204_have_no_body() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: RawServer) -> None:
        while (request := await state.read_request(reader)) is not None:
            if request.startswith(b"HEAD"):
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 999\r\n\r\n")
            elif b"/empty" in request.split(b"\r\n")[0]:
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            else:
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" + answer())
            await writer.drain()

    async with raw_server(handler) as server, httpx.AsyncClient(
            transport=StreamTransport(), base_url=f"http://127.0.0.1:{server.port}") as client:
        assert (await client.post("/x", json={})).json() == {"ok": True}
        head = await client.head("/x")
        assert head.status_code == 200 and head.content == b""
        assert (await client.delete("/empty")).status_code == 204
        assert (await client.get("/x")).json() == {"ok": True}
        assert server.connections == 1


async def test_an_idle_connection_the_server_closed_is_replaced_for_idempotent_requests_only() -> None:
    async def one_answer_per_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                                        state: RawServer) -> None:
        await state.read_request(reader)
        writer.write(answer())  # says keep-alive (HTTP/1.1 default), then closes once read again
        await writer.drain()
        await reader.read(1)  # the next request's first byte: close without answering

    async with raw_server(one_answer_per_connection) as server:
        transport = StreamTransport()
        async with httpx.AsyncClient(transport=transport, base_url=f"http://127.0.0.1:{server.port}") as client:
            await client.get("/a")
            assert (await client.get("/b")).json() == {"ok": True}  # sent again on a new connection
            assert server.connections == 2
            with pytest.raises(httpx.RemoteProtocolError, match="closed the connection without answering"):
                await client.post("/c", json={})  # a POST is never sent twice by the transport
            assert server.connections == 2


async def test_broken_answers_are_protocol_errors_and_the_connection_is_dropped() -> None:
    answers = iter([b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort",
                    b"SMTP ready\r\n\r\n",
                    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
                    b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
                    b"HTTP/1.1 200 OK\r\ncontent-length: 5, 6\r\n\r\nhello!"])

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: RawServer) -> None:
        await state.read_request(reader)
        writer.write(next(answers))
        await writer.drain()

    async with raw_server(handler) as server, httpx.AsyncClient(
            transport=StreamTransport(), base_url=f"http://127.0.0.1:{server.port}") as client:
        for match in ("in the middle of the answer", "framing: Expected HTTP/", "framing: Invalid character in chunk",
                      "framing: Invalid header", "framing: Invalid character in Content-Length"):
            with pytest.raises(httpx.RemoteProtocolError, match=match):
                await client.get("/")
        assert server.connections == 5


async def test_timeouts_refusals_and_what_psahttp_makes_of_them() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: RawServer) -> None:
        await state.read_request(reader)
        await asyncio.sleep(5)

    async with raw_server(silent) as server:
        async with httpx.AsyncClient(transport=StreamTransport(), base_url=f"http://127.0.0.1:{server.port}",
                                     timeout=httpx.Timeout(0.2)) as client:
            with pytest.raises(httpx.ReadTimeout):
                await client.get("/")
        sleeps: list[float] = []

        async def no_wait(seconds: float) -> None:
            sleeps.append(seconds)

        async with PSAHttp(service="Test PSA", base_url=f"http://127.0.0.1:{server.port}", timeout=0.2,
                           sleep=no_wait, transport=StreamTransport()) as http:
            with pytest.raises(PSAUnavailable, match=r"did not answer POST /notes within 0\.2s"):
                await http.request("POST", "/notes", json={})
            assert sleeps == []  # a POST that timed out may have happened: not repeated
    refused = free_port()
    async with httpx.AsyncClient(transport=StreamTransport(), base_url=f"http://127.0.0.1:{refused}") as client:
        with pytest.raises(httpx.ConnectError, match=f"cannot connect to 127.0.0.1:{refused}"):
            await client.get("/")


async def test_the_pool_limit_holds_requests_back_and_times_out() -> None:
    release = asyncio.Event()

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: RawServer) -> None:
        await state.read_request(reader)
        await release.wait()
        writer.write(answer())
        await writer.drain()

    async with raw_server(slow) as server, httpx.AsyncClient(
            transport=StreamTransport(max_connections=1), base_url=f"http://127.0.0.1:{server.port}",
            timeout=httpx.Timeout(5.0, pool=0.2)) as client:
        first = asyncio.get_running_loop().create_task(client.get("/"))
        await asyncio.sleep(0.1)
        with pytest.raises(httpx.PoolTimeout):
            await client.get("/")
        release.set()
        assert (await first).status_code == 200
        assert server.connections == 1


def self_signed(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                         x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    return server, cert_file


async def test_tls_with_a_trusted_certificate_and_refusal_of_an_untrusted_one(tmp_path: Path) -> None:
    server_tls, cert_file = self_signed(tmp_path)
    async with raw_server(keep_answering, tls=server_tls) as server:
        trusting = ssl.create_default_context(cafile=str(cert_file))
        async with httpx.AsyncClient(transport=StreamTransport(ssl_context=trusting),
                                     base_url=f"https://localhost:{server.port}") as client:
            assert (await client.get("/")).json() == {"ok": True}
            assert (await client.get("/")).json() == {"ok": True}
        assert server.connections == 1
        async with httpx.AsyncClient(transport=StreamTransport(),  # the system's trust store: not ours
                                     base_url=f"https://localhost:{server.port}") as client:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await client.get("/")


def test_a_configured_proxy_leaves_requests_to_httpx_own_transport() -> None:
    assert proxy_configured({"HTTPS_PROXY": "http://proxy:3128"})
    assert proxy_configured({"all_proxy": "socks5://proxy:1080"})
    assert not proxy_configured({"NO_PROXY": "*", "HTTPS_PROXY": ""})


async def test_with_a_proxy_in_the_environment_psahttp_goes_through_the_proxy(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The proxy here is the raw server: it answers itself, and shows the absolute-form request line
    httpx sends to a proxy (the PSA's host is never resolved)."""
    async with raw_server(keep_answering) as proxy:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        async with PSAHttp(service="Test PSA", base_url="http://psa.invalid:8080/api") as http:
            r = await http.request("GET", "/tickets/7")
        assert r.json() == {"ok": True}
        assert proxy.requests[0].startswith(b"GET http://psa.invalid:8080/api/tickets/7 HTTP/1.1\r\n")
