"""``GET /metrics``: Prometheus' text format, for an admin of every client.

Most families are read when Prometheus scrapes, from the database and the hub, so nothing in the
services counts on their behalf: tickets by status, the job queue's depth and the age of its
oldest due job, approvals waiting and the oldest one's age, agents connected (by role and agent
version), model tokens and cost (the sessions' recorded usage), PSA pollers' consecutive
failures, and whether the database answered. The rest is measured where it happens
(:mod:`mspclaw.observability.metrics`: tool-call, PSA-request and audit-write latency, PSA errors,
polls) and the process's own (CPU, memory, open files, GC) come from ``prometheus_client``.

The route needs an admin of every client (``MSPCLAW_API_KEY`` or ``mspclaw keys create --role
admin``): the figures span every client. A scrape reads the database in a worker thread, so it
never holds up the event loop; with the database down it still answers, with
``mspclaw_database_up 0`` and without the families read from it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import cast

import prometheus_client
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Metric, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Table, func, select
from sqlalchemy.exc import SQLAlchemyError

from mspclaw import __version__
from mspclaw.api.auth import ServicesDep, require_caller
from mspclaw.errors import MSPClawError
from mspclaw.observability.metrics import MEASURED
from mspclaw.observability.polls import POLL_HEALTH
from mspclaw.store.database import Database
from mspclaw.store.tables import ApprovalRow, JobRow, SessionUsage, Ticket

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])

_TICKETS = cast("Table", Ticket.__table__)
_JOBS = cast("Table", JobRow.__table__)
_APPROVALS = cast("Table", ApprovalRow.__table__)
_USAGE = cast("Table", SessionUsage.__table__)


@dataclass(frozen=True)
class QueueFigures:
    by_status: dict[str, int]
    oldest_due_s: float
    """Seconds the oldest queued job has been due (0: none is due)."""


@dataclass(frozen=True)
class StoreFigures:
    tickets: dict[str, int]
    queue: QueueFigures
    approvals_pending: int
    oldest_approval_s: float
    usage: list[tuple[str, int, int, float]]
    """(model, input tokens, output tokens, cost in USD) per model."""


@dataclass(frozen=True)
class LiveFigures:
    """What the event loop's thread reads (the hub, the pollers) before the scrape goes to a thread."""

    agents: Counter[tuple[str, str]] = field(default_factory=Counter)
    polls: list[tuple[str, int]] = field(default_factory=list)
    """(PSA account, consecutive failures) of each enabled, polled account."""


def _age(then: datetime | None, now: datetime) -> float:
    return max(0.0, (now - then).total_seconds()) if then is not None else 0.0


def queue_figures(db: Database, now: datetime | None = None) -> QueueFigures:
    """The job queue's depth by status and how long its oldest due job has waited."""
    at = now or datetime.now(UTC)
    with db.engine.connect() as conn:
        by_status = {str(s): int(n) for s, n in conn.execute(
            select(_JOBS.c.status, func.count()).group_by(_JOBS.c.status))}
        oldest = conn.execute(select(func.min(_JOBS.c.run_after)).where(
            _JOBS.c.status == "queued", _JOBS.c.run_after <= at)).scalar()
    return QueueFigures(by_status, _age(oldest, at))


def store_figures(db: Database, now: datetime | None = None) -> StoreFigures:
    at = now or datetime.now(UTC)
    queue = queue_figures(db, at)
    with db.engine.connect() as conn:
        tickets = {str(s): int(n) for s, n in conn.execute(
            select(_TICKETS.c.status, func.count()).group_by(_TICKETS.c.status))}
        pending, oldest = conn.execute(select(func.count(), func.min(_APPROVALS.c.created_at)).where(
            _APPROVALS.c.status == "pending")).one()
        usage = [(str(m), int(i or 0), int(o or 0), float(c or 0.0)) for m, i, o, c in conn.execute(
            select(_USAGE.c.model, func.sum(_USAGE.c.input_tokens), func.sum(_USAGE.c.output_tokens),
                   func.sum(_USAGE.c.cost_usd)).group_by(_USAGE.c.model))]
    return StoreFigures(tickets, queue, int(pending), _age(oldest, at), usage)


class ServerCollector:
    """The families read at scrape time (a ``prometheus_client`` custom collector, public API)."""

    def __init__(self, db: Database, live: LiveFigures) -> None:
        self.db, self.live = db, live

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("mspclaw_build_info", "The running MSPclaw version.", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        agents = GaugeMetricFamily("mspclaw_agents_connected", "Agents connected to this server, by role and "
                                   "agent version.", labels=["role", "version"])
        for (role, version), count in sorted(self.live.agents.items()):
            agents.add_metric([role, version], count)
        yield agents
        polls = GaugeMetricFamily("mspclaw_psa_poll_consecutive_failures", "Failed polls in a row, per polled "
                                  "PSA account (0: the last poll worked).", labels=["psa"])
        for psa, failures in self.live.polls:
            polls.add_metric([psa], failures)
        yield polls
        up = GaugeMetricFamily("mspclaw_database_up", "1 when the database answered this scrape, else 0.")
        try:
            figures = store_figures(self.db)
        except (SQLAlchemyError, MSPClawError) as exc:
            log.warning("metrics: the database did not answer: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from _store_families(figures)


def _store_families(figures: StoreFigures) -> Iterable[Metric]:
    tickets = GaugeMetricFamily("mspclaw_tickets", "Tickets by status (new, running, resolved, escalated...).",
                                labels=["status"])
    for status, count in sorted(figures.tickets.items()):
        tickets.add_metric([status], count)
    yield tickets
    jobs = GaugeMetricFamily("mspclaw_queue_jobs", "Intake jobs by status (queued, running, done, dead, "
                             "cancelled).", labels=["status"])
    for status, count in sorted(figures.queue.by_status.items()):
        jobs.add_metric([status], count)
    yield jobs
    yield GaugeMetricFamily("mspclaw_queue_oldest_due_seconds", "How long the oldest queued job has been due "
                            "(0: none is waiting).", value=figures.queue.oldest_due_s)
    yield GaugeMetricFamily("mspclaw_approvals_pending", "Approval requests waiting for a technician.",
                            value=figures.approvals_pending)
    yield GaugeMetricFamily("mspclaw_approvals_oldest_pending_seconds", "Age of the oldest approval request "
                            "waiting (0: none).", value=figures.oldest_approval_s)
    tokens = CounterMetricFamily("mspclaw_model_tokens", "Model tokens the sessions spent, by model and direction "
                                 "(input, output).", labels=["model", "direction"])
    cost = CounterMetricFamily("mspclaw_model_cost_usd", "Model spend of the sessions, in US dollars, by model.",
                               labels=["model"])
    for model, given, taken, usd in figures.usage:
        tokens.add_metric([model, "input"], given)
        tokens.add_metric([model, "output"], taken)
        cost.add_metric([model], usd)
    yield tokens
    yield cost


class _Forward:
    """Another registry's families, as one collector of the scrape's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterable[Metric]:
        return self.registry.collect()


def live_figures(request: Request) -> LiveFigures:
    svc = request.app.state.services
    agents: Counter[tuple[str, str]] = Counter(
        (link.identity.role, link.agent_version or "unknown") for link in svc.hub.connected())
    polls = []
    for account in svc.accounts:
        if account.enabled and float(account.config.get("poll_interval_s", 0) or 0) > 0:
            state = POLL_HEALTH.get(account.name)
            polls.append((account.name, state.consecutive_failures if state else 0))
    return LiveFigures(agents, polls)


def render(db: Database, live: LiveFigures) -> bytes:
    """The exposition: the scrape-time families, the measured ones and the process's own."""
    registry = CollectorRegistry(auto_describe=False)
    collectors: list[Collector] = [ServerCollector(db, live), _Forward(MEASURED),
                                   _Forward(prometheus_client.REGISTRY)]
    for collector in collectors:
        registry.register(collector)
    return generate_latest(registry)


@router.get("/metrics", dependencies=[Depends(require_caller)], response_class=Response,
            include_in_schema=False)  # Prometheus' format, not the API's: documented in docs/operations.md
async def metrics(request: Request, svc: ServicesDep) -> Response:
    """Prometheus metrics of this server (text exposition format); an admin of every client may scrape."""
    started = time.perf_counter()
    body = await asyncio.to_thread(render, svc.db, live_figures(request))
    log.debug("metrics scraped in %.3f s", time.perf_counter() - started)
    return Response(body, media_type=prometheus_client.CONTENT_TYPE_LATEST)
