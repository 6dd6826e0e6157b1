"""The agent daemon's reconnect backoff: full jitter within its bounds, a quick and spread first retry.

Pure computation over the daemon's own ``full_jitter`` and constructor (no server needed); the
daemon's reconnect loop itself is exercised against a protocol peer in ``test_agent_daemon.py``.
"""

from __future__ import annotations

import random
import statistics

import pytest

from mspclaw.agent.daemon import BACKOFF_INITIAL_S, BACKOFF_MAX_S, AgentDaemon, full_jitter
from mspclaw.agent.executor import Executor
from mspclaw.agent.state import AgentState


def test_the_first_retry_is_within_a_second_and_spread_across_it() -> None:
    random.seed(11)
    first = [full_jitter(0, BACKOFF_INITIAL_S, BACKOFF_MAX_S) for _ in range(10_000)]
    assert all(0.0 <= d <= BACKOFF_INITIAL_S == 1.0 for d in first)
    # 10,000 agents of a restarted replica arrive spread over the second, not at once
    per_tenth = [sum(1 for d in first if k / 10 <= d < (k + 1) / 10) for k in range(10)]
    assert min(per_tenth) > 800 and max(per_tenth) < 1200
    assert statistics.mean(first) == pytest.approx(0.5, abs=0.02)


def test_each_window_doubles_up_to_the_cap_and_never_beyond() -> None:
    random.seed(12)
    for attempt in range(0, 12):
        bound = min(BACKOFF_MAX_S, BACKOFF_INITIAL_S * 2**attempt)
        delays = [full_jitter(attempt, BACKOFF_INITIAL_S, BACKOFF_MAX_S) for _ in range(2000)]
        assert all(0.0 <= d <= bound for d in delays)
        assert max(delays) > 0.9 * bound  # the whole window is used, so a storm spreads over it
    assert BACKOFF_MAX_S == 30.0  # after a long outage an agent is back within 30 s of the server, not minutes
    assert full_jitter(10**9, BACKOFF_INITIAL_S, BACKOFF_MAX_S) <= BACKOFF_MAX_S  # no overflow on long outages
    assert 0.0 <= full_jitter(-3, BACKOFF_INITIAL_S, BACKOFF_MAX_S) <= BACKOFF_INITIAL_S


@pytest.mark.parametrize(("initial", "cap"), [(0.0, 1.0), (-1.0, 1.0), (2.0, 1.0)])
def test_a_backoff_that_cannot_work_is_refused_with_its_values(initial: float, cap: float, state: AgentState,
                                                               executor: Executor) -> None:
    with pytest.raises(ValueError, match=r"0 < backoff_initial <= backoff_max, got .* seconds"):
        AgentDaemon(server="http://127.0.0.1:1", state=state, executor=executor, backoff_initial=initial,
                    backoff_max=cap)
