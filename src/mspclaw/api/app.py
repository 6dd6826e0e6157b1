"""FastAPI app factory. ``create_app(services)`` serves REST, WebSockets and /docs."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from mspclaw import __version__, console
from mspclaw.api import health, metrics, openapi, sockets
from mspclaw.api.body_limit import BodyLimit
from mspclaw.api.nul_refusal import RefuseNul
from mspclaw.api.rate_limit import SourceRateLimit, TokenBuckets
from mspclaw.api.routes import ROUTERS
from mspclaw.api.routes.integrations import SLACK_INTERACTIONS
from mspclaw.api.routes.webhooks import MAX_WEBHOOK_BYTES, WEBHOOK_PREFIX
from mspclaw.connectors.notify.slack import MAX_INTERACTION_BYTES
from mspclaw.errors import (
    AuthError,
    ConfigError,
    Conflict,
    Forbidden,
    MSPClawError,
    NotFound,
    PSARateLimited,
    PSAUnavailable,
    StoreError,
    ToolError,
    TooManyAttempts,
)
from mspclaw.wiring import Services

log = logging.getLogger(__name__)

STATUS: list[tuple[type[MSPClawError], int]] = [
    (TooManyAttempts, 429),
    (AuthError, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (ToolError, 502),
    (StoreError, 503),
    (ConfigError, 500),
    (PSAUnavailable, 503),
    (PSARateLimited, 503),
]


def _status(exc: MSPClawError) -> int:
    return next((code for cls, code in STATUS if isinstance(exc, cls)), 400)


def create_app(services: Services, *, manage_lifecycle: bool = True) -> FastAPI:
    """Build the app. With ``manage_lifecycle`` the app starts and stops the services' background work."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if manage_lifecycle:
            await services.start()
        try:
            yield
        finally:
            if manage_lifecycle:
                await services.stop()

    # /docs is the console's own page (no CDN): FastAPI's Swagger UI and ReDoc load from one
    app = FastAPI(title="MSPclaw", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Resolves level-1 IT helpdesk tickets for MSPs. Every /api route needs "
                              "`Authorization: Bearer <key or token>`: the bootstrap `MSPCLAW_API_KEY`, a named "
                              "API key (`mspclaw keys create`) or a technician's access token (`POST /auth/login`).")
    app.state.services = services
    settings = services.settings
    refusals = app.state.refusals = services.intake.refusals  # counted, sampled into the audit trail
    # Outermost first: a flooding source is refused before its body is read, any body over its limit
    # while it is read; both before routing and authentication.
    app.add_middleware(RefuseNul, exempt=[WEBHOOK_PREFIX, SLACK_INTERACTIONS])  # inside BodyLimit: bounded body
    app.add_middleware(BodyLimit, default=settings.max_body_bytes,
                       limits=[(WEBHOOK_PREFIX, MAX_WEBHOOK_BYTES), (SLACK_INTERACTIONS, MAX_INTERACTION_BYTES)])
    app.state.webhook_buckets = TokenBuckets(rate=settings.webhook_rate_per_s, burst=settings.webhook_burst)
    app.add_middleware(SourceRateLimit, prefix=WEBHOOK_PREFIX, buckets=app.state.webhook_buckets)

    @app.exception_handler(MSPClawError)
    async def _domain_error(request: Request, exc: MSPClawError) -> JSONResponse:
        status = _status(exc)
        if status == 401 and not request.url.path.startswith(WEBHOOK_PREFIX):  # intake counts those
            await refusals.refused("api_refused", request.client.host if request.client else "unknown",
                                   code=exc.code, data={"path": request.url.path[:200], "reason": exc.message})
        if status == 403:
            await services.audit.record("api_forbidden", actor=getattr(request.state, "caller_name", "unknown"),
                                        data={"path": request.url.path, "method": request.method,
                                              "reason": exc.message})
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse({"detail": {"code": exc.code, "message": exc.message}}, status_code=status,
                            headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """Starlette's and FastAPI's own refusals (no route, wrong method, a body that is not JSON), in our shape."""
        code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_").replace("-", "_")
        return JSONResponse({"detail": {"code": code, "message": str(exc.detail)}}, status_code=exc.status_code,
                            headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()[:10])
        return JSONResponse({"detail": {"code": "invalid_request", "message": problems}}, status_code=422)

    health.install(app)  # /healthz, /readyz; 503 while the database does not answer
    app.include_router(metrics.router)  # /metrics
    for router in ROUTERS:  # one per domain: api/routes/
        app.include_router(router)
    app.include_router(sockets.router)
    openapi.install(app)
    console.install(app)  # the technicians' console at / with its assets (no CDN), and /docs
    return app
