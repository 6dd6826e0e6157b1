"""A local SuperOps GraphQL server for the connector tests.

It serves ``POST /msp`` on loopback under uvicorn and executes every request with graphql-core
against ``superops.graphql``, the schema subset of the vendor reference (section 1.9 of
shared/reference/vendor-apis.md, hand-derived from SuperOps' published API reference). A request
the schema rejects (unknown field, wrong argument, bad variable) gets a GraphQL validation error
and is recorded in :attr:`FakeSuperOps.schema_errors`, which the test fixture asserts is empty.

As SuperOps does, it answers HTTP 401 for a wrong bearer token, HTTP 400 for a wrong
``CustomerSubDomain``, and everything else with HTTP 200, errors as GraphQL ``errors`` carrying
``extensions.clientError[].code``. Resolvers keep tickets, notes, conversations and statuses in
memory. :meth:`FakeSuperOps.fail` injects faults: an HTTP status (429 with ``Retry-After``, 503),
a GraphQL error code in a 200, or a delay after executing (the answer arrives after the client's
timeout, but the write happened).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from inspect import isawaitable
from pathlib import Path
from typing import Any

import uvicorn
from graphql import GraphQLError, OperationDefinitionNode, build_schema, execute, parse, validate
from graphql.language import FieldNode
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

SCHEMA = build_schema(Path(__file__).with_name("superops.graphql").read_text(encoding="utf-8"))
DEFAULT_STATUSES = ("New", "Open", "In Progress", "On Hold", "Waiting on Customer", "Resolved", "Closed")


def stamp(moment: datetime) -> str:
    """SuperOps' time format: UTC, ISO-8601 to the second, no zone."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def client_error(code: str, message: str, **param: Any) -> GraphQLError:
    return GraphQLError(message, extensions={"clientError": [{"code": code, "param": param}]})


@dataclass
class Fault:
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    code: str | None = None
    delay: float = 0.0
    times: int = 1


@dataclass
class Received:
    fields: list[str]
    variables: dict[str, Any]


class Resolvers:
    """The root value: one method per Query/Mutation field of the schema subset."""

    def __init__(self, server: FakeSuperOps) -> None:
        self.s = server

    def _ticket(self, ident: dict[str, Any]) -> dict[str, Any]:
        ticket = self.s.tickets.get(str(ident["ticketId"]))
        if ticket is None:
            raise client_error("entity_does_not_exist", "Ticket does not exist", field="ticketId")
        return ticket

    # queries

    def getTicket(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        return self._ticket(input)

    def getTicketList(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        page, size = input.get("page") or 1, input.get("pageSize") or 10
        if size > 100 or size < 1 or page < 1:
            raise client_error("value_length_exceeds_limit", "pageSize must be between 1 and 100", field="pageSize")
        items = [t for t in self.s.tickets.values() if self._matches(t, input.get("condition"))]
        for rule in reversed(input.get("sort") or []):
            if rule.get("order") not in ("ASC", "DESC"):
                raise client_error("type_validation_failed", "sort order must be ASC or DESC", field="order")
            attribute: str = rule["attribute"]
            items.sort(key=lambda t: str(t.get(attribute) or ""), reverse=rule["order"] == "DESC")
        start = (page - 1) * size
        return {"tickets": items[start:start + size],
                "listInfo": {"page": page, "pageSize": size, "hasMore": start + size < len(items),
                             "totalCount": len(items), "sort": input.get("sort"), "condition": input.get("condition")}}

    def _matches(self, ticket: dict[str, Any], condition: dict[str, Any] | None) -> bool:
        if not condition:
            return True
        attribute, operator, value = condition.get("attribute"), condition.get("operator"), condition.get("value")
        if attribute in ("updatedTime", "createdTime") and operator in ("after", "before"):
            mine, theirs = datetime.fromisoformat(ticket[attribute]), datetime.fromisoformat(str(value))
            return mine > theirs if operator == "after" else mine < theirs
        if attribute == "status" and operator == "is":
            return bool(ticket["status"] == value)
        raise client_error("type_validation_failed", f"unsupported condition {attribute} {operator}", field="condition")

    def getTicketNoteList(self, info: Any, input: dict[str, Any]) -> list[dict[str, Any]]:
        self._ticket(input)
        return self.s.notes.get(str(input["ticketId"]), [])

    def getTicketConversationList(self, info: Any, input: dict[str, Any]) -> list[dict[str, Any]]:
        self._ticket(input)
        return self.s.conversations.get(str(input["ticketId"]), [])

    def getStatusList(self, info: Any) -> list[dict[str, Any]]:
        return [{"id": str(i), "name": name, "description": None} for i, name in enumerate(self.s.statuses, 1)]

    # mutations

    def createTicketNote(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        ticket = self._ticket(input["ticket"])
        if not input["content"].strip():
            raise client_error("mandatory_validation_failed", "content is mandatory", field="content")
        note = {"noteId": str(next(self.s.ids)), "addedBy": {"userId": "1", "name": "API"},
                "addedOn": self.s.now(), "content": input["content"], "attachments": [],
                "privacyType": input.get("privacyType") or "PRIVATE"}
        self.s.notes.setdefault(ticket["ticketId"], []).append(note)
        ticket["updatedTime"] = self.s.now()
        return note

    def createTicketConversation(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        ticket = self._ticket(input["ticket"])
        reply: dict[str, Any] = {"conversationId": str(next(self.s.ids)), "content": input.get("content"),
                                 "time": self.s.now(),
                 "user": {"userId": "1", "name": "API"}, "attachments": [], "type": "TECH_REPLY",
                 "sendMail": input.get("sendMail")}
        self.s.conversations.setdefault(ticket["ticketId"], []).append(reply)
        ticket["updatedTime"] = self.s.now()
        return reply

    def updateTicket(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        ticket = self._ticket(input)
        status = input.get("status")
        if status is not None:
            if status not in self.s.statuses:
                raise client_error("referred_value_does_not_exist", f"status {status!r} does not exist",
                                   field="status")
            ticket["status"] = status
        ticket["updatedTime"] = self.s.now()
        return ticket


@dataclass
class FakeSuperOps:
    token: str
    subdomain: str
    url: str = ""
    tickets: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    conversations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    statuses: list[str] = field(default_factory=lambda: list(DEFAULT_STATUSES))
    received: list[Received] = field(default_factory=list)
    schema_errors: list[str] = field(default_factory=list)
    faults: list[tuple[str, Fault]] = field(default_factory=list)
    on_request: Callable[[], None] | None = None
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(7928838372746100001))
    http_requests: int = 0

    def now(self) -> str:
        return stamp(datetime.now(UTC))

    # --- what a test sets up and reads -----------------------------------------------------------

    def add_ticket(self, *, subject: str = "Printer offline", account_id: str = "7928838372746166998",
                   requester: dict[str, Any] | None = None, description: str | None = "It does not print.",
                   status: str = "New", updated: datetime | None = None, created: datetime | None = None,
                   custom_fields: dict[str, Any] | None = None, ticket_id: str | None = None) -> str:
        ticket_id = ticket_id or str(next(self.ids))
        created = created or datetime.now(UTC) - timedelta(hours=1)
        self.tickets[ticket_id] = {
            "ticketId": ticket_id, "displayId": f"D-{len(self.tickets) + 1:04d}", "subject": subject,
            "ticketType": "INCIDENT", "source": "EMAIL", "status": status,
            "client": {"accountId": account_id, "name": "Acme Management Pvt. Ltd."},
            "site": {"id": "1", "name": "Austin"},
            "requester": requester or {"userId": "5928838372746169876", "name": "John Williams"},
            "createdTime": stamp(created), "updatedTime": stamp(updated or created),
            "customFields": custom_fields or {},
        }
        if description is not None:
            self.conversations[ticket_id] = [{
                "conversationId": str(next(self.ids)), "content": description, "time": stamp(created),
                "user": self.tickets[ticket_id]["requester"], "attachments": [], "type": "DESCRIPTION"}]
        return ticket_id

    def fail(self, field_name: str, *, status: int | None = None, headers: dict[str, str] | None = None,
             code: str | None = None, delay: float = 0.0, times: int = 1) -> None:
        """The next ``times`` requests whose root field is ``field_name`` ("*" for any) meet this fault."""
        self.faults.append((field_name, Fault(status, dict(headers or {}), code, delay, times)))

    def calls(self, field_name: str) -> list[Received]:
        return [r for r in self.received if field_name in r.fields]

    # --- the endpoint ---------------------------------------------------------------------------

    def _take_fault(self, fields: list[str]) -> Fault | None:
        for i, (name, fault) in enumerate(self.faults):
            if name == "*" or name in fields:
                fault.times -= 1
                if fault.times <= 0:
                    del self.faults[i]
                return fault
        return None

    def _schema_error(self, errors: list[GraphQLError]) -> JSONResponse:
        self.schema_errors += [e.message for e in errors]
        return JSONResponse({"errors": [e.formatted for e in errors]})

    async def handle(self, request: Request) -> Response:
        self.http_requests += 1
        if self.on_request is not None:
            self.on_request()
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse({"message": "The API token used is invalid or deleted"}, status_code=401)
        if request.headers.get("customersubdomain") != self.subdomain:
            return JSONResponse({"message": "Invalid CustomerSubDomain"}, status_code=400)
        if not request.headers.get("content-type", "").startswith("application/json"):
            return JSONResponse({"message": "Content-Type must be application/json"}, status_code=400)
        try:
            body = json.loads(await request.body())
            document = parse(body["query"])
        except GraphQLError as exc:
            return self._schema_error([exc])
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"message": "the body is not a GraphQL request"}, status_code=400)
        errors = validate(SCHEMA, document)
        if errors:
            return self._schema_error(errors)
        variables = body.get("variables") or {}
        fields = [sel.name.value for op in document.definitions if isinstance(op, OperationDefinitionNode)
                  for sel in op.selection_set.selections if isinstance(sel, FieldNode)]
        self.received.append(Received(fields, variables))
        fault = self._take_fault(fields)
        if fault is not None and fault.status is not None:
            return JSONResponse({"message": f"injected {fault.status}"}, status_code=fault.status,
                                headers=fault.headers)
        if fault is not None and fault.code is not None:
            error = client_error(fault.code, f"injected {fault.code}")
            return JSONResponse({"data": None, "errors": [error.formatted]})
        result = execute(SCHEMA, document, root_value=Resolvers(self), variable_values=variables,
                         operation_name=body.get("operationName"))
        if isawaitable(result):
            result = await result
        unexpected = [e for e in result.errors or [] if not (e.extensions or {}).get("clientError")]
        if unexpected:
            self.schema_errors += [e.message for e in unexpected]
        if fault is not None and fault.delay:
            await asyncio.sleep(fault.delay)
        return JSONResponse(result.formatted)


@contextlib.asynccontextmanager
async def run_superops(*, token: str, subdomain: str) -> AsyncIterator[FakeSuperOps]:
    """Serve a fresh :class:`FakeSuperOps` on a loopback port until the block ends."""
    fake = FakeSuperOps(token=token, subdomain=subdomain)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    fake.url = f"http://127.0.0.1:{sock.getsockname()[1]}/msp"
    app = Starlette(routes=[Route("/msp", fake.handle, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False,
                                           timeout_graceful_shutdown=2))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        assert not task.done(), "the SuperOps test server did not start"
        await asyncio.sleep(0.01)
    try:
        yield fake
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()
