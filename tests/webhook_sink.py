"""A local HTTP server standing in for Slack incoming webhooks and Teams Workflows webhooks.

It answers the way the real ones do (Slack ``200 ok``; Teams ``202``) and records each POST;
``script`` makes it answer the next requests with given statuses (500, 429 with Retry-After,
400 ``invalid_payload``) to exercise retries. It also checks payloads against the published
shapes of Block Kit and Adaptive Cards (:func:`check_block_kit`, :func:`check_adaptive_card`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from tests.conftest import listening_socket


@dataclass
class Sink:
    url: str
    received: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    script: dict[str, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)

    def hook(self, name: str) -> str:
        return f"{self.url}/hooks/{name}"

    async def wait_for(self, name: str, count: int = 1, seconds: float = 10.0) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        while loop.time() < until:
            if len(self.received.get(name, [])) >= count:
                return self.received[name]
            await asyncio.sleep(0.02)
        raise AssertionError(f"{name}: {len(self.received.get(name, []))} messages, wanted {count}")


@contextlib.asynccontextmanager
async def webhook_sink() -> AsyncIterator[Sink]:
    sock = listening_socket()
    sink = Sink(f"http://127.0.0.1:{sock.getsockname()[1]}")

    async def hook(request: Request) -> Response:
        name = request.path_params["name"]
        sink.attempts[name] = sink.attempts.get(name, 0) + 1
        scripted = sink.script.get(name)
        if scripted:
            status, headers = scripted.pop(0)
            return PlainTextResponse("invalid_payload" if status == 400 else "error", status_code=status,
                                     headers=headers)
        body = json.loads(await request.body())
        sink.received.setdefault(name, []).append(body)
        if name.startswith("teams"):
            return Response(status_code=202)
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/hooks/{name}", hook, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        assert not task.done(), "webhook sink failed to start"
        await asyncio.sleep(0.01)
    try:
        yield sink
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


# -- payload shapes ----------------------------------------------------------------------------------
BLOCK_TYPES = {"header", "section", "divider", "actions", "context", "image"}


def check_block_kit(payload: dict[str, Any]) -> None:
    """Slack's documented limits for an incoming webhook message with blocks."""
    assert isinstance(payload.get("text"), str) and payload["text"], "a fallback 'text' is required with blocks"
    blocks = payload["blocks"]
    assert isinstance(blocks, list) and 1 <= len(blocks) <= 50
    for block in blocks:
        assert block["type"] in BLOCK_TYPES, block
        if block["type"] == "header":
            assert block["text"]["type"] == "plain_text" and len(block["text"]["text"]) <= 150
        if block["type"] == "section":
            assert "text" in block or "fields" in block
            if "text" in block:
                assert block["text"]["type"] in ("mrkdwn", "plain_text") and 1 <= len(block["text"]["text"]) <= 3000
            for f in block.get("fields", []):
                assert f["type"] in ("mrkdwn", "plain_text") and len(f["text"]) <= 2000
            assert len(block.get("fields", [])) <= 10
        if block["type"] == "actions":
            assert 1 <= len(block["elements"]) <= 25
            for el in block["elements"]:
                assert el["type"] == "button" and el["text"]["type"] == "plain_text" and len(el["text"]["text"]) <= 75
                assert el["url"].startswith(("http://", "https://")) and len(el["url"]) <= 3000


CARD_ELEMENTS = {"TextBlock", "FactSet", "ColumnSet", "Container", "Image"}


def check_adaptive_card(payload: dict[str, Any]) -> dict[str, Any]:
    """The message shape a Teams Workflows webhook takes: one Adaptive Card attachment."""
    assert payload["type"] == "message"
    (attachment,) = payload["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card: dict[str, Any] = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    assert card["version"] in ("1.2", "1.3", "1.4", "1.5")
    for element in card["body"]:
        assert element["type"] in CARD_ELEMENTS, element
        if element["type"] == "TextBlock":
            assert isinstance(element["text"], str) and element["text"]
        if element["type"] == "FactSet":
            assert all(set(f) == {"title", "value"} for f in element["facts"])
    for action in card.get("actions", []):
        assert action["type"] == "Action.OpenUrl" and action["url"].startswith(("http://", "https://"))
    for entity in card.get("msteams", {}).get("entities", []):
        assert entity["type"] == "mention" and entity["text"].startswith("<at>")
        assert entity["text"] in json.dumps(card["body"]), "a mention's text must appear in the card"
        assert entity["mentioned"]["id"] and entity["mentioned"]["name"]
    return card
