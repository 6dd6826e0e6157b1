"""Request bodies are limited while they are read, before any route or authentication runs.

:class:`BodyLimit` is a pure ASGI middleware. A ``Content-Length`` over the limit is answered
413 before a byte of the body is read; a body without one (chunked) is counted as it arrives,
and the request is answered 413 as soon as it crosses the limit. The route then sees the client
disconnect, and whatever it would still send is dropped. The server never holds more than the
limit plus one chunk of a request body.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
"""Every route: a ticket at its field limits is at most about 600 KB of JSON."""


def _too_large(size: int | None, limit: int) -> list[Message]:
    what = f"a request body of {size:,} bytes" if size is not None else "this request body"
    body = json.dumps({"detail": {"code": "body_too_large", "message": (
        f"{what} is over this route's {limit:,}-byte limit; send a smaller body "
        "(ticket text is limited per field, see the API description)")}}).encode()
    return [{"type": "http.response.start", "status": 413,
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                         (b"connection", b"close")]},
            {"type": "http.response.body", "body": body}]


class BodyLimit:
    """Answer 413 to any HTTP request whose body is over its route's limit, without reading past it.

    ``limits`` are ``(path prefix, bytes)`` pairs for routes that need another limit than
    ``default``; the first prefix that matches the request's path wins.
    """

    def __init__(self, app: ASGIApp, *, default: int = DEFAULT_MAX_BODY_BYTES,
                 limits: Sequence[tuple[str, int]] = ()) -> None:
        self.app, self.default, self.limits = app, default, tuple(limits)

    def limit_for(self, path: str) -> int:
        return next((limit for prefix, limit in self.limits if path.startswith(prefix)), self.default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            for message in _too_large(declared, limit):
                await send(message)
            return
        received = 0
        answered = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, answered
            if answered:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    answered = True
                    if not started:
                        for reply in _too_large(None, limit):
                            await send(reply)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if answered:
                return  # the 413 is the answer; the route's own reply to the "disconnect" goes nowhere
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not answered:
                raise
            # The route failed on the disconnect it was handed after the 413: nothing more to say.


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
