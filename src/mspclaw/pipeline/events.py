"""Session events: persisted in order, then pushed to whoever watches the session.

A watcher that reconnects asks for the events after the last ``seq`` it saw; the database
answers the past and the live queue the rest, so nothing is missed or seen twice.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from mspclaw.pipeline.offload import run_store
from mspclaw.protocol.frames import Event
from mspclaw.store.tickets import TicketStore


class SessionEvents:
    def __init__(self, store: TicketStore) -> None:
        self._store = store
        self._watchers: dict[str, set[asyncio.Queue[Event]]] = defaultdict(set)

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
        for queue in self._watchers.get(frame.session_id, ()):
            queue.put_nowait(frame)
        return frame

    def history(self, session_id: str, after_seq: int = 0) -> list[Event]:
        return [
            Event(session_id=session_id, seq=row.seq, event=row.event, data=row.data)
            for row in self._store.events(session_id, after_seq)
        ]

    def subscribe(self, session_id: str) -> asyncio.Queue[Event]:
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._watchers[session_id].add(queue)
        return queue

    def unsubscribe(self, session_id: str, queue: asyncio.Queue[Event]) -> None:
        watchers = self._watchers.get(session_id)
        if watchers is not None:
            watchers.discard(queue)
            if not watchers:
                del self._watchers[session_id]
