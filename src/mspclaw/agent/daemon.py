"""The daemon: a thin asyncio pump between a WebSocket and the sans-I/O :class:`AgentConnection`.

The protocol (handshake, heartbeats, validation, error frames) lives in
:mod:`mspclaw.protocol.connection`; this module only moves text between it and the socket,
runs the tool calls it hands over, and reconnects. One connection at a time:

* connect to the ``agent_url`` the server gave at enrollment (:func:`agent_ws_url`) with
  ``Authorization: Bearer {agent_id}.{credential}``,
  compression off, websockets' own keepalive off (heartbeats are protocol pings from ``tick``);
* send ``hello``; on ``welcome`` the connection is up and the reconnect backoff resets;
* each ``tool_call`` runs in its own task through the :class:`Executor`, so calls overlap;
* on any loss, reconnect forever with exponential backoff and full jitter;
* close code 4401 (credential refused) or 4400 (protocol version) cannot heal by retrying:
  :meth:`AgentDaemon.run` logs what to do and returns :data:`EXIT_FATAL`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import shutil
import ssl
import subprocess
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

import mspclaw
from mspclaw.agent.enroll import server_base
from mspclaw.agent.executor import Executor
from mspclaw.agent.state import AgentState
from mspclaw.agent.tls import verify_failure
from mspclaw.agent.tools import current_os, hostname, os_version
from mspclaw.protocol.connection import (
    CLOSE_NORMAL,
    CLOSE_PROTOCOL_VERSION,
    CLOSE_UNAUTHORIZED,
    AgentConnection,
    Closed,
    ConnectionEvent,
    FrameReceived,
    PeerError,
    ProtocolViolation,
    State,
    WelcomeReceived,
)
from mspclaw.protocol.frames import (
    MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
    AskUser,
    Hello,
    NotifyUser,
    SecretShown,
    ShowSecret,
    ToolCall,
    UserAnswer,
)

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FATAL = 3
"""``run()`` result when retrying cannot help (credential refused, protocol version mismatch)."""

FATAL_CLOSE_CODES = frozenset({CLOSE_UNAUTHORIZED, CLOSE_PROTOCOL_VERSION})
NOTIFY_TIMEOUT_S = 5.0
CLOSE_TIMEOUT_S = 5.0

T = TypeVar("T")

AnswerSource = Callable[[AskUser], Awaitable[str | None]]
"""Gets the end user's answer to a question (a desktop dialog in service; scripted in tests).
``None`` means no answer (no desktop session, dismissed): nothing is sent and the server's timer decides."""

SecretDisplay = Callable[[ShowSecret], Awaitable[bool]]
"""Shows a temporary password to the user of this device (a desktop dialog in service; a test double in
tests); ``True`` once shown. Never logs it."""


class _RedactAuthorization(logging.Filter):
    """websockets logs every request header at DEBUG; the ``Authorization`` one holds the credential."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if record.msg == "> %s: %s" and isinstance(args, tuple) and str(args[0]).lower() == "authorization":
            record.args = (args[0], "[redacted]")
        return True


_ws_log = logging.getLogger("mspclaw.agent.websocket")
_ws_log.addFilter(_RedactAuthorization())


def agent_ws_url(server: str, state: AgentState | None = None) -> str:
    """Where to connect: the ``agent_url`` the server gave at enrollment, when ``server`` is the one enrolled with.

    Else ``http://host:8700/prefix`` -> ``ws://host:8700/prefix/ws/agent`` (https -> wss): the agent
    channel on the server URL itself, which a reverse proxy routes to the agent listener.
    """
    if state is not None and state.agent_url and (not state.server or state.server == server_base(server)):
        return state.agent_url
    parts = urlsplit(server_base(server))
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + "/ws/agent", "", ""))


def build_hello(state: AgentState, tools: list[str]) -> Hello:
    return Hello(
        protocol=PROTOCOL_VERSION,
        agent_id=state.agent_id,
        client_id=state.client_id,
        role=state.role,
        hostname=hostname(),
        os=current_os(),
        os_version=os_version(),
        agent_version=mspclaw.__version__,
        tools=tools,
    )


BACKOFF_INITIAL_S = 1.0
"""The first retry after a connection ends waits uniformly in [0, this]: when a replica restarts, its
agents come back spread over a second (10,000 of them: about 10,000 upgrades a second at most, which
the listener's accept backlog and the server absorb), not all in the same millisecond."""
BACKOFF_MAX_S = 30.0
"""The retry window stops doubling here: after a long outage an agent is back at most this long after
the server (the window of a 60 s cap kept agents away for up to a minute after the server was up)."""


def full_jitter(attempt: int, initial: float, cap: float) -> float:
    """Backoff for the ``attempt``-th retry (0-based): uniform in [0, min(cap, initial * 2**attempt)]."""
    return random.uniform(0.0, min(cap, initial * 2.0 ** min(max(attempt, 0), 32)))


@dataclass(frozen=True)
class _Ended:
    """How one connection ended: the close code (None when it never opened or just dropped) and why."""

    code: int | None
    reason: str


class AgentDaemon:
    """Keeps this agent connected to its server and answers tool calls until stopped.

    ``backoff_initial`` / ``backoff_max`` bound the reconnect delay (:data:`BACKOFF_INITIAL_S` and
    :data:`BACKOFF_MAX_S` in service; tests pass tiny ones): the ``n``-th retry in a row waits uniformly
    in [0, min(max, initial * 2**n)], and a welcomed connection starts the count over.
    ``tick_interval`` caps how long the protocol clock may stand still.
    """

    def __init__(
        self,
        *,
        server: str,
        state: AgentState,
        executor: Executor,
        backoff_initial: float = BACKOFF_INITIAL_S,
        backoff_max: float = BACKOFF_MAX_S,
        tick_interval: float = 1.0,
        open_timeout: float = 10.0,
        answers: AnswerSource | None = None,
        secrets: SecretDisplay | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._answers = answers
        self._ssl = ssl_context  # how a wss:// server's certificate is verified (agent/tls.py); default: system store
        self._secrets = secrets
        self.ws_url = agent_ws_url(server, state)
        self.hello = build_hello(state, executor.offered_tools())
        self._state = state
        self._executor = executor
        if not 0 < backoff_initial <= backoff_max:
            raise ValueError(f"reconnect backoff: need 0 < backoff_initial <= backoff_max, got {backoff_initial} "
                             f"and {backoff_max} seconds")
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._tick_interval = tick_interval
        self._open_timeout = open_timeout
        self._stopping = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()
        self._send_lock = asyncio.Lock()
        self.connected = asyncio.Event()
        """Set while a welcomed connection is up (for callers and tests that wait for it)."""

    def stop(self) -> None:
        """Ask :meth:`run` to close the connection and return :data:`EXIT_OK`. Safe to call twice."""
        self._stopping.set()

    async def run(self) -> int:
        """Connect, serve, reconnect. :data:`EXIT_OK` after :meth:`stop`; :data:`EXIT_FATAL` on 4401/4400."""
        log.info("agent %s (client %s) connecting to %s, offering: %s", self._state.agent_id,
                 self._state.client_id, self.ws_url, ", ".join(self.hello.tools) or "no tools")
        attempt = 0
        try:
            while True:
                ended = await self._until_stopped(self._connect_once())
                if ended is None:
                    break
                if ended.code in FATAL_CLOSE_CODES:
                    log.error("%s", _fatal_advice(ended, self._state))
                    return EXIT_FATAL
                if self.connected.is_set():  # it had been welcomed: start the backoff over
                    self.connected.clear()
                    attempt = 0
                delay = full_jitter(attempt, self._backoff_initial, self._backoff_max)
                attempt += 1
                log.warning("connection to %s ended (%s); reconnecting in %.1f s", self.ws_url, ended.reason, delay)
                if await self._until_stopped(asyncio.sleep(delay, result=True)) is None:
                    break
        finally:
            self.connected.clear()
            for task in list(self._background):
                task.cancel()
            await asyncio.gather(*self._background, return_exceptions=True)
        log.info("agent stopped")
        return EXIT_OK

    async def _until_stopped(self, work: Coroutine[Any, Any, T]) -> T | None:
        """Await ``work`` unless :meth:`stop` comes first; then cancel it and return None."""
        task = asyncio.create_task(work)
        stopper = asyncio.create_task(self._stopping.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if not task.done():
                task.cancel()
            await asyncio.gather(task, stopper, return_exceptions=True)
        return None if task.cancelled() else task.result()

    # -- one connection -------------------------------------------------------------------------

    async def _connect_once(self) -> _Ended:
        try:
            async with connect(
                self.ws_url,
                additional_headers={"Authorization": self._state.bearer},
                compression=None,
                max_size=MAX_FRAME_BYTES,
                ping_interval=None,
                open_timeout=self._open_timeout,
                close_timeout=CLOSE_TIMEOUT_S,
                logger=_ws_log,
                ssl=self._ssl if self.ws_url.startswith("wss://") else None,  # None: the system store
            ) as ws:
                return await self._serve(ws)
        except InvalidStatus as exc:
            status = exc.response.status_code
            code = CLOSE_UNAUTHORIZED if status in (401, 403) else None
            return _Ended(code, f"server refused the upgrade with HTTP {status}")
        except ConnectionClosed as exc:
            return _closed(exc)
        except ssl.SSLCertVerificationError as exc:
            return _Ended(None, verify_failure(exc, self.ws_url))
        except (OSError, TimeoutError, WebSocketException) as exc:
            return _Ended(None, f"cannot connect: {exc}")

    async def _serve(self, ws: ClientConnection) -> _Ended:
        conn = AgentConnection(now=time.time())
        conn.start(self.hello)
        await self._flush(ws, conn)
        reader = asyncio.create_task(self._read(ws, conn))
        ticker = asyncio.create_task(self._tick(ws, conn))
        try:
            done, _ = await asyncio.wait({reader, ticker}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:  # stop(): say goodbye with 1000, not the 1011 of an aborted block
            await ws.close(CLOSE_NORMAL, "agent stopping")
            raise
        finally:
            reader.cancel()
            ticker.cancel()
            await asyncio.gather(reader, ticker, return_exceptions=True)
        ended = done.pop().result()
        if conn.close_code is not None:  # the protocol decided to close (heartbeat, version, violations)
            await ws.close(conn.close_code, ended.reason[:120])
        return ended

    async def _read(self, ws: ClientConnection, conn: AgentConnection) -> _Ended:
        while True:
            try:
                text = await ws.recv()
            except ConnectionClosed as exc:
                return _closed(exc)
            ended = self._react(conn.receive(text, time.time()), ws, conn)
            await self._flush(ws, conn)
            if ended is not None:
                return ended

    async def _tick(self, ws: ClientConnection, conn: AgentConnection) -> _Ended:
        while True:
            await asyncio.sleep(min(self._tick_interval, conn.heartbeat_interval / 4))
            ended = self._react(conn.tick(time.time()), ws, conn)
            await self._flush(ws, conn)
            if ended is not None:
                return ended

    def _react(self, events: list[ConnectionEvent], ws: ClientConnection, conn: AgentConnection) -> _Ended | None:
        """Act on protocol events; returns how the connection ends when one of them closes it."""
        for event in events:
            match event:
                case WelcomeReceived(welcome=welcome):
                    log.info("connected to %s (heartbeat every %g s)", self.ws_url, welcome.heartbeat_interval)
                    self.connected.set()
                case FrameReceived(frame=ToolCall() as call):
                    self._spawn(self._answer(call, ws, conn), f"call {call.call_id}")
                case FrameReceived(frame=NotifyUser(text=text)):
                    log.info("message for the user: %s", text)
                    self._spawn(asyncio.to_thread(_show_notification, text), "notify-send")
                case FrameReceived(frame=AskUser() as question):
                    if self._answers is None:
                        log.info("question %s for the user, but this agent has no way to ask: not answered",
                                 question.question_id)
                    else:
                        self._spawn(self._ask(question, ws, conn), f"question {question.question_id}")
                case FrameReceived(frame=ShowSecret() as shown):
                    log.info("a temporary password for %s to show to the user (delivery %s)",
                             shown.secret.account, shown.delivery_id)
                    self._spawn(self._show_secret(shown, ws, conn), f"secret {shown.delivery_id}")
                case FrameReceived(frame=frame):
                    log.warning("ignoring a %r frame from the server", frame.kind)
                case ProtocolViolation(error=error):
                    log.warning("server sent a bad frame (%s): %s", error.code, error.message)
                case PeerError(error=error):
                    log.warning("server reported %s: %s", error.code, error.message)
                case Closed(code=code, reason=reason):
                    return _Ended(code, reason)
                case _:
                    log.debug("ignoring %r", event)
        return None

    async def _ask(self, question: AskUser, ws: ClientConnection, conn: AgentConnection) -> None:
        assert self._answers is not None
        answer = await self._answers(question)
        if answer is None or conn.state is not State.OPEN:
            return  # the server asks again after a reconnect if it still waits
        conn.send(UserAnswer(question_id=question.question_id, answer=answer))
        with contextlib.suppress(ConnectionClosed):
            await self._flush(ws, conn)

    async def _show_secret(self, frame: ShowSecret, ws: ClientConnection, conn: AgentConnection) -> None:
        shown = await self._secrets(frame) if self._secrets is not None else False
        if conn.state is not State.OPEN:
            return  # the server falls back to a view-once link when it hears nothing
        conn.send(SecretShown(delivery_id=frame.delivery_id, shown=shown))
        with contextlib.suppress(ConnectionClosed):
            await self._flush(ws, conn)

    async def _answer(self, call: ToolCall, ws: ClientConnection, conn: AgentConnection) -> None:
        # arguments are not logged: later tools (password resets) carry secrets in them
        log.info("call %s: %s", call.call_id, call.tool)
        result = await self._executor.execute(call)
        if conn.state is not State.OPEN:
            log.info("call %s finished after its connection closed; kept for replay", call.call_id)
            return  # recorded in the journal: the server gets it when it resends the call_id
        conn.result(result)
        with contextlib.suppress(ConnectionClosed):
            await self._flush(ws, conn)

    async def _flush(self, ws: ClientConnection, conn: AgentConnection) -> None:
        # one writer at a time, so frames leave in the order the protocol queued them
        async with self._send_lock:
            for text in conn.data_to_send():
                await ws.send(text)

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Start ``work`` beside the connection; tool calls outlive a reconnect, not :meth:`stop`."""
        task = asyncio.create_task(work, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_log_crash)


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("%s failed: %s", task.get_name(), exc, exc_info=exc)


def _closed(exc: ConnectionClosed) -> _Ended:
    frame = exc.rcvd or exc.sent
    if frame is None:
        return _Ended(None, "connection lost without a close frame")
    return _Ended(frame.code, f"closed with code {frame.code}" + (f": {frame.reason}" if frame.reason else ""))


def _fatal_advice(ended: _Ended, state: AgentState) -> str:
    if ended.code == CLOSE_UNAUTHORIZED:
        return (
            f"the server refused agent {state.agent_id}'s credential ({ended.reason}): it was revoked or "
            "this agent was removed. Enroll again: run `mspclaw agent --server URL --enroll CODE` with a "
            "code from `mspclaw enroll CLIENT`."
        )
    return (
        f"the server does not speak this agent's protocol version {PROTOCOL_VERSION} ({ended.reason}). "
        f"Upgrade the agent (now {mspclaw.__version__}) or the server so both match."
    )


def _show_notification(text: str) -> None:
    """Show ``text`` on the desktop with ``notify-send`` when there is one; any failure is ignored."""
    notify = shutil.which("notify-send")
    if notify is None:
        return
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run([notify, "MSPclaw", text], timeout=NOTIFY_TIMEOUT_S, check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def desktop_answer(question: AskUser) -> str | None:
    """Ask with a dialog on this desktop (zenity on Linux, osascript on macOS, an InputBox on Windows);
    ``None`` without one (no desktop session, e.g. a service in session 0, or the dialog dismissed)."""
    return await asyncio.to_thread(_dialog, question.text)


def _dialog(text: str) -> str | None:
    import os
    import sys

    if sys.platform == "win32" and (powershell := shutil.which("powershell")):
        quoted = text.replace("'", "''")
        argv = [powershell, "-NoProfile", "-NonInteractive", "-Command",
                "Add-Type -AssemblyName Microsoft.VisualBasic; "
                f"[Microsoft.VisualBasic.Interaction]::InputBox('{quoted}', 'MSPclaw')"]
    elif sys.platform == "darwin" and (osascript := shutil.which("osascript")):
        script = ('display dialog ' + _applescript_quote(text) + ' default answer "" with title "MSPclaw"'
                  ' giving up after 600')
        argv = [osascript, "-e", script, "-e", "text returned of result"]
    elif (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) and (zenity := shutil.which("zenity")):
        argv = [zenity, "--entry", "--title=MSPclaw", f"--text={text}", "--timeout=600"]
    else:
        return None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=610, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    answer = done.stdout.strip()
    return answer if done.returncode == 0 and answer else None


def _applescript_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
