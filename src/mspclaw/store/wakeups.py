"""Waking waiters the moment something changes in the database, on any replica: PostgreSQL's
``LISTEN``/``NOTIFY`` on one channel, fanned out to asyncio events.

Two channels use it. :data:`JOBS_CHANNEL`: :meth:`~mspclaw.store.jobs.JobQueue.enqueue` sends
``NOTIFY mspclaw_jobs`` (the payload is the job's kind) with the job's insert, delivered once it
commits, and every subscribed idle worker claims at once instead of at its next poll. The technician
roster's channel (``store/technicians.py``): an edit's transaction notifies, and each replica's roster
refresh reloads. :class:`Wakeups` keeps one dedicated psycopg connection per channel and process.

A notification can be lost (the listening connection drops, the server restarts): a waiter then
still sees the change at its slow fallback poll (:attr:`Wakeups.fallback_s`), so a lost notification
delays work and never loses it. After reconnecting, the listener wakes every waiter once, for
whatever changed while it was away. While it is not listening (not started, reconnecting, or on
SQLite), :meth:`Wakeups.idle_s` gives the waiter's own short poll interval back.

SQLite has no notifications and runs one process: jobs queued in this process wake its workers
in-process (``Intake.listen``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final

import psycopg
from psycopg import sql
from sqlalchemy import Engine

log = logging.getLogger(__name__)

JOBS_CHANNEL: Final = "mspclaw_jobs"
MAX_RETRY_S: Final = 30.0
"""The longest wait between two attempts to connect the listener."""


def listen_conninfo(engine: Engine) -> str | None:
    """The libpq connection string of ``engine``'s PostgreSQL database, ``None`` for SQLite."""
    if engine.dialect.name != "postgresql":
        return None
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


class Wakeups:
    """One ``LISTEN`` connection per channel and process, fanned out to the waiters' events."""

    def __init__(self, conninfo: str | None, *, channel: str = JOBS_CHANNEL, fallback_s: float = 5.0,
                 retry_s: float = 1.0, connect_timeout_s: float = 10.0) -> None:
        if fallback_s <= 0 or retry_s <= 0 or connect_timeout_s <= 0:
            raise ValueError("the wake-ups' fallback poll, retry and connect timeout must be over 0 seconds")
        self._conninfo = conninfo
        self.channel = channel
        self.fallback_s = fallback_s
        """How often an idle worker claims anyway while notifications work (a lost one costs this much)."""
        self._retry_s = retry_s
        self._connect_timeout_s = connect_timeout_s
        self._events: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self._listening = False
        self.received = 0
        """Notifications received so far (for tests and metrics)."""

    @classmethod
    def for_engine(cls, engine: Engine, *, channel: str = JOBS_CHANNEL, **options: float) -> Wakeups:
        return cls(listen_conninfo(engine), channel=channel, **options)

    @property
    def listening(self) -> bool:
        """Whether ``LISTEN`` is active now, so idle workers may wait :attr:`fallback_s` between claims."""
        return self._listening

    def idle_s(self, poll_s: float) -> float:
        """How long an idle worker whose own poll interval is ``poll_s`` waits for a wake-up before claiming."""
        return max(self.fallback_s, poll_s) if self._listening else poll_s

    def subscribe(self, event: asyncio.Event) -> None:
        """Set ``event`` (on the running loop) at every notification."""
        self._events.append((asyncio.get_running_loop(), event))

    def unsubscribe(self, event: asyncio.Event) -> None:
        self._events = [(loop, e) for loop, e in self._events if e is not event]

    def wake(self) -> None:
        """Set every subscribed event; safe from any thread."""
        for loop, event in self._events:
            with contextlib.suppress(RuntimeError):  # a loop that has closed meanwhile
                loop.call_soon_threadsafe(event.set)

    async def run(self) -> None:
        """Listen until cancelled, reconnecting when the connection is lost: after ``retry_s``, doubled
        on each failed attempt up to :data:`MAX_RETRY_S`. Without PostgreSQL (SQLite) it returns at
        once: workers poll and wake in-process."""
        if self._conninfo is None:
            return
        delay = self._retry_s
        while True:
            try:
                await self._listen(self._conninfo)
            except (psycopg.Error, OSError) as exc:
                delay = self._retry_s if self._listening else delay  # a lost connection starts again at retry_s
                reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
                log.warning("job wake-ups: not listening on %s (%s); retrying in %g s, its waiters (idle "
                            "workers) poll at their own pace meanwhile", self.channel, reason, delay)
            finally:
                self._listening = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_S)

    async def _listen(self, conninfo: str) -> None:
        conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True,
                                                     connect_timeout=max(int(self._connect_timeout_s), 1))
        async with conn:
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
            self._listening = True
            self.wake()  # anything queued while nobody listened is claimed now, not at the next fallback poll
            async for _ in conn.notifies():
                self.received += 1
                self.wake()
