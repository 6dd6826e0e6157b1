"""Session events and "configuration changed" signals, shared by the replicas through Redis pub/sub.

With ``MSPCLAW_REDIS_URL`` set, every replica keeps one :class:`Broadcast` on the Redis its
:class:`~mspclaw.dispatch.cluster.Cluster` uses, on two channels:

* ``{prefix}session-events``: each session event a replica writes (:class:`~mspclaw.protocol.frames.Event`,
  with its ``seq``) is published once; every other replica hands it to its own watchers of that session
  (the console's server-sent events, the session socket), so a watcher sees a session that runs on
  another replica at once. The database row stays the source of truth: a message lost (Redis down, a
  replica reconnecting, a full outbox) only delays the event until the watcher's next read of the store,
  and the watcher orders and de-duplicates by ``seq`` as it does for events written in its own process.
* ``{prefix}config-changed``: a replica that changed a part of the configuration kept in the database (the
  PSA accounts) says which part; every other replica reloads that part from the database at once. After
  Redis comes back, every part is reloaded once, for the changes made while the signal could not travel.

A replica never acts on its own messages (each carries the replica id that sent it). Publishing never
blocks the caller and is safe from any thread: messages wait in a bounded outbox that one task sends in
order, in batches. Without Redis (no ``MSPCLAW_REDIS_URL``) nothing of this runs.

Redis must be private to the replicas (see :mod:`mspclaw.dispatch.cluster`): a message on these channels
reaches watchers' screens and makes replicas re-read the database, nothing more; it never carries a
secret (a configuration signal names only the part that changed).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from mspclaw.observability.metrics import BROADCAST_MESSAGES
from mspclaw.protocol.frames import MAX_FRAME_BYTES, Event

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 2 * MAX_FRAME_BYTES
"""A shared event larger than this is neither sent nor accepted (its watchers read it from the store)."""

MAX_OUTBOX = 10_000
"""Messages waiting to be published; past that new ones are dropped (watchers read them from the store)."""

BATCH = 500
"""Messages published in one round trip."""

Topic = Literal["psa_accounts", "roster"]
"""A part of the configuration that replicas reload from the database when another replica changed it."""

Reload = Callable[[], Awaitable[None]]


class _Shared(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    origin: str = Field(min_length=1, max_length=256)
    """The replica that sent it."""


class _SharedEvent(_Shared):
    kind: Literal["event"] = "event"
    frame: Event


class _Changed(_Shared):
    kind: Literal["changed"] = "changed"
    topic: Topic


_MESSAGES: TypeAdapter[_SharedEvent | _Changed] = TypeAdapter(
    Annotated[_SharedEvent | _Changed, Field(discriminator="kind")])


class Broadcast:
    """This replica's end of the shared session events and configuration signals (see the module)."""

    def __init__(self, redis: Redis, *, replica_id: str, prefix: str = "mspclaw:", retry_s: float = 1.0,
                 max_outbox: int = MAX_OUTBOX) -> None:
        if retry_s <= 0 or max_outbox < 1:
            raise ValueError("the broadcast's retry must be over 0 seconds and its outbox hold at least 1 message")
        self.redis = redis
        self.replica_id = replica_id
        self.events_channel = f"{prefix}session-events"
        self.config_channel = f"{prefix}config-changed"
        self._retry_s, self._max_outbox = retry_s, max_outbox
        self._outbox: collections.deque[tuple[str, str]] = collections.deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._subscribed = False
        self._failing = False
        self.dropped = 0
        """Messages not published (outbox full, too large, or Redis unreachable): for tests and metrics."""
        self.received = 0
        """Messages of other replicas acted on."""

    @property
    def healthy(self) -> bool:
        """Whether this replica hears the other replicas' events and signals now."""
        return self._subscribed

    # -- sending (any thread) ----------------------------------------------------------------------
    def share(self, frame: Event) -> None:
        """Publish a session event this replica wrote (after its commit); never blocks, never raises."""
        data = _SharedEvent(origin=self.replica_id, frame=frame).model_dump_json()
        if len(data) > MAX_MESSAGE_BYTES:
            self.dropped += 1
            BROADCAST_MESSAGES.labels("dropped").inc()
            log.info("broadcast: event %d of session %s is %d bytes, over %d: other replicas' watchers read it "
                     "from the store", frame.seq, frame.session_id, len(data), MAX_MESSAGE_BYTES)
            return
        self._send_later(self.events_channel, data)

    def changed(self, topic: Topic) -> None:
        """Tell the other replicas that ``topic`` changed in the database (after the commit)."""
        self._send_later(self.config_channel, _Changed(origin=self.replica_id, topic=topic).model_dump_json())

    def _send_later(self, channel: str, data: str) -> None:
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return  # not running: no replica hears it now, and the store has it
        if len(self._outbox) >= self._max_outbox:
            self.dropped += 1
            BROADCAST_MESSAGES.labels("dropped").inc()
            return
        self._outbox.append((channel, data))
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            wake.set()
        else:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # the loop closed meanwhile
                pass

    # -- background ------------------------------------------------------------------------------
    async def run(self, deliver: Callable[[Event], None], reload: Mapping[Topic, Reload]) -> None:
        """Send the outbox and hear the other replicas until cancelled; survives Redis outages.

        ``deliver`` hands another replica's event to this replica's watchers (called on the event loop);
        ``reload[topic]`` re-reads that part of the configuration from the database (runs are serialised per
        topic, and changes that arrive during a reload make one more)."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        dirty = {topic: asyncio.Event() for topic in reload}
        tasks = [asyncio.create_task(self._send()), asyncio.create_task(self._listen(deliver, dirty)),
                 *(asyncio.create_task(self._reloading(topic, dirty[topic], fn)) for topic, fn in reload.items())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)  # only a bug ends one
            for task in done:
                if not task.cancelled() and (exc := task.exception()) is not None:
                    log.error("broadcast: replica %s stopped sharing session events", self.replica_id, exc_info=exc)
        finally:
            self._loop = self._wake = None
            self._subscribed = False
            self._outbox.clear()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _send(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._outbox:
                batch = [self._outbox.popleft() for _ in range(min(BATCH, len(self._outbox)))]
                try:
                    async with self.redis.pipeline(transaction=False) as pipe:
                        for channel, data in batch:
                            pipe.publish(channel, data)
                        await pipe.execute()
                    BROADCAST_MESSAGES.labels("sent").inc(len(batch))
                except (RedisError, OSError) as exc:
                    self.dropped += len(batch) + len(self._outbox)
                    BROADCAST_MESSAGES.labels("dropped").inc(len(batch) + len(self._outbox))
                    self._outbox.clear()  # stale by the time Redis is back: watchers read the store meanwhile
                    if not self._failing:
                        log.warning("broadcast: replica %s cannot publish (%s); other replicas' watchers read "
                                    "session events from the store until Redis is back", self.replica_id,
                                    _short(exc))
                    self._failing = True
                    break
                if self._failing:
                    log.info("broadcast: replica %s publishes session events again", self.replica_id)
                    self._failing = False

    async def _listen(self, deliver: Callable[[Event], None], dirty: Mapping[Topic, asyncio.Event]) -> None:
        lost = False
        while True:
            pubsub: PubSub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.events_channel, self.config_channel)
                self._subscribed = True
                if lost:  # changes made while the signal could not travel: reload every part once
                    log.info("broadcast: replica %s hears the other replicas again", self.replica_id)
                    for event in dirty.values():
                        event.set()
                while True:
                    message = await pubsub.get_message(timeout=self._retry_s)
                    if message is not None and message.get("type") == "message":
                        self._received(message["data"], deliver, dirty)
            except (RedisError, OSError) as exc:
                if self._subscribed:
                    log.warning("broadcast: replica %s lost the shared channels (%s); watchers read session "
                                "events from the store", self.replica_id, _short(exc))
                lost = True
            finally:
                self._subscribed = False
                try:
                    await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
                except (RedisError, OSError):
                    pass
            await asyncio.sleep(self._retry_s)

    def _received(self, data: bytes | str, deliver: Callable[[Event], None],
                  dirty: Mapping[Topic, asyncio.Event]) -> None:
        if len(data) > MAX_MESSAGE_BYTES:
            BROADCAST_MESSAGES.labels("dropped").inc()
            log.warning("broadcast: dropped a shared message of %d bytes (limit %d)", len(data), MAX_MESSAGE_BYTES)
            return
        try:
            message = _MESSAGES.validate_json(data)
        except ValidationError as exc:
            BROADCAST_MESSAGES.labels("dropped").inc()
            log.warning("broadcast: dropped a shared message that does not validate: %s",
                        exc.errors(include_input=False, include_url=False)[:3])
            return
        if message.origin == self.replica_id:
            return  # this replica's own: its watchers had it already
        self.received += 1
        BROADCAST_MESSAGES.labels("received").inc()
        match message:
            case _SharedEvent(frame=frame):
                deliver(frame)
            case _Changed(topic=topic):
                event = dirty.get(topic)
                if event is not None:
                    event.set()

    async def _reloading(self, topic: Topic, dirty: asyncio.Event, reload: Reload) -> None:
        while True:
            await dirty.wait()
            dirty.clear()
            try:
                await reload()
            except Exception as exc:  # a failed reload must not end the replica's sharing; the next signal retries
                log.warning("broadcast: replica %s could not reload %s after another replica changed it: %s",
                            self.replica_id, topic, _short(exc))


def _short(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200].rstrip(".") or type(exc).__name__
