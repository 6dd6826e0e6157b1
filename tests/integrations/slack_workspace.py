"""A local stand-in for a Slack workspace with the MSPclaw app installed.

It plays both of Slack's parts on loopback:

* the **incoming webhook** MSPclaw posts its messages to (``/hooks/{name}``, answered ``200 ok``),
  and the **response_url** MSPclaw updates a message through (``/actions/{name}``, ``200 ok``);
* the **interactivity client**: :meth:`SlackWorkspace.click` sends a button click to MSPclaw's
  Request URL exactly as Slack documents it ("Handling user interaction", "Verifying requests from
  Slack"): ``POST`` with ``Content-Type: application/x-www-form-urlencoded``, one field ``payload``
  holding the ``block_actions`` JSON (with the whole message the button was on), the header
  ``X-Slack-Request-Timestamp`` (Unix seconds) and ``X-Slack-Signature: v0=<hex>``, the HMAC-SHA256
  of ``v0:{timestamp}:{raw body}`` keyed with the app's signing secret.

The signature is computed here from Slack's description, not with MSPclaw's own code, so a
mistake in the server's verification cannot cancel out in the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from tests.connectors.rest_server import serve

INTERACTIONS_PATH = "/integrations/slack/interactions"


def slack_signature(secret: str, timestamp: str, body: bytes) -> str:
    """As Slack documents it: ``v0=`` + hex HMAC-SHA256 of ``v0:<timestamp>:<body>`` with the signing secret."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


@dataclass
class SlackWorkspace:
    url: str
    secret: str
    messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """What MSPclaw posted to each incoming webhook."""
    responses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """What MSPclaw posted to each response_url."""

    def hook(self, name: str) -> str:
        return f"{self.url}/hooks/{name}"

    def response_url(self, name: str) -> str:
        return f"{self.url}/actions/{name}"

    async def wait(self, box: dict[str, list[dict[str, Any]]], name: str, count: int = 1,
                   seconds: float = 10.0) -> list[dict[str, Any]]:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            if len(box.get(name, [])) >= count:
                return box[name]
            await asyncio.sleep(0.02)
        raise AssertionError(f"{name}: {len(box.get(name, []))} posts, wanted {count}")

    def block_actions(self, user_id: str, message: dict[str, Any], action_id: str, *, value: str | None = None,
                      response: str = "r1") -> dict[str, Any]:
        """The ``block_actions`` payload Slack sends when ``user_id`` clicks the button ``action_id`` of ``message``
        (a button without an action_id, named by its label, gets a random one, as Slack gives it)."""
        button = buttons(message)[action_id]
        action: dict[str, Any] = {"type": "button", "block_id": "b" + secrets.token_hex(3),
                                  "action_id": button.get("action_id") or secrets.token_hex(2),
                                  "text": button["text"],
                                  "action_ts": f"{time.time():.6f}"}
        if value is not None or "value" in button:
            action["value"] = value if value is not None else button["value"]
        return {
            "type": "block_actions",
            "user": {"id": user_id, "username": user_id.lower(), "name": user_id.lower(), "team_id": "T0MSP"},
            "api_app_id": "A0MSPCLAW", "token": "legacyverificationtoken",
            "container": {"type": "message", "message_ts": "1765000000.000100", "channel_id": "C0ACME",
                          "is_ephemeral": False},
            "trigger_id": "1234.5678.abcdef", "team": {"id": "T0MSP", "domain": "msp-example"},
            "enterprise": None, "is_enterprise_install": False,
            "channel": {"id": "C0ACME", "name": "acme-approvals"},
            "message": {"type": "message", "subtype": "bot_message", "text": message["text"],
                        "ts": "1765000000.000100", "bot_id": "B0MSPCLAW", "blocks": message["blocks"]},
            "state": {"values": {}}, "response_url": self.response_url(response), "actions": [action],
        }

    async def post(self, server: str, payload: dict[str, Any] | None = None, *, body: bytes | None = None,
                   secret: str | None = None, timestamp: int | None = None,
                   signature: str | None = None) -> httpx.Response:
        """POST an interaction to MSPclaw, form-encoded and signed as Slack does (``secret``, ``timestamp`` and
        ``signature`` override the honest values, to forge)."""
        raw = body if body is not None else urlencode({"payload": json.dumps(payload)}).encode()
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": stamp,
                   "X-Slack-Signature": signature or slack_signature(secret or self.secret, stamp, raw),
                   "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)"}
        async with httpx.AsyncClient(base_url=server, timeout=10) as http:
            return await http.post(INTERACTIONS_PATH, content=raw, headers=headers)

    async def click(self, server: str, user_id: str, message: dict[str, Any], action_id: str, *,
                    response: str = "r1", value: str | None = None) -> httpx.Response:
        return await self.post(server, self.block_actions(user_id, message, action_id, value=value,
                                                          response=response))


@contextlib.asynccontextmanager
async def slack_workspace(secret: str | None = None) -> AsyncIterator[SlackWorkspace]:
    """The stand-in served on a free loopback port (``tests.connectors.rest_server.serve``) until the block ends."""
    messages: dict[str, list[dict[str, Any]]] = {}
    responses: dict[str, list[dict[str, Any]]] = {}

    async def hook(request: Request) -> Response:
        messages.setdefault(request.path_params["name"], []).append(json.loads(await request.body()))
        return PlainTextResponse("ok")

    async def action(request: Request) -> Response:
        responses.setdefault(request.path_params["name"], []).append(json.loads(await request.body()))
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/hooks/{name}", hook, methods=["POST"]),
                            Route("/actions/{name}", action, methods=["POST"])])
    async with serve(app) as origin:
        yield SlackWorkspace(origin, secret or "8f742231b10e8888abcd99yyyzzz85a5", messages, responses)


# -- what a message must look like ----------------------------------------------------------------------
BLOCK_TYPES = {"header", "section", "divider", "actions", "context"}


def check_interactive_block_kit(payload: dict[str, Any]) -> None:
    """Slack's documented limits for a Block Kit message whose buttons are link buttons or interactive ones."""
    assert isinstance(payload.get("text"), str) and payload["text"], "a fallback 'text' is required with blocks"
    blocks = payload["blocks"]
    assert isinstance(blocks, list) and 1 <= len(blocks) <= 50
    action_ids: list[str] = []
    for block in blocks:
        assert block["type"] in BLOCK_TYPES, block
        if block["type"] == "header":
            assert block["text"]["type"] == "plain_text" and len(block["text"]["text"]) <= 150
        if block["type"] == "section":
            assert "text" in block or "fields" in block
            if "text" in block:
                assert block["text"]["type"] in ("mrkdwn", "plain_text") and 1 <= len(block["text"]["text"]) <= 3000
            assert len(block.get("fields", [])) <= 10
            assert all(len(f["text"]) <= 2000 for f in block.get("fields", []))
        if block["type"] == "actions":
            assert 1 <= len(block["elements"]) <= 25
            for el in block["elements"]:
                assert el["type"] == "button" and el["text"]["type"] == "plain_text"
                assert 1 <= len(el["text"]["text"]) <= 75
                assert "url" in el or "value" in el, "a button either opens a URL or carries a value"
                if "url" in el:
                    assert el["url"].startswith(("http://", "https://")) and len(el["url"]) <= 3000
                if "value" in el:
                    assert 1 <= len(el["value"]) <= 2000
                if "action_id" in el:
                    assert len(el["action_id"]) <= 255
                    action_ids.append(el["action_id"])
                assert el.get("style") in (None, "primary", "danger")
                if "confirm" in el:
                    c = el["confirm"]
                    assert len(c["title"]["text"]) <= 100 and len(c["text"]["text"]) <= 300
                    assert len(c["confirm"]["text"]) <= 30 and len(c["deny"]["text"]) <= 30
    assert len(action_ids) == len(set(action_ids)), "action_id must be unique within a message"


def text_of(payload: dict[str, Any]) -> str:
    """Every piece of text in a Block Kit message, one string, ``&lt;``/``&gt;``/``&amp;`` read as Slack shows them."""
    parts = [payload.get("text", "")]
    for block in payload.get("blocks", []):
        if "text" in block:
            parts.append(block["text"]["text"])
        parts += [f["text"] for f in block.get("fields", [])]
    return "\n".join(parts).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def buttons(payload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The message's buttons by action_id (link buttons without one by their label)."""
    found: dict[str, dict[str, Any]] = {}
    for block in payload.get("blocks", []):
        if block["type"] == "actions":
            for el in block["elements"]:
                found[el.get("action_id") or el["text"]["text"]] = el
    return found
