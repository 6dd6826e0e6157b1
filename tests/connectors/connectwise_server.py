"""A local ConnectWise Manage server for the connector tests.

ConnectWise's OpenAPI document is too large to keep here (shared/specs/README.md), so this server
follows the shapes the vendor reference documents (shared/reference/vendor-apis.md section 2):
codebase discovery at ``/login/companyinfo/{company}``; ``/{codebase}apis/3.0`` with Basic
``company+public:private`` and the ``clientId`` header (401 otherwise); tickets with
``conditions`` (``field op value`` joined by ``and``, strings double-quoted, dates in ``[...]``),
``orderBy``, ``page``/``pageSize`` (at most 1,000); ``ServiceNote`` creation (unknown fields,
empty text or no type flag are refused with ConnectWise's error body
``{"code": "InvalidObject", "message", "errors": [{"code", "message", "resource", "field"}]}``);
JSON-Patch status changes checked against the ticket's board statuses; ``/system/callbacks``;
and a signing key behind each callback's ``Metadata.key_url``. A request that does not follow
these shapes is answered 400 and recorded in ``violations``, which the tests assert is empty.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
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

from mspclaw.connectors.connectwise import sign_callback

CODEBASE = "v2025_1/"
NOTE_FIELDS = {"text", "detailDescriptionFlag", "internalAnalysisFlag", "resolutionFlag", "issueFlag",
               "customerUpdatedFlag", "processNotifications", "member", "contact", "internalFlag", "externalFlag"}
CALLBACK_LEVELS = {"Owner", "Board", "Status", "Company", "Ticket"}
BOARD_STATUSES: list[tuple[int, str, bool]] = [
    (1, "New", False), (2, "In Progress", False), (3, "Waiting Customer", False), (4, "Closed (resolved)", False),
    (5, "Closed (cancelled)", True)]
"""(id, name, inactive) of the one board's statuses."""


def cw_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def error(status: int, code: str, message: str, *, field: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        body["errors"] = [{"code": "InvalidField", "message": message, "resource": "ticket", "field": field}]
    return JSONResponse(body, status_code=status)


_CLAUSE = re.compile(r'^\(?\s*([\w/]+)\s*(=|!=|<=|>=|<|>|contains|like)\s*("(?:[^"\\]|\\.)*"|\[[^\]]+\]|-?\d+)\s*\)?$')


@dataclass
class FakeConnectWise(RestFake):
    company: str = "acmemsp"
    public_key: str = "pubKEY123"
    private_key: str = "privKEY456"
    client_id: str = "0b3a7c1e-6a0e-4f5a-9d44-1f1d2c3b4a5e"
    tickets: dict[int, dict[str, Any]] = field(default_factory=dict)
    notes: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    signing_keys: dict[str, str] = field(default_factory=dict)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1001))

    @property
    def api(self) -> str:
        return f"{self.url}/{CODEBASE}apis/3.0"

    # --- what a test sets up and reads -----------------------------------------------------------

    def add_ticket(self, *, summary: str = "Printer offline", company: str = "ACME",
                   email: str | None = "maria@acme.example", description: str | None = "It does not print.",
                   updated: datetime | None = None, status: str = "New", custom: dict[str, str] | None = None) -> int:
        ticket_id = next(self.ids)
        entered = datetime.now(UTC) - timedelta(hours=1)
        status_id = next(s[0] for s in BOARD_STATUSES if s[1] == status)
        self.tickets[ticket_id] = {
            "id": ticket_id, "summary": summary, "recordType": "ServiceTicket",
            "board": {"id": 1, "name": "Help Desk"}, "status": {"id": status_id, "name": status},
            "company": {"id": 250, "identifier": company, "name": f"{company} Inc."},
            "contact": {"id": 77, "name": "Maria Lopez"}, "contactEmailAddress": email,
            "initialDescription": description, "closedFlag": False,
            "customFields": [{"id": 4, "caption": caption, "type": "Text", "entryMethod": "EntryField",
                              "numberOfDecimals": 0, "value": value} for caption, value in (custom or {}).items()],
            "_info": {"dateEntered": cw_time(entered), "lastUpdated": cw_time(updated or entered)},
        }
        self.notes[ticket_id] = []
        return ticket_id

    def callback(self, ticket_id: int, *, action: str = "added", key_url: str | None = None,
                 tamper: bool = False) -> tuple[dict[str, str], bytes]:
        """A callback delivery as ConnectWise posts it, signed with the current key (or tampered)."""
        key_id = next(iter(self.signing_keys), None) or self.rotate_key()
        url = key_url or f"{self.api}/system/callbacks/keys/{key_id}"
        entity = json.dumps({"id": ticket_id, "summary": self.tickets.get(ticket_id, {}).get("summary")})
        body = json.dumps({"MessageId": secrets.token_hex(8), "FromUrl": self.url, "CompanyId": self.company,
                           "MemberId": "api", "Action": action, "Type": "ticket", "ID": ticket_id,
                           "ProductInstanceId": "pi", "PartnerId": "p", "Entity": entity,
                           "Metadata": {"key_url": url}, "CallbackObjectRecId": 0}).encode()
        signature = sign_callback(self.signing_keys[key_id], body)
        if tamper:
            body = body.replace(b'"added"', b'"updated"') if b'"added"' in body else body + b" "
        return {"x-content-signature": signature, "content-type": "application/json"}, body

    def rotate_key(self) -> str:
        self.signing_keys.clear()
        key_id = secrets.token_hex(4)
        self.signing_keys[key_id] = secrets.token_urlsafe(24)
        return key_id

    # --- the API -------------------------------------------------------------------------------

    def _authorised(self, request: Request) -> bool:
        expected = base64.b64encode(f"{self.company}+{self.public_key}:{self.private_key}".encode()).decode()
        return (request.headers.get("authorization") == f"Basic {expected}"
                and request.headers.get("clientid") == self.client_id)

    async def handle(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return self._violation(f"{request.method} {request.url.path}: body is not JSON")
        path = request.url.path
        self.seen.append(Seen(request.method, path, dict(request.query_params), body, dict(request.headers)))
        if path.startswith("/login/companyinfo/"):
            company = path.rsplit("/", 1)[1]
            if company.lower() != self.company.lower():
                return JSONResponse(None)
            return JSONResponse({"CompanyName": "Acme MSP", "Codebase": CODEBASE, "VersionCode": "v2025.1",
                                 "VersionNumber": "v4.6.2025", "CompanyID": self.company, "IsCloud": "True",
                                 "SiteUrl": self.url})
        prefix = f"/{CODEBASE}apis/3.0"
        if not path.startswith(prefix + "/"):
            return error(404, "NotFound", f"no such path {path}")
        if not self._authorised(request):
            return JSONResponse({"code": "Unauthorized", "message": "Authentication failed: check the API member's "
                                 "keys and the clientId header"}, status_code=401)
        fault = self.take_fault(request.method, path)
        if fault is not None and fault.status is not None:
            return self.fault_response(fault)
        answer = self._route(request.method, path[len(prefix):], dict(request.query_params), body)
        if fault is not None and fault.delay:
            await asyncio.sleep(fault.delay)
        return answer

    def _violation(self, what: str) -> JSONResponse:
        self.violations.append(what)
        return error(400, "InvalidObject", what)

    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> Response:
        parts = path.strip("/").split("/")
        match (method, parts):
            case ("GET", ["service", "tickets"]):
                return self._list(query)
            case ("GET", ["service", "tickets", ticket_id]):
                return self._get(ticket_id, query)
            case ("PATCH", ["service", "tickets", ticket_id]):
                return self._patch(ticket_id, body)
            case ("GET", ["service", "tickets", ticket_id, "notes"]):
                ticket = self._ticket(ticket_id)
                if ticket is None:
                    return error(404, "NotFound", f"Ticket recId {ticket_id} not found")
                return self._page(self.notes[ticket["id"]], query)
            case ("POST", ["service", "tickets", ticket_id, "notes"]):
                return self._add_note(ticket_id, body)
            case ("GET", ["service", "boards", board_id, "statuses"]):
                return JSONResponse([{"id": s[0], "name": s[1], "board": {"id": int(board_id)},
                                      "inactive": s[2], "closedStatus": "Closed" in s[1]}
                                     for s in BOARD_STATUSES])
            case ("GET", ["system", "callbacks"]):
                wanted = re.fullmatch(r'url="(.*)"', query.get("conditions", ""))
                found = [c for c in self.callbacks if wanted is None or c["url"] == wanted.group(1)]
                return JSONResponse(found)
            case ("POST", ["system", "callbacks"]):
                return self._add_callback(body)
            case ("GET", ["system", "callbacks", "keys", key_id]):
                key = self.signing_keys.get(key_id)
                return JSONResponse({"signing_key": key}) if key else error(404, "NotFound", "no such key")
        return self._violation(f"{method} {path} is not an endpoint this server knows")

    def _ticket(self, ticket_id: str) -> dict[str, Any] | None:
        return self.tickets.get(int(ticket_id)) if ticket_id.isdigit() else None

    def _page(self, items: list[dict[str, Any]], query: dict[str, str]) -> Response:
        try:
            page, size = int(query.get("page", "1")), int(query.get("pageSize", "25"))
        except ValueError:
            return self._violation("page and pageSize must be integers")
        if not 1 <= size <= 1000 or page < 1:
            return self._violation(f"pageSize {size} is not between 1 and 1000")
        order = query.get("orderBy")
        if order is not None:
            name, _, direction = order.partition(" ")
            if direction not in ("", "asc", "desc"):
                return self._violation(f"orderBy {order!r}")
            items = sorted(items, key=lambda t: t.get(name) or 0, reverse=direction == "desc")
        return JSONResponse(items[(page - 1) * size: page * size])

    def _list(self, query: dict[str, str]) -> Response:
        items = list(self.tickets.values())
        conditions = query.get("conditions")
        if conditions:
            for clause in re.split(r"\s+and\s+", conditions.strip()):
                found = _CLAUSE.match(clause.strip())
                if found is None:
                    return self._violation(f"condition {clause!r} is not `field op value`")
                name, op, value = found.groups()
                try:
                    items = [t for t in items if _holds(t, name, op, value)]
                except ValueError as exc:
                    return self._violation(f"condition {clause!r}: {exc}")
        return self._page(items, query)

    def _get(self, ticket_id: str, query: dict[str, str]) -> Response:
        ticket = self._ticket(ticket_id)
        if ticket is None:
            return error(404, "NotFound", f"Ticket recId {ticket_id} not found")
        if "fields" in query:
            return JSONResponse({k: ticket[k] for k in query["fields"].split(",") if k in ticket})
        return JSONResponse(ticket)

    def _patch(self, ticket_id: str, body: Any) -> Response:
        ticket = self._ticket(ticket_id)
        if ticket is None:
            return error(404, "NotFound", f"Ticket recId {ticket_id} not found")
        if not isinstance(body, list) or not all(isinstance(op, dict) and set(op) == {"op", "path", "value"}
                                                 for op in body):
            return self._violation("PATCH body must be a JSON-Patch array of {op, path, value}")
        for op in body:
            if op["op"] != "replace" or op["path"] != "status" or not isinstance(op["value"], dict):
                return self._violation(f"unsupported patch {op}")
            status = next((s for s in BOARD_STATUSES if s[0] == op["value"].get("id")), None)
            if status is None:
                return error(400, "InvalidObject", "status is not a status of the ticket's board", field="status")
            ticket["status"] = {"id": status[0], "name": status[1]}
            ticket["closedFlag"] = status[1].startswith("Closed")
        ticket["_info"]["lastUpdated"] = cw_time(datetime.now(UTC))
        return JSONResponse(ticket)

    def _add_note(self, ticket_id: str, body: Any) -> Response:
        ticket = self._ticket(ticket_id)
        if ticket is None:
            return error(404, "NotFound", f"Ticket recId {ticket_id} not found")
        if not isinstance(body, dict) or set(body) - NOTE_FIELDS:
            return self._violation(f"ServiceNote has unknown fields {sorted(set(body or {}) - NOTE_FIELDS)}")
        if not str(body.get("text") or "").strip():
            return error(400, "InvalidObject", "text is required", field="text")
        if not any(body.get(f) is True for f in ("detailDescriptionFlag", "internalAnalysisFlag", "resolutionFlag")):
            return self._violation("a note needs detailDescriptionFlag, internalAnalysisFlag or resolutionFlag")
        note = {"id": next(self.ids), "ticketId": ticket["id"], "dateCreated": cw_time(datetime.now(UTC)),
                "createdBy": "api", "member": {"id": 1, "identifier": "api"}, "internalFlag": False,
                "externalFlag": False, **{k: False for k in ("detailDescriptionFlag", "internalAnalysisFlag",
                                                             "resolutionFlag", "issueFlag")}, **body}
        self.notes[ticket["id"]].append(note)
        ticket["_info"]["lastUpdated"] = cw_time(datetime.now(UTC))
        return JSONResponse(note, status_code=201)

    def _add_callback(self, body: Any) -> Response:
        if not isinstance(body, dict) or not all(k in body for k in ("url", "objectId", "type", "level")):
            return self._violation("CallbackEntry needs url, objectId, type and level")
        if body["level"] not in CALLBACK_LEVELS or body["type"] not in ("Ticket", "Company", "Contact"):
            return error(400, "InvalidObject", f"level {body['level']!r} / type {body['type']!r}", field="level")
        entry = {"id": next(self.ids), "inactiveFlag": False, **body}
        self.callbacks.append(entry)
        return JSONResponse(entry, status_code=201)


def _holds(ticket: dict[str, Any], name: str, op: str, value: str) -> bool:
    if name == "lastUpdated":
        if not (value.startswith("[") and value.endswith("]")):
            raise ValueError("dates go in [...]")
        mine = datetime.fromisoformat(ticket["_info"]["lastUpdated"].replace("Z", "+00:00"))
        theirs = datetime.fromisoformat(value[1:-1].replace("Z", "+00:00"))
        return {">": mine > theirs, ">=": mine >= theirs, "<": mine < theirs, "<=": mine <= theirs,
                "=": mine == theirs}.get(op, False)
    if name in ("board/name", "status/name", "company/identifier"):
        if not value.startswith('"'):
            raise ValueError("strings go in double quotes")
        outer, inner = name.split("/")
        return bool((ticket[outer][inner] == value[1:-1]) == (op == "="))
    raise ValueError(f"this server does not filter on {name}")


@asynccontextmanager
async def run_connectwise() -> AsyncIterator[FakeConnectWise]:
    fake = FakeConnectWise()
    app = Starlette(routes=[Route("/{path:path}", fake.handle, methods=["GET", "POST", "PATCH", "PUT", "DELETE"])])
    async with serve(app) as origin:
        fake.url = origin
        yield fake
