"""Replicas share their agents through Redis: who holds which agent, and tool calls forwarded to the holder.

Several server replicas behind one load balancer each hold some of the fleet's WebSockets. A
:class:`Cluster` (one per replica, on ``redis.asyncio``) makes the fleet look whole to every replica:

* **Presence.** ``{prefix}agent:{agent_id}`` names the replica that holds the agent (and the agent's
  client), with a TTL that the holder's heartbeat renews; ``{prefix}replica:{replica_id}`` says the
  replica itself is alive. A replica that dies stops renewing both, so within :attr:`Cluster.ttl_s`
  seconds its agents are offline everywhere. The newest connection wins: an agent that reconnects to
  another replica is recorded there at once, and the old holder's heartbeat never takes it back.
* **Relay.** A call for an agent that is not held locally is published, with its ``call_id``, on the
  holder's channel ``{prefix}replica:{replica_id}:in``; the holder runs it through its own hub (client
  scope checked again there) and publishes the result or the error back on the caller's channel. The
  ``call_id`` is the same on both replicas, so a retry after a lost message reaches the agent's journal
  as the same call and a destructive tool runs once. With a :class:`~mspclaw.dispatch.relay.ReplicaRelay`
  (``Cluster(relay=...)``), calls and results go over a direct, authenticated connection between the two
  replicas instead (two process hops instead of four); its address is ``{prefix}replica:{replica_id}:relay``,
  and pub/sub stays the fallback for a replica that has none or cannot be reached.
* **Messages to an agent's user** (a question, a secret to show, the final reply) go the same way to the
  holder, which hands them to the device and says whether it could (for a secret: whether the device showed
  it). The user's answer to a question asked from another replica is sent back to the replica that asked,
  whose observer settles it as if the device were its own (the holder settles it itself when the asker
  is gone). :meth:`Cluster.online` answers "is it connected anywhere" with one ``MGET``;
  :meth:`Cluster.disconnect` closes a revoked agent's connection on its holder and marks its presence
  revoked at once (a holder's heartbeat does not renew a record that is not its own).

Pub/sub carries calls and results, never state: the database row of a session stays the source of
truth, and a lost message ends as a timeout or :class:`~mspclaw.errors.AgentOffline` that the caller's
own retry (``reconnect_grace``) handles. Errors are those of a local call: an agent held nowhere, a
holder that stopped answering, or Redis unreachable, are :class:`~mspclaw.errors.AgentOffline`; no
result in time is :class:`~mspclaw.errors.ToolTimeout`; the agent's refusal or failure is raised as
the holder saw it. A replica that loses Redis keeps serving its own agents; forwarded calls fail at
once instead of hanging (:attr:`Cluster.healthy`, :attr:`Cluster.problem`), and everything is
re-established by the next heartbeat after Redis is back.

Redis must be private to the replicas (password, TLS with ``rediss://``): a message on a replica's
channel is a tool call that replica signs. Destructive tools still need the server's Ed25519 approval,
which Redis cannot forge.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Collection, Coroutine
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from mspclaw.dispatch.hub import REFUSALS, AgentIdentity, Hub, Transport, TransportClosed
from mspclaw.dispatch.relay import PeerLink, RelayUnavailable, ReplicaRelay, Send
from mspclaw.errors import (
    AgentOffline,
    ConfigError,
    MSPClawError,
    ToolFailed,
    ToolRefused,
    ToolTimeout,
    UnknownTool,
)
from mspclaw.observability.metrics import observe_forwarded, relayed_call, watch_cluster
from mspclaw.protocol.connection import CLOSE_UNAUTHORIZED
from mspclaw.protocol.frames import (
    MAX_FRAME_BYTES,
    Approval,
    AskUser,
    NotifyUser,
    ShowSecret,
    ToolResult,
    UserAnswer,
)

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 2 * MAX_FRAME_BYTES
"""A relayed call or result larger than this is dropped (a tool call frame is at most ``MAX_FRAME_BYTES``)."""

REPLY_MARGIN_S = 2.0
"""How much longer than the call's own timeout the caller waits for the holder's answer: the holder times
the call out itself and says so, so the caller's timer only fires when that answer was lost."""

MAX_INBOUND = 10_000
"""Forwarded calls a replica runs at once for other replicas; past that it answers that it is busy."""

REFRESH_BATCH = 500
"""Agents whose presence one heartbeat script call renews."""

MAX_ASKED = 10_000
"""Questions from other replicas whose answers a holder remembers to send back (the oldest are forgotten first)."""

ASKED_TTL_S = 86_400.0
"""How long a holder sends an answer back to the replica that asked (longer than any question's deadline)."""

REVOKED = "-"
"""The replica named by the presence record of a revoked agent until it expires: no replica's heartbeat renews
it, and every replica reads the agent as offline."""

# Renew each agent this replica holds, unless another replica has taken it meanwhile (the newest connection
# wins; an old holder that has not noticed yet must not take it back). KEYS: agent keys; ARGV: ttl ms, values.
_RENEW = """
local mine = 0
for i, key in ipairs(KEYS) do
  local value = ARGV[i + 1]
  local now = redis.call('GET', key)
  if now == false or now == value then
    redis.call('SET', key, value, 'PX', ARGV[1])
    mine = mine + 1
  end
end
return mine
"""

# Forget an agent only if this replica still holds it. KEYS: the agent key; ARGV: this replica's value.
_FORGET = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Call(_Message):
    kind: Literal["call"] = "call"
    call_id: str = Field(min_length=1, max_length=128)
    client_id: str = Field(min_length=1, max_length=128)
    agent_id: str = Field(min_length=1, max_length=128)
    tool: str = Field(min_length=1, max_length=128)
    args: dict[str, Any]
    timeout: float = Field(gt=0, le=86400)
    approval: Approval | None = None
    reply_to: str = Field(min_length=1, max_length=256)


_ErrorKind = Literal["offline", "timeout", "unknown_tool", "refused", "failed"]


class _Reply(_Message):
    kind: Literal["reply"] = "reply"
    call_id: str = Field(min_length=1, max_length=128)
    result: ToolResult | None = None
    error: _ErrorKind | None = None
    message: str = ""
    refusal_code: str = ""


class _Deliver(_Message):
    """A message for the user of an agent the receiving replica holds."""

    kind: Literal["deliver"] = "deliver"
    delivery_id: str = Field(min_length=1, max_length=128)
    client_id: str = Field(min_length=1, max_length=128)
    agent_id: str = Field(min_length=1, max_length=128)
    frame: Annotated[AskUser | NotifyUser | ShowSecret, Field(discriminator="kind")]
    timeout: float = Field(gt=0, le=86400)
    reply_to: str = Field(min_length=1, max_length=256)


class _Delivered(_Message):
    """What became of a :class:`_Deliver`: handed to the device (``ok``: for a secret, shown), or ``offline``."""

    kind: Literal["delivered"] = "delivered"
    delivery_id: str = Field(min_length=1, max_length=128)
    ok: bool = False
    offline: str = ""


class _Answered(_Message):
    """A user's answer, sent back by the holder to the replica that asked the question."""

    kind: Literal["answered"] = "answered"
    client_id: str = Field(min_length=1, max_length=128)
    agent_id: str = Field(min_length=1, max_length=128)
    frame: UserAnswer


class _Drop(_Message):
    """Close the agent's connection (its credential was revoked)."""

    kind: Literal["drop"] = "drop"
    client_id: str = Field(min_length=1, max_length=128)
    agent_id: str = Field(min_length=1, max_length=128)
    reason: str = Field(max_length=200)


_Relayed = _Call | _Reply | _Deliver | _Delivered | _Answered | _Drop
_RELAYED: TypeAdapter[_Relayed] = TypeAdapter(Annotated[_Relayed, Field(discriminator="kind")])

_ERROR_KINDS: list[tuple[type[MSPClawError], _ErrorKind]] = [
    (AgentOffline, "offline"), (ToolTimeout, "timeout"), (UnknownTool, "unknown_tool"), (ToolRefused, "refused")]


def _outcome(reply: _Reply) -> str:
    """The ``outcome`` label of a forwarded call's reply, as the hub labels a local call's."""
    if reply.error is not None:
        return "refused" if reply.error == "unknown_tool" else reply.error
    if reply.result is not None and reply.result.ok:
        return "ok"
    error = reply.result.error if reply.result is not None else None
    return "refused" if error is not None and error.code in REFUSALS else "failed"


def _raise(reply: _Reply) -> None:
    """Raise on the caller's side what the holder's call raised (the same class and message)."""
    match reply.error:
        case "offline":
            raise AgentOffline(reply.message)
        case "timeout":
            raise ToolTimeout(reply.message)
        case "unknown_tool":
            raise UnknownTool(reply.message)
        case "refused":
            raise ToolRefused(reply.message, reply.refusal_code)
        case "failed":
            raise ToolFailed(reply.message)
        case None:
            pass


class _StaleHolder(AgentOffline):
    """The cached holder of an agent turned out wrong before the call reached any agent: look it up again."""


class _Unheard(AgentOffline):
    """The holder's channel had no subscriber: the call reached no replica."""


def new_replica_id() -> str:
    """A replica id unique among the replicas sharing one Redis: the host name and 48 random bits."""
    host = "".join(c for c in os.uname().nodename if c.isalnum() or c in "-.")[:40] or "replica"
    return f"{host}-{secrets.token_hex(6)}"


class Cluster:
    """This replica's place among the replicas sharing ``redis``: presence of its agents and the relay.

    Give it to :class:`~mspclaw.dispatch.hub.Hub` (``Hub(cluster=...)``), which tells it of each agent it
    attaches and detaches and asks it to :meth:`call` an agent it does not hold; :meth:`run` (a background
    task for the replica's lifetime) keeps the heartbeat and the inbound channel going.
    """

    def __init__(self, redis: Redis, *, replica_id: str | None = None, prefix: str = "mspclaw:",
                 heartbeat_s: float = 1.0, ttl_s: float = 5.0, relay: ReplicaRelay | None = None) -> None:
        if not 0 < heartbeat_s < ttl_s:
            raise ConfigError(f"cluster heartbeat ({heartbeat_s:g} s) must be positive and shorter than the "
                              f"presence TTL ({ttl_s:g} s)")
        self.redis = redis
        self.replica_id = replica_id or new_replica_id()
        self.prefix = prefix
        self.heartbeat_s, self.ttl_s = heartbeat_s, ttl_s
        self.channel = self._channel(self.replica_id)
        self._live_key = f"{prefix}replica:{self.replica_id}"
        self.relay = relay
        """Direct connections to the other replicas for forwarded calls (``None``: through Redis only)."""
        self._no_relay: dict[str, float] = {}  # replica -> until when it is called through Redis
        self._renew = redis.register_script(_RENEW)
        self._forget = redis.register_script(_FORGET)
        self._held: dict[str, AgentIdentity] = {}
        self._changed: dict[str, tuple[bool, str]] = {}
        """Agent id -> (attached, its presence value), not yet written to Redis."""
        self._wake = asyncio.Event()
        self._waiters: dict[str, asyncio.Future[_Reply]] = {}
        self._holders: dict[str, tuple[str, str, float]] = {}  # agent id -> (replica, client, until): a short cache
        self._deliveries: dict[str, asyncio.Future[_Delivered]] = {}
        self._asked: OrderedDict[str, tuple[str, str, str, float]] = OrderedDict()
        """Question id -> (channel of the replica that asked, client, agent, until): where its answer goes."""
        self._hub: Hub | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._heartbeat_ok = False
        self._subscribed = False
        self.problem = "not started"
        """Why forwarded calls fail now (empty while :attr:`healthy`)."""
        self._counts_key = f"{prefix}agent-counts"
        """A hash: replica id -> "agents it holds, until when (epoch s)", written by each replica's heartbeat."""
        self._known = 0
        watch_cluster(self)

    @classmethod
    def from_url(cls, url: str, *, op_timeout_s: float = 1.0, **options: Any) -> Cluster:
        """A cluster on the Redis at ``url`` (``redis://``, ``rediss://``, ``unix://``); operations that take
        longer than ``op_timeout_s`` fail (and so do forwarded calls) instead of hanging. A failed operation is
        tried once more at once, on a new connection: after Redis restarts, the pool's old connections are dead."""
        try:
            redis = Redis.from_url(url, socket_timeout=op_timeout_s, socket_connect_timeout=op_timeout_s,
                                   retry=Retry(NoBackoff(), 1), health_check_interval=0)
        except ValueError as exc:
            raise ConfigError(f"MSPCLAW_REDIS_URL is not a Redis URL ({exc}); "
                              "use redis://[:password@]host:6379/0 or rediss:// for TLS") from exc
        return cls(redis, **options)

    @property
    def agents_held(self) -> int:
        """Agents connected to this replica."""
        return len(self._held)

    @property
    def agents_known(self) -> int:
        """Agents connected to any replica as of this replica's last heartbeat (its own without Redis)."""
        return self._known if self.healthy else len(self._held)

    @property
    def healthy(self) -> bool:
        """Whether Redis answers this replica's heartbeat and its inbound channel is subscribed."""
        return self._heartbeat_ok and self._subscribed

    def _channel(self, replica_id: str) -> str:
        return f"{self.prefix}replica:{replica_id}:in"

    def _agent_key(self, agent_id: str) -> str:
        return f"{self.prefix}agent:{agent_id}"

    def _value(self, identity: AgentIdentity) -> str:
        return f"{self.replica_id} {identity.client_id}"

    # -- presence, told by the hub -----------------------------------------------------------------
    def attached(self, identity: AgentIdentity) -> None:
        """The hub holds ``identity``'s agent now (written to Redis by the running heartbeat task, at once)."""
        self._held[identity.agent_id] = identity
        self._changed[identity.agent_id] = (True, self._value(identity))
        self._wake.set()

    def detached(self, identity: AgentIdentity) -> None:
        """The hub no longer holds the agent."""
        if self._held.pop(identity.agent_id, None) is not None:
            self._changed[identity.agent_id] = (False, self._value(identity))
            self._wake.set()

    async def holder(self, agent_id: str) -> tuple[str, str] | None:
        """``(replica id, client id)`` of the replica holding the agent, or ``None`` when none does."""
        return self._parse(await self.redis.get(self._agent_key(agent_id)))

    # -- background ----------------------------------------------------------------------------
    async def run(self, hub: Hub) -> None:
        """Heartbeat, presence writes and the inbound channel, until cancelled; survives Redis outages."""
        self._hub = hub
        if self.relay is not None:
            try:
                await self.relay.start(self.replica_id, lambda data, send: self._received(hub, data, send))
            except OSError as error:  # a port in use or an address not of this host: still a working replica
                log.error("cluster: replica %s cannot listen for direct calls (%s); the other replicas forward "
                          "calls to it through Redis", self.replica_id, _short(error))
                self.relay = None
        loops = [asyncio.create_task(self._beat()), asyncio.create_task(self._listen(hub))]
        try:
            await asyncio.wait(loops, return_when=asyncio.FIRST_COMPLETED)  # only a bug ends one of them
            for task in loops:
                if task.done() and not task.cancelled() and (exc := task.exception()) is not None:
                    log.error("cluster: replica %s stopped sharing agents", self.replica_id, exc_info=exc)
                    self._set_heartbeat(False, f"the cluster stopped after an error: {_short(exc)}")
        finally:
            for task in loops:
                await _cancel(task)
            for task in list(self._running):
                task.cancel()
            await asyncio.gather(*self._running, return_exceptions=True)
            self._fail_waiters(f"replica {self.replica_id} is shutting down")
            if self.relay is not None:
                await self.relay.aclose()
            try:  # leave at once rather than after the TTL
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.delete(self._live_key, self._relay_key(self.replica_id))
                    pipe.hdel(self._counts_key, self.replica_id)
                    for identity in self._held.values():
                        await self._forget(keys=[self._agent_key(identity.agent_id)], args=[self._value(identity)],
                                           client=pipe)
                    await pipe.execute()
            except (RedisError, OSError):
                pass  # unreachable: the records expire with their TTL instead

    async def aclose(self) -> None:
        """Close the Redis connections (after :meth:`run` has ended)."""
        await self.redis.aclose()

    async def _beat(self) -> None:
        loop = asyncio.get_running_loop()
        next_beat = 0.0
        while True:
            try:
                if loop.time() >= next_beat:
                    await self._heartbeat()
                    next_beat = loop.time() + self.heartbeat_s
                elif self._changed:
                    await self._write_changes()
                self._set_heartbeat(True, "")
            except (RedisError, OSError) as exc:
                self._set_heartbeat(False, f"Redis unreachable: {_short(exc)}")
                next_beat = loop.time() + min(self.heartbeat_s, 1.0)
            self._wake.clear()
            if not self._changed or not self._heartbeat_ok:
                # asyncio.wait, not a timeout around the wait: a timeout firing as the task is cancelled can
                # swallow the cancellation on Python 3.11
                waiter = asyncio.ensure_future(self._wake.wait())
                try:
                    await asyncio.wait((waiter,), timeout=max(0.0, next_beat - loop.time()))
                finally:
                    waiter.cancel()

    def _set_heartbeat(self, ok: bool, problem: str) -> None:
        if ok != self._heartbeat_ok:
            if ok:
                log.info("cluster: replica %s reaches Redis; forwarded calls work", self.replica_id)
            else:
                log.warning("cluster: replica %s: %s; local agents are still served, forwarded calls fail",
                            self.replica_id, problem)
        self._heartbeat_ok = ok
        self._update_problem(problem)

    def _update_problem(self, problem: str = "") -> None:
        if self.healthy:
            self.problem = ""
        elif problem:
            self.problem = problem
        elif not self._subscribed:
            self.problem = "the replica's inbound channel is not subscribed (Redis unreachable)"

    async def _heartbeat(self) -> None:
        """Say this replica is alive, write pending changes, and renew every held agent's presence."""
        ttl_ms = int(self.ttl_s * 1000)
        await self.redis.set(self._live_key, str(time.time()), px=ttl_ms)
        if self.relay is not None and self.relay.address:
            await self.redis.set(self._relay_key(self.replica_id), self.relay.address, px=ttl_ms)
        await self._write_changes()
        held = list(self._held.values())
        for start in range(0, len(held), REFRESH_BATCH):
            batch = held[start:start + REFRESH_BATCH]
            await self._renew(keys=[self._agent_key(i.agent_id) for i in batch],
                              args=[ttl_ms, *(self._value(i) for i in batch)])
        await self._count_agents()

    async def _count_agents(self) -> None:
        """Say how many agents this replica holds and sum every live replica's count (for the metrics)."""
        now = time.time()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(self._counts_key, self.replica_id, f"{len(self._held)} {now + self.ttl_s}")
            pipe.pexpire(self._counts_key, int(self.ttl_s * 1000))
            pipe.hgetall(self._counts_key)
            counts = (await pipe.execute())[2]
        known, gone = 0, []
        for replica, value in counts.items():
            held, _, until = (value.decode() if isinstance(value, bytes) else str(value)).partition(" ")
            try:
                alive = float(until) >= now
                known += int(held) if alive else 0
            except ValueError:
                alive = False
            if not alive:
                gone.append(replica)
        if gone:  # replicas that died without saying goodbye
            await self.redis.hdel(self._counts_key, *gone)
        self._known = known

    async def _write_changes(self) -> None:
        changed, self._changed = self._changed, {}
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for agent_id, (attached, value) in changed.items():
                    key = self._agent_key(agent_id)
                    if attached:
                        pipe.set(key, value, px=int(self.ttl_s * 1000))  # the newest connection wins
                        self._holders.pop(agent_id, None)
                    else:
                        await self._forget(keys=[key], args=[value], client=pipe)
                await pipe.execute()
        except BaseException:
            for agent_id, change in changed.items():  # written by the next try (the heartbeat re-asserts too)
                self._changed.setdefault(agent_id, change)
            raise

    async def _listen(self, hub: Hub) -> None:
        while True:
            pubsub: PubSub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self._subscribed = True
                self._update_problem()
                while True:
                    message = await pubsub.get_message(timeout=self.heartbeat_s)
                    if message is not None and message.get("type") == "message":
                        self._received(hub, message["data"])
            except (RedisError, OSError) as exc:
                if self._subscribed:
                    log.warning("cluster: replica %s lost its inbound channel: %s", self.replica_id, _short(exc))
                self._subscribed = False
                self._update_problem(f"Redis unreachable: {_short(exc)}")
                self._fail_waiters(f"this replica lost Redis ({_short(exc)}) while the call was forwarded")
            finally:
                self._subscribed = False
                try:
                    await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
                except (RedisError, OSError):
                    pass
            await asyncio.sleep(min(self.heartbeat_s, 1.0))

    def _received(self, hub: Hub, data: bytes | str, answer: Send | None = None) -> None:
        """A message from another replica; ``answer`` sends a reply on the direct connection it came by."""
        if len(data) > MAX_MESSAGE_BYTES:
            log.warning("cluster: dropped a relayed message of %d bytes (limit %d)", len(data), MAX_MESSAGE_BYTES)
            return
        try:
            message = _RELAYED.validate_json(data)
        except ValidationError as exc:
            log.warning("cluster: dropped a relayed message that does not validate: %s",
                        exc.errors(include_input=False, include_url=False)[:3])
            return
        match message:
            case _Reply(call_id=call_id):
                fut = self._waiters.get(call_id)
                if fut is not None and not fut.done():
                    fut.set_result(message)
            case _Call() if len(self._running) >= MAX_INBOUND:
                task = asyncio.create_task(self._answer(message.reply_to, answer, _Reply(
                    call_id=message.call_id, error="failed", message=f"replica {self.replica_id} is running "
                    f"{MAX_INBOUND} forwarded calls already; the call was not run, try again shortly")))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
            case _Call():
                task = asyncio.create_task(self._serve_call(hub, message, answer))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
            case _:
                self._received_message(hub, message)

    async def _serve_call(self, hub: Hub, call: _Call, answer: Send | None = None) -> None:
        """Run a forwarded call on the agent held here, and publish what came of it to the caller."""
        relayed_call()  # counted once, by the caller's replica (this task's own context)
        reply: _Reply
        link = hub.link(call.agent_id)
        if link is None or link.identity.client_id != call.client_id:
            reply = _Reply(call_id=call.call_id, error="offline",
                           message=f"agent {call.agent_id} is not connected (it left replica {self.replica_id})")
        else:
            try:
                result = await hub.for_client(call.client_id).call_tool(
                    call.agent_id, call.tool, call.args, timeout=call.timeout, call_id=call.call_id,
                    approval=call.approval)
                reply = _Reply(call_id=call.call_id, result=result)
            except ToolFailed as exc:
                reply = _Reply(call_id=call.call_id, error="failed", message=exc.message)
            except MSPClawError as exc:
                kind = next((k for cls, k in _ERROR_KINDS if isinstance(exc, cls)), "failed")
                reply = _Reply(call_id=call.call_id, error=kind, message=exc.message,
                               refusal_code=exc.refusal_code if isinstance(exc, ToolRefused) else "")
        await self._answer(call.reply_to, answer, reply)

    async def _answer(self, channel: str, direct: Send | None, reply: _Reply) -> None:
        if direct is not None:  # back on the connection the call came by; if it broke, the caller knows
            try:
                await direct(reply.model_dump_json().encode())
            except (RelayUnavailable, OSError) as exc:
                log.warning("cluster: the result of forwarded call %s could not be sent back: %s", reply.call_id,
                            _short(exc))
            return
        try:
            await self.redis.publish(channel, reply.model_dump_json())
        except (RedisError, OSError) as exc:
            log.warning("cluster: the result of forwarded call %s could not be sent back: %s", reply.call_id,
                        _short(exc))

    def _fail_waiters(self, reason: str) -> None:
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_exception(AgentOffline(reason))
        for delivery in self._deliveries.values():
            if not delivery.done():
                delivery.set_exception(AgentOffline(reason))

    # -- calls -----------------------------------------------------------------------------------
    async def call(self, client_id: str, agent_id: str, tool: str, args: dict[str, Any], *, timeout: float,
                   call_id: str, approval: Approval | None = None) -> ToolResult:
        """Run ``tool`` on an agent another replica holds; the hub's :meth:`ClientDispatcher.call_tool
        <mspclaw.dispatch.hub.ClientDispatcher.call_tool>` calls this for an agent it does not hold.

        Returns the agent's result; raises what a local call raises (see the module's docstring).
        """
        if not self.healthy:
            raise AgentOffline(f"agent {agent_id} is not connected to this replica, and other replicas cannot be "
                               f"reached: {self.problem or 'the cluster is not running'}")
        try:
            try:
                return await self._call_holder(client_id, agent_id, tool, args, timeout=timeout, call_id=call_id,
                                               approval=approval, cached=True)
            except _StaleHolder:  # the cached holder was out of date: look it up once more
                self._holders.pop(agent_id, None)
                return await self._call_holder(client_id, agent_id, tool, args, timeout=timeout, call_id=call_id,
                                               approval=approval, cached=False)
        except _StaleHolder as exc:
            raise AgentOffline(exc.message) from None
        except (RedisError, OSError) as exc:
            raise AgentOffline(f"agent {agent_id} is not connected to this replica, and Redis did not answer: "
                               f"{_short(exc)}") from None

    async def _call_holder(self, client_id: str, agent_id: str, tool: str, args: dict[str, Any], *, timeout: float,
                           call_id: str, approval: Approval | None, cached: bool) -> ToolResult:
        known = self._holders.get(agent_id) if cached else None
        if known is not None and known[2] >= time.monotonic():
            replica, client = known[0], known[1]
        else:
            found = await self.holder(agent_id)
            if found is None:
                self._holders.pop(agent_id, None)
                raise AgentOffline(f"agent {agent_id} is not connected")
            replica, client = found
            self._holders[agent_id] = (replica, client, time.monotonic() + self.heartbeat_s)
            cached = False
        if client != client_id or replica == self.replica_id:
            # another client's agent does not exist for this caller; a record naming this replica is stale
            raise (_StaleHolder if cached else AgentOffline)(f"agent {agent_id} is not connected")
        try:
            return await self._forward(replica, client_id, agent_id, tool, args, timeout=timeout, call_id=call_id,
                                       approval=approval)
        except _Unheard as exc:
            raise (_StaleHolder if cached else AgentOffline)(exc.message) from None

    async def _forward(self, replica: str, client_id: str, agent_id: str, tool: str, args: dict[str, Any], *,
                       timeout: float, call_id: str, approval: Approval | None) -> ToolResult:
        message = _Call(call_id=call_id, client_id=client_id, agent_id=agent_id, tool=tool, args=args,
                        timeout=timeout, approval=approval, reply_to=self.channel).model_dump_json()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[_Reply] = loop.create_future()
        self._waiters[call_id] = fut
        started, transport, outcome = time.perf_counter(), "redis", "failed"
        try:
            link = await self._send_direct(replica, message)
            transport = "redis" if link is None else "direct"
            if link is None and await self.redis.publish(self._channel(replica), message) == 0:
                raise _Unheard(f"agent {agent_id} is held by replica {replica}, which is not listening")
            watched: tuple[asyncio.Future[Any], ...] = (fut,) if link is None else (fut, link.closed)
            give_up = loop.time() + timeout + REPLY_MARGIN_S
            while True:
                left = give_up - loop.time()
                if left <= 0:
                    raise ToolTimeout(f"{tool} on agent {agent_id} (replica {replica}): no result within "
                                      f"{timeout:g} s")
                done, _ = await asyncio.wait(watched, timeout=min(left, self.heartbeat_s),
                                             return_when=asyncio.FIRST_COMPLETED)
                if fut.done():
                    break
                if done:  # the direct connection closed before the result came back
                    raise AgentOffline(f"the connection to replica {replica}, which holds agent {agent_id}, "
                                       f"was lost while running {tool}")
                if not await self.redis.exists(f"{self.prefix}replica:{replica}"):
                    raise AgentOffline(f"replica {replica}, which held agent {agent_id}, stopped answering "
                                       f"while running {tool}")
            reply = fut.result()
            outcome = _outcome(reply)
        except _Unheard:
            outcome = "unheard"  # reached no replica: the caller looks the holder up again
            raise
        except ToolTimeout:
            outcome = "timeout"
            raise
        except (AgentOffline, RedisError, OSError):
            outcome = "offline"
            raise
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            self._waiters.pop(call_id, None)
            if outcome != "unheard":
                observe_forwarded(transport, outcome, time.perf_counter() - started)
        if reply.error == "offline":
            self._holders.pop(agent_id, None)  # it left that replica: a retry looks it up again
        _raise(reply)
        if reply.result is None:
            raise ToolFailed(f"{tool} on agent {agent_id}: replica {replica} answered without a result")
        return reply.result

    def _relay_key(self, replica_id: str) -> str:
        return f"{self.prefix}replica:{replica_id}:relay"

    async def _send_direct(self, replica: str, message: str) -> PeerLink | None:
        """Send ``message`` to ``replica`` over the direct connection: the link it went by, or ``None`` when
        there is none to use (no relay here or there, or it cannot be reached: the caller publishes instead)."""
        if self.relay is None or self._no_relay.get(replica, 0.0) > time.monotonic():
            return None
        try:
            link = self.relay.connected(replica)
            if link is None:
                address = await self.redis.get(self._relay_key(replica))
                if address is None:  # a replica without a relay: through Redis until it may have one
                    self._no_relay[replica] = time.monotonic() + self.heartbeat_s
                    return None
                link = await self.relay.link(replica, address.decode() if isinstance(address, bytes) else address)
            await link.send(message.encode())
            return link
        except RelayUnavailable as exc:
            log.warning("cluster: calls to replica %s go through Redis for %g s: %s", replica, self.ttl_s, exc)
            self._no_relay[replica] = time.monotonic() + self.ttl_s
            return None

    # -- online checks, messages to an agent's user, revocation -----------------------------------
    def _parse(self, value: bytes | str | None) -> tuple[str, str] | None:
        """``(replica, client)`` of a presence record; ``None`` for none, or for a revoked agent's."""
        if value is None:
            return None
        replica, _, client = (value.decode() if isinstance(value, bytes) else str(value)).partition(" ")
        return None if replica == REVOKED else (replica, client)

    async def online(self, client_id: str, agent_ids: Collection[str]) -> frozenset[str]:
        """Which of the client's ``agent_ids`` another replica holds now: one ``MGET`` of their presence.

        Nothing is cached, so an agent is offline here within the presence TTL of its disconnect, and at once
        when revoked. Without Redis (or without this replica's inbound channel, so nothing could reach them)
        every one is offline: a ticket routed to them could not be run.
        """
        ids = list(agent_ids)
        if not ids or not self.healthy:
            return frozenset()
        try:
            values = await self.redis.mget([self._agent_key(a) for a in ids])
        except (RedisError, OSError) as exc:
            log.warning("cluster: presence of %d agents unknown, Redis did not answer: %s", len(ids), _short(exc))
            return frozenset()
        found = (self._parse(value) for value in values)
        return frozenset(agent for agent, held in zip(ids, found, strict=True)
                         if held is not None and held[1] == client_id and held[0] != self.replica_id)

    async def deliver(self, client_id: str, agent_id: str, frame: AskUser | NotifyUser | ShowSecret, *,
                      timeout: float) -> bool:
        """Hand ``frame`` to the agent another replica holds and wait until the holder says it did.

        For ``show_secret``, whether the device showed the secret (``False`` also when it did not say so
        within ``timeout``); ``True`` otherwise. :class:`AgentOffline` when no replica holds the agent for
        this client, the holder stopped answering, or Redis is unreachable.
        """
        if not self.healthy:
            raise AgentOffline(f"agent {agent_id} is not connected to this replica, and other replicas cannot be "
                               f"reached: {self.problem or 'the cluster is not running'}")
        try:
            found = await self.holder(agent_id)
        except (RedisError, OSError) as exc:
            raise AgentOffline(f"agent {agent_id} is not connected to this replica, and Redis did not answer: "
                               f"{_short(exc)}") from None
        if found is None or found[1] != client_id or found[0] == self.replica_id:
            raise AgentOffline(f"agent {agent_id} is not connected")
        replica = found[0]
        delivery_id = "dl_" + secrets.token_hex(12)
        message = _Deliver(delivery_id=delivery_id, client_id=client_id, agent_id=agent_id, frame=frame,
                           timeout=timeout, reply_to=self.channel).model_dump_json()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[_Delivered] = loop.create_future()
        self._deliveries[delivery_id] = fut
        try:
            try:
                heard = await self.redis.publish(self._channel(replica), message)
            except (RedisError, OSError) as exc:
                raise AgentOffline(f"agent {agent_id} is on replica {replica}, and Redis did not answer: "
                                   f"{_short(exc)}") from None
            if heard == 0:
                raise AgentOffline(f"agent {agent_id} is held by replica {replica}, which is not listening")
            give_up = loop.time() + timeout + REPLY_MARGIN_S
            while True:
                left = give_up - loop.time()
                if left <= 0:
                    raise AgentOffline(f"replica {replica} did not say whether it reached agent {agent_id} "
                                       f"within {timeout + REPLY_MARGIN_S:g} s")
                done, _ = await asyncio.wait((fut,), timeout=min(left, self.heartbeat_s))
                if done:
                    break
                if not await self.redis.exists(f"{self.prefix}replica:{replica}"):
                    raise AgentOffline(f"replica {replica}, which held agent {agent_id}, stopped answering")
            reply = fut.result()
        except (RedisError, OSError) as exc:
            raise AgentOffline(f"Redis did not answer while agent {agent_id} was reached: {_short(exc)}") from None
        finally:
            self._deliveries.pop(delivery_id, None)
        if reply.offline:
            raise AgentOffline(reply.offline)
        return reply.ok

    def answer_elsewhere(self, identity: AgentIdentity, frame: UserAnswer) -> bool:
        """Whether the answer is to a question another replica asked this agent; then it is sent back there."""
        asked = self._asked.get(frame.question_id)
        if asked is None:
            return False
        reply_to, client_id, agent_id, until = asked
        if (client_id, agent_id) != (identity.client_id, identity.agent_id):
            return False  # not the device it was put to: that device's answer is its own replica's business
        del self._asked[frame.question_id]
        if until < time.monotonic():
            return False
        self._spawn(self._send_answer(reply_to, identity, frame))
        return True

    async def disconnect(self, client_id: str, agent_id: str, reason: str) -> None:
        """Close the agent's connection on the replica that holds it, and mark it revoked in its presence at
        once (until the presence TTL ends: no heartbeat renews that mark). If Redis is unreachable the holder
        keeps the connection until the agent reconnects, which its revoked credential then fails."""
        try:
            found = await self.holder(agent_id)
            if found is None or found[1] != client_id:
                return
            await self.redis.set(self._agent_key(agent_id), f"{REVOKED} {client_id}", px=int(self.ttl_s * 1000))
            self._holders.pop(agent_id, None)
            if found[0] != self.replica_id:
                await self.redis.publish(self._channel(found[0]), _Drop(
                    client_id=client_id, agent_id=agent_id, reason=reason[:200]).model_dump_json())
        except (RedisError, OSError) as exc:
            log.warning("cluster: could not close agent %s on its replica (%s): %s; it is refused when it "
                        "reconnects", agent_id, reason, _short(exc))

    def _received_message(self, hub: Hub, message: _Deliver | _Delivered | _Answered | _Drop | _Call | _Reply) -> None:
        match message:
            case _Delivered(delivery_id=delivery_id):
                fut = self._deliveries.get(delivery_id)
                if fut is not None and not fut.done():
                    fut.set_result(message)
            case _Deliver() if len(self._running) >= MAX_INBOUND:
                self._spawn(self._answer_delivery(message.reply_to, _Delivered(
                    delivery_id=message.delivery_id, offline=f"replica {self.replica_id} is too busy to reach "
                    f"agent {message.agent_id}; try again shortly")))
            case _Deliver():
                self._spawn(self._serve_delivery(hub, message))
            case _Answered(client_id=client_id, agent_id=agent_id, frame=frame):
                # the holder authenticated the device; this replica has no key of it, and needs none
                hub.observer.frame(AgentIdentity(agent_id, client_id, "device", b""), frame)
            case _Drop(client_id=client_id, agent_id=agent_id, reason=reason):
                link = hub.link(agent_id)
                if link is not None and link.identity.client_id == client_id:
                    self._spawn(_close(link.transport, reason))
            case _:
                pass

    async def _serve_delivery(self, hub: Hub, message: _Deliver) -> None:
        link = hub.link(message.agent_id)
        reply = _Delivered(delivery_id=message.delivery_id, offline=f"agent {message.agent_id} is not connected "
                                                                    f"(it left replica {self.replica_id})")
        if link is not None and link.identity.client_id == message.client_id:
            dispatcher = hub.for_client(message.client_id)
            shown = False
            try:
                match message.frame:
                    case AskUser(question_id=question_id, text=text, choices=choices):
                        self._remember_question(question_id, message)
                        await dispatcher.ask_user(message.agent_id, question_id, text, choices)
                        shown = True
                    case NotifyUser(text=text):
                        await dispatcher.notify_user(message.agent_id, text)
                        shown = True
                    case ShowSecret(text=text, secret=secret):
                        shown = await dispatcher.show_secret(message.agent_id, text, secret, timeout=message.timeout)
                reply = _Delivered(delivery_id=message.delivery_id, ok=shown)
            except AgentOffline as exc:
                reply = _Delivered(delivery_id=message.delivery_id, offline=exc.message)
        await self._answer_delivery(message.reply_to, reply)

    def _remember_question(self, question_id: str, message: _Deliver) -> None:
        self._asked[question_id] = (message.reply_to, message.client_id, message.agent_id,
                                    time.monotonic() + ASKED_TTL_S)
        self._asked.move_to_end(question_id)
        while len(self._asked) > MAX_ASKED:
            self._asked.popitem(last=False)

    async def _answer_delivery(self, channel: str, reply: _Delivered) -> None:
        try:
            await self.redis.publish(channel, reply.model_dump_json())
        except (RedisError, OSError) as exc:
            log.warning("cluster: could not say whether delivery %s reached its agent: %s", reply.delivery_id,
                        _short(exc))

    async def _send_answer(self, channel: str, identity: AgentIdentity, frame: UserAnswer) -> None:
        """Send the answer to the replica that asked; settle it here if that replica is gone."""
        try:
            heard = await self.redis.publish(channel, _Answered(client_id=identity.client_id,
                                                                agent_id=identity.agent_id,
                                                                frame=frame).model_dump_json())
        except (RedisError, OSError) as exc:
            log.warning("cluster: the answer to question %s stays on this replica: %s", frame.question_id,
                        _short(exc))
            heard = 0
        if heard == 0 and self._hub is not None:  # the asker is gone: the question's row is settled here
            self._hub.observer.frame(identity, frame)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._running.add(task)
        task.add_done_callback(self._running.discard)


async def _close(transport: Transport, reason: str) -> None:
    try:
        await transport.close(CLOSE_UNAUTHORIZED, reason)
    except (TransportClosed, RuntimeError, OSError):
        pass


async def _cancel(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait for its end, again if a timeout inside it swallowed the cancellation."""
    while not task.done():
        task.cancel()
        await asyncio.wait((task,), timeout=0.5)


def _short(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200].rstrip(".") or type(exc).__name__
