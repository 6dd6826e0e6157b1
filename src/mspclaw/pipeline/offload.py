"""Store calls that would hold the event loop while a database server commits.

On PostgreSQL every write transaction ends with a round trip and the server's WAL flush; made on
the event loop, each stalls every ticket of the process for that long. :func:`run_store` runs such
a call on a worker thread instead, so other tickets go on meanwhile (and the server flushes their
commits together). On SQLite a commit is a local file write that costs less than the thread hop,
and it runs inline (allowed by :func:`mspclaw.store.loop_guard.inline`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, Protocol, TypeVar

from mspclaw.store import loop_guard

P = ParamSpec("P")
T = TypeVar("T")


class Store(Protocol):
    """A store that knows where its commits go (:class:`~mspclaw.store.tickets.TicketStore`,
    :class:`~mspclaw.store.jobs.JobQueue`)."""

    @property
    def commits_wait_for_server(self) -> bool: ...


async def run_store(store: Store, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)``: on a thread when ``store``'s commits wait for a server, else inline."""
    if store.commits_wait_for_server:
        return await asyncio.to_thread(fn, *args, **kwargs)
    with loop_guard.inline():
        return fn(*args, **kwargs)
