"""A lean HTTP/1.1 transport for httpx: keep-alive connections on plain asyncio streams.

httpx's default transport (httpcore on anyio, with h11) costs about 0.9 ms of CPU per request on
top of httpx's own request and response models (measured on loopback, `docs/benchmarks.md`,
Pipeline); a ticket makes four PSA requests, so that was a tenth of the server's CPU per
ticket. :class:`StreamTransport` speaks the same HTTP/1.1 on asyncio's streams and keeps httpx's
API, errors and models above it, so connectors, retries and tests do not change.

What it does, per origin (scheme, host, port):

* reuses idle connections (most recent first) for up to ``keepalive_s`` (4 s: under the 5 s
  after which uvicorn, and many servers, close an idle connection), and
  never one whose peer has closed it (an EOF already received);
* at most ``max_connections`` requests in flight per transport; a request that cannot get a
  connection within the pool timeout fails with :class:`httpx.PoolTimeout`;
* TLS with httpx's own default context (the same trust store and ``SSL_CERT_FILE``), SNI, ALPN
  ``http/1.1``;
* response bodies framed by ``Content-Length``, ``Transfer-Encoding: chunked`` or the end of the
  connection, as RFC 9112 section 6.3 orders them; no body for HEAD, 1xx, 204 and 304; interim
  1xx answers skipped; ``Content-Encoding`` is decoded by httpx as usual;
* a request on a reused connection that the server had closed meanwhile (no byte of an answer)
  is sent again once on a new connection when its method is idempotent; otherwise it fails
  with :class:`httpx.RemoteProtocolError`, as with httpx's own transport, and
  :class:`~mspclaw.connectors.http.PSAHttp` decides (it never repeats a non-idempotent write);
* the timeouts of the request (``connect``, ``read``, ``write``, ``pool``) raise httpx's
  timeout exceptions; connection failures raise :class:`httpx.ConnectError`, a broken answer
  :class:`httpx.RemoteProtocolError`, a lost connection :class:`httpx.ReadError` or
  :class:`httpx.WriteError`; a connection that failed or was cancelled mid-request is closed,
  never reused.

It does not do proxies or HTTP/2: :func:`default_transport` returns ``None`` (httpx's own
transport) when the environment names a proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from collections.abc import Callable
from typing import Final

import httpx

MAX_HEAD_BYTES: Final = 64 * 1024
"""Status line and headers of one answer."""
MAX_BODY_BYTES: Final = 64 * 1024 * 1024
"""One answer's body: a PSA's JSON never comes near it."""
_IDEMPOTENT: Final = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})
_PROXY_VARIABLES: Final = ("http_proxy", "https_proxy", "all_proxy")

Origin = tuple[bytes, bytes, int]


class _Connection:
    __slots__ = ("idle_since", "reader", "used", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0
        self.used = False

    def usable(self, now: float, keepalive_s: float) -> bool:
        return (now - self.idle_since < keepalive_s and not self.reader.at_eof()
                and not self.writer.transport.is_closing())

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class _ServerClosed(Exception):
    """The peer closed a reused connection before sending any byte of an answer."""


def proxy_configured(environ: dict[str, str] | None = None) -> bool:
    """Whether the environment names an HTTP proxy (which httpx would use and this transport does not)."""
    env = os.environ if environ is None else environ
    return any(env.get(name) or env.get(name.upper()) for name in _PROXY_VARIABLES)


def default_transport() -> StreamTransport | None:
    """A :class:`StreamTransport`, or ``None`` (httpx's own) when a proxy is configured."""
    return None if proxy_configured() else StreamTransport()


class StreamTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 with keep-alive over asyncio streams (see the module docstring)."""

    def __init__(self, *, max_connections: int = 100, max_idle_per_origin: int = 20, keepalive_s: float = 4.0,
                 ssl_context: ssl.SSLContext | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        self._slots_total = max_connections
        self._slots = asyncio.Semaphore(max_connections)
        self._max_idle = max_idle_per_origin
        self._keepalive_s = keepalive_s
        self._ssl = ssl_context
        self._idle: dict[Origin, list[_Connection]] = {}
        self._clock = clock
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    async def aclose(self) -> None:
        self._closed = True
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context()
            self._ssl.set_alpn_protocols(["http/1.1"])
        return self._ssl

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise RuntimeError("the transport is closed")
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # streams belong to the loop that opened them
            self._idle.clear()
            self._slots = asyncio.Semaphore(self._slots_total)
            self._loop = loop
        url = request.url
        scheme = url.raw_scheme
        if scheme not in (b"http", b"https"):
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {url.scheme!r}", request=request)
        port = url.port or (443 if scheme == b"https" else 80)
        origin: Origin = (scheme, url.raw_host, port)
        timeouts = request.extensions.get("timeout", {})
        head = _request_head(request)
        body = await request.aread()
        if body and b"chunked" in request.headers.get("transfer-encoding", "").encode():
            body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        if self._slots.locked():
            try:
                async with asyncio.timeout(timeouts.get("pool")):
                    await self._slots.acquire()
            except TimeoutError:
                raise httpx.PoolTimeout("no connection free within the pool timeout", request=request) from None
        else:
            await self._slots.acquire()
        try:
            for attempt in range(2):
                conn = self._take_idle(origin)
                reused = conn is not None
                if conn is None:
                    conn = await self._connect(origin, request, timeouts.get("connect"))
                try:
                    response, keep = await self._exchange(conn, request, head + body, timeouts, reused=reused)
                except _ServerClosed:
                    conn.close()
                    if attempt == 0 and request.method.encode() in _IDEMPOTENT:
                        continue
                    raise httpx.RemoteProtocolError("the server closed the connection without answering",
                                                    request=request) from None
                except BaseException:
                    conn.close()  # a half-read answer or a cancellation: never reuse it
                    raise
                if keep and not self._closed:
                    self._put_idle(origin, conn)
                else:
                    conn.close()
                return response
            raise AssertionError("unreachable")  # pragma: no cover
        finally:
            self._slots.release()

    # -- connections ----------------------------------------------------------------------------
    def _take_idle(self, origin: Origin) -> _Connection | None:
        conns = self._idle.get(origin)
        now = self._now()
        while conns:
            conn = conns.pop()
            if conn.usable(now, self._keepalive_s):
                return conn
            conn.close()
        return None

    def _put_idle(self, origin: Origin, conn: _Connection) -> None:
        conn.idle_since = self._now()
        conns = self._idle.setdefault(origin, [])
        conns.append(conn)
        if len(conns) > self._max_idle:
            conns.pop(0).close()

    async def _connect(self, origin: Origin, request: httpx.Request, timeout: float | None) -> _Connection:
        scheme, host, port = origin
        name = host.decode("ascii")
        tls = self._ssl_context() if scheme == b"https" else None
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    name.strip("[]"), port, ssl=tls, server_hostname=name.strip("[]") if tls else None,
                    limit=MAX_HEAD_BYTES)
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {name}:{port} timed out", request=request) from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(f"cannot connect to {name}:{port}: {exc}", request=request) from exc
        return _Connection(reader, writer)

    # -- one request and its answer -------------------------------------------------------------
    async def _exchange(self, conn: _Connection, request: httpx.Request, data: bytes,
                        timeouts: dict[str, float | None], *, reused: bool) -> tuple[httpx.Response, bool]:
        try:
            conn.writer.write(data)
            async with asyncio.timeout(timeouts.get("write")):
                await conn.writer.drain()
        except TimeoutError:
            raise httpx.WriteTimeout("sending the request timed out", request=request) from None
        except (ConnectionError, OSError) as exc:
            if reused:
                raise _ServerClosed from exc
            raise httpx.WriteError(f"the connection failed while sending: {exc}", request=request) from exc
        read_timeout = timeouts.get("read")
        head_request = request.method == "HEAD"
        while True:
            try:
                async with asyncio.timeout(read_timeout):
                    raw = await conn.reader.readuntil(b"\r\n\r\n")
            except TimeoutError:
                raise httpx.ReadTimeout("no answer within the read timeout", request=request) from None
            except asyncio.IncompleteReadError as exc:
                if not exc.partial and reused:
                    raise _ServerClosed from exc
                raise httpx.RemoteProtocolError("the server closed the connection without a complete answer",
                                                request=request) from exc
            except asyncio.LimitOverrunError as exc:
                raise httpx.RemoteProtocolError(f"answer headers over {MAX_HEAD_BYTES} bytes",
                                                request=request) from exc
            except (ConnectionError, OSError) as exc:
                if reused:
                    raise _ServerClosed from exc
                raise httpx.ReadError(f"the connection failed while reading: {exc}", request=request) from exc
            version, status, reason, headers = _parse_head(raw, request)
            if 100 <= status < 200 and status != 101:
                continue  # an interim answer (100 Continue, 103 Early Hints): the real one follows
            break
        fields = {name.lower(): value for name, value in headers}
        keep = _keeps_alive(version, fields.get(b"connection", b""))
        try:
            async with asyncio.timeout(read_timeout):
                if head_request or status in (204, 304) or 100 <= status < 200:
                    content = b""
                elif b"chunked" in fields.get(b"transfer-encoding", b"").lower():
                    content = await _read_chunked(conn.reader, request)
                elif b"content-length" in fields:
                    content = await conn.reader.readexactly(_content_length(fields[b"content-length"], request))
                else:
                    content = await _read_to_end(conn.reader, request)
                    keep = False
        except TimeoutError:
            raise httpx.ReadTimeout("the answer's body did not arrive within the read timeout",
                                    request=request) from None
        except asyncio.IncompleteReadError as exc:
            raise httpx.RemoteProtocolError("the server closed the connection in the middle of the answer",
                                            request=request) from exc
        except (ConnectionError, OSError) as exc:
            raise httpx.ReadError(f"the connection failed while reading: {exc}", request=request) from exc
        response = httpx.Response(status, headers=headers, content=content, request=request,
                                  extensions={"http_version": version, "reason_phrase": reason})
        return response, keep


def _request_head(request: httpx.Request) -> bytes:
    target = request.url.raw_path or b"/"
    lines = [b"%s %s HTTP/1.1" % (request.method.encode("ascii"), target)]
    for name, value in request.headers.raw:
        if b"\r" in value or b"\n" in value or b"\r" in name or b"\n" in name:
            raise httpx.LocalProtocolError(f"header {name!r} holds a line break", request=request)
        lines.append(name + b": " + value)
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _parse_head(raw: bytes, request: httpx.Request) -> tuple[bytes, int, bytes, list[tuple[bytes, bytes]]]:
    lines = raw[:-4].split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or len(parts[1]) != 3 or not parts[1].isdigit():
        raise httpx.RemoteProtocolError(f"not an HTTP/1.1 status line: {lines[0][:80]!r}", request=request)
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            raise httpx.RemoteProtocolError(f"malformed header line {line[:80]!r}", request=request)
        headers.append((name, value.strip()))
    return parts[0], int(parts[1]), parts[2] if len(parts) > 2 else b"", headers


def _keeps_alive(version: bytes, connection: bytes) -> bool:
    tokens = {token.strip().lower() for token in connection.split(b",")}
    if version == b"HTTP/1.0":
        return b"keep-alive" in tokens
    return b"close" not in tokens


def _content_length(value: bytes, request: httpx.Request) -> int:
    values = {v.strip() for v in value.split(b",")}
    if len(values) != 1 or not next(iter(values)).isdigit():
        raise httpx.RemoteProtocolError(f"bad Content-Length {value[:40]!r}", request=request)
    length = int(next(iter(values)))
    if length > MAX_BODY_BYTES:
        raise httpx.RemoteProtocolError(f"an answer of {length} bytes is over the {MAX_BODY_BYTES} limit",
                                        request=request)
    return length


async def _read_chunked(reader: asyncio.StreamReader, request: httpx.Request) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        line = await reader.readuntil(b"\r\n")
        size_text = line[:-2].split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise httpx.RemoteProtocolError(f"bad chunk size {size_text[:20]!r}", request=request) from None
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers, ignored
                pass
            return b"".join(parts)
        total += size
        if total > MAX_BODY_BYTES:
            raise httpx.RemoteProtocolError(f"an answer over the {MAX_BODY_BYTES}-byte limit", request=request)
        parts.append(await reader.readexactly(size))
        if await reader.readexactly(2) != b"\r\n":
            raise httpx.RemoteProtocolError("a chunk does not end with CRLF", request=request)


async def _read_to_end(reader: asyncio.StreamReader, request: httpx.Request) -> bytes:
    parts: list[bytes] = []
    total = 0
    while chunk := await reader.read(65536):
        total += len(chunk)
        if total > MAX_BODY_BYTES:
            raise httpx.RemoteProtocolError(f"an answer over the {MAX_BODY_BYTES}-byte limit", request=request)
        parts.append(chunk)
    return b"".join(parts)
