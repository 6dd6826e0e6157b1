"""The agent channel: ``/ws/agent`` on its own port, an asyncio protocol over websockets' sans-I/O server.

Agents hold their sockets for days and there are thousands of them, so the channel does without an
ASGI server: :class:`AgentSocket` is an :class:`asyncio.Protocol` that feeds the bytes it reads to
websockets' documented sans-I/O :class:`~websockets.server.ServerProtocol` and writes what it returns,
and it is the hub's :class:`~mspclaw.dispatch.hub.PushTransport`. A tool result is offered to the
hub's push handler (:meth:`~mspclaw.dispatch.hub.AgentLink.take`) straight from :meth:`data_received`,
so it resolves its caller's future without waking the connection's task; everything else reaches
:meth:`Hub.serve <mspclaw.dispatch.hub.Hub.serve>` through :meth:`AgentSocket.recv`, in order.

The upgrade is authenticated from its ``Authorization`` header before it is accepted: a refused agent
gets ``401`` with the reason and never a WebSocket. Compression is off (permessage-deflate costs
hundreds of KiB per socket); frames up to :data:`WS_HARD_LIMIT` reach the codec, which answers an
``error`` frame for those over the protocol limit, and larger ones are cut (close 1009).

Flow control: reading stops while :attr:`AgentSocket.WINDOW` messages wait unread and starts again once
they are all taken; a sender waits while the socket's write buffer is over the transport's high-water mark.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from ssl import SSLContext
from typing import Any, cast

from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol

from mspclaw.dispatch.hub import AgentIdentity, PushHandler, TransportClosed
from mspclaw.errors import AuthError
from mspclaw.protocol.frames import MAX_FRAME_BYTES

log = logging.getLogger(__name__)

AGENT_PATH = "/ws/agent"
"""The one path the listener upgrades (so a reverse proxy can route it by path)."""

WS_HARD_LIMIT = 4 * MAX_FRAME_BYTES
"""Frames up to this size reach the codec, which answers an ``error`` frame when they are over
the protocol limit; only larger ones are cut by the WebSocket layer (close 1009)."""

HANDSHAKE_TIMEOUT_S = 10.0
"""A connection that has not completed its upgrade request by then is dropped."""

CLOSE_TIMEOUT_S = 5.0
"""After sending a close frame, how long the peer has to answer before the socket is dropped."""

Authenticate = Callable[[str | None, str], "AgentIdentity | asyncio.Future[AgentIdentity]"]
"""``(Authorization header or None, remote address) -> identity``; raises :class:`AuthError` to refuse. It may
instead return a future of the identity (or of the :class:`AuthError`): the upgrade is answered when it is
done, so that many upgrades can share one database round trip off the event loop
(:meth:`Fleet.authenticate_soon <mspclaw.pipeline.fleet.Fleet.authenticate_soon>`)."""

Serve = Callable[[AgentIdentity, "AgentSocket"], Coroutine[Any, Any, None]]
"""Pumps one authenticated socket until it closes: :meth:`Hub.serve <mspclaw.dispatch.hub.Hub.serve>`."""


class AgentSocket(asyncio.Protocol):
    """One agent's connection: websockets' sans-I/O server fed from the event loop, and the hub's transport."""

    WINDOW = 2
    """Messages that may wait unread before reading stops."""

    __slots__ = ("_authenticate", "_closed", "_drain", "_inbox", "_listener", "_parts", "_paused", "_push",
                 "_serve", "_task", "_text", "_timer", "_transport", "_waiter", "_ws")

    def __init__(self, authenticate: Authenticate, serve: Serve, listener: AgentListener | None = None) -> None:
        self._authenticate, self._serve, self._listener = authenticate, serve, listener
        self._ws = ServerProtocol(max_size=WS_HARD_LIMIT)  # no extensions: permessage-deflate stays off
        self._transport: asyncio.Transport | None = None
        self._inbox: deque[str | bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._push: PushHandler | None = None
        self._parts: list[bytes] | None = None  # a fragmented message being put together
        self._text = True  # whether that message is text
        self._paused = False
        self._closed = False  # no more messages: the peer closed, the protocol failed, or the socket is gone
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport = cast(asyncio.Transport, transport)  # a stream transport (uvloop's is not
        # a subclass of asyncio.Transport, but has its methods)
        self._timer = asyncio.get_running_loop().call_later(HANDSHAKE_TIMEOUT_S, transport.abort)
        if self._listener is not None:
            self._listener.sockets.add(self)

    def data_received(self, data: bytes) -> None:
        ws = self._ws
        ws.receive_data(data)
        for event in ws.events_received():
            if isinstance(event, Frame):
                self._frame(event)
            elif isinstance(event, Request):
                self._handshake(event)
        self._flush()

    def eof_received(self) -> bool | None:
        self._ws.receive_eof()
        for event in self._ws.events_received():
            if isinstance(event, Frame):
                self._frame(event)
        self._flush()
        return None  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._push = None  # the handler refers back to the hub's link: no cycle left behind
        self._transport = None  # nothing may be written to a closed transport (uvloop raises), e.g. when the
        # pump ends after the peer vanished without a close frame, as agents do that give up during a storm
        self._end()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        if self._listener is not None:
            self._listener.sockets.discard(self)

    def pause_writing(self) -> None:
        if self._drain is None or self._drain.done():
            self._drain = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self._drain = None

    # -- the hub's PushTransport ---------------------------------------------------------------
    def push(self, handler: PushHandler | None) -> bool:
        """Offer each text message to ``handler`` as it is read, before :meth:`recv` (``None``: stop)."""
        self._push = handler
        return True

    async def recv(self) -> str | bytes:
        inbox = self._inbox
        while not inbox:
            if self._closed:
                raise TransportClosed("peer closed")
            self._waiter = waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        message = inbox.popleft()
        if self._paused and not inbox and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
        return message

    async def send(self, text: str) -> None:
        if self._ws.state is not State.OPEN or self._transport is None:
            raise TransportClosed("socket closed")
        self._ws.send_text(text.encode())
        self._flush()
        drain = self._drain
        if drain is not None:
            await drain
            if self._transport is None or self._transport.is_closing():
                raise TransportClosed("socket closed")

    async def close(self, code: int, reason: str) -> None:
        """Start the closing handshake; the socket is dropped if the peer does not answer in time."""
        self._close(code, reason)

    def _close(self, code: int, reason: str) -> None:
        if self._ws.state is not State.OPEN or self._transport is None:
            return
        self._ws.send_close(code, reason.encode()[:120].decode(errors="ignore"))
        self._flush()
        if not self._transport.is_closing():
            self._timer = asyncio.get_running_loop().call_later(CLOSE_TIMEOUT_S, self._transport.abort)

    # -- inside --------------------------------------------------------------------------------
    def _handshake(self, request: Request) -> None:
        ws, transport = self._ws, self._transport
        assert transport is not None
        if request.path.partition("?")[0] != AGENT_PATH:
            response = ws.reject(404, f"the agent channel is {AGENT_PATH}\n")
        else:
            response = ws.accept(request)  # 101, or 400/426 when it is not a valid WebSocket upgrade
            if response.status_code == 101:
                peer = transport.get_extra_info("peername")
                remote = str(peer[0]) if peer else "unknown"
                headers = request.headers.get_all("Authorization")
                try:
                    if len(headers) > 1:
                        raise AuthError("more than one Authorization header")
                    identity = self._authenticate(headers[0] if headers else None, remote)
                except AuthError as exc:
                    response = ws.reject(401, exc.message + "\n")
                else:
                    if isinstance(identity, asyncio.Future):
                        identity.add_done_callback(functools.partial(self._authenticated, response))
                    else:
                        self._open(response, identity)
                    return
        _refuse(ws, response)

    def _authenticated(self, response: Response, verdict: asyncio.Future[AgentIdentity]) -> None:
        """A deferred authentication is done: open the socket, or refuse it (unless the agent left meanwhile)."""
        exc = None if verdict.cancelled() else verdict.exception()
        if self._transport is None:  # gone while it waited (the handshake timer, or the agent gave up)
            return
        if verdict.cancelled() or exc is not None:
            message = exc.message if isinstance(exc, AuthError) else "the server could not check the credential"
            if exc is not None and not isinstance(exc, AuthError):
                log.error("agent authentication failed", exc_info=exc)
            _refuse(self._ws, self._ws.reject(401 if isinstance(exc, AuthError) else 503, message + "\n"))
        else:
            self._open(response, verdict.result())
        self._flush()

    def _open(self, response: Response, identity: AgentIdentity) -> None:
        self._ws.send_response(response)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._task = task = asyncio.get_running_loop().create_task(self._serve(identity, self))
        task.add_done_callback(self._served)

    def _served(self, task: asyncio.Task[None]) -> None:
        self._task = None
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("agent connection failed", exc_info=exc)
        failed = not task.cancelled() and task.exception() is not None
        self._close(1011 if failed else 1000, "")  # when the pump ended without closing

    def _frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if frame.fin:
                self._message(opcode is Opcode.TEXT, frame.data)
            else:
                self._parts = [bytes(frame.data)]
                self._text = opcode is Opcode.TEXT
        elif opcode is Opcode.CONT:
            parts = self._parts
            if parts is not None:
                parts.append(bytes(frame.data))
                if frame.fin:
                    self._parts = None
                    self._message(self._text, b"".join(parts))
        elif opcode is Opcode.CLOSE:
            self._end()
        # pings are answered by the protocol, pongs need nothing

    def _message(self, text: bool, data: bytes | bytearray | memoryview) -> None:
        message: str | bytes
        if text:
            try:
                message = str(data, "utf-8")
            except UnicodeDecodeError:
                self._ws.fail(1007, "invalid UTF-8")
                self._end()
                return
            push = self._push
            if push is not None and not self._inbox:
                # Nothing waits unread, so the hub has seen every earlier message: offering this one to the
                # push handler now keeps the order. One text frame per tool result goes this way.
                try:
                    if push(message):
                        return
                except Exception:  # a bug in the handler must not lose the message: recv() gets it instead
                    log.exception("push handler failed; the message goes through recv()")
        else:
            message = bytes(data)
        inbox = self._inbox
        inbox.append(message)
        self._wake()
        if len(inbox) >= self.WINDOW and not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()

    def _end(self) -> None:
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _flush(self) -> None:
        transport = self._transport
        if transport is None:
            return
        for data in self._ws.data_to_send():
            if data:
                transport.write(data)
            else:  # end of stream: the server closes the TCP connection (after the buffer is written)
                transport.close()

    def pushing(self) -> bool:
        """Whether a push handler is registered (never after the connection is lost)."""
        return self._push is not None

    def is_reading(self) -> bool:
        """Whether the socket is being read (``False`` while its window of unread messages is full)."""
        return not self._paused

    def unread(self) -> int:
        """Messages read but not yet taken by :meth:`recv`."""
        return len(self._inbox)

    @property
    def pump(self) -> asyncio.Task[None] | None:
        """The task pumping this socket (:data:`Serve`) once it is upgraded, until it ends."""
        return self._task

    def abort(self) -> None:
        """Drop the connection at once."""
        if self._transport is not None:
            self._transport.abort()


def _refuse(ws: ServerProtocol, response: Response) -> None:
    ws.send_response(response)  # a status other than 101 also ends the stream: the socket closes after it


class AgentListener:
    """Where agents connect: one :class:`AgentSocket` per TCP connection, from :meth:`start` to :meth:`close`."""

    def __init__(self, authenticate: Authenticate, serve: Serve) -> None:
        self._authenticate, self._serve = authenticate, serve
        self.sockets: set[AgentSocket] = set()
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int, *, backlog: int = 4096,
                    ssl: SSLContext | None = None) -> AgentListener:
        """Listen on ``host:port`` (``0``: a free port, see :attr:`port`); with ``ssl``, agents connect with
        ``wss://`` (``api/tls.py``: the context picks up a renewed certificate for new connections)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: AgentSocket(self._authenticate, self._serve, self),
                                                host, port, backlog=backlog, ssl=ssl,
                                                ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S if ssl else None)
        return self

    @property
    def port(self) -> int:
        """The port it listens on."""
        assert self._server is not None, "not started"
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Stop listening, close every agent socket (1001) and wait for their pumps to end."""
        if self._server is None:
            return
        self._server.close()
        sockets = list(self.sockets)
        for sock in sockets:
            await sock.close(1001, "server shutting down")
        tasks = [task for sock in sockets if (task := sock.pump) is not None]
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        for sock in list(self.sockets):
            sock.abort()
        await self._server.wait_closed()
        self._server = None
