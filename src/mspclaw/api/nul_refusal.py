"""A NUL character in a request's address or in a JSON body's text is refused before any route runs.

PostgreSQL stores no NUL in text, so an id, a filter or a field holding one (``/tickets/a%00b``,
``{"name": "a\\u0000b"}``) would fail deep in a query as a server error; no id, name, filter or field of MSPclaw
holds one. :class:`RefuseNul` is a pure ASGI middleware that answers 422 (the request does not match the API's
document, as a validation error) with what is wrong and what to do. It sits
inside :class:`~mspclaw.api.body_limit.BodyLimit`, so the JSON body it reads is already bounded; a body is parsed
only when its bytes hold the escape ``\\u0000`` at all. The console's forms are checked as they are read
(:func:`mspclaw.console.http.read_form`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _answer(message: str) -> list[Message]:
    body = json.dumps({"detail": {"code": "invalid_request", "message": message}}).encode()
    return [{"type": "http.response.start", "status": 422,
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                         (b"cache-control", b"no-store")]},
            {"type": "http.response.body", "body": body}]


IN_ADDRESS = ("the address holds a NUL character (%00), which no id, name or filter of MSPclaw holds; remove it and "
              "send the request again")
IN_BODY = ("a text in the JSON body holds a NUL character (\\u0000), which MSPclaw does not store; remove it and "
           "send the request again")


def address_holds_nul(scope: Scope) -> bool:
    """Whether the request's decoded path or its query string (raw or percent-encoded) holds a NUL."""
    query: bytes = scope.get("query_string", b"")
    return "\x00" in scope.get("path", "") or b"\x00" in query or b"%00" in query


def json_holds_nul(body: bytes) -> bool:
    """Whether a key or a string of the JSON document ``body`` holds a NUL (``False`` for a body that is not JSON:
    the route says what is wrong with it)."""
    if b"\\u0000" not in body:
        return False
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return False
    todo: list[Any] = [doc]
    while todo:
        item = todo.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            todo.extend(item.keys())
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
    return False


def _is_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return b"json" in value.lower()
    return False


class RefuseNul:
    """Answer 422 to a request whose address, or whose JSON body's text, holds a NUL. ``exempt``: path prefixes
    whose bodies are left to their route (a PSA's webhook, verified over its exact bytes)."""

    def __init__(self, app: ASGIApp, *, exempt: Sequence[str] = ()) -> None:
        self.app, self.exempt = app, tuple(exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if address_holds_nul(scope):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008, "reason": "NUL in the address"})
                return
            for message in _answer(IN_ADDRESS):
                await send(message)
            return
        if scope["type"] != "http" or not _is_json(scope) or scope["path"].startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        read: list[Message] = []
        body = bytearray()
        while True:  # bounded: BodyLimit, outside, hands over no more than the route's limit
            message = await receive()
            read.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        if json_holds_nul(bytes(body)):
            for message in _answer(IN_BODY):
                await send(message)
            return

        async def replay() -> Message:
            return read.pop(0) if read else await receive()

        await self.app(scope, replay, send)
