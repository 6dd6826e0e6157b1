"""The two WebSocket endpoints: ``/ws/agent`` (agent credential) and ``/ws/sessions`` (API key).

Both authenticate from the upgrade request's ``Authorization`` header. A refused socket is
accepted and closed at once with code 4401 and the reason, so the client learns why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from fastapi import APIRouter, WebSocket
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect, WebSocketState

from mspclaw.api.auth import Caller, authenticate, bearer
from mspclaw.api.rbac import SOCKET_FRAMES, check
from mspclaw.dispatch import TransportClosed
from mspclaw.errors import AuthError, MSPClawError, ProtocolError
from mspclaw.protocol.codec import decode_session_frame, encode
from mspclaw.protocol.connection import CLOSE_UNAUTHORIZED
from mspclaw.protocol.frames import Answer, Decide, Error, Event, Ping, Pong, Start, Watch
from mspclaw.wiring import Services

log = logging.getLogger(__name__)
router = APIRouter()

AGENT_PATH = "/ws/agent"

PUSH_EXTENSION = "mspclaw.websocket.push"
"""An ASGI server extension (``scope["extensions"]``) of :class:`~mspclaw.api.server.WindowedWebSocketProtocol`.

Its value is ``{"register": fn}``; ``fn(handler)`` has the server call ``handler(text)`` with each text
message as it is read, before it would be queued for ``receive``. A handler returns ``True`` when it has
taken the message (it is then not queued), ``False`` to leave it to ``receive``; ``fn(None)`` stops.
Other servers (in-process test clients) do not offer it, and every message arrives by ``receive``.
"""


class StarletteTransport:
    """Adapts Starlette's WebSocket to the hub's :class:`~mspclaw.dispatch.Transport`."""

    __slots__ = ("ws",)

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws

    async def send(self, text: str) -> None:
        try:
            await self.ws.send_text(text)
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            raise TransportClosed(str(exc)) from exc

    async def recv(self) -> str | bytes:
        try:
            message = await self.ws.receive()
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            raise TransportClosed(str(exc)) from exc
        if message["type"] == "websocket.disconnect":
            raise TransportClosed("peer closed")
        text = message.get("text")
        if text is not None:
            return str(text)
        return bytes(message.get("bytes") or b"")

    async def close(self, code: int, reason: str) -> None:
        if self.ws.application_state is WebSocketState.CONNECTED:
            with contextlib.suppress(RuntimeError, OSError):
                await self.ws.close(code, reason[:120])


class AsgiTransport:
    """The hub's :class:`~mspclaw.dispatch.Transport` straight over the ASGI ``receive``/``send`` pair.

    What :class:`AgentSocketFirst <mspclaw.api.server.AgentSocketFirst>` gives an agent socket: every
    tool call crosses it twice, and Starlette's ``WebSocket`` adds a state machine and two more awaits
    to each crossing that the hub does not need (it tracks the connection's state itself).
    """

    __slots__ = ("_receive", "_register", "_send", "open")

    def __init__(self, receive: Receive, send: Send,
                 register: Callable[[Callable[[str], bool] | None], None] | None = None) -> None:
        self._receive, self._send, self._register = receive, send, register
        self.open = True

    def push(self, handler: Callable[[str], bool] | None) -> bool:
        """Offer each received text message to ``handler`` first (:data:`PUSH_EXTENSION`); ``None`` stops.

        ``False`` when the server does not offer the extension: every message then comes by :meth:`recv`.
        """
        if self._register is None:
            return False
        self._register(handler)
        return True

    async def send(self, text: str) -> None:
        if not self.open:
            raise TransportClosed("socket closed")
        try:
            await self._send({"type": "websocket.send", "text": text})
        except (RuntimeError, OSError) as exc:
            self.open = False
            raise TransportClosed(str(exc)) from exc

    async def recv(self) -> str | bytes:
        try:
            message = await self._receive()
        except (RuntimeError, OSError) as exc:
            self.open = False
            raise TransportClosed(str(exc)) from exc
        text = message.get("text")
        if text is not None:
            return str(text)
        if message["type"] == "websocket.disconnect":
            self.open = False
            raise TransportClosed("peer closed")
        return bytes(message.get("bytes") or b"")

    async def close(self, code: int, reason: str) -> None:
        if self.open:
            self.open = False
            with contextlib.suppress(RuntimeError, OSError):
                await self._send({"type": "websocket.close", "code": code, "reason": reason[:120]})


async def agent_socket_asgi(svc: Services, scope: Scope, receive: Receive, send: Send) -> None:
    """``/ws/agent`` as a bare ASGI endpoint: the same checks as :func:`agent_socket`, fewer layers."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
    client = scope.get("client")
    remote = client[0] if client else "unknown"
    push = (scope.get("extensions") or {}).get(PUSH_EXTENSION)
    transport = AsgiTransport(receive, send, push.get("register") if push else None)
    try:
        identity = svc.fleet.authenticate(bearer(header.decode("latin-1") if header else None), remote=remote)
    except AuthError as exc:
        await send({"type": "websocket.accept"})
        await transport.close(CLOSE_UNAUTHORIZED, exc.message)
        return
    await send({"type": "websocket.accept"})
    await svc.hub.serve(identity, transport)


async def _refuse(ws: WebSocket, reason: str) -> None:
    await ws.accept()
    await ws.close(CLOSE_UNAUTHORIZED, reason[:120])


@router.websocket(AGENT_PATH)
async def agent_socket(ws: WebSocket) -> None:
    svc: Services = ws.app.state.services
    remote = ws.client.host if ws.client else "unknown"
    try:
        identity = svc.fleet.authenticate(bearer(ws.headers.get("authorization")), remote=remote)
    except AuthError as exc:
        await _refuse(ws, exc.message)
        return
    await ws.accept()
    await svc.hub.serve(identity, StarletteTransport(ws))


@router.websocket("/ws/sessions")
async def session_socket(ws: WebSocket) -> None:
    svc: Services = ws.app.state.services
    try:
        caller = authenticate(svc, ws.headers.get("authorization"))
    except AuthError as exc:
        await _refuse(ws, exc.message)
        return
    await ws.accept()
    await _SessionSocket(svc, caller, StarletteTransport(ws)).run()


class _SessionSocket:
    def __init__(self, svc: Services, caller: Caller, transport: StarletteTransport) -> None:
        self.svc, self.caller, self.transport = svc, caller, transport
        self.followers: dict[str, asyncio.Task[None]] = {}
        self.lock = asyncio.Lock()

    async def send(self, frame: Event | Error | Pong) -> None:
        async with self.lock:
            await self.transport.send(encode(frame))

    async def run(self) -> None:
        try:
            while True:
                data = await self.transport.recv()
                try:
                    await self.handle(data)
                except ProtocolError as exc:
                    await self.send(Error(code=exc.code, message=exc.message))
                except MSPClawError as exc:
                    await self.send(Error(code=exc.code, message=exc.message))
        except TransportClosed:
            pass
        finally:
            for task in self.followers.values():
                task.cancel()

    async def handle(self, data: str | bytes) -> None:
        frame = decode_session_frame(data)
        check(SOCKET_FRAMES.get(frame.kind), self.caller, f"a {frame.kind!r} frame")
        match frame:
            case Start():
                sub = self.svc.tickets.submit(client=frame.client_id, subject=frame.subject, body=frame.body,
                                              requester=frame.requester, device=frame.device,
                                              scope=self.caller.scope, actor=self.caller.name)
                self.follow(sub.session.id, 0)
            case Watch():
                self.svc.store.session(frame.session_id, self.caller.scope)
                self.follow(frame.session_id, frame.after_seq)
            case Decide():
                self.svc.approvals.decide(frame.approval_id, approve=frame.approve, approver=frame.approver,
                                          reason=frame.reason, scope=self.caller.scope, principal=self.caller)
            case Answer():
                self.svc.tickets.questions.answer(frame.question_id, frame.answer, by=self.caller.name,
                                                  scope=self.caller.scope)
            case Ping(seq=seq):
                await self.send(Pong(seq=seq))
            case _:
                await self.send(Error(code="unexpected_frame", message=f"a watcher may not send {frame.kind!r}"))

    def follow(self, session_id: str, after_seq: int) -> None:
        if session_id not in self.followers:
            self.followers[session_id] = asyncio.get_running_loop().create_task(self._follow(session_id, after_seq))

    async def _follow(self, session_id: str, after_seq: int) -> None:
        events = self.svc.events
        queue = events.subscribe(session_id)
        last = after_seq
        try:
            for event in events.history(session_id, after_seq):
                await self.send(event)
                last = event.seq
            while True:
                event = await queue.get()
                if event.seq > last:
                    await self.send(event)
                    last = event.seq
        except TransportClosed:
            pass
        finally:
            events.unsubscribe(session_id, queue)
