"""A local Autotask REST server for the connector tests.

Autotask's Swagger document is served live by each zone and not kept in shared/specs, so this
server follows the shapes of the vendor reference (shared/reference/vendor-apis.md section 4):
``zoneInformation`` without credentials; ``ApiIntegrationCode``/``UserName``/``Secret`` on every
other call (401 otherwise); ``{"item": …}`` reads (404 for a missing entity); ``QueryModel``
queries (``MaxRecords`` ≤ 500, ``filter`` of ``{op, field, value}`` with the documented
operators) answered ``{"items", "pageDetails": {"count", "requestCount", "prevPageUrl",
"nextPageUrl"}}``; ``TicketNoteModel`` creation through the child URL answered ``{"itemId"}``;
``PATCH /Tickets``; ``entityInformation/fields`` picklists; ``TicketWebhooks`` and their fields.
Validation failures are HTTP 500 ``{"errors": ["…"]}`` as Autotask answers them. It enforces the
thread limit (a fourth concurrent request is answered 429 and recorded) and counts requests for
the hourly threshold. Paths are case-insensitive, as Autotask's are. A request that does not
follow these shapes is recorded in ``violations``, which the tests assert is empty.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from tests.connectors.rest_server import RestFake, Seen, serve

from mspclaw.connectors.autotask import sign_hook

OPS = {"eq", "noteq", "gt", "gte", "lt", "lte", "beginsWith", "endsWith", "contains", "exist", "notExist", "in",
       "notIn"}
TICKET_FIELDS = {"id", "ticketNumber", "title", "description", "status", "companyID", "contactID",
                 "configurationItemID", "createDate", "lastActivityDate", "priority", "queueID"}
NOTE_FIELDS = {"id", "createDateTime", "createdByContactID", "creatorResourceID", "description",
               "impersonatorCreatorResourceID", "impersonatorUpdaterResourceID", "lastActivityDate", "noteType",
               "publish", "ticketID", "title"}
WEBHOOK_FIELDS = {"Name", "WebhookUrl", "DeactivationUrl", "SecretKey", "IsActive", "IsSubscribedToCreateEvents",
                  "IsSubscribedToUpdateEvents", "IsSubscribedToDeleteEvents", "NotificationEmailAddress",
                  "SendThresholdExceededNotification"}


def picklist(*pairs: tuple[int, str], default: int | None = None,
             inactive: tuple[int, ...] = ()) -> list[dict[str, Any]]:
    return [{"value": str(v), "label": label, "isDefaultValue": v == default, "sortOrder": i, "parentValue": "",
             "isActive": v not in inactive, "isSystem": True} for i, (v, label) in enumerate(pairs)]


FIELDS: dict[str, dict[str, list[dict[str, Any]]]] = {
    "tickets": {"status": picklist((1, "New"), (5, "Complete"), (7, "Waiting Customer"), (8, "In Progress"),
                                   (9, "Waiting Materials"))},
    "ticketnotes": {"publish": picklist((1, "All Autotask Users"), (2, "Internal Only"),
                                        (4, "Internal & Co-managed")),
                    "noteType": picklist((1, "Task Detail"), (2, "Resolution"), (3, "Summary"), default=1)},
    "ticketwebhookfields": {"fieldID": picklist((4, "Priority"), (14, "Status"), (21, "Title"))},
}


def at_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def errors(status: int, *messages: str) -> JSONResponse:
    return JSONResponse({"errors": list(messages)}, status_code=status)


@dataclass
class FakeAutotask(RestFake):
    username: str = "mspclaw-api@acmemsp.example"
    integration_code: str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ1"
    secret: str = "at-secret-value"
    latency: float = 0.0
    in_flight: int = 0
    most_in_flight: int = 0
    tickets: dict[int, dict[str, Any]] = field(default_factory=dict)
    notes: list[dict[str, Any]] = field(default_factory=list)
    contacts: dict[int, dict[str, Any]] = field(default_factory=dict)
    items: dict[int, dict[str, Any]] = field(default_factory=dict)
    webhooks: list[dict[str, Any]] = field(default_factory=list)
    webhook_fields: list[dict[str, Any]] = field(default_factory=list)
    pages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    requests_this_hour: int = 0
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(4001))

    @property
    def api(self) -> str:
        return f"{self.url}/atservicesrest/v1.0"

    def add_ticket(self, *, title: str = "Printer offline", company: int = 175, contact: bool = True,
                   asset: str | None = None, updated: datetime | None = None, status: int = 1,
                   description: str = "It does not print.") -> int:
        ticket_id = next(self.ids)
        created = datetime.now(UTC) - timedelta(hours=1)
        contact_id = item_id = None
        if contact:
            contact_id = next(self.ids)
            self.contacts[contact_id] = {"id": contact_id, "firstName": "Maria", "lastName": "Lopez",
                                         "emailAddress": "maria@acme.example", "companyID": company}
        if asset:
            item_id = next(self.ids)
            self.items[item_id] = {"id": item_id, "referenceTitle": asset, "companyID": company}
        self.tickets[ticket_id] = {"id": ticket_id, "ticketNumber": f"T2026.{ticket_id}", "title": title,
                                   "description": description, "status": status, "companyID": company,
                                   "contactID": contact_id, "configurationItemID": item_id,
                                   "createDate": at_time(created), "lastActivityDate": at_time(updated or created),
                                   "priority": 2, "queueID": 8}
        return ticket_id

    def delivery(self, ticket_id: int, *, secret: str, action: str = "Create", tamper: bool = False,
                 sent: datetime | None = None) -> tuple[dict[str, str], bytes]:
        body = json.dumps({"Action": action, "Guid": "5b4f3c7e-0d7f-4d2b-9a67-2d2f3b1e9c11", "EntityType": "Ticket",
                           "Id": ticket_id, "Fields": {"14": "1"}, "SequenceNumber": secrets.randbelow(10**6),
                           "EventTime": at_time(sent or datetime.now(UTC)), "PersonID": 29682885}).encode()
        signature = sign_hook(secret, body)
        if tamper:
            body = body.replace(b'"Create"', b'"Delete"')
        return {"X-Hook-Signature": signature, "Content-Type": "application/json"}, body

    # --- the server -----------------------------------------------------------------------------

    def _violation(self, what: str) -> JSONResponse:
        self.violations.append(what)
        return errors(500, what)

    async def handle(self, request: Request) -> Response:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.in_flight > 3:
                self.violations.append(f"{self.in_flight} concurrent requests: over the thread limit of 3")
                return errors(429, "Thread threshold exceeded: 3 concurrent requests per endpoint")
            if self.latency:
                await asyncio.sleep(self.latency)
            return await self._handle(request)
        finally:
            self.in_flight -= 1

    async def _handle(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return self._violation("body is not JSON")
        path = request.url.path.lower()
        self.seen.append(Seen(request.method, request.url.path, dict(request.query_params), body,
                              dict(request.headers)))
        if path == "/atservicesrest/v1.0/zoneinformation":
            if "secret" in request.headers or "apiintegrationcode" in request.headers:
                self.violations.append("zoneInformation was sent credentials")
            if request.query_params.get("user") != self.username:
                return errors(404, "no such user")
            return JSONResponse({"zoneName": "Test Zone", "url": f"{self.url}/atservicesrest/",
                                 "webUrl": f"{self.url}/", "ci": 0})
        if not path.startswith("/atservicesrest/v1.0/"):
            return errors(404, f"no such path {request.url.path}")
        given = (request.headers.get("apiintegrationcode"), request.headers.get("username"),
                 request.headers.get("secret"))
        if given != (self.integration_code, self.username, self.secret):
            return JSONResponse({"errors": ["Unauthorized"]}, status_code=401)
        self.requests_this_hour += 1
        fault = self.take_fault(request.method, request.url.path)
        if fault is not None and fault.status is not None:
            return self.fault_response(fault)
        answer = self._route(request.method, path.removeprefix("/atservicesrest/v1.0/").split("/"),
                             dict(request.query_params), body)
        if fault is not None and fault.delay:
            await asyncio.sleep(fault.delay)
        return answer

    def _route(self, method: str, parts: list[str], query: dict[str, str], body: Any) -> Response:
        match (method, parts):
            case ("GET", [entity, "entityinformation", "fields"]) if entity in FIELDS:
                return JSONResponse({"fields": [{"name": name, "dataType": "integer", "isPickList": True,
                                                 "picklistValues": values, "isRequired": False, "isReadOnly": False}
                                                for name, values in FIELDS[entity].items()]})
            case ("GET", ["tickets", ticket_id]):
                return self._item(self.tickets, ticket_id, "Ticket")
            case ("GET", ["contacts", contact_id]):
                return self._item(self.contacts, contact_id, "Contact")
            case ("GET", ["configurationitems", item_id]):
                return self._item(self.items, item_id, "ConfigurationItem")
            case ("POST", ["tickets", "query"]):
                return self._query(list(self.tickets.values()), TICKET_FIELDS, body, "tickets")
            case ("POST", ["ticketnotes", "query"]):
                return self._query(self.notes, NOTE_FIELDS, body, "ticketnotes")
            case ("POST", ["ticketwebhooks", "query"]):
                return self._query(self.webhooks, WEBHOOK_FIELDS | {"id"}, body, "ticketwebhooks")
            case ("GET", [_, "query", "next"]):
                page = self.pages.pop(query.get("paging", ""), None)
                if page is None:
                    return self._violation("nextPageUrl used twice or made up")
                return self._page(page, query.get("entity", ""))
            case ("POST", ["tickets", ticket_id, "notes"]):
                return self._add_note(ticket_id, body)
            case ("PATCH", ["tickets"]):
                return self._patch(body)
            case ("POST", ["ticketwebhooks"]):
                if not isinstance(body, dict) or set(body) - WEBHOOK_FIELDS or not body.get("WebhookUrl"):
                    return self._violation(f"TicketWebhook fields {sorted(body or {})}")
                if len(str(body.get("SecretKey") or "")) > 64:
                    return errors(500, "SecretKey is longer than 64 characters")
                hook = {"id": next(self.ids), "IsReady": True, "WebhookGUID": "5b4f3c7e", **body}
                self.webhooks.append(hook)
                return JSONResponse({"itemId": hook["id"]})
            case ("POST", ["ticketwebhooks", hook_id, "fields"]):
                allowed = {"FieldID", "IsSubscribedField", "IsDisplayAlwaysField"}
                values = {int(p["value"]) for p in FIELDS["ticketwebhookfields"]["fieldID"]}
                if not isinstance(body, dict) or set(body) != allowed or body["FieldID"] not in values:
                    return self._violation(f"TicketWebhookField {body}")
                self.webhook_fields.append({"webhookID": int(hook_id), **body})
                return JSONResponse({"itemId": next(self.ids)})
            case ("GET", ["thresholdinformation"]):
                return JSONResponse({"externalRequestThreshold": 10000, "requestThresholdTimeframe": 60,
                                     "currentTimeframeRequestCount": self.requests_this_hour})
        return self._violation(f"{method} /{'/'.join(parts)} is not an endpoint this server knows")

    def _item(self, store: dict[int, dict[str, Any]], ident: str, kind: str) -> Response:
        item = store.get(int(ident)) if ident.isdigit() else None
        return JSONResponse({"item": item}) if item else errors(404, f"{kind} {ident} not found")

    def _query(self, rows: list[dict[str, Any]], fields: set[str], body: Any, entity: str) -> Response:
        if not isinstance(body, dict) or not isinstance(body.get("filter"), list) or not body["filter"]:
            return self._violation("a QueryModel needs a non-empty filter")
        size = body.get("MaxRecords", 500)
        if not isinstance(size, int) or not 1 <= size <= 500:
            return self._violation(f"MaxRecords {size} is not 1-500")
        for condition in body["filter"]:
            op, name = condition.get("op"), condition.get("field")
            if op not in OPS:
                return self._violation(f"unknown op {op!r}")
            if name not in fields:
                return errors(500, f"Unable to find {name} in the {entity} entity.")
            rows = [r for r in rows if _holds(r.get(name), op, condition.get("value"))]
        rows = sorted(rows, key=lambda r: r.get("id") or 0)
        first, rest = rows[:size], rows[size:]
        chunks = [rest[i:i + size] for i in range(0, len(rest), size)]
        return self._page([{"items": first}, *({"items": c} for c in chunks)], entity)

    def _page(self, pages: list[dict[str, Any]], entity: str) -> Response:
        page, rest = pages[0], pages[1:]
        following = None
        if rest:
            token = secrets.token_hex(6)
            self.pages[token] = rest
            following = f"{self.api}/{entity}/query/next?paging={token}&entity={entity}"
        items = page["items"]
        return JSONResponse({"items": items, "pageDetails": {"count": len(items), "requestCount": 500,
                                                             "prevPageUrl": None, "nextPageUrl": following}})

    def _add_note(self, ticket_id: str, body: Any) -> Response:
        ticket = self.tickets.get(int(ticket_id)) if ticket_id.isdigit() else None
        if ticket is None:
            return errors(404, f"Ticket {ticket_id} not found")
        if not isinstance(body, dict) or set(body) - NOTE_FIELDS:
            return self._violation(f"TicketNoteModel has unknown fields {sorted(set(body or {}) - NOTE_FIELDS)}")
        publish = {int(p["value"]) for p in FIELDS["ticketnotes"]["publish"]}
        kinds = {int(p["value"]) for p in FIELDS["ticketnotes"]["noteType"]}
        if body.get("publish") not in publish or body.get("noteType") not in kinds:
            return errors(500, "publish and noteType must be values of their picklists")
        if not str(body.get("description") or "").strip() or not str(body.get("title") or "").strip():
            return errors(500, "title and description are required")
        note = {**body, "id": next(self.ids), "ticketID": ticket["id"], "createDateTime": at_time(datetime.now(UTC)),
                "creatorResourceID": 29682885}
        self.notes.append(note)
        ticket["lastActivityDate"] = at_time(datetime.now(UTC))
        return JSONResponse({"itemId": note["id"]})

    def _patch(self, body: Any) -> Response:
        if not isinstance(body, dict) or not isinstance(body.get("id"), int) or set(body) - TICKET_FIELDS:
            return self._violation(f"PATCH /Tickets body {body}")
        ticket = self.tickets.get(body["id"])
        if ticket is None:
            return errors(404, f"Ticket {body['id']} not found")
        values = {int(p["value"]) for p in FIELDS["tickets"]["status"]}
        if "status" in body and body["status"] not in values:
            return errors(500, f"Value {body['status']} is not a valid status")
        ticket.update(body)
        ticket["lastActivityDate"] = at_time(datetime.now(UTC))
        return JSONResponse({"itemId": ticket["id"]})


def _holds(mine: Any, op: str, value: Any) -> bool:
    if op == "exist":
        return mine is not None
    if op == "notExist":
        return mine is None
    if isinstance(mine, str) and isinstance(value, str) and mine[:2].isdigit() and "T" in mine:
        mine_t = datetime.fromisoformat(mine.replace("Z", "+00:00"))
        value_t = datetime.fromisoformat(value.replace("Z", "+00:00"))
        mine, value = mine_t, value_t
    match op:
        case "eq":
            return bool(mine == value)
        case "noteq":
            return bool(mine != value)
        case "gt":
            return mine is not None and bool(mine > value)
        case "gte":
            return mine is not None and bool(mine >= value)
        case "lt":
            return mine is not None and bool(mine < value)
        case "lte":
            return mine is not None and bool(mine <= value)
    return False


@asynccontextmanager
async def run_autotask(**options: Any) -> AsyncIterator[FakeAutotask]:
    fake = FakeAutotask(**options)
    app = Starlette(routes=[Route("/{path:path}", fake.handle, methods=["GET", "POST", "PATCH", "PUT", "DELETE"])])
    async with serve(app) as origin:
        fake.url = origin
        yield fake
