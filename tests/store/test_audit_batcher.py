"""Group commit on its own: items of concurrent callers written in batches, results and failures to each."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVarTuple, Unpack, cast

import pytest

from mspclaw.store.audit.batcher import GroupCommit


class Writer:
    """A ``write`` that records its batches; ``gate`` holds the first batch until released."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.batches: list[list[str]] = []
        self.finished: list[int] = []
        self.gate = threading.Event()
        self.fail_on = fail_on
        self.threads: set[str] = set()

    def write(self, items: list[str]) -> tuple[list[str], int]:
        self.threads.add(threading.current_thread().name)
        if not self.batches:
            self.gate.wait(5)
        self.batches.append(items)
        if self.fail_on in items:
            raise OSError(f"disk full at {self.fail_on}")
        return [item.upper() for item in items], len(items)

    def finish(self, count: int) -> None:
        self.finished.append(count)


def test_callers_queued_behind_a_batch_share_the_next_one() -> None:
    writer = Writer()
    batches = GroupCommit(writer.write, writer.finish, loop_writes=False, name="test-writer")
    first = batches.submit("a")  # the writer thread takes it and waits at the gate
    while not writer.threads:
        threading.Event().wait(0.01)
    with ThreadPoolExecutor(8) as pool:
        queued = list(pool.map(lambda i: batches.submit(f"b{i}"), range(8)))  # eight threads, each one item
    writer.gate.set()
    assert first.result(5) == "A"
    assert [f.result(5) for f in queued] == [f"B{i}" for i in range(8)]
    assert len(writer.batches) == 2 and writer.batches[0] == ["a"]
    assert sorted(writer.batches[1]) == [f"b{i}" for i in range(8)]
    assert writer.finished == [1, 8]
    assert writer.threads == {"test-writer"}


def test_every_caller_of_a_failed_batch_gets_its_failure() -> None:
    writer = Writer(fail_on="bad")
    writer.gate.set()
    batches = GroupCommit(writer.write, writer.finish, loop_writes=False)
    with pytest.raises(OSError, match="disk full at bad"):
        batches.submit("bad").result(5)
    assert batches.submit("good").result(5) == "GOOD"


@pytest.mark.anyio
async def test_coroutines_gathered_together_are_one_batch_written_on_the_loop() -> None:
    writer = Writer()
    writer.gate.set()
    batches = GroupCommit(writer.write, writer.finish, loop_writes=True, name="loop-batches")
    results = await asyncio.gather(*(batches.record(f"c{i}") for i in range(10)))
    assert results == [f"C{i}" for i in range(10)]
    assert writer.batches == [[f"c{i}" for i in range(10)]]
    assert writer.threads == {threading.current_thread().name}, "written on the loop's own thread"
    assert writer.finished == [10]


@pytest.mark.anyio
async def test_coroutines_await_the_writer_thread_without_loop_writes() -> None:
    writer = Writer()
    writer.gate.set()
    batches = GroupCommit(writer.write, writer.finish, loop_writes=False, name="thread-batches")
    assert await batches.record("x") == "X"
    assert writer.threads == {"thread-batches"}


@pytest.mark.parametrize("fail_on", [None, "b"])
def test_a_caller_that_stops_waiting_leaves_the_writer_thread_working(fail_on: str | None) -> None:
    """A caller cancelled while its batch is written (its task was cancelled: ``wrap_future`` cancels the
    future): the item is written all the same, the writer thread does not die on the settled future, and the
    items queued after it are written and answered."""
    writer = Writer(fail_on=fail_on)
    batches = GroupCommit(writer.write, writer.finish, loop_writes=False, name="test-writer")
    first = batches.submit("a")
    while not writer.threads:
        threading.Event().wait(0.01)
    queued = batches.submit("b")
    assert queued.cancel()  # the caller stopped waiting before its batch was written
    writer.gate.set()
    assert first.result(5) == "A"
    third = batches.submit("c")
    assert third.result(5) == "C"
    assert ["b"] in writer.batches  # written all the same


Ts = TypeVarTuple("Ts")


class CountingLoop(asyncio.SelectorEventLoop):
    """A loop that counts the callbacks other threads hand it (each one a wake-up of the loop)."""

    def __init__(self) -> None:
        super().__init__()
        self.from_threads = 0

    def call_soon_threadsafe(self, callback: Callable[[Unpack[Ts]], object], *args: *Ts,
                             context: contextvars.Context | None = None) -> asyncio.Handle:
        self.from_threads += 1
        return super().call_soon_threadsafe(callback, *args, context=context)


def test_the_writer_thread_answers_a_loops_coroutines_once_per_batch() -> None:
    """Ten coroutines queued behind a batch: their ten results reach the loop in one wake-up, not ten."""
    writer = Writer()
    batches = GroupCommit(writer.write, writer.finish, loop_writes=False, name="thread-batches")

    async def main() -> list[str]:
        first = asyncio.ensure_future(batches.record("a"))
        while not writer.threads:
            await asyncio.sleep(0.01)
        queued = [asyncio.ensure_future(batches.record(f"b{i}")) for i in range(10)]
        await asyncio.sleep(0)
        loop.from_threads = 0
        writer.gate.set()
        return [await first, *[await task for task in queued]]

    with asyncio.Runner(loop_factory=CountingLoop) as runner:
        loop = cast("CountingLoop", runner.get_loop())
        assert runner.run(main()) == ["A", *[f"B{i}" for i in range(10)]]
    assert writer.batches == [["a"], [f"b{i}" for i in range(10)]]
    assert loop.from_threads == 2, "one wake-up of the loop per batch"


@pytest.mark.anyio
async def test_coroutines_of_a_failed_batch_get_its_failure_from_the_writer_thread() -> None:
    writer = Writer(fail_on="bad")
    writer.gate.set()
    batches = GroupCommit(writer.write, writer.finish, loop_writes=False, name="thread-batches")
    outcomes = await asyncio.gather(batches.record("bad"), return_exceptions=True)
    assert isinstance(outcomes[0], OSError) and "disk full at bad" in str(outcomes[0])
    assert await batches.record("good") == "GOOD"


@pytest.mark.anyio
async def test_a_cancelled_coroutine_leaves_the_writer_thread_answering_the_others() -> None:
    writer = Writer()
    batches = GroupCommit(writer.write, writer.finish, loop_writes=False, name="thread-batches")
    first = asyncio.ensure_future(batches.record("a"))
    while not writer.threads:
        await asyncio.sleep(0.01)
    gone, kept = asyncio.ensure_future(batches.record("b")), asyncio.ensure_future(batches.record("c"))
    await asyncio.sleep(0)
    gone.cancel()
    writer.gate.set()
    assert [await first, await kept] == ["A", "C"]
    assert gone.cancelled()
    assert ["b", "c"] in writer.batches  # written all the same
    assert await batches.record("d") == "D"


def test_a_coroutine_whose_loop_closed_does_not_stop_the_writer_thread() -> None:
    writer = Writer()
    batches = GroupCommit(writer.write, writer.finish, loop_writes=False, name="thread-batches")

    async def leave() -> None:
        task = asyncio.ensure_future(batches.record("a"))
        while not writer.threads:
            await asyncio.sleep(0.01)
        task.cancel()

    asyncio.run(leave())  # the loop is closed before the writer answers
    writer.gate.set()
    assert batches.submit("b").result(5) == "B"
