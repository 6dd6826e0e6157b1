"""The measured families: what can only be counted where it happens.

Everything that can be read from the database or the hub when Prometheus scrapes (tickets, the
queue, approvals, agents, model spend) is computed then, by ``api/metrics.py``; what is here is
the rest, recorded by one call at each measurement point:

* :func:`observe_tool_call` in the dispatcher, per tool call: latency by tool and outcome;
* :func:`psa_request` around :meth:`PSAHttp.request`: PSA requests, errors by code, latency, per PSA;
* :func:`timed_audit_write` around the audit log's writes: how long a write takes its caller;
* :func:`observe_poll` in the PSA poller: polls by PSA and outcome.

They live in :data:`MEASURED`, a registry of their own (not ``prometheus_client.REGISTRY``), so a
process holding several apps (tests) exposes each family once, and nothing registers twice.
Label values are bounded: tool names come from the catalogue, PSA names from the connectors, error
codes from :mod:`mspclaw.errors`.
"""

from __future__ import annotations

import bisect
import functools
import math
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram, Metric
from prometheus_client.core import HistogramMetricFamily

MEASURED = CollectorRegistry(auto_describe=True)


class LoopHistogram:
    """A histogram for the hot path of one event loop: a tool call costs one bisect and two additions.

    ``prometheus_client.Histogram`` takes a lock and resolves its labels on every observation (what
    that costs a tool call: ``docs/benchmarks.md``, Fleet); observations here come from the event loop's
    thread only, so they need no lock. A scrape, from another thread, copies the counts; a scrape
    racing an observation may see it in the sum and not yet in the count, never a torn number.
    """

    def __init__(self, name: str, documentation: str, labels: Sequence[str], buckets: Sequence[float]) -> None:
        self.name, self.documentation, self.labels = name, documentation, list(labels)
        self.bounds = [*sorted(buckets), math.inf]
        self._series: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = ([0] * len(self.bounds), [0.0])
        series[0][bisect.bisect_left(self.bounds, value)] += 1
        series[1][0] += value

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
        for labels, (counts, total) in list(self._series.items()):
            cumulative, running = [], 0
            for bound, count in zip(self.bounds, list(counts), strict=True):
                running += count
                cumulative.append(("+Inf" if math.isinf(bound) else repr(bound), running))
            family.add_metric(list(labels), cumulative, total[0])
        yield family


TOOL_CALL_SECONDS = LoopHistogram(
    "mspclaw_tool_call_duration_seconds", "Tool calls on agents, from sending the call to its result, by outcome "
    "(ok, failed, refused, timeout, offline, cancelled).", ["tool", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0))
MEASURED.register(TOOL_CALL_SECONDS)
PSA_REQUESTS = Counter("mspclaw_psa_requests", "PSA API requests (retries included in one), by PSA.", ["psa"],
                       registry=MEASURED)
PSA_ERRORS = Counter("mspclaw_psa_errors", "PSA API requests that failed after their retries, by PSA and error "
                     "code (psa_unavailable, psa_rate_limited, psa_auth, psa_not_found, psa_rejected...).",
                     ["psa", "code"], registry=MEASURED)
PSA_SECONDS = Histogram("mspclaw_psa_request_duration_seconds", "PSA API requests, retries and their waits "
                        "included, by PSA.", ["psa"], registry=MEASURED,
                        buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0))
AUDIT_WRITE_SECONDS = Histogram("mspclaw_audit_write_duration_seconds", "Audit events, from the call to the "
                                "event being durable (database commit and day file).", registry=MEASURED,
                                buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))
POLLS = Counter("mspclaw_psa_polls", "PSA polls, by PSA account and outcome (ok, failed).", ["psa", "outcome"],
                registry=MEASURED)


def observe_tool_call(tool: str, outcome: str, seconds: float) -> None:
    """One tool call's latency; from the event loop's thread (the dispatcher's)."""
    TOOL_CALL_SECONDS.observe((tool, outcome), seconds)


def observe_poll(psa: str, *, ok: bool) -> None:
    POLLS.labels(psa, "ok" if ok else "failed").inc()


class _NamedService(Protocol):
    service: str


S = TypeVar("S", bound=_NamedService)
P = ParamSpec("P")
R = TypeVar("R")


def psa_request(method: Callable[Concatenate[S, P], Coroutine[Any, Any, R]]
                ) -> Callable[Concatenate[S, P], Coroutine[Any, Any, R]]:
    """Decorates a PSA client's request method: counts it, times it, and counts its failure by the
    ``code`` of the exception it raised (``exception`` when it has none) under ``self.service``."""

    @functools.wraps(method)
    async def measured(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        started = time.perf_counter()
        PSA_REQUESTS.labels(self.service).inc()
        try:
            return await method(self, *args, **kwargs)
        except Exception as exc:
            PSA_ERRORS.labels(self.service, str(getattr(exc, "code", "exception"))[:40]).inc()
            raise
        finally:
            PSA_SECONDS.labels(self.service).observe(time.perf_counter() - started)

    return measured


def timed_audit_write(method: Callable[P, R]) -> Callable[P, R]:
    """Decorates the audit log's blocking write: its duration into :data:`AUDIT_WRITE_SECONDS`."""

    @functools.wraps(method)
    def measured(*args: P.args, **kwargs: P.kwargs) -> R:
        started = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            AUDIT_WRITE_SECONDS.observe(time.perf_counter() - started)

    return measured


def timed_audit_record(method: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Decorates the audit log's awaited write: its duration into :data:`AUDIT_WRITE_SECONDS`."""

    @functools.wraps(method)
    async def measured(*args: P.args, **kwargs: P.kwargs) -> R:
        started = time.perf_counter()
        try:
            return await method(*args, **kwargs)
        finally:
            AUDIT_WRITE_SECONDS.observe(time.perf_counter() - started)

    return measured
