"""How old a webhook delivery may be: the replay window shared by the connectors that can tell.

A PSA that puts its send time under its signature (SuperOps in HMAC mode: the signed
``X-MSPclaw-Timestamp``; Autotask: ``EventTime`` in the HMAC-signed body) has its deliveries
refused when that time is more than :data:`REPLAY_WINDOW_S` away from ours, either way. Within
the window a replay names the same ticket as the original, and the intake's dedupe key (kept
for :data:`mspclaw.store.jobs.DEDUPE_KEEP`, far longer than the window) makes it the same job.
Where a vendor signs no time, ``docs/psa.md`` (Replays) says what bounds a replay instead.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from mspclaw.errors import AuthError

REPLAY_WINDOW_S: Final = 300
"""Five minutes, either way: the most a delivery's signed time may differ from our clock."""


def check_fresh(sent: datetime, now: float, *, what: str) -> None:
    """Refuse (:class:`AuthError`) a delivery whose signed send time is outside the replay window.

    ``sent`` without a time zone is taken as UTC; ``now`` is unix seconds; ``what`` names the
    delivery and its time field in the message.
    """
    moment = sent if sent.tzinfo is not None else sent.replace(tzinfo=UTC)
    skew = now - moment.timestamp()
    if abs(skew) > REPLAY_WINDOW_S:
        direction = "old" if skew > 0 else "in the future"
        raise AuthError(f"{what} is {abs(skew):.0f}s {direction}, outside the {REPLAY_WINDOW_S}s replay window: "
                        "a replayed or badly delayed delivery (check the clocks if every delivery is refused)")
