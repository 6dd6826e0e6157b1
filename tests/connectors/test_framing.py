"""The sans-I/O answer reader, synchronously: bytes in, an answer or a FramingError out.

The same cases run over real sockets in ``test_transport_conformance.py``; here they also run
split at every byte, and hypothesis throws broken and random answers at the reader: it must
never raise anything but FramingError, and where the answer is cut must not change the result.
Last, smaller fuzzes over a loopback socket: the transport answers or raises httpx's
RemoteProtocolError/ReadError, never anything else; and through the whole PSA client (PSAHttp,
with compressed bodies that may not decode, and a connector's payload model reading the body)
nothing but a PSA error ever comes out.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mspclaw.connectors.framing import MAX_INTERIM, FramingError, ResponseReader
from mspclaw.connectors.http import PSAHttp
from mspclaw.connectors.payload import Payload, read
from mspclaw.connectors.transport import StreamTransport
from mspclaw.errors import PSAError

FUZZ_EXAMPLES = 400


def outcome(pieces: list[bytes], *, eof: bool = True, head_request: bool = False,
            max_head: int = 1024, max_body: int = 4096) -> tuple[str, object]:
    reader = ResponseReader(head_request=head_request, max_head=max_head, max_body=max_body)
    try:
        for piece in pieces:
            reader.feed(piece)
        if eof and not reader.complete:
            reader.feed_eof()
    except FramingError as exc:
        return "refused", str(exc)
    return "answer", (reader.status, b"".join(reader.body), reader.keep_alive and not reader.extra, reader.extra)


def every_split(data: bytes, **kwargs: bool) -> set[str]:
    """The outcome kind and, for answers, the answer, for the data whole and cut at each byte."""
    seen: set[str] = set()
    for cut in range(len(data) + 1):
        kind, detail = outcome([data[:cut], data[cut:]], **kwargs)
        seen.add(kind if kind == "refused" else f"{kind} {detail!r}")
    return seen


def test_a_content_length_answer_split_anywhere_is_the_same_answer() -> None:
    data = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"
    assert every_split(data) == {"answer (200, b'hello', True, False)"}


def test_a_chunked_answer_with_extensions_and_trailers_split_anywhere() -> None:
    data = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2;x=y\r\nhe\r\n3\r\nllo\r\n0\r\nt: v\r\n\r\n"
    assert every_split(data) == {"answer (200, b'hello', True, False)"}


def test_interim_answers_are_skipped_up_to_the_limit() -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\n"
    final = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
    assert every_split(interim * MAX_INTERIM + final) == {"answer (200, b'ok', True, False)"}
    assert outcome([interim * (MAX_INTERIM + 1) + final])[0] == "refused"


@pytest.mark.parametrize("data", [
    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhiHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nno",
    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi\x00garbage",
    b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nno",
])
def test_bytes_after_the_answer_mark_the_connection_unusable(data: bytes) -> None:
    kind, detail = outcome([data], eof=False)
    assert kind == "answer"
    assert isinstance(detail, tuple) and detail[2:] == (False, True)


def test_a_head_answer_ends_with_its_headers() -> None:
    data = b"HTTP/1.1 200 OK\r\ncontent-length: 500\r\n\r\n"
    assert outcome([data], eof=False, head_request=True) == ("answer", (200, b"", True, False))
    assert outcome([data + b"x"], eof=False, head_request=True)[1] == (200, b"", False, True)


def test_limits_on_head_framing_and_body() -> None:
    assert "headers are over 1024" in str(outcome([b"HTTP/1.1 200 OK\r\nx: " + b"a" * 2000])[1])
    chunk_line = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;" + b"e" * 3000 + b"\r\nhello\r\n0\r\n\r\n"
    assert "chunk-size lines" in str(outcome([chunk_line])[1])
    assert "over the 4096-byte limit" in str(outcome([b"HTTP/1.1 200 OK\r\ncontent-length: 5000\r\n\r\n"])[1])
    big = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1001\r\n" + b"x" * 4097 + b"\r\n0\r\n\r\n"
    assert "over the 4096-byte limit" in str(outcome([big])[1])


# --- fuzz --------------------------------------------------------------------------------------

_STATUS = st.sampled_from([b"HTTP/1.1 200 OK", b"HTTP/1.0 200 OK", b"HTTP/1.1 100 Continue", b"HTTP/1.1 204 No",
                           b"HTTP/1.1 304 NM", b"HTTP/1.1 101 Up", b"HTTP/1.1 999 X", b"HTTP/2 200", b"HTTP/1.1 20"])
_HEADER = st.one_of(
    st.sampled_from([b"content-length: 5", b"content-length: 0", b"content-length: 5, 5", b"content-length: -1",
                     b"content-length: 99999999999999999999", b"transfer-encoding: chunked",
                     b"transfer-encoding: gzip, chunked", b"transfer-encoding: chunked, gzip",
                     b"connection: close", b"connection: keep-alive", b"x: a\r\n b", b"bad header",
                     b"x:\x00", b"upgrade: h2c"]),
    st.binary(max_size=40).map(lambda b: b"x-f: " + b))
_BODY = st.one_of(st.binary(max_size=60), st.sampled_from([
    b"hello", b"5\r\nhello\r\n0\r\n\r\n", b"zz\r\n", b"ffffffffffffffffffff\r\n", b"5\r\nhelloXX0\r\n\r\n",
    b"0\r\nt: v\r\n\r\n", b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nx"]))


@st.composite
def answers(draw: st.DrawFn) -> bytes:
    status = draw(_STATUS)
    headers = draw(st.lists(_HEADER, max_size=4))
    eol = draw(st.sampled_from([b"\r\n", b"\r\n", b"\n"]))
    head = eol.join([status, *headers]) + eol + eol
    data = head + draw(_BODY)
    if draw(st.booleans()):  # a random byte flipped
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1:]
    return data


def _fuzz_check(data: bytes, cuts: list[int], eof: bool) -> None:
    points = sorted({min(c, len(data)) for c in cuts})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    whole = outcome([data], eof=eof)
    split = outcome(pieces, eof=eof)
    assert whole[0] == split[0], (whole, split)
    if whole[0] == "answer":
        assert whole == split


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answers(), st.lists(st.integers(0, 400), max_size=4), st.booleans())
def test_fuzz_structured_answers_raise_only_framing_errors_wherever_they_are_cut(
        data: bytes, cuts: list[int], eof: bool) -> None:
    _fuzz_check(data, cuts, eof)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=3), st.booleans())
def test_fuzz_random_bytes_raise_only_framing_errors(data: bytes, cuts: list[int], eof: bool) -> None:
    _fuzz_check(b"HTTP/1.1 " + data, cuts, eof)


SOCKET_FUZZ_EXAMPLES = 60


@asynccontextmanager
async def _writing_once(data: bytes, cut: int) -> AsyncIterator[int]:
    """A loopback server that answers one request with ``data`` in two writes, then closes; its port."""
    handlers: list[asyncio.Task[object]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(data[:cut])
            await writer.drain()
            await asyncio.sleep(0.001)
            writer.write(data[cut:])
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await asyncio.gather(*handlers, return_exceptions=True)


async def _serve_once(data: bytes, cut: int) -> tuple[str, object]:
    """One GET through StreamTransport to a server that writes ``data`` in two writes, then closes."""
    async with _writing_once(data, cut) as port:
        try:
            async with httpx.AsyncClient(transport=StreamTransport(), base_url=f"http://127.0.0.1:{port}",
                                         timeout=2) as client:
                response = await client.get("/")
                return "answer", response.status_code
        except httpx.TransportError as exc:
            return "refused", type(exc).__name__


@settings(max_examples=SOCKET_FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answers(), st.integers(0, 400))
def test_fuzz_over_a_socket_the_transport_answers_or_raises_a_transport_error(data: bytes, cut: int) -> None:
    kind, detail = asyncio.run(asyncio.wait_for(_serve_once(data, min(cut, len(data))), 10))
    assert kind == "answer" or detail in ("RemoteProtocolError", "ReadError"), detail


class _Record(Payload):
    id: int
    name: str


_JSON_BODIES = st.one_of(
    st.sampled_from([b'{"id": 7, "name": "x"}', b'{"id": "7"}', b"[]", b"null", b'{"id": 1e999}', b"{", b"\xff"]),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                 lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["id", "name", "x"]),
                                                                              inner, max_size=3),
                 max_leaves=6).map(lambda value: json.dumps(value).encode()))


@st.composite
def psa_answers(draw: st.DrawFn) -> bytes:
    """An answer with a JSON (or broken) body, maybe compressed (or claiming to be), maybe mutated."""
    body = draw(_JSON_BODIES)
    coding = draw(st.sampled_from([None, b"gzip", b"deflate", b"gzip", b"br", b"identity, gzip"]))
    if coding == b"gzip" and draw(st.booleans()):
        body = gzip.compress(body)
    elif coding == b"deflate" and draw(st.booleans()):
        body = zlib.compress(body)
    status = draw(st.sampled_from([b"200 OK", b"200 OK", b"201 Created", b"404 Not Found", b"429 Slow",
                                   b"500 Oops", b"302 Found", b"418 Teapot"]))
    framing = draw(st.sampled_from(["length", "chunked", "close"]))
    head = [b"HTTP/1.1 " + status, b"content-type: application/json"]
    if coding is not None:
        head.append(b"content-encoding: " + coding)
    if framing == "length":
        head.append(b"content-length: %d" % len(body))
    elif framing == "chunked":
        head.append(b"transfer-encoding: chunked")
        body = (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
    data = b"\r\n".join(head) + b"\r\n\r\n" + body
    if draw(st.booleans()):
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1:]
    return data


async def _through_the_psa_client(data: bytes, cut: int) -> str:
    async def no_wait(seconds: float) -> None:
        return None

    async with _writing_once(data, cut) as port, PSAHttp(service="Fuzz PSA", base_url=f"http://127.0.0.1:{port}",
                                                         timeout=2, max_retries=0, sleep=no_wait) as http:
        try:
            response = await http.request("POST", "/tickets/query", json={})
            read(_Record, response, service="Fuzz PSA")
        except PSAError as exc:
            return type(exc).__name__
        return "read"


@settings(max_examples=SOCKET_FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(psa_answers(), answers()), st.integers(0, 400))
@example(b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: 5\r\n\r\nhello", 3)  # does not decode
@example(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;x=" + b"a" * (70 * 1024) + b"\r\nhello\r\n0\r\n\r\n",
         40)  # a chunk-size line over 64 KiB
def test_fuzz_through_the_psa_client_only_psa_errors_come_out(data: bytes, cut: int) -> None:
    """Whatever a PSA (or something pretending to be one) answers, a connector meets a PSAError or a
    record: never httpx's, zlib's, JSON's or pydantic's exceptions."""
    outcome = asyncio.run(asyncio.wait_for(_through_the_psa_client(data, min(cut, len(data))), 10))
    assert outcome in ("read", "PSAError", "PSAUnavailable", "PSANotFound", "PSARateLimited", "PSARejected",
                       "PSAAuthError"), outcome
