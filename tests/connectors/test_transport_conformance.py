"""HTTP/1.1 conformance of the PSA client: a raw TCP server on loopback writes scripted answers.

Whatever parser frames the answers, these must hold (RFC 9112 section 6.3, message body length;
section 9.3, persistence): every answer a conforming client must refuse is refused as a PSA
error naming the request and saying what was wrong, and a connection never serves bytes left
over from one answer as the answer to the next request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
import pytest

from mspclaw.connectors.framing import MAX_HEAD_BYTES, MAX_INTERIM
from mspclaw.connectors.http import PSAHttp
from mspclaw.connectors.transport import StreamTransport
from mspclaw.errors import PSAUnavailable

pytestmark = pytest.mark.anyio


@dataclass
class Answer:
    data: bytes
    later: bytes = b""
    """Written ``delay`` seconds after ``data``, while the client's connection is idle."""
    delay: float = 0.05
    close: bool = False


@dataclass
class Scripted:
    """Answers by request path; records (connection number, path) for each request."""

    script: dict[str, Answer]
    port: int = 0
    served: list[tuple[int, str]] = field(default_factory=list)
    connections: int = 0


@asynccontextmanager
async def scripted_server(script: dict[str, Answer]) -> AsyncIterator[Scripted]:
    state = Scripted(script)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        number = state.connections
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                await reader.readexactly(length)
                path = head.split(b" ", 2)[1].decode()
                state.served.append((number, path))
                answer = state.script[path]
                writer.write(answer.data)
                await writer.drain()
                if answer.close:
                    break
                if answer.later:
                    await asyncio.sleep(answer.delay)
                    writer.write(answer.later)
                    await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()


def ok(body: bytes = b'{"ok": true}', *, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s" % (len(body), extra, body)


def chunked(body: bytes, *, te: bytes = b"chunked", extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ntransfer-encoding: %s\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (te, extra, len(body), body)


# RFC 9112 section 6.3, item by item, plus chunk and 1xx rules: (case, answer, the refusal's reason).
REFUSED: list[tuple[str, bytes, str]] = [
    ("6.3/3 Transfer-Encoding with Content-Length", chunked(b"hello", extra=b"content-length: 5\r\n"),
     "can't be present with Transfer-Encoding"),
    ("6.3/4 chunked not last (chunked, gzip)", chunked(b"hello", te=b"chunked, gzip"), "only 'chunked'"),
    ("6.3/4 a coding before chunked (gzip, chunked)", chunked(b"hello", te=b"gzip, chunked"), "only 'chunked'"),
    ("6.3/4 chunked twice", chunked(b"hello", te=b"chunked, chunked"), "only 'chunked'"),
    ("6.3/4 chunked in two headers", chunked(b"hello", extra=b"transfer-encoding: chunked\r\n"), "only 'chunked'"),
    ("6.3/4 no chunked at all", b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\nhello", "only 'chunked'"),
    ("6.1 Transfer-Encoding on HTTP/1.0", b"HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
     "HTTP/1.0 answer with Transfer-Encoding"),
    ("6.3/5 two different Content-Length", b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!",
     "Duplicate Content-Length"),
    ("6.3/5 two equal Content-Length", b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 5\r\n\r\nhello",
     "Duplicate Content-Length"),
    ("6.3/5 a Content-Length list", b"HTTP/1.1 200 OK\r\ncontent-length: 5, 5\r\n\r\nhello",
     "Invalid character in Content-Length"),
    ("6.3/5 a signed Content-Length", b"HTTP/1.1 200 OK\r\ncontent-length: +5\r\n\r\nhello",
     "Invalid character in Content-Length"),
    ("6.3/5 a negative Content-Length", b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n", "Content-Length"),
    ("6.3/5 a hexadecimal Content-Length", b"HTTP/1.1 200 OK\r\ncontent-length: 0x5\r\n\r\nhello",
     "Invalid character in Content-Length"),
    ("6.3/5 an overflowing Content-Length", b"HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999999\r\n\r\n",
     "Content-Length overflow"),
    ("6.3/5 a Content-Length over the body limit", b"HTTP/1.1 200 OK\r\ncontent-length: 67108865\r\n\r\n",
     "over the 67108864-byte limit"),
    ("6.3/6 fewer bytes than Content-Length, then close",
     b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\nconnection: close\r\n\r\nshort", "in the middle of the answer"),
    ("7.1 a chunk size that is not hex", b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
     "Invalid character in chunk size"),
    ("7.1 a negative chunk size", b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n-5\r\nhello\r\n",
     "Invalid character in chunk size"),
    ("7.1 an empty chunk size", b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\r\nhello\r\n",
     "Invalid character in chunk size"),
    ("7.1 an overflowing chunk size",
     b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nffffffffffffffffffff\r\n", "Chunk size overflow"),
    ("7.1 a chunk not ended by CRLF", b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
     "Expected LF after chunk data"),
    ("7.1 a chunk-size line over 64 KiB (extension)",
     b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;x=" + b"a" * (70 * 1024) + b"\r\nhello\r\n0\r\n\r\n",
     "chunk-size lines, extensions, trailers) is over"),
    ("7.1 trailers over 64 KiB", b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n"
     + b"".join(b"t%d: %s\r\n" % (i, b"v" * 1000) for i in range(80)) + b"\r\n",
     "chunk-size lines, extensions, trailers) is over"),
    ("7.1 chunked cut off by close", b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel",
     "in the middle of the answer"),
    ("15.2 more than 8 interim answers", b"HTTP/1.1 100 Continue\r\n\r\n" * (MAX_INTERIM + 1) + ok(),
     "more than 8 interim"),
    ("15.2 an endless stream of interim answers", b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n" * 10_000,
     "more than 8 interim"),
    ("15.2.2 101 Switching Protocols never asked for",
     b"HTTP/1.1 101 Switching Protocols\r\nupgrade: h2c\r\nconnection: upgrade\r\n\r\n", "switched protocols"),
    ("4 headers over 64 KiB", b"HTTP/1.1 200 OK\r\n" + b"x: " + b"a" * MAX_HEAD_BYTES + b"\r\n\r\n",
     "headers are over 65536 bytes"),
    ("4 not a status line", b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "Expected HTTP/"),
    ("4 a four-digit status", b"HTTP/1.1 2000 OK\r\ncontent-length: 0\r\n\r\n", "Invalid response status"),
    ("5.2 obs-fold", b"HTTP/1.1 200 OK\r\nx: a\r\n b\r\ncontent-length: 0\r\n\r\n", "framing"),
    ("5.1 whitespace before the colon", b"HTTP/1.1 200 OK\r\ncontent-length : 0\r\n\r\n", "Invalid header field"),
    ("5.5 NUL in a header value", b"HTTP/1.1 200 OK\r\nx: a\x00b\r\ncontent-length: 0\r\n\r\n",
     "Invalid header value char"),
    ("2.2 bare LF line ends", b"HTTP/1.1 200 OK\ncontent-length: 2\n\nhi", "framing"),
    ("no answer at all", b"", "closed the connection without answering"),
]


@pytest.mark.parametrize(("answer", "reason"), [pytest.param(a, r, id=c) for c, a, r in REFUSED])
async def test_framing_a_conforming_client_must_refuse_is_a_psa_error(answer: bytes, reason: str) -> None:
    async with scripted_server({"/t": Answer(answer, close=True)}) as server, PSAHttp(
            service="TestPSA", base_url=f"http://127.0.0.1:{server.port}", timeout=5, max_retries=0) as http:
        with pytest.raises(PSAUnavailable, match=r"TestPSA connection failed during GET /t") as caught:
            await asyncio.wait_for(http.request("GET", "/t"), 5)
    assert isinstance(caught.value.__cause__, httpx.RemoteProtocolError)
    assert reason in str(caught.value.__cause__)


ACCEPTED: list[tuple[str, str, bytes, bytes, bool]] = [
    # (case, method, answer, body, reusable)
    ("6.3/1 HEAD ignores Content-Length", "HEAD", b"HTTP/1.1 200 OK\r\ncontent-length: 500\r\n\r\n", b"", True),
    ("6.3/1 204 ignores Content-Length", "GET", b"HTTP/1.1 204 No Content\r\ncontent-length: 5\r\n\r\n", b"", True),
    ("6.3/1 304 has no body", "GET", b"HTTP/1.1 304 Not Modified\r\netag: x\r\n\r\n", b"", True),
    ("6.3/1 interim answers then the final one", "GET",
     b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n" + ok(b"hi"), b"hi", True),
    ("6.3/4 chunked with extensions and trailers", "GET",
     b"HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\n2;a=b\r\nhe\r\n3\r\nllo\r\n0\r\nx-t: 1\r\n\r\n",
     b"hello", True),
    ("6.3/6 Content-Length", "GET", ok(b"hello"), b"hello", True),
    ("6.3/6 Content-Length with leading zeros", "GET", b"HTTP/1.1 200 OK\r\ncontent-length: 005\r\n\r\nhello",
     b"hello", True),
    ("6.3/8 read to the close", "GET", b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end",
     b"until the end", False),
    ("9.3 HTTP/1.0 without keep-alive", "GET", b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nhi", b"hi", False),
    ("9.3 HTTP/1.0 keep-alive", "GET", b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 2\r\n\r\nhi",
     b"hi", True),
    ("9.6 Connection: close", "GET", ok(b"hi", extra=b"connection: close\r\n"), b"hi", False),
]


@pytest.mark.parametrize(("method", "answer", "body", "reusable"),
                         [pytest.param(m, a, b, r, id=c) for c, m, a, b, r in ACCEPTED])
async def test_framing_rfc_9112_accepts_and_whether_the_connection_is_reused(
        method: str, answer: bytes, body: bytes, reusable: bool) -> None:
    script = {"/t": Answer(answer, close=not reusable), "/next": Answer(ok(b"next"))}
    async with scripted_server(script) as server, httpx.AsyncClient(
            transport=StreamTransport(), base_url=f"http://127.0.0.1:{server.port}", timeout=5) as client:
        response = await client.request(method, "/t")
        assert response.content == body
        assert (await client.get("/next")).content == b"next"
    assert server.served == [(1, "/t"), (1 if reusable else 2, "/next")]


DESYNC: list[tuple[str, str, Answer]] = [
    ("a second answer in the same write", "GET", Answer(ok(b"first") + ok(b"SMUGGLED"))),
    ("bytes beyond Content-Length in the same write", "GET", Answer(ok(b"first") + b"HTTP/1.1 200 OK\r\n")),
    ("a second answer while the connection is idle", "GET", Answer(ok(b"first"), later=ok(b"SMUGGLED"))),
    ("garbage while the connection is idle", "GET", Answer(ok(b"first"), later=b"\x00\xff garbage")),
    ("a 204 followed by a body", "GET", Answer(b"HTTP/1.1 204 No Content\r\n\r\n" + ok(b"SMUGGLED"))),
    ("a HEAD answer followed by a body", "HEAD", Answer(b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\nSMUGGLED")),
    ("chunked followed by a second answer", "GET", Answer(chunked(b"first") + ok(b"SMUGGLED"))),
]


@pytest.mark.parametrize(("method", "answer"), [pytest.param(m, a, id=c) for c, m, a in DESYNC])
async def test_keep_alive_never_serves_leftover_bytes_as_the_next_answer(method: str, answer: Answer) -> None:
    script = {"/first": answer, "/second": Answer(ok(b"second"))}
    async with scripted_server(script) as server, PSAHttp(
            service="TestPSA", base_url=f"http://127.0.0.1:{server.port}", timeout=5, max_retries=0) as http:
        await http.request(method, "/first")
        await asyncio.sleep(answer.delay * 3 if answer.later else 0)
        for _ in range(3):
            assert (await http.request("GET", "/second")).content == b"second"
    assert server.served[0] == (1, "/first")
    assert all(conn != 1 for conn, path in server.served if path == "/second")


async def test_an_answer_trickled_byte_by_byte_is_read_whole() -> None:
    data = chunked(b'{"ok": true}', extra=b"x-a: 1\r\n")

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        for byte in data:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0)
        writer.close()

    server = await asyncio.start_server(trickle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(transport=StreamTransport(), base_url=f"http://127.0.0.1:{port}") as client:
            response = await client.get("/")
        assert response.json() == {"ok": True} and response.headers["x-a"] == "1"
    finally:
        server.close()
