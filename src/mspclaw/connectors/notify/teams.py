"""Microsoft Teams through a Workflows webhook ("When a Teams webhook request is received"),
carrying an Adaptive Card.

The body is a message with one attachment of content type
``application/vnd.microsoft.card.adaptive`` whose ``content`` is the card (schema version 1.4,
``TextBlock``/``FactSet`` body, ``Action.OpenUrl``). A mention is ``<at>Name</at>`` in a text
block plus an entity under ``msteams.entities``. The workflow answers ``202 Accepted``
(some tenants ``200``).

A Workflows webhook cannot receive a card's clicks, so an approval request's card carries no
Approve/Deny of its own: its one button (``Action.OpenUrl``) opens the approval in MSPclaw's web
view, where the technician signs in and decides through the same decision path as everywhere.
A message's ``decision`` reference is therefore not rendered here.
"""

from __future__ import annotations

from typing import Any

import httpx

from mspclaw.connectors.notify.message import Message, clip, post_json

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"


class TeamsSender:
    kind = "teams"

    def render(self, message: Message) -> dict[str, object]:
        body: list[dict[str, Any]] = [
            {"type": "TextBlock", "text": clip(message.title, 200), "size": "Large", "weight": "Bolder",
             "wrap": True},
        ]
        card: dict[str, Any] = {"$schema": CARD_SCHEMA, "type": "AdaptiveCard", "version": "1.4", "body": body}
        summary = message.summary
        mention = message.mention
        if mention is not None and mention.teams_id:
            tag = f"<at>{mention.name}</at>"
            summary = f"{tag} {summary}"
            card["msteams"] = {"entities": [{"type": "mention", "text": tag,
                                             "mentioned": {"id": mention.teams_id, "name": mention.name}}]}
        elif mention is not None:
            summary = f"{mention.name}: {summary}"
        body.append({"type": "TextBlock", "text": clip(summary, 3000), "wrap": True})
        if message.facts:
            body.append({"type": "FactSet", "facts": [{"title": clip(k, 100), "value": clip(v, 1000)}
                                                      for k, v in message.facts[:20]]})
        for heading, lines in message.sections:
            body.append({"type": "TextBlock", "text": clip(heading, 200), "weight": "Bolder", "wrap": True,
                         "separator": True})
            body.append({"type": "TextBlock", "text": clip("\n".join(f"- {line}" for line in lines) or "none", 5000),
                         "wrap": True})
        if message.outcome is not None:
            body.append({"type": "TextBlock", "text": clip(message.outcome, 1000), "weight": "Bolder", "wrap": True,
                         "separator": True})
        if message.link is not None:
            card["actions"] = [{"type": "Action.OpenUrl", "title": clip(message.link[0], 100),
                                "url": message.link[1]}]
        return {"type": "message", "attachments": [
            {"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": card}]}

    async def post(self, http: httpx.AsyncClient, url: str, payload: dict[str, object]) -> None:
        await post_json(http, url, payload, ok={200, 202}, channel="teams")
