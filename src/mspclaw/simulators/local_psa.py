"""The local PSA simulator: a small PSA with its own storage, REST API and signed webhooks.

It behaves like the PSAs MSPclaw meets in the field, so the demo and the tests run the same
connector code path a real PSA would: the PSA assigns ids and timestamps, lists changes page by
page, answers JSON errors, and POSTs a signed webhook to MSPclaw when a ticket is opened,
retrying in the background when MSPclaw does not answer.

Storage (:class:`PSAStore`) is in memory, or a JSON file rewritten atomically on every change
when a path is given, so a simulator restarted on the same file keeps its companies, tickets,
notes and id counters.

REST API, every route under ``/api/v1`` with ``Authorization: Bearer <api_token>``:

=======  ===============================================  =======================================
GET      /companies                                       ``{"companies": [...]}``
POST     /companies ``{name}``                            201, the company
GET      /tickets?updated_since=ISO&page=1&page_size=50   ``{"tickets", "page", "page_size", "has_more"}``,
                                                          oldest change first
POST     /tickets ``{company_id, requester, subject,      201, the ticket; sends ``ticket.created``
         body, asset}``
GET      /tickets/{id}[?include=notes]                    the ticket (with ``"notes"``, oldest first,
                                                          when asked for: one request instead of two)
PATCH    /tickets/{id} ``{status}``                       the ticket (``STATUSES`` names)
GET      /tickets/{id}/notes                              ``{"notes": [...]}``, oldest first
POST     /tickets/{id}/notes ``{text, public}``           201, the note
GET      /webhook-deliveries                              every delivery and its state
POST     /webhook-deliveries/{id}/redeliver               202: send the same delivery again
=======  ===============================================  =======================================

Errors are ``{"error": {"code", "message"}}`` with 400, 401 or 404. ``GET /healthz`` needs no token.

Webhook: ``POST webhook_url`` with ``{"event", "ticket_id", "delivery_id", "occurred_at"}`` and
headers ``X-LocalPSA-Timestamp`` (unix seconds) and ``X-LocalPSA-Signature: sha256=<hex>``, the
HMAC-SHA256 of ``timestamp + "." + body`` keyed with ``webhook_secret`` (no signature without
a secret). :func:`run_local_psa` runs it all under uvicorn in the current event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Final, Literal, get_args

import httpx
import uvicorn
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mspclaw.connectors.base import PSATicket
from mspclaw.connectors.local import LocalPSAConnector, sample_tickets, sign_webhook
from mspclaw.connectors.transport import default_transport
from mspclaw.errors import ConfigError, Conflict, NotFound

log = logging.getLogger(__name__)

Status = Literal["New", "In Progress", "Waiting on Customer", "Resolved", "Closed", "Escalated"]
STATUSES: Final[tuple[str, ...]] = get_args(Status)
FIRST_TICKET_ID: Final = 1001
RETRY_DELAYS_S: Final = (0.5, 1.0, 2.0, 4.0)
"""Waits before the second, third, ... delivery attempt of a webhook."""


# --- storage -------------------------------------------------------------------------------------


@dataclass
class Company:
    id: str
    name: str
    created_at: datetime


@dataclass
class Ticket:
    id: str
    company_id: str
    requester: str
    subject: str
    body: str
    asset: str | None
    status: str
    created_at: datetime
    updated_at: datetime
    requester_name: str | None = None
    """The contact's name as the PSA's contact record has it (None: the ticket came from an unknown address)."""


@dataclass
class Note:
    id: str
    ticket_id: str
    text: str
    public: bool
    created_at: datetime


def _record_json(record: Company | Ticket | Note) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(record).items()}


class PSAStore:
    """Companies, tickets and notes with PSA-assigned ids and timestamps.

    In memory when ``path`` is ``None``; otherwise loaded from and saved to that JSON file.
    Timestamps come from ``clock`` and strictly increase, so ``updated_since`` never ties.
    """

    def __init__(self, path: Path | str | None = None, *, clock: Callable[[], datetime] | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._clock = clock or (lambda: datetime.now(UTC))
        self._last = datetime.min.replace(tzinfo=UTC)
        self._companies: dict[str, Company] = {}
        self._tickets: dict[str, Ticket] = {}
        self._notes: dict[str, list[Note]] = {}
        self._next = {"company": 1, "ticket": FIRST_TICKET_ID, "note": 1}
        if self.path is not None and self.path.exists():
            self._load(self.path)

    # companies

    def companies(self) -> list[Company]:
        return list(self._companies.values())

    def add_company(self, name: str) -> Company:
        if any(c.name.casefold() == name.casefold() for c in self._companies.values()):
            raise Conflict(f"a company named {name!r} exists")
        company = Company(self._take("company"), name, self._now())
        self._companies[company.id] = company
        self._save()
        return company

    # tickets

    def create_ticket(self, company_id: str, *, requester: str, subject: str, body: str = "",
                      asset: str | None = None, status: str = "New", ticket_id: str | None = None,
                      requester_name: str | None = None) -> Ticket:
        """A new ticket; ``ticket_id`` is for loading samples, the PSA picks ids otherwise."""
        if company_id not in self._companies:
            raise NotFound(f"no company {company_id!r}")
        if ticket_id is None:
            ticket_id = self._take("ticket")
        elif ticket_id in self._tickets:
            raise Conflict(f"ticket {ticket_id!r} exists")
        elif ticket_id.isdigit():
            self._next["ticket"] = max(self._next["ticket"], int(ticket_id) + 1)
        now = self._now()
        ticket = Ticket(ticket_id, company_id, requester, subject, body, asset, status, now, now, requester_name)
        self._tickets[ticket.id] = ticket
        self._notes[ticket.id] = []
        self._save()
        return ticket

    def ticket(self, ticket_id: str) -> Ticket:
        try:
            return self._tickets[ticket_id]
        except KeyError:
            raise NotFound(f"no ticket {ticket_id!r}") from None

    def tickets(self, updated_since: datetime | None = None) -> list[Ticket]:
        """Tickets changed strictly after ``updated_since``, oldest change first."""
        found = [t for t in self._tickets.values() if updated_since is None or t.updated_at > updated_since]
        return sorted(found, key=lambda t: t.updated_at)

    def set_status(self, ticket_id: str, status: str) -> Ticket:
        ticket = self.ticket(ticket_id)
        ticket.status = status
        ticket.updated_at = self._now()
        self._save()
        return ticket

    # notes

    def notes(self, ticket_id: str) -> list[Note]:
        self.ticket(ticket_id)
        return list(self._notes[ticket_id])

    def add_note(self, ticket_id: str, text: str, *, public: bool) -> Note:
        ticket = self.ticket(ticket_id)
        note = Note(self._take("note"), ticket_id, text, public, self._now())
        self._notes[ticket_id].append(note)
        ticket.updated_at = note.created_at
        self._save()
        return note

    # samples

    def load_samples(self, company_name: str, asset: str | None) -> Company:
        """The shipped sample tickets (ids 1001...) from ``company_name`` about ``asset``.

        The company is created when missing; samples already in the store are left as they are.
        """
        company = next((c for c in self._companies.values() if c.name == company_name), None)
        company = company or self.add_company(company_name)
        for item in sample_tickets():
            if item["id"] not in self._tickets:
                self.create_ticket(company.id, requester=item["requester"], subject=item["subject"],
                                   body=item["body"], asset=asset, ticket_id=item["id"],
                                   requester_name=item.get("requester_name"))
        return company

    # plumbing

    def _now(self) -> datetime:
        now = self._clock()
        self._last = now if now > self._last else self._last + timedelta(microseconds=1)
        return self._last

    def _take(self, kind: str) -> str:
        value = self._next[kind]
        self._next[kind] = value + 1
        return str(value)

    def _save(self) -> None:
        if self.path is None:
            return
        data = {
            "version": 1, "next": self._next,
            "companies": [_record_json(c) for c in self._companies.values()],
            "tickets": [_record_json(t) for t in self._tickets.values()],
            "notes": [_record_json(n) for notes in self._notes.values() for n in notes],
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=1)
        os.replace(tmp, self.path)

    def _load(self, path: Path) -> None:
        def when(raw: dict[str, Any]) -> dict[str, Any]:
            return {k: datetime.fromisoformat(v) if k.endswith("_at") else v for k, v in raw.items()}

        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            self._next = {k: int(data["next"][k]) for k in ("company", "ticket", "note")}
            self._companies = {c.id: c for c in (Company(**when(raw)) for raw in data["companies"])}
            self._tickets = {t.id: t for t in (Ticket(**when(raw)) for raw in data["tickets"])}
            self._notes = {t: [] for t in self._tickets}
            for note in (Note(**when(raw)) for raw in data["notes"]):
                self._notes[note.ticket_id].append(note)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path} is not a local PSA store: {exc}") from exc
        stamps = [t.updated_at for t in self._tickets.values()] + [c.created_at for c in self._companies.values()]
        self._last = max(stamps, default=self._last)


# --- webhooks ------------------------------------------------------------------------------------


@dataclass
class Delivery:
    """One webhook event; redeliveries send the same body with a fresh timestamp and signature."""

    id: str
    event: str
    ticket_id: str
    body: bytes
    status: Literal["pending", "delivered", "failed"] = "pending"
    attempts: int = 0
    last_error: str | None = None
    received: int = 0
    """How many times the receiver answered 2xx (a redelivery adds one)."""

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "event": self.event, "ticket_id": self.ticket_id, "status": self.status,
                "attempts": self.attempts, "last_error": self.last_error, "received": self.received}


class WebhookSender:
    """Sends signed webhooks in background tasks, retrying failures after ``retry_delays``."""

    def __init__(self, url: str, secret: str | None, *, retry_delays: Sequence[float] = RETRY_DELAYS_S,
                 transport: httpx.AsyncBaseTransport | None = None, timeout: float = 5.0) -> None:
        self.url = url
        self._secret = secret
        self._delays = tuple(retry_delays)
        self._transport = transport
        self._timeout = timeout
        self._http: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.deliveries: dict[str, Delivery] = {}

    def notify(self, event: str, ticket_id: str) -> Delivery:
        """Queue ``event`` about ``ticket_id``; returns at once, delivery happens in the background."""
        delivery_id = str(uuid.uuid4())
        body = json.dumps({"event": event, "ticket_id": ticket_id, "delivery_id": delivery_id,
                           "occurred_at": datetime.now(UTC).isoformat()}).encode()
        delivery = Delivery(delivery_id, event, ticket_id, body)
        self.deliveries[delivery_id] = delivery
        self._start(delivery)
        return delivery

    def redeliver(self, delivery_id: str) -> Delivery:
        """Send a delivery again, as real PSAs do: same body and delivery id, new timestamp."""
        try:
            delivery = self.deliveries[delivery_id]
        except KeyError:
            raise NotFound(f"no webhook delivery {delivery_id!r}") from None
        delivery.status = "pending"
        self._start(delivery)
        return delivery

    async def drain(self) -> None:
        """Wait until every queued delivery has succeeded or run out of attempts."""
        while self._tasks:
            await asyncio.gather(*self._tasks)

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _start(self, delivery: Delivery) -> None:
        task = asyncio.get_running_loop().create_task(self._deliver(delivery), name=f"webhook {delivery.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, delivery: Delivery) -> None:
        if self._http is None:
            self._http = httpx.AsyncClient(transport=self._transport or default_transport(), timeout=self._timeout)
        for delay in (0.0, *self._delays):
            await asyncio.sleep(delay)
            delivery.attempts += 1
            try:
                response = await self._http.post(self.url, content=delivery.body, headers=self._headers(delivery))
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                delivery.last_error = repr(exc)
                continue
            if response.is_success:
                delivery.status, delivery.last_error = "delivered", None
                delivery.received += 1
                return
            delivery.last_error = f"HTTP {response.status_code}"
        delivery.status = "failed"
        log.warning("webhook %s to %s failed after %d attempts: %s", delivery.id, self.url, delivery.attempts,
                    delivery.last_error)

    def _headers(self, delivery: Delivery) -> dict[str, str]:
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", "User-Agent": "LocalPSA-Webhooks/1",
                   "X-LocalPSA-Event": delivery.event, "X-LocalPSA-Delivery": delivery.id,
                   "X-LocalPSA-Timestamp": timestamp}
        if self._secret:
            headers["X-LocalPSA-Signature"] = sign_webhook(self._secret, timestamp, delivery.body)
        return headers


# --- REST API ------------------------------------------------------------------------------------


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _CompanyIn(_In):
    name: Annotated[str, Field(min_length=1, max_length=200)]


class _TicketIn(_In):
    company_id: str
    requester: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$", max_length=320)]
    subject: Annotated[str, Field(min_length=1, max_length=500)]
    body: Annotated[str, Field(max_length=100_000)] = ""
    asset: str | None = None
    status: Status = "New"
    requester_name: Annotated[str, Field(max_length=200)] | None = None


class _TicketPatch(_In):
    status: Status


class _NoteIn(_In):
    text: Annotated[str, Field(min_length=1, max_length=100_000)]
    public: StrictBool = False


class _ListQuery(BaseModel):
    updated_since: datetime | None = None
    page: Annotated[int, Field(ge=1)] = 1
    page_size: Annotated[int, Field(ge=1, le=100)] = 50


def _error(status: int, code: str, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


class _BearerAuth:
    """Refuses every ``/api/`` request without the API token (compared in constant time)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope["path"]).startswith("/api/"):
            scheme, _, given = Headers(scope=scope).get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip().encode(), self._token):
                await _error(401, "unauthorized", "a valid API token is required: Authorization: Bearer <token>")(
                    scope, receive, send)
                return
        await self.app(scope, receive, send)


class LocalPSAApp(Starlette):
    """The simulator's ASGI app; ``store`` and ``webhooks`` are what it serves and sends."""

    store: PSAStore
    webhooks: WebhookSender | None


async def _body(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except ValueError as exc:
        raise _BadRequest(f"the body is not JSON: {exc}") from exc


class _BadRequest(Exception):
    pass


class _API:
    def __init__(self, store: PSAStore, webhooks: WebhookSender | None) -> None:
        self.store = store
        self.webhooks = webhooks

    async def health(self, request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def list_companies(self, request: Request) -> Response:
        return JSONResponse({"companies": [_record_json(c) for c in self.store.companies()]})

    async def create_company(self, request: Request) -> Response:
        data = _CompanyIn.model_validate(await _body(request))
        return JSONResponse(_record_json(self.store.add_company(data.name)), status_code=201)

    async def list_tickets(self, request: Request) -> Response:
        query = _ListQuery.model_validate(dict(request.query_params))
        since = query.updated_since
        found = self.store.tickets(since.replace(tzinfo=UTC) if since and since.tzinfo is None else since)
        start = (query.page - 1) * query.page_size
        return JSONResponse({"tickets": [_record_json(t) for t in found[start:start + query.page_size]],
                             "page": query.page, "page_size": query.page_size,
                             "has_more": len(found) > start + query.page_size})

    async def create_ticket(self, request: Request) -> Response:
        data = _TicketIn.model_validate(await _body(request))
        try:
            ticket = self.store.create_ticket(data.company_id, requester=data.requester, subject=data.subject,
                                              body=data.body, asset=data.asset, status=data.status,
                                              requester_name=data.requester_name)
        except NotFound as exc:
            raise _BadRequest(f"company_id: {exc.message}") from exc
        if self.webhooks is not None:
            self.webhooks.notify("ticket.created", ticket.id)
        return JSONResponse(_record_json(ticket), status_code=201)

    async def get_ticket(self, request: Request) -> Response:
        ticket_id = request.path_params["ticket_id"]
        data = _record_json(self.store.ticket(ticket_id))
        if "notes" in request.query_params.get("include", "").split(","):
            data["notes"] = [_record_json(n) for n in self.store.notes(ticket_id)]
        return JSONResponse(data)

    async def patch_ticket(self, request: Request) -> Response:
        data = _TicketPatch.model_validate(await _body(request))
        return JSONResponse(_record_json(self.store.set_status(request.path_params["ticket_id"], data.status)))

    async def list_notes(self, request: Request) -> Response:
        notes = self.store.notes(request.path_params["ticket_id"])
        return JSONResponse({"notes": [_record_json(n) for n in notes]})

    async def create_note(self, request: Request) -> Response:
        ticket_id = request.path_params["ticket_id"]
        self.store.ticket(ticket_id)
        data = _NoteIn.model_validate(await _body(request))
        return JSONResponse(_record_json(self.store.add_note(ticket_id, data.text, public=data.public)),
                            status_code=201)

    async def list_deliveries(self, request: Request) -> Response:
        found = self.webhooks.deliveries.values() if self.webhooks else []
        return JSONResponse({"deliveries": [d.summary() for d in found]})

    async def redeliver(self, request: Request) -> Response:
        if self.webhooks is None:
            raise NotFound("this PSA has no webhook configured")
        return JSONResponse(self.webhooks.redeliver(request.path_params["delivery_id"]).summary(), status_code=202)


async def _on_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ValidationError)
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors())
    return _error(400, "bad_request", problems)


async def _on_bad_request(request: Request, exc: Exception) -> Response:
    return _error(400, "bad_request", str(exc))


async def _on_conflict(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Conflict)
    return _error(400, "conflict", exc.message)


async def _on_not_found(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NotFound)
    return _error(404, "not_found", exc.message)


async def _on_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return _error(exc.status_code, code, str(exc.detail))


def create_psa_app(store: PSAStore, *, api_token: str, webhook_url: str | None = None,
                   webhook_secret: str | None = None, retry_delays: Sequence[float] = RETRY_DELAYS_S,
                   webhook_transport: httpx.AsyncBaseTransport | None = None) -> LocalPSAApp:
    """The simulator's ASGI app over ``store``; it POSTs webhooks to ``webhook_url`` when set."""
    if not api_token:
        raise ConfigError("the local PSA needs a non-empty API token")
    if webhook_url and not webhook_url.startswith(("http://", "https://")):
        raise ConfigError(f"the local PSA's webhook URL must be http(s)://..., not {webhook_url!r}")
    webhooks = (WebhookSender(webhook_url, webhook_secret, retry_delays=retry_delays, transport=webhook_transport)
                if webhook_url else None)
    api = _API(store, webhooks)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if webhooks is not None:
            await webhooks.aclose()

    v1 = "/api/v1"
    app = LocalPSAApp(
        routes=[
            Route("/healthz", api.health, methods=["GET"]),
            Route(f"{v1}/companies", api.list_companies, methods=["GET"]),
            Route(f"{v1}/companies", api.create_company, methods=["POST"]),
            Route(f"{v1}/tickets", api.list_tickets, methods=["GET"]),
            Route(f"{v1}/tickets", api.create_ticket, methods=["POST"]),
            Route(f"{v1}/tickets/{{ticket_id}}", api.get_ticket, methods=["GET"]),
            Route(f"{v1}/tickets/{{ticket_id}}", api.patch_ticket, methods=["PATCH"]),
            Route(f"{v1}/tickets/{{ticket_id}}/notes", api.list_notes, methods=["GET"]),
            Route(f"{v1}/tickets/{{ticket_id}}/notes", api.create_note, methods=["POST"]),
            Route(f"{v1}/webhook-deliveries", api.list_deliveries, methods=["GET"]),
            Route(f"{v1}/webhook-deliveries/{{delivery_id}}/redeliver", api.redeliver, methods=["POST"]),
        ],
        middleware=[Middleware(_BearerAuth, token=api_token)],
        exception_handlers={ValidationError: _on_validation, _BadRequest: _on_bad_request, Conflict: _on_conflict,
                            NotFound: _on_not_found, HTTPException: _on_http},
        lifespan=lifespan,
    )
    app.store, app.webhooks = store, webhooks
    return app


# --- running it ------------------------------------------------------------------------------------


class _EmbeddedServer(uvicorn.Server):
    """uvicorn that leaves Ctrl-C and SIGTERM to the program it runs in (MSPclaw's own server)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class RunningPSA:
    """A simulator serving on loopback, and a connector already pointed at it."""

    base_url: str
    api_token: str
    store: PSAStore
    connector: LocalPSAConnector
    webhooks: WebhookSender | None = None
    company_id: str | None = None
    """The sample tickets' company, when samples were loaded."""
    app: LocalPSAApp | None = field(default=None, repr=False)

    async def open_samples(self, company_name: str, asset: str | None) -> list[PSATicket]:
        """Open the sample tickets through the REST API, as end users would: each gets a fresh id
        and sends its ``ticket.created`` webhook. The company is created when missing."""
        company = next((c for c in self.store.companies() if c.name == company_name), None)
        self.company_id = company.id if company else await self.connector.create_company(company_name)
        return [await self.connector.create_ticket(self.company_id, requester=item["requester"],
                                                   subject=item["subject"], body=item["body"], asset=asset,
                                                   requester_name=item.get("requester_name"))
                for item in sample_tickets()]


@contextlib.asynccontextmanager
async def run_local_psa(*, host: str = "127.0.0.1", port: int = 0, api_token: str | None = None,
                        webhook_url: str | None = None, webhook_secret: str | None = None,
                        samples: tuple[str, str | None] | None = None, store: PSAStore | None = None,
                        retry_delays: Sequence[float] = RETRY_DELAYS_S,
                        log_level: str = "warning") -> AsyncIterator[RunningPSA]:
    """Serve the simulator with uvicorn in the current event loop until the block ends.

    ``port=0`` picks a free port; ``api_token`` defaults to a fresh random one; ``samples`` is
    ``(company name, asset)`` to load the shipped sample tickets; ``store`` defaults to a new
    in-memory :class:`PSAStore` (pass ``PSAStore(path)`` to keep data across runs).

    Samples loaded here are already in the PSA when it starts (no webhooks: MSPclaw finds them by
    polling ``list_tickets``); :meth:`RunningPSA.open_samples` opens them one by one with webhooks.
    The simulator does not take over Ctrl-C: the program around it decides when to stop.
    """
    store = store if store is not None else PSAStore()
    company_id = store.load_samples(*samples).id if samples is not None else None
    token = api_token or "lpsa_" + secrets.token_urlsafe(24)
    app = create_psa_app(store, api_token=token, webhook_url=webhook_url, webhook_secret=webhook_secret,
                         retry_delays=retry_delays)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"the local PSA cannot listen on {host}:{port}: {exc}") from exc
    base_url = f"http://{host}:{sock.getsockname()[1]}"
    server = _EmbeddedServer(uvicorn.Config(app, log_level=log_level, lifespan="on", access_log=False,
                                           timeout_graceful_shutdown=5))
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]), name="local PSA")
    try:
        while not server.started:
            if task.done():
                task.result()
                raise ConfigError("the local PSA stopped while starting")
            await asyncio.sleep(0.01)
        async with LocalPSAConnector(base_url, token, webhook_secret=webhook_secret) as connector:
            yield RunningPSA(base_url, token, store, connector, app.webhooks, company_id, app)
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
        sock.close()
