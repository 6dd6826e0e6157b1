"""Group commit: the items of concurrent callers written in batches, each caller waiting for its own.

One writer at a time takes every item queued since its last batch and hands them to ``write``
together (for the audit log: one transaction, one write and one fsync per batch), then
``finish`` with what ``write`` left to do once its lock is released (the fsync after a SQLite
commit). Each caller gets its own item's result, or the batch's exception.

Two writers, one per colour of caller:

* :meth:`GroupCommit.submit` (threads): a writer thread of this instance, started on demand,
  which ends after :data:`IDLE_S` without work.
* :meth:`GroupCommit.record` (coroutines): with ``loop_writes``, a task on the caller's event
  loop runs ``write`` on the loop's thread and ``finish`` in the loop's executor, so the loop
  never waits for the disk and no second thread competes with it for the GIL and SQLite's write
  lock; without it, or while another loop's task is writing, the coroutine awaits the writer
  thread instead, which hands a batch's results to each loop in one ``call_soon_threadsafe``
  (one wake-up of the loop per batch, not one per event and no ``concurrent.futures`` future each).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from typing import Any, Generic, TypeVar

from mspclaw.store import loop_guard

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")
PendingT = TypeVar("PendingT")

IDLE_S = 2.0
"""A writer thread with nothing to write for this long ends; the next item starts another."""


class GroupCommit(Generic[ItemT, ResultT, PendingT]):
    """Batches items for ``write`` (results in the items' order, and what is left for ``finish``)."""

    def __init__(self, write: Callable[[list[ItemT]], tuple[list[ResultT], PendingT]],
                 finish: Callable[[PendingT], None], *, loop_writes: bool, idle_s: float = IDLE_S,
                 name: str = "group-commit") -> None:
        self._name = name
        self._write = write
        self._finish = finish
        self._loop_writes = loop_writes
        self._idle_s = idle_s
        self._pending: list[tuple[ItemT, Future[ResultT] | asyncio.Future[ResultT]]] = []  # for the writer thread
        self._ready = threading.Condition(threading.Lock())
        self._writer: threading.Thread | None = None
        self._writer_waiting = False
        self._loop_pending: list[tuple[ItemT, asyncio.Future[ResultT]]] = []  # for the flusher task
        self._flusher: asyncio.Task[None] | None = None

    # --- threads ---------------------------------------------------------------------------------

    def submit(self, item: ItemT) -> Future[ResultT]:
        """Queue ``item`` for the writer thread; the future settles once its batch is done."""
        done: Future[ResultT] = Future()
        self._queue(item, done)
        return done

    def _queue(self, item: ItemT, done: Future[ResultT] | asyncio.Future[ResultT]) -> None:
        with self._ready:
            self._pending.append((item, done))
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_loop, name=self._name, daemon=True)
                self._writer.start()
            elif self._writer_waiting:  # a busy writer looks at the queue again when its batch is done
                self._ready.notify()

    def _write_loop(self) -> None:
        """The writer thread: takes every item queued so far as one batch, until idle for ``idle_s``."""
        while True:
            with self._ready:
                while not self._pending:
                    self._writer_waiting = True
                    woken = self._ready.wait(self._idle_s)
                    self._writer_waiting = False
                    if not woken and not self._pending:
                        self._writer = None
                        return
                batch, self._pending = self._pending, []
            outcomes: list[tuple[Any, BaseException | None]]
            try:
                results, pending = self._write([item for item, _ in batch])
                self._finish(pending)
            except BaseException as exc:  # every caller of the batch gets the failure
                outcomes = [(None, exc)] * len(batch)
            else:
                outcomes = [(result, None) for result in results]
            _settle(batch, outcomes)
            del batch, outcomes

    # --- coroutines ------------------------------------------------------------------------------

    async def record(self, item: ItemT) -> ResultT:
        """Queue ``item`` and await its batch without blocking the event loop."""
        loop = asyncio.get_running_loop()
        flusher = self._flusher
        waiter: asyncio.Future[ResultT] = loop.create_future()
        if not self._loop_writes or (flusher is not None and flusher.get_loop() is not loop and not flusher.done()):
            self._queue(item, waiter)  # the writer thread settles it on this loop
            return await waiter
        self._loop_pending.append((item, waiter))
        if flusher is None or flusher.done():
            self._flusher = loop.create_task(self._flush_loop(), name=self._name)
        return await waiter

    async def _flush_loop(self) -> None:
        """Write the batches queued on this loop one after the other, until none is left."""
        loop = asyncio.get_running_loop()
        while self._loop_pending:
            batch, self._loop_pending = self._loop_pending, []
            try:
                with loop_guard.inline():  # SQLite's commit on the loop's thread; its fsync in the executor
                    results, pending = self._write([item for item, _ in batch])
                await loop.run_in_executor(None, self._finish, pending)
            except asyncio.CancelledError:
                for _, waiter in batch + self._loop_pending:
                    waiter.cancel()
                self._loop_pending = []
                raise
            except Exception as exc:  # every caller of the batch gets the failure
                for _, waiter in batch:
                    if not waiter.done():
                        waiter.set_exception(exc)
                continue
            for (_, waiter), result in zip(batch, results, strict=True):
                if not waiter.done():
                    waiter.set_result(result)


def _settle(batch: list[tuple[Any, Future[Any] | asyncio.Future[Any]]],
            outcomes: list[tuple[Any, BaseException | None]]) -> None:
    """On the writer thread: each caller's result or exception; a coroutine's once per loop, in one call."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, BaseException | None]]] = {}
    for (_, done), (result, exc) in zip(batch, outcomes, strict=True):
        if isinstance(done, Future):
            with contextlib.suppress(InvalidStateError):  # its caller stopped waiting (cancelled)
                if exc is None:
                    done.set_result(result)
                else:
                    done.set_exception(exc)
        else:
            by_loop.setdefault(done.get_loop(), []).append((done, result, exc))
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop was closed meanwhile: nobody waits any more
            loop.call_soon_threadsafe(_settle_on_loop, settled)


def _settle_on_loop(settled: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for waiter, result, exc in settled:
        if waiter.done():  # its caller was cancelled: the event is written all the same
            continue
        if exc is None:
            waiter.set_result(result)
        else:
            waiter.set_exception(exc)
