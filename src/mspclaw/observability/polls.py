"""How each PSA poller is doing: what ``/readyz`` and ``/metrics`` report about pollers.

The poller calls :func:`record_poll` after every round, with the error's message when it failed;
a poller that fails round after round shows as a count of consecutive failures and the last
reason, which ``/readyz`` turns into "not ready" past its threshold.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace

from mspclaw.observability.metrics import observe_poll

MAX_REASON = 500
"""Characters of an error message kept as the reason."""


@dataclass(frozen=True, slots=True)
class PollState:
    psa: str
    polls: int = 0
    consecutive_failures: int = 0
    last_ok_at: float | None = None
    last_failure_at: float | None = None
    last_error: str | None = None


class PollHealth:
    """The latest state of every PSA poller of this process, by PSA account name."""

    def __init__(self) -> None:
        self._states: dict[str, PollState] = {}
        self._lock = threading.Lock()

    def record(self, psa: str, *, error: str | None = None, now: float | None = None) -> PollState:
        at = time.time() if now is None else now
        with self._lock:
            state = self._states.get(psa) or PollState(psa)
            if error is None:
                state = replace(state, polls=state.polls + 1, consecutive_failures=0, last_ok_at=at)
            else:
                state = replace(state, polls=state.polls + 1, consecutive_failures=state.consecutive_failures + 1,
                                last_failure_at=at, last_error=error[:MAX_REASON])
            self._states[psa] = state
        return state

    def get(self, psa: str) -> PollState | None:
        with self._lock:
            return self._states.get(psa)

    def forget(self, psa: str) -> None:
        with self._lock:
            self._states.pop(psa, None)


POLL_HEALTH = PollHealth()
"""The process's pollers (a poller is a task of this process, so their health is too)."""


def record_poll(psa: str, error: str | None = None) -> None:
    """One poll round of ``psa`` ended: ``error`` is the failure's message, ``None`` when it worked."""
    POLL_HEALTH.record(psa, error=error)
    observe_poll(psa, ok=error is None)
