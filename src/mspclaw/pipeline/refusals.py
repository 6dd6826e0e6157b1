"""Refused requests (bad credentials, forged webhooks): counted always, sampled into the audit trail.

A refusal costs the attacker one request; it must not cost the server one hash-chained, fsynced
audit event. Each refusal is counted in memory (:meth:`Refusals.counts`, for metrics); per source,
kind and error code at most one chained event is written per window (a minute), carrying how many
refusals of that source were suppressed since its previous event, and one log line goes with it.
A flood from many sources is capped as a whole too: past ``max_events`` events in a window, the
rest are counted only.

Sources are IP addresses; an IPv6 address counts as its /64 network, which one host can fill.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mspclaw.store.audit import AuditLog

log = logging.getLogger(__name__)


def source_of(host: str) -> str:
    """The address a limit applies to: an IPv4 address, an IPv6 /64 network, else the text as given."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host[:100]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address.ipv4_mapped or address) if isinstance(address, ipaddress.IPv6Address) else str(address)


@dataclass
class _Window:
    started: float
    suppressed: int = 0


class Refusals:
    """Counts refusals and writes a sample of them to the audit trail (see the module's text)."""

    def __init__(self, audit: AuditLog, *, window_s: float = 60.0, max_sources: int = 10_000,
                 max_events: int = 120, clock: Callable[[], float] = time.monotonic) -> None:
        self._audit = audit
        self.window_s, self.max_sources, self.max_events = window_s, max_sources, max_events
        self._clock = clock
        self._windows: OrderedDict[tuple[str, str, str], _Window] = OrderedDict()
        self._counts: Counter[str] = Counter()
        self._global = _Window(clock())
        self._global_events = 0
        self._writing: set[asyncio.Task[Any]] = set()

    def counts(self) -> dict[str, int]:
        """Refusals by kind since start, and how many were audited and suppressed (a copy)."""
        return dict(self._counts)

    async def refused(self, kind: str, host: str, *, code: str, data: Mapping[str, Any]) -> bool:
        """Count one refusal of ``kind`` from ``host``; audit it if its window allows. True when audited."""
        event = self._admit(kind, host, code, data)
        if event is None:
            return False
        await self._audit.record(kind, actor=event[0], data=event[1])
        return True

    def note(self, kind: str, host: str, *, code: str, data: Mapping[str, Any]) -> bool:
        """:meth:`refused` for code that is not a coroutine (an agent's upgrade, a login): the sampled
        event is written in the background on the running loop, or at once without one."""
        event = self._admit(kind, host, code, data)
        if event is None:
            return False
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._audit.append(kind, actor=event[0], data=event[1])
            return True
        task = loop.create_task(self._audit.record(kind, actor=event[0], data=event[1]))
        self._writing.add(task)
        task.add_done_callback(self._writing.discard)
        return True

    def _admit(self, kind: str, host: str, code: str, data: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
        """Count the refusal; the audit event to write (actor, data) when its window allows, else None."""
        now = self._clock()
        source = source_of(host)
        self._counts[kind] += 1
        if now - self._global.started >= self.window_s:
            self._global, self._global_events = _Window(now), 0
        key = (kind, source, code)
        window = self._windows.get(key)
        if (window is not None and now - window.started < self.window_s) or self._global_events >= self.max_events:
            if window is not None:
                window.suppressed += 1
            self._counts["suppressed"] += 1
            return None
        suppressed = window.suppressed if window is not None else 0
        self._windows[key] = _Window(now)
        self._windows.move_to_end(key)
        while len(self._windows) > self.max_sources:
            self._windows.popitem(last=False)
        self._global_events += 1
        self._counts["audited"] += 1
        log.warning("%s from %s (%s): %s; %d more from it in the %d s before were counted, not audited",
                    kind, source, code, data.get("reason", ""), suppressed, int(self.window_s))
        return source, {**data, "code": code, "suppressed_before": suppressed, "window_s": self.window_s}
