"""The measured families: what can only be counted where it happens.

Everything that can be read from the database or the hub when Prometheus scrapes (tickets, the
queue, approvals, agents, model spend) is computed then, by ``api/metrics.py``; what is here is
the rest, recorded by one call at each measurement point:

* :func:`observe_tool_call` in the dispatcher, per tool call: latency by tool and outcome;
* :func:`psa_request` around :meth:`PSAHttp.request`: PSA requests, errors by code, latency, per PSA;
* :func:`timed_audit_write` around the audit log's writes: how long a write takes its caller;
* :func:`observe_poll` in the PSA poller: polls by PSA and outcome;
* with several replicas: forwarded calls (:func:`observe_forwarded`), relayed calls, broadcast messages,
  lease takeovers and session recoveries, counted where they happen, and the gauges of the live cluster
  and ownerships of this process (:func:`watch_cluster`, :func:`watch_leases`), read at scrape time.

They live in :data:`MEASURED`, a registry of their own (not ``prometheus_client.REGISTRY``), so a
process holding several apps (tests) exposes each family once, and nothing registers twice.
Label values are bounded: tool names come from the catalogue, PSA names from the connectors, error
codes from :mod:`mspclaw.errors`.
"""

from __future__ import annotations

import bisect
import contextvars
import functools
import math
import time
import weakref
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar, cast

from prometheus_client import CollectorRegistry, Counter, Histogram, Metric
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily

MEASURED = CollectorRegistry(auto_describe=True)


class LoopHistogram:
    """A histogram for the hot path of one event loop: a tool call costs one bisect and two additions.

    ``prometheus_client.Histogram`` takes a lock and resolves its labels on every observation (what
    that costs a tool call: ``docs/benchmarks.md``); observations here come from the event loop's
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
    """One tool call's latency; from the event loop's thread (the dispatcher's). A call another replica
    forwarded here is counted in :data:`RELAYED_CALLS` instead (the caller's replica times it)."""
    if _RELAYED.get():
        RELAYED_CALLS.labels(outcome if outcome in _OUTCOMES else "failed").inc()
        return
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


# -- several replicas (docs/replicas.md, "What to monitor") ----------------------------------------
# Counters count for the whole process; the gauges are read at scrape time from the live objects of
# this process (a server holds one cluster and one of each ownership; a test process may hold two
# replicas, hence the ``replica`` label of the cluster's gauges: one value per replica, never per agent).

FORWARD_SECONDS = LoopHistogram(
    "mspclaw_forwarded_call_duration_seconds", "Tool calls forwarded to the replica holding the agent, from "
    "sending the call to its result, by transport (direct, redis).", ["transport"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0))
MEASURED.register(FORWARD_SECONDS)
FORWARDED_CALLS = Counter("mspclaw_forwarded_calls", "Tool calls this replica forwarded to the replica holding "
                          "the agent, by transport (direct, redis) and outcome (ok, failed, refused, timeout, "
                          "offline, cancelled).", ["transport", "outcome"], registry=MEASURED)
RELAYED_CALLS = Counter("mspclaw_relayed_calls", "Tool calls other replicas forwarded here and this replica ran "
                        "on an agent it holds, by outcome (counted in mspclaw_tool_call_duration_seconds by the "
                        "replica that made them, not here).", ["outcome"], registry=MEASURED)
BROADCAST_MESSAGES = Counter("mspclaw_broadcast_messages", "Shared session events and configuration signals, by "
                             "outcome: sent (published), received (another replica's, acted on), dropped (not "
                             "published: outbox full, too large or Redis unreachable; or received invalid).",
                             ["outcome"], registry=MEASURED)
LEASE_TAKEOVERS = Counter("mspclaw_lease_takeovers", "Leases this replica acquired while another replica's had "
                          "expired (that replica died, stalled or lost the database), by kind (session, poller, "
                          "loop).", ["kind"], registry=MEASURED)
SESSION_RECOVERIES = Counter("mspclaw_session_recoveries", "Unfinished sessions no replica held that this "
                             "replica resumed.", registry=MEASURED)

_RELAYED: contextvars.ContextVar[bool] = contextvars.ContextVar("mspclaw_relayed_call", default=False)
_OUTCOMES = ("ok", "failed", "refused", "timeout", "offline", "cancelled")


def relayed_call() -> None:
    """Mark the running task as serving a call another replica forwarded: its tool call counts in
    :data:`RELAYED_CALLS` instead of :data:`TOOL_CALL_SECONDS` (the caller's replica counts it there)."""
    _RELAYED.set(True)


def observe_forwarded(transport: str, outcome: str, seconds: float) -> None:
    """One forwarded call, on the replica that made it (``transport``: direct or redis)."""
    FORWARDED_CALLS.labels(transport, outcome if outcome in _OUTCOMES else "failed").inc()
    FORWARD_SECONDS.observe((transport,), seconds)


def lease_kind(name: str) -> str:
    """The bounded label of a lease name: ``session``, ``poller`` or ``loop`` (feedback, retention...)."""
    head = name.partition(":")[0]
    return head if head in ("session", "poller") else "loop"


class ClusterView(Protocol):
    replica_id: str

    @property
    def healthy(self) -> bool: ...

    @property
    def agents_held(self) -> int: ...

    @property
    def agents_known(self) -> int: ...


class LeaseHolder(Protocol):
    @property
    def held(self) -> Mapping[str, object]: ...


_CLUSTERS: weakref.WeakSet[Any] = weakref.WeakSet()
_LEASE_HOLDERS: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def watch_cluster(cluster: ClusterView) -> None:
    """Export ``cluster``'s gauges while it lives (agents here and cluster-wide, Redis reachable)."""
    _CLUSTERS.add(cluster)


def watch_leases(holder: LeaseHolder, kind: str = "") -> None:
    """Export how many leases ``holder.held`` names while it lives; ``kind``: every one's kind (empty: from
    each lease name, :func:`lease_kind`)."""
    _LEASE_HOLDERS[holder] = kind


class _ReplicaGauges:
    def collect(self) -> Iterator[Metric]:
        agents = GaugeMetricFamily("mspclaw_cluster_agents", "Agents connected to this replica (scope=replica) "
                                   "and to any replica sharing its Redis, as of its last heartbeat (scope=cluster; "
                                   "this replica's own while Redis is unreachable).", labels=["replica", "scope"])
        up = GaugeMetricFamily("mspclaw_redis_up", "Whether this replica reaches Redis (heartbeat and its inbound "
                               "channel): 1 yes, 0 no (forwarded calls fail, own agents are still served).",
                               labels=["replica"])
        for cluster in list(_CLUSTERS):
            view: ClusterView = cluster
            agents.add_metric([view.replica_id, "replica"], view.agents_held)
            agents.add_metric([view.replica_id, "cluster"], view.agents_known)
            up.add_metric([view.replica_id], 1.0 if view.healthy else 0.0)
        yield agents
        yield up
        held: dict[str, int] = dict.fromkeys(("session", "poller", "loop"), 0)
        for holder, kind in list(_LEASE_HOLDERS.items()):
            for name in list(cast("LeaseHolder", holder).held):
                key = kind or lease_kind(name)
                held[key] = held.get(key, 0) + 1
        leases = GaugeMetricFamily("mspclaw_leases_held", "Ownership leases this process holds now, by kind "
                                   "(session, poller, loop).", labels=["kind"])
        for key, count in held.items():
            leases.add_metric([key], count)
        yield leases


MEASURED.register(_ReplicaGauges())
