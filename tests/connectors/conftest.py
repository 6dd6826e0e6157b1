"""Fixtures for the connector tests: the anyio backend and a fake clock that never really waits."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class FakeTime:
    """A monotonic clock and a ``sleep`` that records each wait and moves the clock by it."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()
