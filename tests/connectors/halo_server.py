"""A local HaloPSA server for the connector tests, checked against Halo's published OpenAPI document.

Every ``/api`` request is validated with openapi-core against shared/specs/halopsa/swagger.json
(Halo's own swagger): path, method, parameter types, the Bearer security scheme, and the body
against the ``Faults`` / ``Actions`` / ``Webhook`` schemas (which forbid unknown properties); an
undeclared query parameter is refused too. A refused request is answered 400 and recorded in
``violations``, which the tests assert is empty. Halo's responses have no schema in the spec
("Success"), so every record the fake answers with is validated against its component schema
(``Faults``, ``Actions``, ``TStatus``, ``Webhook``) and a bad one is recorded the same way.

``/auth/token`` (Halo's authorisation server, not in the swagger) follows the vendor reference
(section 3.1): a form ``grant_type=client_credentials&client_id&client_secret&scope``, the
``tenant`` query parameter on hosted cloud, ``{"access_token", "token_type", "expires_in", "scope"}``
back, ``400 {"error": "invalid_client"}`` for wrong credentials.

Errata applied in memory to load the swagger (it is not modified on disk):

* parameter and property types spelt ``int``, ``bool`` and ``double`` (not JSON Schema types) are
  read as ``integer``, ``boolean`` and ``number``, which is what Halo's API parses them as;
* the security scheme ``Bearer`` is matched case-insensitively (RFC 7235; openapi-core compares
  the lower-case scheme name);
* ``lastupdatefromdate``/``lastupdatetodate`` on ``GET /Tickets`` are typed ``bool`` with no
  description; Halo filters on them as dates (the vendor reference and Halo's own client
  libraries send ``2024-01-01T00:00:00``), so they are read as ``string`` ``date-time``-like.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from tests.connectors.openapi_fake import SpecCheck
from tests.connectors.rest_server import RestFake, Seen, serve

_TYPES = {"int": "integer", "bool": "boolean", "double": "number"}


def halo_errata(spec: dict[str, Any]) -> None:
    def walk(node: Any) -> None:
        if isinstance(node, dict):
            kind = node.get("type")
            if isinstance(kind, str) and kind in _TYPES:
                node["type"] = _TYPES[kind]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    spec["components"]["securitySchemes"]["Bearer"]["scheme"] = "bearer"
    for parameter in spec["paths"]["/Tickets"]["get"]["parameters"]:
        if parameter["name"] in ("lastupdatefromdate", "lastupdatetodate"):
            parameter["schema"] = {"type": "string"}


_CHECK: SpecCheck | None = None


def spec_check() -> SpecCheck:
    global _CHECK
    if _CHECK is None:
        _CHECK = SpecCheck("halopsa/swagger.json", halo_errata)
    return _CHECK


def halo_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


STATUSES = [(1, "New"), (2, "In Progress"), (3, "Action Required"), (4, "With User"), (9, "Closed")]


@dataclass
class FakeHalo(RestFake):
    client_id: str = "b1f4a2c8-halo-client"
    client_secret: str = "halo-secret-value"
    tenant: str | None = "acmemsp"
    expires_in: int = 3600
    tokens: set[str] = field(default_factory=set)
    tickets: dict[int, dict[str, Any]] = field(default_factory=dict)
    actions: list[dict[str, Any]] = field(default_factory=list)
    webhooks: list[dict[str, Any]] = field(default_factory=list)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(2001))

    def add_ticket(self, *, summary: str = "Printer offline", client_id: int = 12,
                   email: str | None = "maria@acme.example", details: str = "It does not print.",
                   updated: datetime | None = None, asset: str | None = None, status: int = 1) -> int:
        ticket_id = next(self.ids)
        created = datetime.now(UTC) - timedelta(hours=1)
        ticket = {"id": ticket_id, "summary": summary, "details": details, "status_id": status,
                  "status_name": dict(STATUSES)[status], "client_id": client_id, "client_name": "Acme Dental",
                  "site_id": 3, "user_id": 41, "user_name": "Maria Lopez", "user_email": email,
                  "tickettype_id": 1, "datecreated": halo_time(created),
                  "lastactiondate": halo_time(updated or created), "hasbeenclosed": False,
                  "assets": [{"id": 5, "inventory_number": asset}] if asset else []}
        self._answer_record("Faults", ticket)
        self.tickets[ticket_id] = ticket
        return ticket_id

    def revoke_tokens(self) -> None:
        self.tokens.clear()

    def notes(self, ticket_id: int) -> list[dict[str, Any]]:
        return [a for a in self.actions if a["ticket_id"] == ticket_id]

    # --- the server -----------------------------------------------------------------------------

    def _violation(self, problems: list[str]) -> JSONResponse:
        self.violations += problems
        return JSONResponse({"message": "; ".join(problems)}, status_code=400)

    def _answer_record(self, schema: str, value: Any) -> None:
        self.violations += [f"the fake's own answer: {p}" for p in spec_check().record(schema, value)]

    async def token(self, request: Request) -> Response:
        raw = await request.body()
        form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        self.seen.append(Seen("POST", "/auth/token", dict(request.query_params), form, dict(request.headers)))
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return self._violation(["/auth/token takes a form, not " + request.headers.get("content-type", "")])
        if self.tenant is not None and request.query_params.get("tenant") != self.tenant:
            return JSONResponse({"error": "invalid_request", "error_description": "unknown tenant"}, status_code=400)
        fault = self.take_fault("POST", "/auth/token")
        if fault is not None and fault.status is not None:
            return self.fault_response(fault)
        if form.get("grant_type") != "client_credentials" or not form.get("scope"):
            return self._violation([f"token request form {sorted(form)} is not client credentials with a scope"])
        if (form.get("client_id"), form.get("client_secret")) != (self.client_id, self.client_secret):
            return JSONResponse({"error": "invalid_client", "error_description": "Invalid client credentials"},
                                status_code=400)
        token = secrets.token_urlsafe(24)
        self.tokens.add(token)
        return JSONResponse({"access_token": token, "token_type": "Bearer", "expires_in": self.expires_in,
                             "scope": form["scope"]})

    async def api(self, request: Request) -> Response:
        raw = await request.body()
        body = json.loads(raw) if raw else None
        self.seen.append(Seen(request.method, request.url.path, dict(request.query_params), body,
                              dict(request.headers)))
        problems = spec_check().request(request, raw)
        if problems:
            return self._violation(problems)
        if request.headers.get("authorization", "").removeprefix("Bearer ") not in self.tokens:
            return JSONResponse({"message": "Unauthorized"}, status_code=401)
        fault = self.take_fault(request.method, request.url.path)
        if fault is not None and fault.status is not None:
            return self.fault_response(fault)
        answer = self._route(request.method, request.url.path.removeprefix("/api/").split("/"),
                             dict(request.query_params), body)
        if fault is not None and fault.delay:
            await asyncio.sleep(fault.delay)
        return answer

    def _route(self, method: str, parts: list[str], query: dict[str, str], body: Any) -> Response:
        match (method, parts):
            case ("GET", ["Tickets", ticket_id]):
                ticket = self.tickets.get(int(ticket_id))
                return JSONResponse(ticket) if ticket else JSONResponse("Ticket not found", status_code=404)
            case ("GET", ["Tickets"]):
                return self._list(query)
            case ("POST", ["Tickets"]):
                return self._update(body)
            case ("GET", ["Actions"]):
                wanted = int(query.get("ticket_id", "0"))
                if wanted not in self.tickets:
                    return JSONResponse("Ticket not found", status_code=404)
                found = self.notes(wanted)
                return JSONResponse({"record_count": len(found), "actions": found})
            case ("POST", ["Actions"]):
                return self._add_actions(body)
            case ("GET", ["Status"]):
                statuses = [{"id": i, "name": n, "type": 0} for i, n in STATUSES]
                for status in statuses:
                    self._answer_record("TStatus", status)
                return JSONResponse(statuses)
            case ("GET", ["Webhook"]):
                return JSONResponse(self.webhooks)
            case ("POST", ["Webhook"]):
                created = [{**hook, "id": str(uuid.uuid4())} for hook in body]
                for hook in created:
                    self._answer_record("Webhook", hook)
                self.webhooks += created
                return JSONResponse(created[0] if len(created) == 1 else created, status_code=201)
        return self._violation([f"{method} /api/{'/'.join(parts)}: this fake does not serve it"])

    def _list(self, query: dict[str, str]) -> Response:
        items = sorted(self.tickets.values(), key=lambda t: t["id"])
        since = query.get("lastupdatefromdate")
        if since:
            items = [t for t in items if datetime.fromisoformat(t["lastactiondate"]) >= datetime.fromisoformat(since)]
        if query.get("pageinate") != "true":
            return JSONResponse({"record_count": len(items), "tickets": items})
        size, page = int(query.get("page_size", "50")), int(query.get("page_no", "1"))
        if size > 100:
            return self._violation([f"page_size {size} is over Halo's maximum of 100"])
        return JSONResponse({"page_no": page, "page_size": size, "record_count": len(items),
                             "tickets": items[(page - 1) * size: page * size]})

    def _update(self, body: list[dict[str, Any]]) -> Response:
        updated = []
        for change in body:
            ticket = self.tickets.get(int(change.get("id") or 0))
            if ticket is None:
                return JSONResponse("Ticket not found", status_code=404)
            if "status_id" in change:
                names = dict(STATUSES)
                if change["status_id"] not in names:
                    return JSONResponse({"message": f"Invalid status {change['status_id']}"}, status_code=400)
                ticket.update(status_id=change["status_id"], status_name=names[change["status_id"]],
                              hasbeenclosed=change["status_id"] == 9)
            ticket["lastactiondate"] = halo_time(datetime.now(UTC))
            updated.append(ticket)
        return JSONResponse(updated[0] if len(updated) == 1 else updated, status_code=201)

    def _add_actions(self, body: list[dict[str, Any]]) -> Response:
        created = []
        for action in body:
            ticket = self.tickets.get(int(action.get("ticket_id") or 0))
            if ticket is None:
                return JSONResponse("Ticket not found", status_code=404)
            record = {"id": next(self.ids), "datetime": halo_time(datetime.now(UTC)), **action}
            self._answer_record("Actions", record)
            self.actions.append(record)
            ticket["lastactiondate"] = record["datetime"]
            created.append(record)
        return JSONResponse(created[0] if len(created) == 1 else created, status_code=201)


@asynccontextmanager
async def run_halo(**options: Any) -> AsyncIterator[FakeHalo]:
    fake = FakeHalo(**options)
    app = Starlette(routes=[Route("/auth/token", fake.token, methods=["POST"]),
                            Route("/api/{path:path}", fake.api, methods=["GET", "POST", "PUT", "DELETE"])])
    async with serve(app) as origin:
        fake.url = origin
        yield fake
