"""Approve and Deny from Slack: a real server on loopback, a real approval waiting the way a run waits,
and a local Slack stand-in that receives the message and clicks its buttons, signed as Slack signs.

Each click goes to ``POST /integrations/slack/interactions``; the decision must be the same decision as
in the console (one path, the approver rules, one audit event attributed to the technician, ``via``
Slack), and the message must be updated through the interaction's ``response_url`` to say who decided
and when, including for whoever clicks after the decision.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from tests.conftest import Live, live_server
from tests.integrations.slack_workspace import (
    SlackWorkspace,
    buttons,
    check_interactive_block_kit,
    slack_signature,
    slack_workspace,
    text_of,
)
from tests.roster import put_roster

from mspclaw.errors import ApprovalDenied
from mspclaw.protocol.frames import Approval

pytestmark = pytest.mark.anyio
SECRET = "e3b98a4da31a127d4bde6e43033f66ba"
APPROVE, DENY = "mspclaw_approve", "mspclaw_deny"
DANA = "Dana Scully <dana@msp.example>"
FOX = "Fox Mulder <fox@msp.example>"


def techs(ws: SlackWorkspace) -> dict[str, Any]:
    return {
        "techs": [
            {"name": "Dana Scully", "email": "dana@msp.example", "role": "tech", "slack_id": "U0DANA",
             "clients": ["Acme Dental"]},
            {"name": "Fox Mulder", "email": "fox@msp.example", "role": "tech", "slack_id": "U0FOX",
             "clients": ["Acme Dental"]},
            {"name": "Walter Skinner", "email": "walter@msp.example", "role": "tech", "slack_id": "U0WALTER",
             "clients": ["Beta Law"]},
            {"name": "Vera Viewer", "email": "vera@msp.example", "role": "viewer", "slack_id": "U0VERA",
             "clients": ["Acme Dental"]},
        ],
        "channels": [{"name": "acme-slack", "kind": "slack", "url": ws.hook("acme"), "clients": ["Acme Dental"]}],
    }


@contextlib.asynccontextmanager
async def slack_server(tmp_path: Path, **overrides: Any) -> AsyncIterator[tuple[Live, SlackWorkspace]]:
    async with slack_workspace(SECRET) as ws, live_server(
            tmp_path, workers=0, slack_signing_secret=SECRET,
            slack_response_url_prefixes=[f"{ws.url}/actions/"], **overrides) as live:
        put_roster(live.services, techs(ws))
        await live.client("Acme Dental")
        await live.client("Beta Law")
        yield live, ws


@dataclass
class Waiting:
    """An approval request waiting for a technician, exactly as a ticket's run waits on it."""

    task: asyncio.Task[Approval]
    approval_id: str
    message: dict[str, Any]


async def request_approval(live: Live, ws: SlackWorkspace, *, requester: str = "maria@acme.example",
                           tool: str = "reset_password", args: dict[str, Any] | None = None) -> Waiting:
    svc = live.services
    client = next(c for c in svc.registry.clients() if c.name == "Acme Dental")
    ticket, session = svc.store.open_ticket(client_id=client.id, subject="Maria is locked out after her holiday",
                                            body="", requester=requester, device_id=None)
    before = len(ws.messages.get("acme", []))
    task = asyncio.create_task(svc.approvals.request(
        session_id=session.id, client_id=client.id, ticket_id=ticket.id, target="ACME-DC01", tool=tool,
        args=args or {"requested_by": "maria@acme.example", "verified_by": ["psa_contact"], "username": "maria"},
        reason="The account is locked after too many failed sign-ins"))
    message = (await ws.wait(ws.messages, "acme", before + 1))[before]
    (row,) = [a for a in svc.store.approvals(None) if a.session_id == session.id]
    return Waiting(task, row.id, message)


def decided_events(live: Live, approval_id: str) -> list[Any]:
    return [e for e in live.services.audit.query(kind="approval_decided") if e.data.get("approval_id") == approval_id]


async def test_the_message_carries_the_facts_and_approve_from_slack_is_the_one_decision(tmp_path: Path) -> None:
    async with slack_server(tmp_path) as (live, ws):
        waiting = await request_approval(live, ws)
        message = waiting.message
        check_interactive_block_kit(message)
        text = text_of(message)
        for fact in ("Maria is locked out after her holiday",  # the ticket's subject
                     "maria@acme.example: is the PSA contact on the ticket",  # who asked, how they were verified
                     "ACME-DC01", 'username = "maria"', "reset_password",  # account/device, exact tool and arguments
                     "The account is locked after too many failed sign-ins",  # the reason
                     "does not run and nothing is changed",  # what a deny does
                     "Auto-deny at", waiting.approval_id):
            assert fact in text, f"the approval message does not say {fact!r}:\n{text}"
        approve, deny = buttons(message)[APPROVE], buttons(message)[DENY]
        assert approve["value"] == deny["value"] and waiting.approval_id in approve["value"]
        assert approve["value"] != waiting.approval_id, "the value is bound to the approval, not its bare id"
        assert buttons(message)["Review and approve"]["url"].endswith(f"/ui/approvals/{waiting.approval_id}")

        r = await ws.click(live.url, "U0DANA", message, APPROVE, response="dana-1")
        assert r.status_code == 200, r.text
        grant = await asyncio.wait_for(waiting.task, 10)  # the waiting run goes on, with a signed grant
        assert grant.approver == DANA and grant.signature
        (update,) = await ws.wait(ws.responses, "dana-1")
        assert update["replace_original"] is True
        check_interactive_block_kit(update)
        assert f"Approved by {DANA} via Slack at " in text_of(update)
        assert APPROVE not in buttons(update) and DENY not in buttons(update), "a decided request has no buttons"
        assert "Maria is locked out after her holiday" in text_of(update), "the update keeps the facts"

        (event,) = decided_events(live, waiting.approval_id)
        assert (event.actor, event.data["status"], event.data["via"]) == (DANA, "approved", "slack")
        row = live.services.store.approval(waiting.approval_id)
        assert (row.status, row.approver) == ("approved", DANA)

        # a double click: acknowledged, nothing decided again, and the message says who decided and when
        r = await ws.click(live.url, "U0DANA", message, APPROVE, response="dana-2")
        assert r.status_code == 200
        (again,) = await ws.wait(ws.responses, "dana-2")
        assert f"Already approved by {DANA} at {row.decided_at:%Y-%m-%d %H:%M:%S} UTC" in text_of(again)
        assert len(decided_events(live, waiting.approval_id)) == 1


async def test_deny_from_slack_stops_the_step_with_the_documented_reason(tmp_path: Path) -> None:
    async with slack_server(tmp_path) as (live, ws):
        waiting = await request_approval(live, ws)
        r = await ws.click(live.url, "U0FOX", waiting.message, DENY, response="fox")
        assert r.status_code == 200
        with pytest.raises(ApprovalDenied, match=f"reset_password denied by {FOX}: denied in Slack"):
            await asyncio.wait_for(waiting.task, 10)
        (update,) = await ws.wait(ws.responses, "fox")
        assert f"Denied by {FOX} via Slack at " in text_of(update) and "denied in Slack" in text_of(update)
        (event,) = decided_events(live, waiting.approval_id)
        assert (event.actor, event.data["status"], event.data["reason"], event.data["via"]) == (
            FOX, "denied", "denied in Slack", "slack")


async def test_two_technicians_at_once_the_first_wins_and_the_second_sees_who_decided(tmp_path: Path) -> None:
    async with slack_server(tmp_path) as (live, ws):
        for _ in range(3):  # several races, so neither order is luck
            waiting = await request_approval(live, ws)
            dana, fox = await asyncio.gather(
                ws.click(live.url, "U0DANA", waiting.message, APPROVE, response=f"dana-{waiting.approval_id}"),
                ws.click(live.url, "U0FOX", waiting.message, DENY, response=f"fox-{waiting.approval_id}"))
            assert (dana.status_code, fox.status_code) == (200, 200)
            (event,) = decided_events(live, waiting.approval_id)
            row = live.services.store.approval(waiting.approval_id)
            winner, loser = ("dana", "fox") if event.actor == DANA else ("fox", "dana")
            assert (row.status, row.approver) == (("approved", DANA) if winner == "dana" else ("denied", FOX))
            (won,) = await ws.wait(ws.responses, f"{winner}-{waiting.approval_id}")
            (lost,) = await ws.wait(ws.responses, f"{loser}-{waiting.approval_id}")
            assert f"{row.status.capitalize()} by {row.approver} via Slack at " in text_of(won)
            assert f"Already {row.status} by {row.approver} at {row.decided_at:%Y-%m-%d %H:%M:%S} UTC" in text_of(lost)
            assert "changed nothing" in text_of(lost)
            with contextlib.suppress(ApprovalDenied):
                await asyncio.wait_for(waiting.task, 10)


async def test_a_forged_signature_or_an_old_timestamp_is_401_and_decides_nothing(tmp_path: Path) -> None:
    async with slack_server(tmp_path) as (live, ws):
        waiting = await request_approval(live, ws)
        payload = ws.block_actions("U0DANA", waiting.message, APPROVE, response="forged")
        body = urlencode({"payload": json.dumps(payload)}).encode()
        now = int(time.time())
        forged = [
            await ws.post(live.url, payload, secret="not-the-signing-secret"),  # signed with another secret
            await ws.post(live.url, payload, signature="v0=" + "0" * 64),  # made up
            await ws.post(live.url, body=body.replace(b"U0DANA", b"U0FOX"),  # body changed after signing
                          signature=slack_signature(SECRET, str(now), body), timestamp=now),
            await ws.post(live.url, payload, timestamp=now - 6 * 60),  # honestly signed, six minutes old
            await ws.post(live.url, payload, timestamp=now + 6 * 60),  # from the future
        ]
        for r in forged:
            assert r.status_code == 401, r.text
        async with httpx.AsyncClient(base_url=live.url) as anon:  # no Slack headers at all
            r = await anon.post("/integrations/slack/interactions", content=body,
                                headers={"Content-Type": "application/x-www-form-urlencoded"})
            assert r.status_code == 401
        assert live.services.store.approval(waiting.approval_id).status == "pending"
        assert decided_events(live, waiting.approval_id) == [] and "forged" not in ws.responses
        # the same click, honestly signed now, is taken
        assert (await ws.post(live.url, payload)).status_code == 200
        assert (await asyncio.wait_for(waiting.task, 10)).approver == DANA


async def test_only_a_registered_technician_of_that_client_decides(tmp_path: Path) -> None:
    async with slack_server(tmp_path) as (live, ws):
        waiting = await request_approval(live, ws)
        for user, why in (("U0NOBODY", "is not a technician of the roster"),
                          ("U0WALTER", "Walter Skinner does not serve Acme Dental"),
                          ("U0VERA", "Vera Viewer is a viewer")):
            r = await ws.click(live.url, user, waiting.message, APPROVE, response=user)
            assert r.status_code == 403 and why in r.json()["detail"]["message"], r.text
            (told,) = await ws.wait(ws.responses, user)  # only the clicking user is told why
            assert told["response_type"] == "ephemeral" and told["replace_original"] is False and why in told["text"]
        assert live.services.store.approval(waiting.approval_id).status == "pending"
        assert decided_events(live, waiting.approval_id) == []
        refused = [e for e in live.services.audit.query(kind="api_forbidden") if e.data.get("via") == "slack"]
        assert {e.actor for e in refused} == {"slack:U0NOBODY", "slack:U0WALTER", "slack:U0VERA"}
        waiting.task.cancel()


async def test_a_button_value_edited_into_another_approval_is_refused(tmp_path: Path) -> None:
    async with slack_server(tmp_path) as (live, ws):
        first = await request_approval(live, ws)
        second = await request_approval(live, ws)
        value = buttons(first.message)[APPROVE]["value"]
        edited = value.replace(first.approval_id, second.approval_id)
        for bad in (edited, second.approval_id, "", "x" * 2000):
            r = await ws.click(live.url, "U0DANA", first.message, APPROVE, value=bad or " ")
            assert r.status_code in (400, 403), (bad[:40], r.status_code, r.text)
        assert {live.services.store.approval(w.approval_id).status for w in (first, second)} == {"pending"}
        first.task.cancel()
        second.task.cancel()


async def test_the_requester_never_approves_their_own_ticket_from_slack(tmp_path: Path) -> None:
    async with slack_server(tmp_path) as (live, ws):
        waiting = await request_approval(live, ws, requester="Dana Scully <dana@msp.example>")
        r = await ws.click(live.url, "U0DANA", waiting.message, APPROVE, response="self")
        assert r.status_code == 403 and "requested this ticket" in r.json()["detail"]["message"]
        assert live.services.store.approval(waiting.approval_id).status == "pending"
        r = await ws.click(live.url, "U0FOX", waiting.message, APPROVE, response="other")
        assert r.status_code == 200
        assert (await asyncio.wait_for(waiting.task, 10)).approver == FOX


async def test_a_two_person_tool_keeps_its_buttons_for_the_second_technician(tmp_path: Path) -> None:
    async with slack_server(tmp_path, two_person_tools=["reset_password"]) as (live, ws):
        waiting = await request_approval(live, ws)
        assert (await ws.click(live.url, "U0DANA", waiting.message, APPROVE, response="first")).status_code == 200
        (first,) = await ws.wait(ws.responses, "first")
        assert "First approval by Dana Scully" in text_of(first) and APPROVE in buttons(first)
        assert live.services.store.approval(waiting.approval_id).status == "pending"
        # the same person again is refused; a second technician decides
        assert (await ws.click(live.url, "U0DANA", first, APPROVE, response="again")).status_code == 403
        assert (await ws.click(live.url, "U0FOX", first, APPROVE, response="second")).status_code == 200
        grant = await asyncio.wait_for(waiting.task, 10)
        assert grant.approver == f"{DANA} + {FOX}"
        (event,) = decided_events(live, waiting.approval_id)
        assert event.data["via"] == "slack"


async def test_other_buttons_are_acknowledged_and_oversized_bodies_refused(tmp_path: Path) -> None:
    async with slack_server(tmp_path) as (live, ws):
        waiting = await request_approval(live, ws)
        r = await ws.click(live.url, "U0DANA", waiting.message, "Review and approve")  # the link button
        assert r.status_code == 200
        r = await ws.post(live.url, {"type": "block_actions", "user": {"id": "U0DANA"}, "actions": []})
        assert r.status_code == 200
        assert (await ws.post(live.url, body=b"payload=%7Bnot+json")).status_code == 400
        assert (await ws.post(live.url, body=b"a" * (300 * 1024))).status_code == 413
        assert live.services.store.approval(waiting.approval_id).status == "pending"
        waiting.task.cancel()


async def test_without_a_signing_secret_there_are_no_buttons_and_no_interactions(tmp_path: Path) -> None:
    async with slack_workspace(SECRET) as ws, live_server(tmp_path, workers=0) as live:
        put_roster(live.services, techs(ws))
        await live.client("Acme Dental")
        waiting = await request_approval(live, ws)
        assert APPROVE not in buttons(waiting.message) and DENY not in buttons(waiting.message)
        assert "Review and approve" in buttons(waiting.message)
        r = await ws.post(live.url, {"type": "block_actions", "user": {"id": "U0DANA"}, "actions": []})
        assert r.status_code == 404 and "MSPCLAW_SLACK_SIGNING_SECRET" in r.text
        waiting.task.cancel()


@pytest.mark.postgres
async def test_two_technicians_on_two_replicas_one_decision_in_postgresql(tmp_path: Path) -> None:
    """Scaled out: the two clicks reach two servers sharing one PostgreSQL database; the database takes the
    first decision and the other server answers with who decided."""
    from tests.store.conftest import provision

    shared: dict[str, Any] = {"slack_signing_secret": SECRET, "jwt_secret": "j" * 48, "workers": 0}
    with provision("postgres", tmp_path) as db:
        async with slack_workspace(SECRET) as ws, \
                live_server(tmp_path / "a", database_url=db.url, slack_response_url_prefixes=[f"{ws.url}/"],
                            **shared) as one, \
                live_server(tmp_path / "b", database_url=db.url, slack_response_url_prefixes=[f"{ws.url}/"],
                            **shared) as two:
            put_roster(one.services, techs(ws))  # one roster in the database: the other server sees it
            await one.client("Acme Dental")
            for _ in range(3):
                waiting = await request_approval(one, ws)
                dana, fox = await asyncio.gather(
                    ws.click(one.url, "U0DANA", waiting.message, APPROVE, response=f"dana-{waiting.approval_id}"),
                    ws.click(two.url, "U0FOX", waiting.message, APPROVE, response=f"fox-{waiting.approval_id}"))
                assert (dana.status_code, fox.status_code) == (200, 200), (dana.text, fox.text)
                row = one.services.store.approval(waiting.approval_id)
                assert row.status == "approved" and row.approver in (DANA, FOX)
                decided = [e for e in one.services.audit.query(kind="approval_decided")
                           if e.data.get("approval_id") == waiting.approval_id]
                assert [e.actor for e in decided] == [row.approver], "one decision, by the first"
                loser = "fox" if row.approver == DANA else "dana"
                (lost,) = await ws.wait(ws.responses, f"{loser}-{waiting.approval_id}")
                assert f"Already approved by {row.approver} at " in text_of(lost)
                waiting.task.cancel()
