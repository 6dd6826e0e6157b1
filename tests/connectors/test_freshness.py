"""The replay window, and that the intake's dedupe key outlives it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mspclaw.connectors.freshness import REPLAY_WINDOW_S, check_fresh
from mspclaw.errors import AuthError
from mspclaw.store.jobs import DEDUPE_KEEP

SENT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize("skew", [0, 1, REPLAY_WINDOW_S, -REPLAY_WINDOW_S])
def test_a_delivery_inside_the_window_passes(skew: int) -> None:
    check_fresh(SENT, SENT.timestamp() + skew, what="the test delivery")


@pytest.mark.parametrize(("skew", "said"), [(REPLAY_WINDOW_S + 1, "301s old"), (-REPLAY_WINDOW_S - 1, "in the future"),
                                            (86_400 * 365, "old")])
def test_a_delivery_outside_the_window_is_refused_saying_where(skew: int, said: str) -> None:
    with pytest.raises(AuthError, match=rf"the test delivery is .*{said}.*replay window"):
        check_fresh(SENT, SENT.timestamp() + skew, what="the test delivery")


def test_a_naive_time_is_utc() -> None:
    check_fresh(SENT.replace(tzinfo=None), SENT.timestamp(), what="x")


def test_the_dedupe_key_is_kept_longer_than_the_replay_window() -> None:
    """A replay that is still fresh must find the job its original made, not make a second one."""
    assert timedelta(seconds=REPLAY_WINDOW_S) * 2 <= DEDUPE_KEEP
