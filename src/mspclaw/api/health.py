"""``GET /healthz`` (the process is alive) and ``GET /readyz`` (it can do its work), without auth.

``/healthz`` answers from memory: the version and the agents online; it never touches the
database, so a load balancer's liveness probe does not fail (and restart the server) because the
database is down. It fails (503) only when a background loop of the server ended with an error,
which nothing but a restart repairs. ``/readyz`` answers 200 only when every check passes, else 503
with the reasons:

* ``database``: a ``SELECT 1`` answers within ``MSPCLAW_READY_TIMEOUT_S``;
* ``migrations``: the database's schema revision is the newest this version ships;
* ``pollers``: no PSA poller has failed ``MSPCLAW_READY_POLL_FAILURES`` times in a row (the
  reason names the account and its last error);
* ``queue``: no intake job has been due, unclaimed, for longer than ``MSPCLAW_READY_QUEUE_STUCK_S``
  (only while this process runs workers);
* ``playbooks``: how many playbooks are in service, and each one the server does not trust
  (``MSPCLAW_PLAYBOOK_TRUST``), with why and the command that fixes it. Reported, never failed: the
  other playbooks work, so a refused one does not take the server out of service;
* ``redis`` (only with ``MSPCLAW_REDIS_URL``): this replica reaches the Redis the replicas share. Without
  it the replica still serves its own agents, but calls for agents on other replicas fail (and
  ``/healthz`` says so too).

:func:`install` also answers a request that failed because the database did not answer with 503
(``database_unavailable``, ``Retry-After``), not 500: the outage is temporary and the server
recovers from it by itself.

While the server waits for its database at start (``api/server.py``), :func:`starting_app` answers
instead: ``/healthz`` 200 with ``status: starting``, ``/readyz`` 503 with why, anything else 503.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from mspclaw import __version__
from mspclaw.api.auth import ServicesDep
from mspclaw.api.metrics import queue_figures
from mspclaw.errors import MSPClawError
from mspclaw.observability.polls import POLL_HEALTH
from mspclaw.store.database import Database
from mspclaw.store.db import MIGRATIONS
from mspclaw.wiring import Services

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])

MAX_ERROR = 300
"""Characters of a database error kept in a reason."""


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "detail": self.detail}


@functools.lru_cache(maxsize=1)
def shipped_heads() -> frozenset[str]:
    """The newest schema revisions this version's migrations define (read once per process)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return frozenset(ScriptDirectory.from_config(config).get_heads())


def database_checks(db: Database, settings_queue_stuck_s: float, workers: int) -> list[Check]:
    """The checks that read the database, run in a worker thread (they block)."""
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            current = frozenset(MigrationContext.configure(conn).get_current_heads())
    except SQLAlchemyError as exc:
        reason = f"database unreachable: {_short(exc)}"
        return [Check("database", False, reason), Check("migrations", False, "not checked: " + reason),
                Check("queue", False, "not checked: " + reason)]
    checks = [Check("database", True, "answered")]
    wanted = shipped_heads()
    if current == wanted:
        checks.append(Check("migrations", True, f"at {', '.join(sorted(current))}"))
    else:
        have = ", ".join(sorted(current)) or "no schema"
        checks.append(Check("migrations", False, f"schema at {have}, this version needs {', '.join(sorted(wanted))}; "
                            "run the server once to migrate"))
    if workers <= 0:
        checks.append(Check("queue", True, "no workers in this process"))
        return checks
    try:
        waited = queue_figures(db).oldest_due_s
    except (SQLAlchemyError, MSPClawError) as exc:
        checks.append(Check("queue", False, f"could not read the queue: {_short(exc)}"))
        return checks
    if waited > settings_queue_stuck_s:
        checks.append(Check("queue", False, f"queue stuck: a PSA ticket has been due for {waited:.0f} s, unclaimed "
                            f"(limit {settings_queue_stuck_s:g} s)"))
    else:
        checks.append(Check("queue", True, f"oldest due job waited {waited:.0f} s"))
    return checks


def _short(exc: BaseException) -> str:
    text_ = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return (text_[0] if text_ else type(exc).__name__)[:MAX_ERROR]


def poller_check(svc: Services) -> Check:
    failing = []
    limit = svc.settings.ready_poll_failures
    for account in svc.accounts:
        if not account.enabled or float(account.config.get("poll_interval_s", 0) or 0) <= 0:
            continue
        state = POLL_HEALTH.get(account.name)
        if state is not None and state.consecutive_failures >= limit:
            failing.append(f"poller {account.name}: {state.consecutive_failures} failed polls in a row, "
                           f"last: {state.last_error}")
    if failing:
        return Check("pollers", False, "; ".join(failing))
    return Check("pollers", True, "healthy")


async def readiness(svc: Services) -> list[Check]:
    settings = svc.settings
    try:
        checks = await asyncio.wait_for(asyncio.to_thread(
            database_checks, svc.db, settings.ready_queue_stuck_s, settings.workers), settings.ready_timeout_s)
    except TimeoutError:
        reason = f"database unreachable: no answer within {settings.ready_timeout_s:g} s"
        checks = [Check("database", False, reason), Check("migrations", False, "not checked: " + reason),
                  Check("queue", False, "not checked: " + reason)]
    return [*checks, poller_check(svc), playbook_check(svc), *redis_check(svc)]


MAX_REFUSALS_SHOWN = 5


def playbook_check(svc: Services) -> Check:
    """The playbooks in service and the ones not trusted (always ok: the others still run)."""
    refusals = svc.playbook_refusals
    running = len(svc.tickets.playbooks)
    if refusals.mode == "off":
        return Check("playbooks", True, f"{running} in service; signatures not checked (MSPCLAW_PLAYBOOK_TRUST=off)")
    if not refusals.current:
        return Check("playbooks", True, f"{running} in service, every one signed by a trusted key")
    shown = "; ".join(r.line() for r in refusals.current[:MAX_REFUSALS_SHOWN])
    more = len(refusals.current) - MAX_REFUSALS_SHOWN
    verb = "refused (not loaded)" if refusals.left_out else "not trusted but loaded (MSPCLAW_PLAYBOOK_TRUST=warn)"
    return Check("playbooks", True, f"{running} in service; {len(refusals.current)} {verb}: {shown}"
                 + (f"; and {more} more (the console's Playbooks page lists them)" if more > 0 else ""))


def redis_check(svc: Services) -> list[Check]:
    """Whether the replicas' shared Redis answers this replica (from memory: its heartbeat's last outcome)."""
    cluster = svc.cluster
    if cluster is None:
        return []
    if cluster.healthy:
        return [Check("redis", True, f"replica {cluster.replica_id} shares agents with the other replicas")]
    return [Check("redis", False, f"replica {cluster.replica_id}: {cluster.problem}; its own agents are still "
                  "served, calls for agents on other replicas fail")]


def _answer(checks: list[Check]) -> JSONResponse:
    failed = [c for c in checks if not c.ok]
    body = {"status": "not_ready" if failed else "ready", "version": __version__,
            "reasons": [f"{c.name}: {c.detail}" for c in failed], "checks": {c.name: c.as_dict() for c in checks}}
    return JSONResponse(body, status_code=503 if failed else 200)


@router.get("/healthz")
async def healthz(svc: ServicesDep) -> JSONResponse:
    """The process is alive: its version and the agents connected to it (no database read); with Redis, the
    ``redis`` check too (this replica keeps serving its own agents without it). 503 when a background loop
    (the intake worker, the agents' heartbeat ticker, the pruner...) ended with an error: only a restart
    brings it back."""
    crashed = svc.crashed_loops()
    body: dict[str, object] = {"status": "failing" if crashed else "ok", "version": __version__,
                               "agents_online": svc.hub.online_count()}
    if crashed:
        body["reasons"] = [f"the background loop {name} stopped with an error (see the server's log); restart "
                           "the server" for name in crashed]
    for check in redis_check(svc):
        body[check.name] = check.as_dict()
    return JSONResponse(body, status_code=503 if crashed else 200)


@router.get("/readyz", include_in_schema=False)  # an operations probe, documented in docs/operations.md
async def readyz(svc: ServicesDep) -> JSONResponse:
    """Ready to work: the database answers, its schema is current, the PSA pollers and the queue are healthy."""
    return _answer(await readiness(svc))


def starting_app(reason: Callable[[], str]) -> FastAPI:
    """What answers while the server waits for its database: alive, not ready, nothing else yet."""
    app = FastAPI(title="MSPclaw (starting)", version=__version__, openapi_url=None, docs_url=None,
                  redoc_url=None)

    @app.get("/healthz")
    async def starting_healthz() -> dict[str, object]:
        return {"status": "starting", "version": __version__, "reason": reason()}

    @app.get("/readyz")
    async def starting_readyz() -> JSONResponse:
        return _answer([Check("database", False, reason())])

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
    async def not_yet(request: Request, path: str) -> JSONResponse:
        return JSONResponse({"detail": {"code": "starting", "message": f"the server is starting: {reason()}"}},
                            status_code=503, headers={"Retry-After": "5"})

    return app


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("%s %s: the database did not answer: %s", request.method, request.url.path[:200], _short(exc))
    return JSONResponse({"detail": {"code": "database_unavailable",
                                    "message": "the database does not answer; try again shortly"}},
                        status_code=503, headers={"Retry-After": "5"})


def install(app: FastAPI) -> None:
    """Serve ``/healthz`` and ``/readyz`` on ``app``, and answer 503 when the database does not."""
    app.include_router(router)
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_exception_handler(InterfaceError, _database_unavailable)
