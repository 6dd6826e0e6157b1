"""Slack: incoming webhooks with a Block Kit message, and the interactions its buttons send back.

An incoming webhook takes ``{"text": fallback, "blocks": [...]}`` and answers ``200 ok``; a
bad payload is ``400 invalid_payload``, a removed hook ``403``/``404``, too many messages ``429``
with ``Retry-After``. Limits honoured here: a header's plain text at most 150 characters, a
section's text at most 3,000, at most 10 fields of 2,000 each, at most 50 blocks, a button's
text at most 75 characters and its ``value`` at most 2,000.

An approval request carries Approve and Deny buttons (when the Slack app's signing secret is
configured, :class:`SlackSender` ``buttons=True``); their ``value`` is the approval's opaque
reference. A click reaches ``POST /integrations/slack/interactions`` as Slack documents it
("Verifying requests from Slack", "Handling user interaction"):

* the body is ``application/x-www-form-urlencoded`` with one field ``payload``, a JSON
  ``block_actions`` object (the clicking ``user.id``, the ``actions`` with ``action_id`` and
  ``value``, a ``response_url``);
* ``X-Slack-Request-Timestamp`` is the Unix time of sending and ``X-Slack-Signature`` is
  ``v0=`` + hex HMAC-SHA256 of ``v0:{timestamp}:{raw body}`` keyed with the signing secret
  (:func:`verify_request`: constant-time compare, five-minute window either way);
* the app acknowledges with HTTP 200 within three seconds and updates the message by POSTing
  ``{"replace_original": true, ...}`` to ``response_url`` (:func:`replacement`), or tells only the
  clicking user with ``{"response_type": "ephemeral", "replace_original": false, ...}``
  (:func:`ephemeral`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any
from urllib.parse import parse_qs

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mspclaw.connectors.notify.message import Message, clip, post_json
from mspclaw.errors import AuthError, MalformedWebhook

APPROVE_ACTION = "mspclaw_approve"
DENY_ACTION = "mspclaw_deny"
DECISION_ACTIONS = (APPROVE_ACTION, DENY_ACTION)
SIGNATURE_VERSION = "v0"
MAX_CLOCK_SKEW_S = 300
"""Slack's advice: refuse a request whose timestamp is more than five minutes from now (replays)."""
MAX_INTERACTION_BYTES = 256 * 1024
"""A ``block_actions`` body carries the whole message it came from; ours are at most ~60 KB of JSON, URL-encoded."""


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _plain(text: str, limit: int) -> dict[str, object]:
    return {"type": "plain_text", "text": clip(text, limit), "emoji": False}


class SlackSender:
    kind = "slack"

    def __init__(self, *, buttons: bool = False) -> None:
        self.buttons = buttons
        """Whether a message's ``decision`` becomes Approve and Deny buttons (only when clicks can be verified)."""

    def render(self, message: Message) -> dict[str, object]:
        summary = _escape(message.summary)
        if message.mention is not None and message.mention.slack_id:
            summary = f"<@{message.mention.slack_id}> {summary}"
        elif message.mention is not None:
            summary = f"{_escape(message.mention.name)}: {summary}"
        blocks: list[dict[str, object]] = [
            {"type": "header", "text": {"type": "plain_text", "text": clip(message.title, 150), "emoji": False}},
            {"type": "section", "text": {"type": "mrkdwn", "text": clip(summary, 3000)}},
        ]
        if message.facts:
            fields = [{"type": "mrkdwn", "text": clip(f"*{_escape(k)}*\n{_escape(v)}", 2000)}
                      for k, v in message.facts[:10]]
            blocks.append({"type": "section", "fields": fields})
        for heading, lines in message.sections:
            if len(blocks) >= 46:
                break
            body = "\n".join(f"• {_escape(line)}" for line in lines) or "_none_"
            blocks.append({"type": "divider"})
            blocks.append({"type": "section", "text": {"type": "mrkdwn",
                                                       "text": clip(f"*{_escape(heading)}*\n{body}", 3000)}})
        if message.outcome is not None:
            blocks.append({"type": "divider"})
            blocks.append({"type": "section", "text": {"type": "mrkdwn",
                                                       "text": clip(f"*{_escape(message.outcome)}*", 3000)}})
        elements: list[dict[str, object]] = []
        if self.buttons and message.decision is not None:
            elements += [
                {"type": "button", "action_id": APPROVE_ACTION, "text": _plain("Approve", 75), "style": "primary",
                 "value": message.decision,
                 "confirm": {"title": _plain("Approve this step?", 100),
                             "text": _plain(clip(message.title, 280), 300),
                             "confirm": _plain("Approve", 30), "deny": _plain("Cancel", 30)}},
                {"type": "button", "action_id": DENY_ACTION, "text": _plain("Deny", 75), "style": "danger",
                 "value": message.decision},
            ]
        if message.link is not None:
            label, url = message.link
            link: dict[str, object] = {"type": "button", "text": {"type": "plain_text", "text": clip(label, 75)},
                                       "url": url}
            if not elements:
                link["style"] = "primary"
            elements.append(link)
        if elements:
            blocks.append({"type": "actions", "elements": elements})
        return {"text": clip(f"{message.title}: {message.summary}", 3000), "blocks": blocks}

    async def post(self, http: httpx.AsyncClient, url: str, payload: dict[str, object]) -> None:
        await post_json(http, url, payload, ok={200}, channel="slack")


# -- interactions ------------------------------------------------------------------------------------
def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``v0=<hex>``: HMAC-SHA256 of ``v0:{timestamp}:{body}`` keyed with the signing secret."""
    base = f"{SIGNATURE_VERSION}:{timestamp}:".encode() + body
    return f"{SIGNATURE_VERSION}=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def verify_request(secret: str, *, timestamp: str | None, signed: str | None, body: bytes, now: float) -> None:
    """:class:`AuthError` unless Slack signed ``body`` with ``secret`` within five minutes of ``now``."""
    if not timestamp or not signed:
        raise AuthError("missing X-Slack-Request-Timestamp or X-Slack-Signature header")
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        raise AuthError("X-Slack-Request-Timestamp is not a Unix time")
    if abs(now - int(timestamp)) > MAX_CLOCK_SKEW_S:
        raise AuthError("the Slack request's timestamp is more than five minutes from the server's clock "
                        "(a replay, or a clock to set right)")
    if not hmac.compare_digest(signature(secret, timestamp, body).encode(), signed.strip().encode()):
        raise AuthError("the Slack signature does not match: the request is not from the Slack app whose "
                        "signing secret is configured")


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class SlackUser(_Model):
    id: str = Field(min_length=1, max_length=64)
    name: str = Field("", max_length=255)
    username: str = Field("", max_length=255)


class SlackAction(_Model):
    action_id: str = Field("", max_length=255)
    value: str | None = Field(None, max_length=2000)
    type: str = Field("", max_length=64)


class SlackInteraction(_Model):
    """The part of a ``block_actions`` payload MSPclaw reads."""

    type: str = Field(max_length=64)
    user: SlackUser
    actions: list[SlackAction] = Field(default_factory=list, max_length=25)
    response_url: str | None = Field(None, max_length=2000)

    def decision(self) -> tuple[bool, str] | None:
        """``(approve, reference)`` of the Approve or Deny button clicked; ``None`` for any other action
        (the button that only opens MSPclaw sends one too)."""
        if self.type != "block_actions":
            return None
        for action in self.actions:
            if action.action_id in DECISION_ACTIONS and action.value:
                return action.action_id == APPROVE_ACTION, action.value
        return None


def parse_interaction(body: bytes) -> SlackInteraction:
    """The ``payload`` field of a form-encoded interaction; :class:`MalformedWebhook` if it is not one."""
    try:
        fields = parse_qs(body.decode("utf-8"), strict_parsing=True, max_num_fields=20)
        (raw,) = fields["payload"]
        data: Any = json.loads(raw)
        return SlackInteraction.model_validate(data)
    except (UnicodeDecodeError, ValueError, KeyError, ValidationError) as exc:
        raise MalformedWebhook("not a Slack interaction: expected a form-encoded 'payload' field holding a "
                               f"block_actions object ({type(exc).__name__})") from None


def replacement(payload: dict[str, object]) -> dict[str, object]:
    """A rendered message as the update that replaces the one the button was on."""
    return {"replace_original": True, **payload}


def ephemeral(text: str) -> dict[str, object]:
    """A reply only the clicking user sees; the message itself stays as it is."""
    return {"response_type": "ephemeral", "replace_original": False, "text": clip(text, 3000)}


async def respond(http: httpx.AsyncClient, response_url: str, payload: dict[str, object]) -> None:
    """POST to an interaction's ``response_url`` (Slack answers ``200 ok``); :class:`DeliveryError` otherwise."""
    await post_json(http, response_url, payload, ok={200}, channel="slack response_url")
