"""The session WebSocket, ``/ws/sessions`` (API key or technician token).

It authenticates from the upgrade request's ``Authorization`` header. A refused socket is
accepted and closed at once with code 4401 and the reason, so the client learns why. Agents
connect elsewhere: :mod:`mspclaw.api.agent_listener`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from mspclaw.api.auth import Caller, authenticate
from mspclaw.api.rbac import SOCKET_FRAMES, check
from mspclaw.dispatch import TransportClosed
from mspclaw.errors import AuthError, MSPClawError, ProtocolError
from mspclaw.pipeline.offload import run_store
from mspclaw.protocol.codec import decode_session_frame, encode
from mspclaw.protocol.connection import CLOSE_UNAUTHORIZED
from mspclaw.protocol.frames import Answer, Decide, Error, Event, Ping, Pong, Start, Watch
from mspclaw.wiring import Services

log = logging.getLogger(__name__)
router = APIRouter()

class StarletteTransport:
    """Starlette's WebSocket as a message transport (the hub's :class:`~mspclaw.dispatch.Transport` shape)."""

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


async def _refuse(ws: WebSocket, reason: str) -> None:
    await ws.accept()
    await ws.close(CLOSE_UNAUTHORIZED, reason[:120])


@router.websocket("/ws/sessions")
async def session_socket(ws: WebSocket) -> None:
    svc: Services = ws.app.state.services
    try:
        caller = await run_store(svc.store, authenticate, svc, ws.headers.get("authorization"))  # keys, roster
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
                sub = await self.svc.tickets.submit(client=frame.client_id, subject=frame.subject, body=frame.body,
                                                    requester=frame.requester, device=frame.device,
                                                    scope=self.caller.scope, actor=self.caller.name)
                self.follow(sub.session.id, 0)
            case Watch():
                await run_store(self.svc.store, self.svc.store.session, frame.session_id, self.caller.scope)
                self.follow(frame.session_id, frame.after_seq)
            case Decide():
                await self.svc.approvals.decide_async(frame.approval_id, approve=frame.approve,
                                                      approver=frame.approver, reason=frame.reason,
                                                      scope=self.caller.scope, principal=self.caller)
            case Answer():
                await self.svc.tickets.questions.answer_async(frame.question_id, frame.answer,
                                                              by=self.caller.name, scope=self.caller.scope)
            case Ping(seq=seq):
                await self.send(Pong(seq=seq))
            case _:
                await self.send(Error(code="unexpected_frame", message=f"a watcher may not send {frame.kind!r}"))

    def follow(self, session_id: str, after_seq: int) -> None:
        if session_id not in self.followers:
            self.followers[session_id] = asyncio.get_running_loop().create_task(self._follow(session_id, after_seq))

    async def _follow(self, session_id: str, after_seq: int) -> None:
        # in seq order, once each; a session run by another replica arrives through the broadcast (Redis) or,
        # without it, from the store within events.CATCH_UP_S
        try:
            async with contextlib.aclosing(self.svc.events.follow(session_id, after_seq)) as events:
                async for event in events:
                    await self.send(event)
        except TransportClosed:
            pass
