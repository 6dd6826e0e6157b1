"""``aware_now``: the one check that a store's injected clock is timezone-aware, and its answer in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone, tzinfo

import pytest

from mspclaw.store.clock import aware_now


class NoOffset(tzinfo):
    """A zone that does not know its offset: a datetime in it is naive, as Python defines it."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None

    def tzname(self, dt: datetime | None) -> str | None:
        return None


def test_an_aware_time_comes_back_in_utc() -> None:
    paris = datetime(2026, 3, 1, 12, 30, tzinfo=timezone(timedelta(hours=1)))
    now = aware_now(lambda: paris, "the test clock")
    assert now == paris and now.tzinfo is UTC and now.hour == 11


def test_a_utc_time_is_unchanged() -> None:
    moment = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    assert aware_now(lambda: moment, "the test clock") == moment


@pytest.mark.parametrize("naive", [datetime(2026, 3, 1, 12, 30), datetime(2026, 3, 1, 12, 30, tzinfo=NoOffset())])
def test_a_naive_time_is_refused_naming_the_clock(naive: datetime) -> None:
    with pytest.raises(ValueError, match=r"^the job queue's clock must return aware datetimes, got a naive 2026-03-01"):
        aware_now(lambda: naive, "the job queue's clock")
