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
  as the same call and a destructive tool runs once.

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
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from mspclaw.dispatch.hub import AgentIdentity, Hub
from mspclaw.errors import (
    AgentOffline,
    ConfigError,
    MSPClawError,
    ToolFailed,
    ToolRefused,
    ToolTimeout,
    UnknownTool,
)
from mspclaw.protocol.frames import MAX_FRAME_BYTES, Approval, ToolResult

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


_RELAYED: TypeAdapter[_Call | _Reply] = TypeAdapter(Annotated[_Call | _Reply, Field(discriminator="kind")])

_ERROR_KINDS: list[tuple[type[MSPClawError], _ErrorKind]] = [
    (AgentOffline, "offline"), (ToolTimeout, "timeout"), (UnknownTool, "unknown_tool"), (ToolRefused, "refused")]


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
                 heartbeat_s: float = 1.0, ttl_s: float = 5.0) -> None:
        if not 0 < heartbeat_s < ttl_s:
            raise ConfigError(f"cluster heartbeat ({heartbeat_s:g} s) must be positive and shorter than the "
                              f"presence TTL ({ttl_s:g} s)")
        self.redis = redis
        self.replica_id = replica_id or new_replica_id()
        self.prefix = prefix
        self.heartbeat_s, self.ttl_s = heartbeat_s, ttl_s
        self.channel = self._channel(self.replica_id)
        self._live_key = f"{prefix}replica:{self.replica_id}"
        self._renew = redis.register_script(_RENEW)
        self._forget = redis.register_script(_FORGET)
        self._held: dict[str, AgentIdentity] = {}
        self._changed: dict[str, tuple[bool, str]] = {}
        """Agent id -> (attached, its presence value), not yet written to Redis."""
        self._wake = asyncio.Event()
        self._waiters: dict[str, asyncio.Future[_Reply]] = {}
        self._holders: dict[str, tuple[str, str, float]] = {}  # agent id -> (replica, client, until): a short cache
        self._running: set[asyncio.Task[None]] = set()
        self._heartbeat_ok = False
        self._subscribed = False
        self.problem = "not started"
        """Why forwarded calls fail now (empty while :attr:`healthy`)."""

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
        value = await self.redis.get(self._agent_key(agent_id))
        if value is None:
            return None
        replica, _, client = (value.decode() if isinstance(value, bytes) else str(value)).partition(" ")
        return replica, client

    # -- background ----------------------------------------------------------------------------
    async def run(self, hub: Hub) -> None:
        """Heartbeat, presence writes and the inbound channel, until cancelled; survives Redis outages."""
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
            try:  # leave at once rather than after the TTL
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.delete(self._live_key)
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
        await self._write_changes()
        held = list(self._held.values())
        for start in range(0, len(held), REFRESH_BATCH):
            batch = held[start:start + REFRESH_BATCH]
            await self._renew(keys=[self._agent_key(i.agent_id) for i in batch],
                              args=[ttl_ms, *(self._value(i) for i in batch)])

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

    def _received(self, hub: Hub, data: bytes | str) -> None:
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
                task = asyncio.create_task(self._answer(message.reply_to, _Reply(
                    call_id=message.call_id, error="failed", message=f"replica {self.replica_id} is running "
                    f"{MAX_INBOUND} forwarded calls already; the call was not run, try again shortly")))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
            case _Call():
                task = asyncio.create_task(self._serve_call(hub, message))
                self._running.add(task)
                task.add_done_callback(self._running.discard)

    async def _serve_call(self, hub: Hub, call: _Call) -> None:
        """Run a forwarded call on the agent held here, and publish what came of it to the caller."""
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
        await self._answer(call.reply_to, reply)

    async def _answer(self, channel: str, reply: _Reply) -> None:
        try:
            await self.redis.publish(channel, reply.model_dump_json())
        except (RedisError, OSError) as exc:
            log.warning("cluster: the result of forwarded call %s could not be sent back: %s", reply.call_id,
                        _short(exc))

    def _fail_waiters(self, reason: str) -> None:
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_exception(AgentOffline(reason))

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
        try:
            if await self.redis.publish(self._channel(replica), message) == 0:
                raise _Unheard(f"agent {agent_id} is held by replica {replica}, which is not listening")
            give_up = loop.time() + timeout + REPLY_MARGIN_S
            while True:
                left = give_up - loop.time()
                if left <= 0:
                    raise ToolTimeout(f"{tool} on agent {agent_id} (replica {replica}): no result within "
                                      f"{timeout:g} s")
                done, _ = await asyncio.wait((fut,), timeout=min(left, self.heartbeat_s))
                if done:
                    break
                if not await self.redis.exists(f"{self.prefix}replica:{replica}"):
                    raise AgentOffline(f"replica {replica}, which held agent {agent_id}, stopped answering "
                                       f"while running {tool}")
            reply = fut.result()
        finally:
            self._waiters.pop(call_id, None)
        if reply.error == "offline":
            self._holders.pop(agent_id, None)  # it left that replica: a retry looks it up again
        _raise(reply)
        if reply.result is None:
            raise ToolFailed(f"{tool} on agent {agent_id}: replica {replica} answered without a result")
        return reply.result


async def _cancel(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait for its end, again if a timeout inside it swallowed the cancellation."""
    while not task.done():
        task.cancel()
        await asyncio.wait((task,), timeout=0.5)


def _short(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200].rstrip(".") or type(exc).__name__
