"""The hub of live agent connections and ``call_tool``.

Each connection is a thin asyncio pump (:meth:`Hub.serve`) over the sans-I/O
:class:`~mspclaw.protocol.connection.ServerConnection`. Calls are correlated by
``call_id``; the caller awaits a future that the pump resolves.

Client isolation is structural: the only way to call a tool is through
:meth:`Hub.for_client`, whose :class:`ClientDispatcher` can reach only links whose
authenticated ``client_id`` is its own. An id of another client's agent is, to it, an
offline agent.

With several server replicas (``MSPCLAW_REDIS_URL``), a :class:`RemoteAgents` (``dispatch/cluster.py``) is
told of every agent this hub attaches and detaches, and a call for an agent this hub does not hold goes to
it; a call for a local agent never touches it. The same holds for every other message bound for an agent
(a question to its user, a secret to show, the final reply) and for "is this agent online?"
(:meth:`Hub.online_anywhere`): the local answer first, the cluster only for an agent held elsewhere.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import secrets
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Protocol

from mspclaw.errors import (
    AgentOffline,
    MSPClawError,
    ProtocolError,
    ToolFailed,
    ToolRefused,
    ToolTimeout,
    UnknownTool,
)
from mspclaw.observability import logs
from mspclaw.observability.metrics import observe_tool_call
from mspclaw.protocol.connection import (
    CLOSE_REPLACED,
    CLOSE_UNAUTHORIZED,
    SILENCE_FACTOR,
    CallCompleted,
    CallExpired,
    Closed,
    FrameReceived,
    HelloReceived,
    PeerError,
    PendingCall,
    ProtocolViolation,
    ServerConnection,
    State,
)
from mspclaw.protocol.frames import (
    Approval,
    AskUser,
    Error,
    Hello,
    NotifyUser,
    Secret,
    SecretShown,
    ShowSecret,
    ToolResult,
    UserAnswer,
)
from mspclaw.protocol.signing import Signer, encode_call

log = logging.getLogger(__name__)

TICK_SLICE = 500
"""Links ticked between two yields to the event loop."""

SWEEP_PERIOD = 5.0
"""Every link's heartbeat is checked at least this often (more often when the interval is shorter)."""

_OUTCOMES: dict[type[MSPClawError], str] = {ToolRefused: "refused", ToolTimeout: "timeout",
                                            AgentOffline: "offline", UnknownTool: "refused"}
"""The ``outcome`` label of a tool call's latency, by the error that ended it (else ``failed``; ``ok`` for a
result, ``cancelled`` for a caller that stopped waiting)."""

DELIVERY_TIMEOUT_S = 10.0
"""How long a question or reply for an agent on another replica may take to reach it."""

REFUSALS = frozenset({"bad_signature", "approval_required", "invalid_args", "unknown_tool", "timeout"})
"""Agent error codes that mean the tool never ran."""


class TransportClosed(Exception):
    """Raised by a :class:`Transport` when the peer has gone."""


class Transport(Protocol):
    """One WebSocket, as the hub needs it: ``api.agent_listener.AgentSocket`` in the server; tests may adapt others.

    A transport may also have ``push(handler) -> bool`` (:class:`PushTransport`): then the hub takes
    tool results as they are read instead of through :meth:`recv` (see :meth:`Hub.serve`).
    """

    async def send(self, text: str) -> None: ...
    async def recv(self) -> str | bytes: ...
    async def close(self, code: int, reason: str) -> None: ...


PushHandler = Callable[[str], bool]
"""Offered each received text message as it is read; ``True`` when it took it (then :meth:`Transport.recv`
does not return it), ``False`` to leave it to ``recv``."""


class PushTransport(Transport, Protocol):
    def push(self, handler: PushHandler | None) -> bool:
        """Offer received messages to ``handler`` before ``recv`` (``None``: stop); ``False`` if unsupported."""
        ...


@dataclass(frozen=True, slots=True)
class AgentIdentity:
    """What authentication established before the upgrade: never taken from the agent's hello."""

    agent_id: str
    client_id: str
    role: str
    signing_key: bytes


class HubObserver(Protocol):
    """Hooks for persistence and audit, supplied by the composition root."""

    def connected(self, identity: AgentIdentity, hello: Hello) -> None: ...
    def disconnected(self, identity: AgentIdentity, reason: str) -> None: ...
    def violation(self, identity: AgentIdentity, error: ProtocolError) -> None: ...
    def frame(self, identity: AgentIdentity, frame: Any) -> None: ...


class RemoteAgents(Protocol):
    """The agents other server replicas hold (:class:`mspclaw.dispatch.cluster.Cluster`): told of each agent
    this hub attaches and detaches, asked to call an agent this hub does not hold."""

    def attached(self, identity: AgentIdentity) -> None: ...
    def detached(self, identity: AgentIdentity) -> None: ...
    async def call(self, client_id: str, agent_id: str, tool: str, args: dict[str, Any], *, timeout: float,
                   call_id: str, approval: Approval | None = None) -> ToolResult: ...
    async def online(self, client_id: str, agent_ids: Collection[str]) -> frozenset[str]:
        """Which of the client's ``agent_ids`` another replica holds now (one presence lookup)."""
        ...
    async def deliver(self, client_id: str, agent_id: str, frame: AskUser | NotifyUser | ShowSecret, *,
                      timeout: float) -> bool:
        """Hand ``frame`` to the agent another replica holds; for ``show_secret``, whether the device showed it."""
        ...
    def answer_elsewhere(self, identity: AgentIdentity, frame: UserAnswer) -> bool:
        """``True`` when the question was asked from another replica (the answer is sent back to it)."""
        ...
    async def disconnect(self, client_id: str, agent_id: str, reason: str) -> None:
        """Close the agent's connection on whichever replica holds it, and its presence at once."""
        ...


class NullObserver:
    def connected(self, identity: AgentIdentity, hello: Hello) -> None:
        pass

    def disconnected(self, identity: AgentIdentity, reason: str) -> None:
        pass

    def violation(self, identity: AgentIdentity, error: ProtocolError) -> None:
        pass

    def frame(self, identity: AgentIdentity, frame: Any) -> None:
        pass


@dataclass(eq=False, slots=True)
class AgentLink:
    identity: AgentIdentity
    hello: Hello
    conn: ServerConnection
    transport: Transport
    tools: frozenset[str]
    signer: Signer
    waiters: dict[str, asyncio.Future[ToolResult]] = field(default_factory=dict)
    clock: Callable[[], float] = time.time
    shown: dict[str, asyncio.Future[bool]] = field(default_factory=dict)
    """Secrets handed to this device to show, by delivery id, until it says whether it could."""

    def take(self, data: str) -> bool:
        """The push handler: a tool result for a pending call resolves its caller here and now.

        Anything else is left (``False``) to the connection's pump, which gets it from ``recv`` in order.
        """
        done = self.conn.take_result(data, self.clock())
        if done is None:
            return False
        fut = self.waiters.get(done.call.call_id)
        if fut is not None and not fut.done():
            fut.set_result(done.result)
        return True

    async def flush(self) -> None:
        for text in self.conn.data_to_send():
            await self.transport.send(text)

    @property
    def agent_version(self) -> str:
        """The version the agent said it runs (its hello; empty from an agent too old to say)."""
        return self.hello.agent_version


_call_prefix = ""
_call_numbers = itertools.count(1)


def _new_call_prefix() -> None:
    global _call_prefix, _call_numbers
    _call_prefix, _call_numbers = "call_" + os.urandom(8).hex() + "_", itertools.count(1)


_new_call_prefix()
os.register_at_fork(after_in_child=_new_call_prefix)


def new_call_id() -> str:
    """A call id unique across processes and restarts: 64 random bits drawn once per process, then a counter.

    It is the agent journal's idempotency key, so it must never repeat; a counter under a per-process
    random prefix (drawn again in a forked child) gives that without a system call per tool call.
    """
    return f"{_call_prefix}{next(_call_numbers):x}"


class Hub:
    def __init__(
        self,
        *,
        heartbeat_interval: float = 30.0,
        observer: HubObserver | None = None,
        clock: Callable[[], float] = time.time,
        cluster: RemoteAgents | None = None,
    ) -> None:
        self.heartbeat_interval = heartbeat_interval
        self.observer: HubObserver = observer or NullObserver()
        self.cluster = cluster
        """Other replicas' agents (``MSPCLAW_REDIS_URL``); ``None``: this process holds the whole fleet."""
        self._clock = clock
        self._links: dict[str, AgentLink] = {}
        self._by_client: dict[str, dict[str, AgentLink]] = {}
        """The same links by client: a client's agents without a scan of the whole fleet."""
        self._pending: dict[str, tuple[ServerConnection, Transport]] = {}
        self._sweep: list[AgentLink] = []  # links still to check in this heartbeat sweep
        self._share = 1
        self._closing: set[asyncio.Future[None]] = set()

    # -- queries --------------------------------------------------------------------------------
    def is_online(self, agent_id: str) -> bool:
        """Whether *this* replica holds the agent (see :meth:`online_anywhere` for the whole fleet)."""
        return agent_id in self._links

    async def online_anywhere(self, agent_id: str, client_id: str) -> bool:
        """Whether the client's agent is connected to this replica or, with a cluster, to any other.

        A local agent costs a dictionary lookup; another replica's one Redis ``GET`` of its presence, which
        lapses within the presence TTL of a disconnect and at once on a revocation. Another client's agent is
        offline for the caller.
        """
        link = self._links.get(agent_id)
        if link is not None:
            return link.identity.client_id == client_id
        if self.cluster is None:
            return False
        return agent_id in await self.cluster.online(client_id, (agent_id,))

    async def disconnect(self, agent_id: str, client_id: str, reason: str) -> None:
        """Close the agent's connection wherever it is (a revoked credential): here, or on the replica that
        holds it; its presence is marked revoked at once, so no replica routes to it meanwhile."""
        link = self._links.get(agent_id)
        if link is not None and link.identity.client_id == client_id:
            await _quiet_close(link.transport, CLOSE_UNAUTHORIZED, reason)
        if self.cluster is not None:
            await self.cluster.disconnect(client_id, agent_id, reason)

    def link(self, agent_id: str) -> AgentLink | None:
        return self._links.get(agent_id)

    def online_count(self) -> int:
        return len(self._links)

    def connected(self) -> list[AgentLink]:
        """Every live link (a snapshot): who is connected, with its role and agent version."""
        return list(self._links.values())

    def for_client(self, client_id: str) -> ClientDispatcher:
        return ClientDispatcher(self, client_id)

    # -- one connection -------------------------------------------------------------------------
    async def serve(self, identity: AgentIdentity, transport: Transport) -> None:
        """Pump one authenticated agent connection until it closes.

        Once the agent has said ``hello``, a transport that can push (:class:`PushTransport`) hands tool
        results to :meth:`AgentLink.take` as they are read, which resolves the waiting caller at once;
        this task then only wakes for the rest (pings, answers, bad frames, the close).
        """
        conn = ServerConnection(now=self._clock(), heartbeat_interval=self.heartbeat_interval)
        link: AgentLink | None = None
        push: Callable[[PushHandler | None], bool] | None = getattr(transport, "push", None)
        pushing = False
        key = f"{identity.agent_id}:{secrets.token_hex(4)}"
        logs.bind(agent_id=identity.agent_id, client_id=identity.client_id)  # this connection's task only
        self._pending[key] = (conn, transport)
        reason = "closed by agent"
        try:
            while conn.state is not State.CLOSED:
                try:
                    data = await transport.recv()
                except TransportClosed:
                    break
                for event in conn.receive(data, self._clock()):
                    match event:
                        case CallCompleted(result=result):  # the hot path: one per tool call
                            fut = link.waiters.get(result.call_id) if link else None
                            if fut is not None and not fut.done():
                                fut.set_result(result)
                        case HelloReceived(hello=hello):
                            if hello.agent_id != identity.agent_id or hello.client_id != identity.client_id:
                                conn.send(Error(code="unauthorized",
                                                message="hello names another agent or client than the credential"))
                                await _flush(conn, transport)
                                await transport.close(CLOSE_UNAUTHORIZED, "identity mismatch")
                                reason = "identity mismatch"
                                return
                            link = AgentLink(identity, hello, conn, transport, frozenset(hello.tools),
                                             Signer(identity.signing_key), clock=self._clock)
                            self._attach(link)
                            self.observer.connected(identity, hello)
                            log.info("agent connected: %s (%s, %s %s, version %s)", hello.hostname[:100],
                                     hello.role, hello.os, hello.os_version[:50], hello.agent_version[:50])
                            pushing = push is not None and push(link.take)
                        case CallExpired():
                            pass  # the waiting caller times out on its own clock
                        case ProtocolViolation(error=error):
                            self.observer.violation(identity, error)
                        case FrameReceived(frame=SecretShown(delivery_id=delivery, shown=shown)):
                            waiter = link.shown.get(delivery) if link else None
                            if waiter is not None and not waiter.done():
                                waiter.set_result(shown)
                        case FrameReceived(frame=UserAnswer() as answer) if (
                                self.cluster is not None and self.cluster.answer_elsewhere(identity, answer)):
                            pass  # asked from another replica: sent back there, and settled there
                        case FrameReceived(frame=frame):
                            self.observer.frame(identity, frame)
                        case PeerError(error=err):
                            log.info("agent %s reported %s: %s", identity.agent_id, err.code, err.message)
                        case Closed(code=code, reason=why):
                            reason = why
                            await _flush(conn, transport)
                            await transport.close(code, why)
                            return
                for text in conn.data_to_send():  # pongs, welcome, error frames: usually nothing
                    await transport.send(text)
        except TransportClosed:
            reason = "connection lost"
        finally:
            if pushing and push is not None:
                push(None)
            self._pending.pop(key, None)
            if link is not None:
                self._detach(link, reason)
                log.info("agent disconnected: %s", reason[:200])

    def _attach(self, link: AgentLink) -> None:
        old = self._links.get(link.identity.agent_id)
        self._links[link.identity.agent_id] = link
        self._by_client.setdefault(link.identity.client_id, {})[link.identity.agent_id] = link
        if self.cluster is not None:
            self.cluster.attached(link.identity)
        if old is not None:
            _fail_waiters(old, "agent reconnected on a new connection")
            old.conn.close(CLOSE_REPLACED, "replaced by a newer connection")
            task = asyncio.ensure_future(_quiet_close(old.transport, CLOSE_REPLACED, "replaced by a newer connection"))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def _detach(self, link: AgentLink, reason: str) -> None:
        if self._links.get(link.identity.agent_id) is link:
            del self._links[link.identity.agent_id]
            same_client = self._by_client.get(link.identity.client_id, {})
            same_client.pop(link.identity.agent_id, None)
            if not same_client:
                self._by_client.pop(link.identity.client_id, None)
            if self.cluster is not None:
                self.cluster.detached(link.identity)
            self.observer.disconnected(link.identity, reason)
        _fail_waiters(link, reason)

    @property
    def tick_interval(self) -> float:
        """How often :meth:`run_ticker` ticks: a second, or a quarter heartbeat when that is shorter."""
        return min(1.0, self.heartbeat_interval / 4)

    async def tick(self) -> None:
        """One step of heartbeat supervision.

        A step checks a share of the links, so that each is checked once per sweep of
        ``min(heartbeat interval, SWEEP_PERIOD)`` seconds: a peer is only closed after three silent
        intervals, so checking it more often buys nothing, and a whole 10,000-link sweep at once
        holds up every tool call behind it. Connections that never said ``hello`` are checked at
        every step.
        """
        now = self._clock()
        if not self._sweep:
            self._sweep = list(self._links.values())
            steps = max(1, round(min(self.heartbeat_interval, SWEEP_PERIOD) / self.tick_interval))
            self._share = -(-len(self._sweep) // steps)
        cut = max(len(self._sweep) - self._share, 0)
        batch, self._sweep = self._sweep[cut:], self._sweep[:cut]
        for count, link in enumerate(batch, 1):
            for event in link.conn.tick(now):
                if isinstance(event, Closed):
                    await _quiet_close(link.transport, event.code, event.reason)
            if count % TICK_SLICE == 0:
                await asyncio.sleep(0)  # let frames through meanwhile
        for conn, transport in list(self._pending.values()):
            if conn.state is State.AWAITING_HELLO and now - conn.last_seen > SILENCE_FACTOR * self.heartbeat_interval:
                conn.close(CLOSE_UNAUTHORIZED, "no hello")
                await _quiet_close(transport, CLOSE_UNAUTHORIZED, "no hello")

    async def run_ticker(self, interval: float | None = None) -> None:
        while True:
            await asyncio.sleep(interval or self.tick_interval)
            await self.tick()

    # -- calls ----------------------------------------------------------------------------------
    async def _call(self, link: AgentLink, tool: str, args: dict[str, Any], *, timeout: float,
                    call_id: str, approval: Approval | None) -> ToolResult:
        if tool not in link.tools:
            raise UnknownTool(f"agent {link.hello.hostname} does not offer {tool!r}")
        deadline = self._clock() + timeout
        text = encode_call(link.signer, call_id=call_id, tool=tool, args=args, deadline=deadline,
                           approval=approval)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[ToolResult] = loop.create_future()
        link.waiters[call_id] = fut
        timer: asyncio.TimerHandle | None = None
        try:
            link.conn.call_encoded(PendingCall(call_id, tool, deadline), text)
            for text in link.conn.data_to_send():
                await link.transport.send(text)
            # A timer on the future, not asyncio.wait_for: same outcome, a fraction of the cost per call.
            timer = loop.call_later(timeout, _expire, fut)
            return await fut
        except TimeoutError:
            link.conn.cancel(call_id)
            raise ToolTimeout(f"{tool} on {link.hello.hostname}: no result within {timeout:g} s") from None
        except TransportClosed:
            raise AgentOffline(f"connection to {link.hello.hostname} dropped while sending {tool}") from None
        finally:
            if timer is not None:
                timer.cancel()
            link.waiters.pop(call_id, None)


class ClientDispatcher:
    """Tool calls for one client's agents. Built only by :meth:`Hub.for_client`."""

    def __init__(self, hub: Hub, client_id: str) -> None:
        self._hub = hub
        self.client_id = client_id

    def online(self) -> list[AgentLink]:
        """The client's agents connected to *this* replica (:meth:`reachable` asks the whole fleet)."""
        return list(self._hub._by_client.get(self.client_id, {}).values())

    async def reachable(self, agent_ids: Collection[str]) -> frozenset[str]:
        """Which of ``agent_ids`` (the client's) are connected here or to another replica: one Redis ``MGET``
        for those not held here, none when all are."""
        local = self._hub._by_client.get(self.client_id, {})
        here = frozenset(a for a in agent_ids if a in local)
        rest = [a for a in agent_ids if a not in local]
        if not rest or self._hub.cluster is None:
            return here
        return here | await self._hub.cluster.online(self.client_id, rest)

    def _local(self, agent_id: str) -> AgentLink | None:
        link = self._hub._links.get(agent_id)
        return link if link is not None and link.identity.client_id == self.client_id else None

    async def _deliver_elsewhere(self, agent_id: str, frame: AskUser | NotifyUser | ShowSecret, *,
                                 timeout: float) -> bool:
        """A message for an agent this hub does not hold: handed to the replica that does, if any."""
        if self._hub.cluster is None:
            raise AgentOffline(f"agent {agent_id} is not connected")
        return await self._hub.cluster.deliver(self.client_id, agent_id, frame, timeout=timeout)

    async def call_tool(self, agent_id: str, tool: str, args: dict[str, Any], *, timeout: float,
                        call_id: str | None = None, approval: Approval | None = None,
                        reconnect_grace: float = 0.0) -> ToolResult:
        """Run ``tool`` on the agent and return its successful result.

        Raises :class:`AgentOffline`, :class:`ToolTimeout`, :class:`ToolRefused` (the agent
        would not run it) or :class:`ToolFailed` (it ran and failed). With
        ``reconnect_grace``, a call whose connection drops is sent again with the same
        ``call_id`` once the agent is back, so the agent's journal answers it instead of
        running it twice.
        """
        call_id = call_id or new_call_id()
        started, outcome = time.perf_counter(), "failed"
        try:
            link = self._hub._links.get(agent_id)
            if link is not None and link.identity.client_id == self.client_id:
                try:  # the hot path: the agent is connected
                    result = await self._hub._call(link, tool, args, timeout=timeout, call_id=call_id,
                                                   approval=approval)
                except AgentOffline:
                    if reconnect_grace <= 0:
                        raise
                    result = await self._call_after_reconnect(agent_id, tool, args, timeout, call_id, approval,
                                                              reconnect_grace)
            elif reconnect_grace > 0:
                result = await self._call_after_reconnect(agent_id, tool, args, timeout, call_id, approval,
                                                          reconnect_grace)
            else:
                result = await self._elsewhere(agent_id, tool, args, timeout, call_id, approval)
            if result.ok:
                outcome = "ok"
                return result
            err = result.error
            code, message = (err.code, err.message) if err else ("tool_failed", "no error detail")
            if code in REFUSALS:
                raise ToolRefused(f"agent refused {tool}: {message}", code)
            raise ToolFailed(f"{tool} failed: {message}")
        except MSPClawError as exc:
            outcome = _OUTCOMES.get(type(exc), "failed")
            raise
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            observe_tool_call(tool[:64], outcome, time.perf_counter() - started)

    async def _call_after_reconnect(self, agent_id: str, tool: str, args: dict[str, Any], timeout: float,
                                    call_id: str, approval: Approval | None, grace: float) -> ToolResult:
        """Send the call (again, with the same ``call_id``) once the agent is back, for up to ``grace`` s."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + grace
        while True:
            try:
                link = self._hub._links.get(agent_id)
                if link is not None and link.identity.client_id == self.client_id:
                    return await self._hub._call(link, tool, args, timeout=timeout, call_id=call_id,
                                                 approval=approval)
                return await self._elsewhere(agent_id, tool, args, timeout, call_id, approval)
            except AgentOffline:
                if loop.time() >= give_up:
                    raise
                await asyncio.sleep(0.2)

    async def _elsewhere(self, agent_id: str, tool: str, args: dict[str, Any], timeout: float, call_id: str,
                         approval: Approval | None) -> ToolResult:
        """The call for an agent this hub does not hold: forwarded to the replica that does, if any."""
        if self._hub.cluster is None:
            raise AgentOffline(f"agent {agent_id} is not connected")
        return await self._hub.cluster.call(self.client_id, agent_id, tool, args, timeout=timeout, call_id=call_id,
                                            approval=approval)

    async def ask_user(self, agent_id: str, question_id: str, text: str, choices: list[str] | None) -> None:
        """Put a question to the user of the agent's device; the answer comes back as a ``user_answer``
        (to the observer of the replica that asked, when another replica holds the agent)."""
        link = self._local(agent_id)
        if link is None:
            await self._deliver_elsewhere(agent_id, AskUser(question_id=question_id, text=text, choices=choices),
                                          timeout=DELIVERY_TIMEOUT_S)
            return
        link.conn.send(AskUser(question_id=question_id, text=text, choices=choices))
        try:
            await link.flush()
        except TransportClosed:
            raise AgentOffline(f"connection to {link.hello.hostname} dropped") from None

    async def show_secret(self, agent_id: str, text: str, secret: Secret, *, timeout: float) -> bool:
        """Show ``secret`` to the user of the agent's device; ``True`` once the device says it did.

        ``False`` when the device could not (no desktop session, dialog dismissed unseen) or did not
        answer within ``timeout``; :class:`AgentOffline` when it is not connected. The secret passes
        through this process's memory only: nothing here stores or logs it (held by another replica, it
        crosses the replicas' private Redis in one pub/sub message, which Redis does not store).
        """
        delivery = "sd_" + secrets.token_hex(12)
        link = self._local(agent_id)
        if link is None:
            return await self._deliver_elsewhere(
                agent_id, ShowSecret(delivery_id=delivery, text=text, secret=secret), timeout=timeout)
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        link.shown[delivery] = waiter
        try:
            link.conn.send(ShowSecret(delivery_id=delivery, text=text, secret=secret))
            try:
                await link.flush()
            except TransportClosed:
                raise AgentOffline(f"connection to {link.hello.hostname} dropped") from None
            try:
                return await asyncio.wait_for(waiter, timeout)
            except TimeoutError:
                return False
        finally:
            link.shown.pop(delivery, None)

    async def notify_user(self, agent_id: str, text: str) -> None:
        """Show the user-facing reply on the agent's device."""
        link = self._local(agent_id)
        if link is None:
            await self._deliver_elsewhere(agent_id, NotifyUser(text=text), timeout=DELIVERY_TIMEOUT_S)
            return
        link.conn.send(NotifyUser(text=text))
        try:
            await link.flush()
        except TransportClosed:
            raise AgentOffline(f"connection to {link.hello.hostname} dropped") from None


async def _flush(conn: ServerConnection, transport: Transport) -> None:
    for text in conn.data_to_send():
        await transport.send(text)


async def _quiet_close(transport: Transport, code: int, reason: str) -> None:
    try:
        await transport.close(code, reason)
    except (TransportClosed, RuntimeError, OSError):
        pass


def _expire(fut: asyncio.Future[ToolResult]) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError())


def _fail_waiters(link: AgentLink, reason: str) -> None:
    for fut in link.waiters.values():
        if not fut.done():
            fut.set_exception(AgentOffline(f"{link.hello.hostname}: {reason}"))
    for shown in link.shown.values():
        if not shown.done():
            shown.set_result(False)
