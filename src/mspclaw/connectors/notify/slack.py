"""Slack incoming webhooks with a Block Kit message.

An incoming webhook takes ``{"text": fallback, "blocks": [...]}`` and answers ``200 ok``; a
bad payload is ``400 invalid_payload``, a removed hook ``403``/``404``, too many messages ``429``
with ``Retry-After``. Limits honoured here: a header's plain text at most 150 characters, a
section's text at most 3,000, at most 10 fields of 2,000 each, at most 50 blocks.
"""

from __future__ import annotations

import httpx

from mspclaw.connectors.notify.message import Message, clip, post_json


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SlackSender:
    kind = "slack"

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
            if len(blocks) >= 47:
                break
            body = "\n".join(f"• {_escape(line)}" for line in lines) or "_none_"
            blocks.append({"type": "divider"})
            blocks.append({"type": "section", "text": {"type": "mrkdwn",
                                                       "text": clip(f"*{_escape(heading)}*\n{body}", 3000)}})
        if message.link is not None:
            label, url = message.link
            blocks.append({"type": "actions", "elements": [
                {"type": "button", "text": {"type": "plain_text", "text": clip(label, 75)}, "url": url,
                 "style": "primary"}]})
        return {"text": clip(f"{message.title}: {message.summary}", 3000), "blocks": blocks}

    async def post(self, http: httpx.AsyncClient, url: str, payload: dict[str, object]) -> None:
        await post_json(http, url, payload, ok={200}, channel="slack")
