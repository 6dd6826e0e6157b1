"""A lean HTTP/1.1 transport for httpx: keep-alive connections on asyncio, framed by llhttp.

httpx's default transport (httpcore on anyio, with h11) costs several times this one's CPU per
request on top of httpx's own request and response models (figures: `docs/benchmarks.md`, "Figures
behind design choices"), and a ticket makes four PSA requests. :class:`StreamTransport` speaks the same
HTTP/1.1 on an asyncio protocol and keeps httpx's API, errors and models above it, so connectors,
retries and tests do not change.

What it does, per origin (scheme, host, port):

* reuses idle connections (most recent first) for up to ``keepalive_s`` (4 s: under the 5 s
  after which uvicorn, and many servers, close an idle connection), and
  never one whose peer has closed it (an EOF already received);
* at most ``max_connections`` requests in flight per transport; a request that cannot get a
  connection within the pool timeout fails with :class:`httpx.PoolTimeout`;
* TLS with httpx's own default context (the same trust store and ``SSL_CERT_FILE``), SNI, ALPN
  ``http/1.1``;
* answers framed by llhttp (``httptools``, the parser uvicorn uses) with the stricter rules of
  :mod:`mspclaw.connectors.framing`: RFC 9112 section 6.3 in full (conflicting or repeated
  ``Content-Length``, ``Transfer-Encoding`` other than a single final ``chunked``, with
  ``Content-Length``, or on HTTP/1.0 are refused), at most 8 interim 1xx answers, bounded head,
  chunk framing and body; no body for HEAD, 1xx, 204 and 304; ``Content-Encoding`` is decoded by
  httpx as usual;
* a connection carries one answer per request: bytes that arrive after an answer, or while the
  connection is idle, close it (they would otherwise be read as the answer to the next request);
* a request on a reused connection that the server had closed meanwhile (no byte of an answer)
  is sent again once on a new connection when its method is idempotent; otherwise it fails
  with :class:`httpx.RemoteProtocolError`, as with httpx's own transport, and
  :class:`~mspclaw.connectors.http.PSAHttp` decides (it never repeats a non-idempotent write);
* the timeouts of the request (``connect``, ``read``, ``write``, ``pool``) raise httpx's
  timeout exceptions; connection failures raise :class:`httpx.ConnectError`, a broken answer
  :class:`httpx.RemoteProtocolError`, a lost connection :class:`httpx.ReadError` or
  :class:`httpx.WriteError`; a connection that failed or was cancelled mid-request is closed,
  never reused.

It does not do HTTP/2, nor proxies itself: when the environment names a proxy,
:func:`default_transport` wraps it in a :class:`~mspclaw.connectors.proxies.RoutingTransport`,
which sends the requests a proxy applies to (``NO_PROXY`` honoured, ``CONNECT`` for ``https``)
through httpx's own transport and every other one here.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from typing import Final, cast

import httpx

from mspclaw.connectors.framing import MAX_BODY_BYTES, MAX_HEAD_BYTES, FramingError, ResponseReader
from mspclaw.connectors.proxies import ProxySettings, RoutingTransport

__all__ = ["MAX_BODY_BYTES", "MAX_HEAD_BYTES", "StreamTransport", "default_transport", "proxy_configured"]

_IDEMPOTENT: Final = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})

Origin = tuple[bytes, bytes, int]


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection: bytes go to the :class:`ResponseReader` of the request in flight.

    Bytes that arrive while no request is in flight (left over from an answer, or sent unasked)
    make the connection unusable: it is closed and never reused.
    """

    __slots__ = ("_paused", "_waiter", "failure", "idle_since", "lost", "reader", "transport")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.reader: ResponseReader | None = None
        self.failure: FramingError | None = None
        self.lost: BaseException | None = None
        self.idle_since = 0.0
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None

    # -- asyncio.Protocol -----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream connection's transport (uvloop's is not a subclass of asyncio.Transport, but has its API)
        self.transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        if reader is None or self.failure is not None:
            self.close()  # nobody asked: a desynchronised or misbehaving peer
            return
        try:
            reader.feed(data)
        except FramingError as exc:
            self.failure = exc
            self.close()
        if reader.extra:
            self.close()
        self._wake()

    def eof_received(self) -> bool:
        self.lost = self.lost or EOFError()
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc or self.lost or EOFError()
        self._wake()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._wake()

    # -- for the transport ----------------------------------------------------------------------
    def usable(self, now: float, keepalive_s: float) -> bool:
        return (now - self.idle_since < keepalive_s and self.lost is None and self.failure is None
                and self.transport is not None and not self.transport.is_closing())

    def close(self) -> None:
        if self.transport is not None:
            with contextlib.suppress(Exception):
                self.transport.close()

    async def wait(self) -> None:
        """Until bytes arrive, the peer closes, or writing may go on."""
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def drain(self) -> None:
        while self._paused and self.lost is None:
            await self.wait()
        if self.lost is not None and not isinstance(self.lost, EOFError):
            raise ConnectionError(str(self.lost) or type(self.lost).__name__)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class _ServerClosed(Exception):
    """The peer closed a reused connection before sending any byte of an answer."""


def proxy_configured(environ: dict[str, str] | None = None) -> bool:
    """Whether the environment names a proxy that some request could go through (not all hosts exempt)."""
    return ProxySettings.from_environ(environ).configured


def default_transport() -> httpx.AsyncBaseTransport:
    """A :class:`StreamTransport`, behind a :class:`~mspclaw.connectors.proxies.RoutingTransport`
    when the environment names a proxy (read now, once)."""
    settings = ProxySettings.from_environ()
    return RoutingTransport(StreamTransport(), settings) if settings.configured else StreamTransport()


class StreamTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 with keep-alive over asyncio (see the module docstring)."""

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
        if loop is not self._loop:  # connections belong to the loop that opened them
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
        name = host.decode("ascii").strip("[]")
        tls = self._ssl_context() if scheme == b"https" else None
        conn = _Connection()
        try:
            async with asyncio.timeout(timeout):
                await asyncio.get_running_loop().create_connection(
                    lambda: conn, name, port, ssl=tls, server_hostname=name if tls else None)
        except TimeoutError:
            conn.close()
            raise httpx.ConnectTimeout(f"connecting to {name}:{port} timed out", request=request) from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(f"cannot connect to {name}:{port}: {exc}", request=request) from exc
        return conn

    # -- one request and its answer -------------------------------------------------------------
    async def _exchange(self, conn: _Connection, request: httpx.Request, data: bytes,
                        timeouts: dict[str, float | None], *, reused: bool) -> tuple[httpx.Response, bool]:
        reader = conn.reader = ResponseReader(head_request=request.method == "HEAD")
        transport = conn.transport
        assert transport is not None
        try:
            if conn.lost is not None:
                raise ConnectionResetError("the connection was closed")
            transport.write(data)
            async with asyncio.timeout(timeouts.get("write")):
                await conn.drain()
        except TimeoutError:
            raise httpx.WriteTimeout("sending the request timed out", request=request) from None
        except (ConnectionError, OSError) as exc:
            if reused and not reader.started:
                raise _ServerClosed from exc
            raise httpx.WriteError(f"the connection failed while sending: {exc}", request=request) from exc
        read_timeout = timeouts.get("read")
        while not reader.complete:
            if conn.failure is not None:
                raise httpx.RemoteProtocolError(str(conn.failure), request=request) from conn.failure
            lost = conn.lost
            if lost is not None:
                if reused and not reader.started:
                    raise _ServerClosed from lost
                if not isinstance(lost, EOFError) and not reader.started:
                    raise httpx.ReadError(f"the connection failed while reading: {lost}", request=request) from lost
                try:
                    reader.feed_eof()
                except FramingError as exc:
                    raise httpx.RemoteProtocolError(str(exc), request=request) from exc
                break
            try:
                async with asyncio.timeout(read_timeout):
                    await conn.wait()
            except TimeoutError:
                what = "the answer's body" if reader.status else "an answer"
                raise httpx.ReadTimeout(f"{what} did not arrive within the read timeout", request=request) from None
        if conn.failure is not None:
            raise httpx.RemoteProtocolError(str(conn.failure), request=request) from conn.failure
        conn.reader = None
        keep = reader.keep_alive and not reader.extra and conn.failure is None and conn.lost is None
        response = httpx.Response(reader.status, headers=reader.headers, content=b"".join(reader.body),
                                  request=request,
                                  extensions={"http_version": reader.version, "reason_phrase": reader.reason})
        return response, keep


def _request_head(request: httpx.Request) -> bytes:
    target = request.url.raw_path or b"/"
    lines = [b"%s %s HTTP/1.1" % (request.method.encode("ascii"), target)]
    for name, value in request.headers.raw:
        if b"\r" in value or b"\n" in value or b"\r" in name or b"\n" in name:
            raise httpx.LocalProtocolError(f"header {name!r} holds a line break", request=request)
        lines.append(name + b": " + value)
    return b"\r\n".join(lines) + b"\r\n\r\n"
