"""The approval request as Slack and Teams receive it: every fact needed to decide, valid by each format's
published rules, no secret anywhere, and the Teams card's button opening the approval in MSPclaw.

The Teams card is checked against the rules of the Adaptive Card 1.4 schema (adaptivecards.io) for the
elements the card uses: each element's required properties, its allowed properties and none other,
the top-level ``version``; a Workflows webhook renders nothing for a card that breaks them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from tests.integrations.slack_workspace import (
    SlackWorkspace,
    buttons,
    check_interactive_block_kit,
    slack_workspace,
    text_of,
)
from tests.roster import put_roster

from mspclaw.errors import Forbidden
from mspclaw.pipeline.notify import ApprovalReferences
from mspclaw.settings import Settings
from mspclaw.store.tables import ApprovalRow, utcnow
from mspclaw.wiring import Services, build

pytestmark = pytest.mark.anyio
SECRETS = ("Hunter2!Winter", "Tr0ub4dor&3xyz", "xoxb-1234567890-abcdefghij")

_COMMON_ELEMENT = {"type": {}, "fallback": {}, "height": {}, "separator": {"type": "boolean"},
                   "spacing": {}, "id": {"type": "string"}, "isVisible": {"type": "boolean"}, "requires": {}}
ADAPTIVE_CARD_1_4 = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "definitions": {
        "TextBlock": {"type": "object", "required": ["type", "text"], "additionalProperties": False,
                      "properties": {**_COMMON_ELEMENT, "type": {"const": "TextBlock"},
                                     "text": {"type": "string", "minLength": 1},
                                     "color": {}, "fontType": {}, "horizontalAlignment": {},
                                     "isSubtle": {"type": "boolean"}, "maxLines": {"type": "number"},
                                     "size": {"enum": ["default", "small", "medium", "large", "extraLarge",
                                                       "Default", "Small", "Medium", "Large", "ExtraLarge"]},
                                     "weight": {"enum": ["default", "lighter", "bolder",
                                                         "Default", "Lighter", "Bolder"]},
                                     "wrap": {"type": "boolean"}, "style": {}}},
        "Fact": {"type": "object", "required": ["title", "value"], "additionalProperties": False,
                 "properties": {"type": {"const": "Fact"}, "title": {"type": "string"},
                                "value": {"type": "string"}}},
        "FactSet": {"type": "object", "required": ["type", "facts"], "additionalProperties": False,
                    "properties": {**_COMMON_ELEMENT, "type": {"const": "FactSet"},
                                   "facts": {"type": "array", "items": {"$ref": "#/definitions/Fact"}}}},
        "Action.OpenUrl": {"type": "object", "required": ["type", "url"], "additionalProperties": False,
                           "properties": {"type": {"const": "Action.OpenUrl"},
                                          "url": {"type": "string", "pattern": "^https?://"},
                                          "title": {"type": "string"}, "iconUrl": {}, "style": {},
                                          "fallback": {}, "requires": {}, "id": {"type": "string"}}},
    },
    "type": "object",
    "required": ["type", "version", "body"],
    "additionalProperties": False,
    "properties": {
        "type": {"const": "AdaptiveCard"}, "version": {"enum": ["1.0", "1.1", "1.2", "1.3", "1.4"]},
        "$schema": {"const": "http://adaptivecards.io/schemas/adaptive-card.json"},
        "body": {"type": "array", "items": {"oneOf": [{"$ref": "#/definitions/TextBlock"},
                                                      {"$ref": "#/definitions/FactSet"}]}},
        "actions": {"type": "array", "items": {"$ref": "#/definitions/Action.OpenUrl"}},
        "fallbackText": {"type": "string"}, "speak": {"type": "string"}, "lang": {"type": "string"},
        "minHeight": {}, "selectAction": {}, "verticalContentAlignment": {}, "backgroundImage": {}, "refresh": {},
        "msteams": {"type": "object"},  # Teams' host extension for mentions and width
    },
}


def check_teams_message(payload: dict[str, Any]) -> dict[str, Any]:
    """A Workflows webhook message: one Adaptive Card attachment, valid by the card schema's rules."""
    assert set(payload) == {"type", "attachments"} and payload["type"] == "message"
    (attachment,) = payload["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card: dict[str, Any] = attachment["content"]
    jsonschema.Draft7Validator(ADAPTIVE_CARD_1_4).validate(card)
    return card


def card_text(card: dict[str, Any]) -> str:
    parts = [b["text"] for b in card["body"] if b["type"] == "TextBlock"]
    parts += [f"{f['title']}: {f['value']}" for b in card["body"] if b["type"] == "FactSet" for f in b["facts"]]
    return "\n".join(parts)


@pytest.fixture
async def chat(tmp_path: Path) -> AsyncIterator[tuple[Services, SlackWorkspace]]:
    async with slack_workspace() as ws:
        svc = build(Settings(data_dir=tmp_path / "data", api_key="k" * 20, notify_backoff_s=0.01,
                             slack_signing_secret=ws.secret, public_url="https://msp.example"))
        put_roster(svc, {
            "techs": [{"name": "Dana Scully", "email": "dana@msp.example", "role": "tech", "slack_id": "U0DANA",
                       "teams_id": "dana@msp.example", "clients": ["Acme Dental"]}],
            "channels": [{"name": "acme-slack", "kind": "slack", "url": ws.hook("slack"), "clients": ["Acme Dental"]},
                         {"name": "acme-teams", "kind": "teams", "url": ws.hook("teams"),
                          "clients": ["Acme Dental"]}]})
        try:
            yield svc, ws
        finally:
            await svc.staff.notifier.aclose()
            svc.close()


def waiting_approval(svc: Services, *, args: dict[str, Any], reason: str, subject: str) -> tuple[ApprovalRow, str]:
    client = svc.registry.add_client("Acme Dental")
    ticket, session = svc.store.open_ticket(client_id=client.id, subject=subject, body="",
                                            requester="Maria Lopez <maria@acme.example>", device_id=None)
    row = svc.store.request_approval(session_id=session.id, client_id=client.id, tool="reset_password", args=args,
                                     target="ACME-DC01", reason=reason, deadline=utcnow() + timedelta(minutes=5))
    return row, ticket.id


Chat = tuple[Services, SlackWorkspace]


async def test_the_teams_card_states_every_fact_and_opens_the_approval_view(chat: Chat) -> None:
    svc, ws = chat
    row, ticket_id = waiting_approval(
        svc, subject="Maria cannot sign in", reason="Account locked after 5 failed sign-ins",
        args={"requested_by": "maria@acme.example", "verified_by": ["psa_contact", "device_confirmation"],
              "username": "maria"})
    await svc.staff.notifier.approval_requested(row, ticket_id)
    await svc.staff.notifier.drain(10)
    card = check_teams_message((await ws.wait(ws.messages, "teams"))[0])
    text = card_text(card)
    for fact in ("Maria cannot sign in", "Acme Dental",
                 "maria@acme.example: is the PSA contact on the ticket, confirmed the request on their own enrolled "
                 "device", "the account maria, through ACME-DC01 (site agent)", "reset_password", 'username = "maria"',
                 "Account locked after 5 failed sign-ins", "does not run and nothing is changed",
                 f"Auto-deny at: {row.deadline:%Y-%m-%d %H:%M} UTC", row.id):
        assert fact in text, f"the Teams card does not say {fact!r}:\n{text}"
    (action,) = card["actions"]
    assert action == {"type": "Action.OpenUrl", "title": "Review and approve",
                      "url": f"https://msp.example/ui/approvals/{row.id}"}
    assert card["msteams"]["entities"][0]["mentioned"] == {"id": "dana@msp.example", "name": "Dana Scully"}
    reference = svc.staff.notifier.references.issue(row.id) if svc.staff.notifier.references else "?"
    assert reference not in json.dumps(card), "a Teams card has nothing to click with the Slack reference"
    # Slack gets the same facts, and the buttons
    slack = (await ws.wait(ws.messages, "slack"))[0]
    check_interactive_block_kit(slack)
    assert "Maria cannot sign in" in text_of(slack) and buttons(slack)["mspclaw_approve"]["value"] == reference


async def test_no_secret_reaches_slack_teams_or_the_stored_notifications(chat: Chat) -> None:
    svc, ws = chat
    row, ticket_id = waiting_approval(
        svc, subject=f"my password is {SECRETS[0]} please reset",
        reason=f"The user wrote password: {SECRETS[1]} and token {SECRETS[2]}",
        args={"requested_by": "maria@acme.example", "verified_by": ["psa_contact"], "username": "maria",
              "new_password": SECRETS[1], "api_token": SECRETS[2]})  # arguments the catalogue does not know
    await svc.staff.notifier.approval_requested(row, ticket_id)
    await svc.staff.notifier.drain(10)
    slack = (await ws.wait(ws.messages, "slack"))[0]
    teams = (await ws.wait(ws.messages, "teams"))[0]
    check_interactive_block_kit(slack)
    card = check_teams_message(teams)
    stored = [n.payload for n in svc.staff.escalation_store.notifications(None, ref_id=row.id)]
    assert len(stored) == 2
    for what in (slack, teams, *stored):
        dumped = json.dumps(what)
        for secret in SECRETS:
            assert secret not in dumped, f"{secret!r} reached a chat message"
    assert "new_password = \"[redacted]\"" in card_text(card), "the argument is shown, its value is not"
    assert "The arguments do not fit the catalogue" in card_text(card), "unknown arguments say: deny it"


def test_an_approval_reference_stands_for_one_approval_of_one_server() -> None:
    refs = ApprovalReferences(b"s" * 48)
    reference = refs.issue("ap_0123456789ab")
    assert refs.resolve(reference) == "ap_0123456789ab"
    for forged in (reference.replace("ap_0123456789ab", "ap_0123456789ac"), "ap_0123456789ab",
                   "ap_0123456789ab." + "0" * 32, ApprovalReferences(b"t" * 48).issue("ap_0123456789ab"), ""):
        with pytest.raises(Forbidden):
            refs.resolve(forged)
