"""Session events: persisted in order, then pushed to whoever watches the session.

A watcher that reconnects asks for the events after the last ``seq`` it saw; the database
answers the past and the live queue the rest, so nothing is missed or seen twice.

With several replicas, ``share`` (:meth:`mspclaw.dispatch.broadcast.Broadcast.share`) publishes each event
to the others, which hand it to their own watchers with :meth:`SessionEvents.deliver`; a watcher that
follows a session (:meth:`SessionEvents.follow`) still reads the store after a gap in ``seq`` or a quiet
spell, so a lost message only delays an event.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncGenerator, Callable
from typing import Any

from mspclaw.pipeline.offload import run_store
from mspclaw.protocol.frames import Event
from mspclaw.store.tickets import TicketStore

CATCH_UP_S = 5.0
"""How long a follower waits for a pushed event before it reads the store anyway."""


class SessionEvents:
    def __init__(self, store: TicketStore, *, share: Callable[[Event], None] | None = None) -> None:
        """``share`` gets every event this process writes, after its commit (the other replicas' watchers)."""
        self._store = store
        self._share = share
        self._watchers: dict[str, dict[asyncio.Queue[Event], asyncio.AbstractEventLoop]] = defaultdict(dict)
        """Each session's watchers, with the loop each waits on (events come from worker threads too)."""

    def emit(self, session_id: str, event: str, data: dict[str, Any], *,
             session_values: dict[str, Any] | None = None) -> Event:
        """Store the event (and ``session_values``, session columns, in the same transaction), then push it."""
        row = self._store.add_event(session_id, event, data, session_values=session_values)
        return self._push(Event(session_id=session_id, seq=row.seq, event=event, data=data))

    async def emit_async(self, session_id: str, event: str, data: dict[str, Any], *,
                         session_values: dict[str, Any] | None = None) -> Event:
        """:meth:`emit` for the ticket pipeline: the write runs off the event loop where a commit waits
        for a database server (:func:`~mspclaw.pipeline.offload.run_store`)."""
        row = await run_store(self._store, self._store.add_event, session_id, event, data,
                              session_values=session_values)
        return self._push(Event(session_id=session_id, seq=row.seq, event=event, data=data))

    async def emit_step(self, session_id: str, *, title: str, tool: str | None, args: dict[str, Any],
                        ok: bool | None, observation: dict[str, Any], data: dict[str, Any]) -> Event:
        """Store a step record and its ``step`` event in one transaction, then push the event."""
        _, row = await run_store(self._store, self._store.add_step_and_event, session_id, title=title, tool=tool,
                                 args=args, ok=ok, observation=observation, event="step", data=data)
        return self._push(Event(session_id=session_id, seq=row.seq, event="step", data=data))

    def announce(self, session_id: str, seq: int, event: str, data: dict[str, Any]) -> Event:
        """Push an event that the store has already written (in the transaction of the change it
        announces) to whoever watches the session."""
        return self._push(Event(session_id=session_id, seq=seq, event=event, data=data))

    def _push(self, frame: Event) -> Event:
        self.deliver(frame)
        if self._share is not None:
            self._share(frame)
        return frame

    def deliver(self, frame: Event) -> None:
        """Hand an event to this process's watchers of its session only (one another replica wrote); safe
        from any thread (a synchronous route's decision is emitted from a worker thread)."""
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for queue, loop in list(self._watchers.get(frame.session_id, {}).items()):
            if loop is running:
                queue.put_nowait(frame)
            else:
                with contextlib.suppress(RuntimeError):  # that watcher's loop has closed: nobody to tell
                    loop.call_soon_threadsafe(queue.put_nowait, frame)

    async def follow(self, session_id: str, after_seq: int = 0, *,
                     catch_up_s: float = CATCH_UP_S) -> AsyncGenerator[Event, None]:
        """Every event of the session after ``after_seq``, in ``seq`` order and once each, until the caller
        stops: the store's first, then pushed ones. A pushed event out of order, or none for ``catch_up_s``,
        makes it read the store again (an event whose push was lost, or another replica's without Redis)."""
        queue = self.subscribe(session_id)
        last, read = after_seq, True
        try:
            while True:
                if read:
                    for event in await run_store(self._store, self.history, session_id, last):
                        last = event.seq
                        yield event
                try:
                    event = await asyncio.wait_for(queue.get(), catch_up_s)
                except TimeoutError:
                    read = True
                    continue
                read = event.seq > last + 1  # a gap: the store has what is missing
                if event.seq == last + 1:
                    last = event.seq
                    yield event
        finally:
            self.unsubscribe(session_id, queue)

    def history(self, session_id: str, after_seq: int = 0) -> list[Event]:
        return [
            Event(session_id=session_id, seq=row.seq, event=row.event, data=row.data)
            for row in self._store.events(session_id, after_seq)
        ]

    def subscribe(self, session_id: str) -> asyncio.Queue[Event]:
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._watchers[session_id][queue] = asyncio.get_running_loop()
        return queue

    def unsubscribe(self, session_id: str, queue: asyncio.Queue[Event]) -> None:
        watchers = self._watchers.get(session_id)
        if watchers is not None:
            watchers.pop(queue, None)
            if not watchers:
                del self._watchers[session_id]


async def woken_or_pushed(wake: asyncio.Event, pushed: asyncio.Queue[Event], timeout: float) -> None:
    """Return when ``wake`` is set (a decision in this process), an event is pushed to ``pushed`` (one from
    another replica), or ``timeout`` seconds pass, whichever comes first; the caller reads the store to see which."""
    woken, arrived = asyncio.ensure_future(wake.wait()), asyncio.ensure_future(pushed.get())
    try:
        await asyncio.wait((woken, arrived), timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        woken.cancel()
        arrived.cancel()
