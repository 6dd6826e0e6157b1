"""A local Freshdesk API v2 server for the connector tests, checked against the OpenAPI document in
shared/specs/freshdesk/ (third-party, API Evangelist; Freshworks publishes none).

Every request is validated with openapi-core: path, method, parameter types and enums (``include``,
``order_by``, ``per_page`` ≤ 100…), the ``basicAuth`` security scheme, and bodies against
``NoteCreate`` / ``ReplyCreate`` / ``TicketUpdate``; an undeclared query parameter is refused
too. Every answer is validated against the operation's response schema (``Ticket``,
``Conversation``, ``Error``…). A refused request (answered 400) or a bad answer is recorded in
``violations``, which the tests assert is empty. Beyond the spec it follows the vendor reference
(section 5): the API key as Basic user (401 ``{"code": "invalid_credentials"}`` otherwise),
status values 2-5 (400 ``Validation failed`` otherwise), 429 with ``Retry-After``.

The spec's server is ``https://{domain}.freshdesk.com/api/v2``; the fake serves the same paths
under ``/api/v2`` on loopback, so the server entry is replaced by that relative one in memory.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from tests.connectors.openapi_fake import SpecCheck
from tests.connectors.rest_server import RestFake, Seen, serve


def freshdesk_errata(spec: dict[str, Any]) -> None:
    spec["servers"] = [{"url": "/api/v2"}]


_CHECK: SpecCheck | None = None


def spec_check() -> SpecCheck:
    global _CHECK
    if _CHECK is None:
        _CHECK = SpecCheck("freshdesk/freshdesk-rest-api-openapi.yml", freshdesk_errata)
    return _CHECK


def fd_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def text_of(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", "\n", html)).strip()


@dataclass
class FakeFreshdesk(RestFake):
    api_key: str = "fd_api_key_abcdef"
    tickets: dict[int, dict[str, Any]] = field(default_factory=dict)
    conversations: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    requesters: dict[int, dict[str, Any]] = field(default_factory=dict)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(3001))

    def add_ticket(self, *, subject: str = "Printer offline", company_id: int | None = 44,
                   email: str = "maria@acme.example", description: str = "<div>It does not print.</div>",
                   updated: datetime | None = None, custom: dict[str, Any] | None = None, status: int = 2) -> int:
        ticket_id = next(self.ids)
        requester_id = 9000 + ticket_id
        created = datetime.now(UTC) - timedelta(hours=1)
        self.requesters[requester_id] = {"id": requester_id, "name": "Maria Lopez", "email": email,
                                         "mobile": None, "phone": None}
        ticket: dict[str, Any] = {
            "id": ticket_id, "subject": subject, "description": description, "description_text": text_of(description),
            "status": status, "priority": 1, "source": 1, "type": "Incident", "requester_id": requester_id,
            "company_id": company_id, "tags": [], "cc_emails": [],
            "custom_fields": custom or {}, "fr_escalated": False, "spam": False, "is_escalated": False,
            "due_by": fd_time(created + timedelta(days=1)), "fr_due_by": fd_time(created + timedelta(hours=4)),
            "created_at": fd_time(created), "updated_at": fd_time(updated or created)}
        if company_id is None:
            del ticket["company_id"]
        self.tickets[ticket_id] = ticket
        self.conversations[ticket_id] = []
        return ticket_id

    def _authorised(self, request: Request) -> bool:
        given = request.headers.get("authorization", "")
        try:
            user = base64.b64decode(given.removeprefix("Basic ")).decode().partition(":")[0]
        except ValueError:
            return False
        return given.startswith("Basic ") and user == self.api_key

    def _violation(self, problems: list[str]) -> JSONResponse:
        self.violations += problems
        return JSONResponse({"description": "Validation failed",
                             "errors": [{"field": "", "message": p, "code": "invalid_value"} for p in problems]},
                            status_code=400)

    async def handle(self, request: Request) -> Response:
        raw = await request.body()
        body = json.loads(raw) if raw else None
        path = request.url.path
        self.seen.append(Seen(request.method, path, dict(request.query_params), body, dict(request.headers)))
        problems = spec_check().request(request, raw)
        if problems:
            return self._violation(problems)
        if not self._authorised(request):
            return JSONResponse({"code": "invalid_credentials", "message": "You have to be logged in to perform "
                                 "this action."}, status_code=401)
        fault = self.take_fault(request.method, path)
        if fault is not None and fault.status is not None:
            return self.fault_response(fault)
        answer = self._route(request.method, path.removeprefix("/api/v2/").split("/"), dict(request.query_params),
                             body)
        self.violations += spec_check().response(request, bytes(answer.body), answer.status_code)
        if fault is not None and fault.delay:
            await asyncio.sleep(fault.delay)
        return answer

    def _route(self, method: str, parts: list[str], query: dict[str, str], body: Any) -> Response:
        missing = JSONResponse({"description": "Resource not found", "errors": []}, status_code=404)
        match (method, parts):
            case ("GET", ["tickets"]):
                return self._list(query)
            case ("GET", ["tickets", ticket_id]):
                ticket = self.tickets.get(int(ticket_id))
                if ticket is None:
                    return missing
                if query.get("include") == "requester":
                    ticket = {**ticket, "requester": self.requesters[ticket["requester_id"]]}
                return JSONResponse(ticket)
            case ("PUT", ["tickets", ticket_id]):
                ticket = self.tickets.get(int(ticket_id))
                if ticket is None:
                    return missing
                ticket.update(body)
                ticket["updated_at"] = fd_time(datetime.now(UTC))
                return JSONResponse(ticket)
            case ("GET", ["tickets", ticket_id, "conversations"]):
                if int(ticket_id) not in self.tickets:
                    return missing
                page, size = int(query.get("page", "1")), int(query.get("per_page", "30"))
                return JSONResponse(self.conversations[int(ticket_id)][(page - 1) * size: page * size])
            case ("POST", ["tickets", ticket_id, ("notes" | "reply") as kind]):
                if int(ticket_id) not in self.tickets:
                    return missing
                return self._converse(int(ticket_id), kind, body)
        return self._violation([f"{method} /{'/'.join(parts)}: this fake does not serve it"])

    def _list(self, query: dict[str, str]) -> Response:
        items = list(self.tickets.values())
        since = query.get("updated_since")
        if since is None:
            since = fd_time(datetime.now(UTC) - timedelta(days=30))
        items = [t for t in items if t["updated_at"] >= since]
        items.sort(key=lambda t: t.get(query.get("order_by", "created_at")) or "",
                   reverse=query.get("order_type", "desc") == "desc")
        page, size = int(query.get("page", "1")), int(query.get("per_page", "30"))
        return JSONResponse(items[(page - 1) * size: page * size])

    def _converse(self, ticket_id: int, kind: str, body: dict[str, Any]) -> Response:
        now = fd_time(datetime.now(UTC))
        ticket = self.tickets[ticket_id]
        record = {"id": next(self.ids), "body": body["body"], "body_text": text_of(body["body"]), "incoming": False,
                  "private": bool(body.get("private", True)) if kind == "notes" else False,
                  "user_id": 1, "ticket_id": ticket_id, "support_email": "support@acme-msp.example",
                  "to_emails": [self.requesters[ticket["requester_id"]]["email"]] if kind == "reply" else [],
                  "attachments": [], "source": 2 if kind == "notes" else 0, "created_at": now, "updated_at": now}
        self.conversations[ticket_id].append(record)
        ticket["updated_at"] = now
        return JSONResponse(record, status_code=201)


@asynccontextmanager
async def run_freshdesk() -> AsyncIterator[FakeFreshdesk]:
    fake = FakeFreshdesk()
    app = Starlette(routes=[Route("/api/v2/{path:path}", fake.handle, methods=["GET", "POST", "PUT", "DELETE"])])
    async with serve(app) as origin:
        fake.url = origin + "/api/v2"
        yield fake
