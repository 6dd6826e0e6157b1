"""The time of a store that takes an injected clock: the clock must say which zone it is in, and the store
works in UTC (what the ``UTCDateTime`` columns hold, and what replicas compare)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime


def aware_now(clock: Callable[[], datetime], what: str) -> datetime:
    """``clock()`` in UTC. A naive datetime (no zone, or a zone with no offset) raises ``ValueError`` naming
    ``what`` (e.g. ``"the job queue's clock"``) instead of being taken for local time."""
    now = clock()
    if now.utcoffset() is None:
        raise ValueError(f"{what} must return aware datetimes, got a naive {now.isoformat()}")
    return now.astimezone(UTC)
