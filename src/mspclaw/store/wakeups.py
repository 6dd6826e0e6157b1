"""Waking waiters the moment something changes in the database, on any replica: PostgreSQL's
``LISTEN``/``NOTIFY``, fanned out to asyncio events, over one connection per process.

Two channels use it. :data:`JOBS_CHANNEL`: :meth:`~mspclaw.store.jobs.JobQueue.enqueue` sends
``NOTIFY mspclaw_jobs`` (the payload is the job's kind) with the job's insert, delivered once it
commits, and every subscribed idle worker claims at once instead of at its next poll. The technician
roster's channel (``store/technicians.py``): an edit's transaction notifies, and each replica's roster
refresh reloads.

**Shape.** A process has one :class:`Wakeups`: it owns the one dedicated psycopg connection, and the
set of channels that connection ``LISTEN``\\ s on. A waiter never subscribes to the connection
itself: it asks for the handle of its channel, :meth:`Wakeups.channel`, a :class:`ChannelWakeups`,
and subscribes its event there. A notification wakes the subscribers of its own channel only (a
roster edit does not wake the job workers, a queued job does not reload the roster), and each handle
answers for its own channel: :attr:`~ChannelWakeups.listening`, :meth:`~ChannelWakeups.idle_s`,
:attr:`~ChannelWakeups.fallback_s`. Per-channel handles, rather than one subscriber list keyed by
channel, keep the waiters' code unaware of the sharing (a worker holds "the jobs' wake-ups"), let
two waiters of one channel keep different fallback polls, and make asking for a channel the one
act that makes the connection listen on it: a channel asked for while the connection is up is
added to it at once (``LISTEN`` on the live connection, no reconnect). So each replica holds one
listening backend, whatever the number of channels (``pg_stat_activity`` shows it as
``application_name`` :data:`APPLICATION_NAME` unless the URL names another), next to its pool.

A notification can be lost (the listening connection drops, the server restarts): a waiter then
still sees the change at its slow fallback poll (:attr:`ChannelWakeups.fallback_s`), so a lost
notification delays work and never loses it. After (re)connecting, the listener wakes every waiter
of every channel once, for whatever changed while it was away (a channel added later: its waiters
once, when it is added). While a channel is not listened on (not started, reconnecting, or on
SQLite), its :meth:`~ChannelWakeups.idle_s` gives the waiter's own short poll interval back.
Reconnecting waits ``retry_s``, doubled after each failed attempt up to :data:`MAX_RETRY_S`; each
failure is logged with the channels' names and the reason, never the password.

SQLite has no notifications and runs one process: :meth:`Wakeups.run` returns at once, and jobs
queued in this process wake its workers in-process (``Intake.listen``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final
from urllib.parse import quote

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from sqlalchemy import Engine

log = logging.getLogger(__name__)

JOBS_CHANNEL: Final = "mspclaw_jobs"
MAX_RETRY_S: Final = 30.0
"""The longest wait between two attempts to connect the listener."""
APPLICATION_NAME: Final = "mspclaw-wakeups"
"""The listening connection's ``application_name`` (``pg_stat_activity``), unless its URL names one."""
MAX_CHANNEL_BYTES: Final = 63
"""PostgreSQL's longest identifier: a longer channel name would be truncated, and never match."""


def listen_conninfo(engine: Engine) -> str | None:
    """The libpq connection string of ``engine``'s PostgreSQL database, ``None`` for SQLite."""
    if engine.dialect.name != "postgresql":
        return None
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


class ChannelWakeups:
    """The wake-ups of one channel, for its waiters: what :meth:`Wakeups.channel` hands out."""

    def __init__(self, owner: Wakeups, channel: str, fallback_s: float) -> None:
        self._owner = owner
        self.channel = channel
        self.fallback_s = fallback_s
        """How long a waiter of this channel (an idle job worker, the roster's refresher) may wait between
        two looks of its own while notifications work: a lost notification delays the change this much."""
        self._events: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self.received = 0
        """Notifications of this channel received so far (for tests and metrics)."""

    @property
    def listening(self) -> bool:
        """Whether ``LISTEN`` on this channel is active now, so its waiters may wait :attr:`fallback_s`."""
        return self._owner.listens_on(self.channel)

    def idle_s(self, poll_s: float) -> float:
        """How long a waiter whose own poll interval is ``poll_s`` waits for a wake-up before looking anyway."""
        return max(self.fallback_s, poll_s) if self.listening else poll_s

    def subscribe(self, event: asyncio.Event) -> None:
        """Set ``event`` (on the running loop) at every notification of this channel."""
        self._events = [*self._events, (asyncio.get_running_loop(), event)]

    def unsubscribe(self, event: asyncio.Event) -> None:
        self._events = [(loop, e) for loop, e in self._events if e is not event]

    def wake(self) -> None:
        """Set every event subscribed to this channel; safe from any thread."""
        for loop, event in self._events:
            with contextlib.suppress(RuntimeError):  # a loop that has closed meanwhile
                loop.call_soon_threadsafe(event.set)

    def _notified(self) -> None:
        self.received += 1
        self.wake()


class Wakeups:
    """One ``LISTEN`` connection per process for every channel asked for, each notification fanned out to
    the events subscribed to its channel's :class:`ChannelWakeups`."""

    def __init__(self, conninfo: str | None, *, retry_s: float = 1.0, connect_timeout_s: float = 10.0) -> None:
        if retry_s <= 0 or connect_timeout_s <= 0:
            raise ValueError("the wake-ups' retry and connect timeout must be over 0 seconds")
        self._conninfo = _named(conninfo) if conninfo is not None else None
        self._password = _password(conninfo)
        self._retry_s = retry_s
        self._connect_timeout_s = connect_timeout_s
        self._handles: dict[str, list[ChannelWakeups]] = {}
        self._connected = False
        self._listened: frozenset[str] = frozenset()  # LISTEN done on the live connection
        self._loop: asyncio.AbstractEventLoop | None = None  # run()'s, while it runs
        self._added: asyncio.Event | None = None  # set when a channel is asked for while run() runs
        self.received = 0
        """Notifications received so far, all channels (for tests and metrics)."""

    @classmethod
    def for_engine(cls, engine: Engine, **options: float) -> Wakeups:
        return cls(listen_conninfo(engine), **options)

    def channel(self, name: str, *, fallback_s: float = 5.0) -> ChannelWakeups:
        """A handle on the wake-ups of channel ``name``, which this process's connection listens on from now
        (at once if it is connected); each call gives a handle of its own, with its own ``fallback_s``."""
        if fallback_s <= 0:
            raise ValueError("the wake-ups' fallback poll must be over 0 seconds")
        if not name or len(name.encode()) > MAX_CHANNEL_BYTES:
            raise ValueError(f"a wake-up channel's name has 1 to {MAX_CHANNEL_BYTES} bytes")
        handle = ChannelWakeups(self, name, fallback_s)
        self._handles = {**self._handles, name: [*self._handles.get(name, ()), handle]}
        loop, added = self._loop, self._added
        if loop is not None and added is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nothing listens any more
                loop.call_soon_threadsafe(added.set)
        return handle

    @property
    def channels(self) -> tuple[str, ...]:
        """The channels asked for, in that order."""
        return tuple(self._handles)

    @property
    def listening(self) -> bool:
        """Whether the connection is up and listens on every channel asked for."""
        return self._connected and self._listened.issuperset(self._handles)

    def listens_on(self, channel: str) -> bool:
        """Whether ``LISTEN channel`` is active now."""
        return self._connected and channel in self._listened

    def wake(self) -> None:
        """Wake every waiter of every channel; safe from any thread."""
        for handles in self._handles.values():
            for handle in handles:
                handle.wake()

    async def run(self) -> None:
        """Listen until cancelled, reconnecting when the connection is lost: after ``retry_s``, doubled
        on each failed attempt up to :data:`MAX_RETRY_S`. Without PostgreSQL (SQLite) it returns at
        once: waiters poll, and workers wake in-process."""
        if self._conninfo is None:
            return
        if self._loop is not None:
            raise RuntimeError("these wake-ups are already running")
        self._loop, self._added = asyncio.get_running_loop(), asyncio.Event()
        delay = self._retry_s
        try:
            while True:
                try:
                    await self._listen(self._conninfo)
                except (psycopg.Error, OSError) as exc:
                    # a connection lost after it listened starts again at retry_s; one whose LISTEN failed (a hot
                    # standby refuses it) keeps backing off
                    delay = self._retry_s if self._listened else delay
                    log.warning("wake-ups: not listening on %s (%s); retrying in %g s, their waiters poll at "
                                "their own pace meanwhile", ", ".join(self.channels) or "no channel yet",
                                self._reason(exc), delay)
                finally:
                    self._connected, self._listened = False, frozenset()
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_S)
        finally:
            self._loop = self._added = None

    async def _listen(self, conninfo: str) -> None:
        added = self._added
        assert added is not None
        while not self._handles:  # no channel yet: no connection held for nothing
            added.clear()
            if not self._handles:
                await added.wait()
        conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True,
                                                     connect_timeout=max(int(self._connect_timeout_s), 1))
        async with conn:
            self._connected = True
            while True:
                added.clear()  # a channel asked for from here on sets it again, so none is missed
                new = [name for name in self._handles if name not in self._listened]
                for name in new:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(name)))
                self._listened = self._listened.union(new)
                for name in new:  # what changed while nobody listened is seen now, not at the next fallback poll
                    for handle in self._handles[name]:
                        handle.wake()
                await self._deliver_until_added(conn, added)

    async def _deliver_until_added(self, conn: psycopg.AsyncConnection[object], added: asyncio.Event) -> None:
        """Fan the notifications out until a channel is asked for (then return) or the connection fails (raise)."""
        receiving = asyncio.ensure_future(self._deliver(conn))
        asked = asyncio.ensure_future(added.wait())
        try:
            await asyncio.wait((receiving, asked), return_when=asyncio.FIRST_COMPLETED)
        finally:
            asked.cancel()
            receiving.cancel()  # idle between commands: stopping the wait leaves the connection usable
            await asyncio.gather(receiving, asked, return_exceptions=True)
        if not receiving.cancelled():
            receiving.result()  # the connection's error
            raise psycopg.OperationalError("the listening connection stopped delivering notifications")

    async def _deliver(self, conn: psycopg.AsyncConnection[object]) -> None:
        async for notify in conn.notifies():
            self.received += 1
            for handle in self._handles.get(notify.channel, ()):
                handle._notified()

    def _reason(self, exc: BaseException) -> str:
        """The first line of ``exc``'s message, bounded, with the password (if one could show) masked."""
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        password = self._password
        if password:
            for shown in {password, quote(password, safe="")}:
                reason = reason.replace(shown, "***")
        return reason


def _named(conninfo: str) -> str:
    """``conninfo`` with :data:`APPLICATION_NAME`, unless it names an application (or does not parse: connecting
    then says why)."""
    with contextlib.suppress(psycopg.Error):
        if not conninfo_to_dict(conninfo).get("application_name"):
            return make_conninfo(conninfo, application_name=APPLICATION_NAME)
    return conninfo


def _password(conninfo: str | None) -> str | None:
    """The password in ``conninfo``, to keep out of the log."""
    with contextlib.suppress(psycopg.Error):
        password = conninfo_to_dict(conninfo or "").get("password")
        return str(password) if password else None
    return None
