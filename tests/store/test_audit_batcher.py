"""Group commit on its own: items of concurrent callers written in batches, results and failures to each."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

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
