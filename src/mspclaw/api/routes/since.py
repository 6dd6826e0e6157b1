"""The ``since`` query parameter of the stats and audit routes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mspclaw.errors import Conflict
from mspclaw.store.tables import utcnow


def parse_since(value: str | None) -> datetime | None:
    """An ISO time or an age such as 30m, 12h, 7d."""
    if not value:
        return None
    units = {"m": 60, "h": 3600, "d": 86400}
    try:
        if value[:-1].isdigit() and value[-1] in units:
            return utcnow() - timedelta(seconds=int(value[:-1]) * units[value[-1]])
        parsed = datetime.fromisoformat(value)
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError):  # not a time, or one outside years 1 to 9999 in UTC
        raise Conflict(f"since={value[:40]!r}: use an ISO time (2026-11-23T10:00) or an age like 30m, 12h, "
                       "7d") from None
