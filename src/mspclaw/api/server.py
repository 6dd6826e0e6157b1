"""Run the server: the app under uvicorn, and the agent channel on its own listener.

The REST API, the session WebSocket and the web pages are served by uvicorn on ``port``; agents
connect to :class:`~mspclaw.api.agent_listener.AgentListener` on ``agent_port``
(``MSPCLAW_AGENT_PORT``), which enrollment advertises to them (``agent_url`` in the answer to
``POST /enroll``). Both use only their libraries' public APIs.

**The database down at start.** Given a way to build the services rather than built ones,
:func:`serve` tries once; when the database does not answer it listens anyway with
:func:`~mspclaw.api.health.starting_app` (``/healthz`` alive, ``/readyz`` 503 with the reason,
everything else 503) and tries again, waiting 1 s, then twice as long each time up to
``MSPCLAW_DATABASE_RETRY_S``, until the database answers; then the agent listener opens and the
real app takes over. Any other start-up failure (a broken playbook) stops the server. During
operation a database outage fails ``/readyz`` and the calls that need it; the engine's pool checks
connections before use, so the server recovers by itself once the database is back.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import importlib.util
import logging
import resource
import socket
from collections.abc import Callable, Iterable
from contextlib import suppress
from ssl import SSLContext
from typing import Any

import uvicorn
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.types import ASGIApp, Receive, Scope, Send

from mspclaw.api.agent_listener import WS_HARD_LIMIT, AgentListener
from mspclaw.api.app import create_app
from mspclaw.api.auth import bearer
from mspclaw.api.health import starting_app
from mspclaw.api.tls import ListenOptions
from mspclaw.dispatch import AgentIdentity
from mspclaw.errors import ConfigError
from mspclaw.observability import logs
from mspclaw.observability.logs import LogFormat
from mspclaw.store.log_redaction import redact_record
from mspclaw.wiring import Services

log = logging.getLogger(__name__)

#: How long an idle HTTP keep-alive connection stays open (uvicorn's default is 5 s). It must outlast
#: every client's and proxy's own idle limit: a server that closes first races a request the client is
#: sending on that connection at the same instant, and the client sees a reset instead of an answer
#: (httpx keeps idle connections 5 s, nginx's upstream keepalive_timeout and cloud load balancers 60 s).
HTTP_KEEP_ALIVE_S = 75


def raise_open_files_limit() -> int:
    """Raise the soft limit on open files to the hard one: each agent holds a socket."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def uvicorn_config(services: Services, *, host: str, port: int, log_level: str = "info",
                   agent_port: int | None = None, listen: ListenOptions | None = None) -> uvicorn.Config:
    """The app under uvicorn. ``agent_port``: where the agent listener really listens (it may have been
    given ``0``), for the enrollment answer; default ``MSPCLAW_AGENT_PORT``."""
    app = create_app(services)
    app.state.agent_port = agent_port
    return _config(app, host=host, port=port, log_level=log_level, log_config=uvicorn.config.LOGGING_CONFIG,
                   listen=listen)


def _config(app: ASGIApp, *, host: str, port: int, log_level: str, log_config: dict[str, Any] | None,
            listen: ListenOptions | None = None) -> uvicorn.Config:
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return uvicorn.Config(
        app, host=host, port=port, loop=loop, ws="websockets-sansio", ws_max_size=WS_HARD_LIMIT,
        ws_per_message_deflate=False, ws_ping_interval=None, ws_ping_timeout=None, backlog=4096,
        log_level=log_level.lower(), timeout_graceful_shutdown=5, lifespan="on",
        timeout_keep_alive=HTTP_KEEP_ALIVE_S, log_config=log_config,
        **(listen or ListenOptions()).uvicorn_options(),  # TLS of its own, or the proxies it trusts
    )


async def start_agent_listener(services: Services, *, host: str, port: int,
                               ssl: SSLContext | None = None) -> AgentListener:
    """Listen for agents on ``host:port`` (``0``: a free port): each authenticated socket goes to the hub."""
    fleet = services.fleet

    def authenticate(header: str | None, remote: str) -> asyncio.Future[AgentIdentity]:
        return fleet.authenticate_soon(bearer(header), remote=remote)  # upgrades in a storm share one read

    return await AgentListener(authenticate, services.hub.serve).start(host, port, ssl=ssl)


_CANNOT_LISTEN = {
    errno.EADDRINUSE: "the port is in use by another program (another `mspclaw server`?); stop it or choose "
                      "another with --port or MSPCLAW_PORT / MSPCLAW_AGENT_PORT",
    errno.EACCES: "not permitted (ports below 1024 need privileges); use a port from 1024 up, or a reverse proxy",
    errno.EADDRNOTAVAIL: "this machine has no such address; check --host or MSPCLAW_HOST",
}


def check_can_listen(host: str, ports: Iterable[int]) -> None:
    """Bind each port on ``host`` and let it go again, as uvicorn and the agent listener will bind it
    (``SO_REUSEADDR``), so that a port in use or not permitted is reported before the server starts;
    :class:`~mspclaw.errors.ConfigError` naming the address and the cause. Port 0 (any free one) is skipped."""
    for port in ports:
        if port == 0:
            continue
        try:
            family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                                 flags=socket.AI_PASSIVE)[0]
        except (socket.gaierror, UnicodeError) as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: no such address ({exc})") from exc
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
                probe.listen(1)
            except OSError as exc:
                cause = _CANNOT_LISTEN.get(exc.errno or 0, exc.strerror or str(exc))
                raise ConfigError(f"cannot listen on {host}:{port}: {cause}") from exc


Build = Callable[[], Services]
"""Builds the services (``functools.partial(wiring.build, settings)``); may raise while the database is down."""


def _unreachable(exc: BaseException) -> DBAPIError | None:
    """The database driver's error in ``exc``'s chain that says the database cannot be reached."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OperationalError | InterfaceError) or (
                isinstance(current, DBAPIError) and current.connection_invalidated):
            return current
        current = current.__cause__ or current.__context__
    return None


def database_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it was raised from) says the database cannot be reached."""
    return _unreachable(exc) is not None


def _reason(exc: BaseException) -> str:
    """What ``/readyz`` says meanwhile: the driver's own first line (no URL, no SQL)."""
    found = _unreachable(exc)
    lines = str(found.orig if found is not None else exc).strip().splitlines()
    return "database unreachable: " + (lines[0] if lines else type(exc).__name__)[:300]


class Launcher:
    """What uvicorn serves: the starting app until the services are up, then the real one.

    It answers the ASGI lifespan itself: at start-up it starts built services (and the agent
    listener) at once, or begins trying to build them; at shutdown it stops whatever it started.
    """

    def __init__(self, services: Services | None, build: Build | None, *, host: str, agent_port: int | None,
                 retry_max_s: float = 30.0, owned: bool = False, ssl: SSLContext | None = None) -> None:
        if services is None and build is None:
            raise ValueError("give the services or a way to build them")
        self.services, self._build = services, build
        self._owned = owned or services is None
        """Services built for this launcher (by it or by :func:`serve`), which it therefore closes."""
        self.host, self.agent_port, self.retry_max_s = host, agent_port, retry_max_s
        self.ssl = ssl
        """The agent port's TLS context (the API port's is uvicorn's), ``None`` for plain WebSocket."""
        self.reason = "starting"
        self.failure: BaseException | None = None
        """A start-up failure other than the database's: the server stops and :func:`serve` raises it."""
        self.listener: AgentListener | None = None
        self.server: uvicorn.Server | None = None
        self._app: ASGIApp = starting_app(lambda: self.reason)
        self._trying: asyncio.Task[None] | None = None
        self._running = False

    @property
    def ready(self) -> bool:
        return self._running

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        await self._app(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    if self.services is not None:
                        await self._activate(self.services)
                    else:
                        self._trying = asyncio.get_running_loop().create_task(self._keep_trying())
                except Exception as exc:
                    log.exception("the server could not start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)[:500]})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _activate(self, services: Services) -> None:
        wanted = services.settings.agent_port if self.agent_port is None else self.agent_port
        listener = await start_agent_listener(services, host=self.host, port=wanted, ssl=self.ssl)
        try:
            await services.start()
        except BaseException:
            await listener.close()
            raise
        app = create_app(services, manage_lifecycle=False)
        app.state.agent_port = listener.port
        self.listener, self._app, self._running = listener, app, True
        log.info("MSPclaw is ready; agents on port %d", listener.port)

    async def _keep_trying(self) -> None:
        assert self._build is not None
        delay = 1.0
        if self.reason != "starting":  # serve() has just tried: wait before the next attempt
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.retry_max_s)
        while True:
            services: Services | None = None
            try:
                services = await asyncio.to_thread(self._build)
                self.services = services
                await self._activate(services)
                return
            except Exception as exc:
                if services is not None:
                    await self._discard(services)
                if not database_unreachable(exc):
                    self.failure = exc
                    log.error("the server could not start: %s", getattr(exc, "message", None) or exc)
                    if self.server is not None:
                        self.server.should_exit = True
                    return
                self.reason = _reason(exc)
                log.warning("%s; trying again in %.0f s", self.reason, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.retry_max_s)

    async def _discard(self, services: Services) -> None:
        """Services whose start failed: stop what started, drop their connections."""
        self.services = None
        with suppress(Exception):
            await services.stop()
        with suppress(Exception):
            services.close()

    async def _shutdown(self) -> None:
        if self._trying is not None:
            self._trying.cancel()
            with suppress(asyncio.CancelledError):
                await self._trying
        if self._running and self.services is not None:
            await self.services.stop()
        if self.listener is not None:
            await self.listener.close()
        if self._owned and self.services is not None:
            self.services.close()
        self._running = False


async def serve(services: Services | Build, *, host: str, port: int, agent_port: int | None = None,
                log_level: str = "info", retry_max_s: float | None = None,
                launched: Callable[[Launcher], None] | None = None, listen: ListenOptions | None = None) -> None:
    """Serve until stopped: the app on ``port``, agents on ``agent_port`` (default ``MSPCLAW_AGENT_PORT``).

    ``services`` may be a :data:`Build`: it is called now, and when the database does not answer the
    server starts anyway and keeps trying (see the module docstring); any other error propagates.
    ``launched`` is handed the :class:`Launcher` (tests stop the server through ``launcher.server``).
    """
    raise_open_files_limit()
    built: Services | None = None
    build: Build | None = None
    reason = "starting"
    if isinstance(services, Services):
        built = services
    else:
        build = services
        try:
            built = await asyncio.to_thread(build)  # off the loop, as a command would build them
        except Exception as exc:
            if not database_unreachable(exc):
                raise
            reason = _reason(exc)
            log.warning("%s; serving /healthz and /readyz meanwhile, trying again", reason)
    retry = retry_max_s if retry_max_s is not None else (
        built.settings.database_retry_s if built is not None else 30.0)
    listen = listen or ListenOptions()
    launcher = Launcher(built, build, host=host, agent_port=agent_port, retry_max_s=retry, owned=build is not None,
                        ssl=listen.ssl_context)
    if built is None:
        launcher.reason = reason
    server = launcher.server = uvicorn.Server(_config(launcher, host=host, port=port, log_level=log_level,
                                                      log_config=None, listen=listen))
    if launched is not None:
        launched(launcher)
    gc.freeze()  # start-up objects never need collecting: no GC pass walks them again under many connections
    await server.serve()
    if launcher.failure is not None:
        raise launcher.failure


QUIET_BELOW_DEBUG = ("httpx", "httpcore")
"""Libraries that log every request at INFO (with its URL): heard at DEBUG only."""


def configure_logging(level: str, fmt: LogFormat = "auto") -> logging.Handler:
    """The server's log lines (``observability/logs.py``) with every record redacted before it is written;
    Python's warnings go through them too (logger ``py.warnings``), with their time and level."""
    handler = logs.configure(level, fmt, redact=redact_record)
    logging.captureWarnings(True)
    quiet = logging.DEBUG if level.upper() == "DEBUG" else logging.WARNING
    for name in QUIET_BELOW_DEBUG:
        logging.getLogger(name).setLevel(quiet)
    return handler


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's loop when it is installed (the ``server`` extra brings it on Linux and macOS), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(services: Services | Build, *, host: str, port: int, agent_port: int | None = None, log_level: str = "info",
        log_format: LogFormat = "auto", retry_max_s: float | None = None, listen: ListenOptions | None = None) -> None:
    """Serve until stopped, on uvloop when installed, logging at ``log_level`` in ``log_format``.

    ``asyncio.run(serve(...))`` always gets asyncio's own loop: the ``loop`` named in the uvicorn
    config only applies when uvicorn creates the loop itself. On uvloop a tool call's round trip and
    the server's CPU per call are both markedly lower (docs/benchmarks.md).
    """
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        configure_logging(log_level, log_format)
        runner.run(serve(services, host=host, port=port, agent_port=agent_port, log_level=log_level,
                         retry_max_s=retry_max_s, listen=listen))
