"""The approver identity matrix: nobody approves a destructive step of a ticket they asked for or
opened, in whatever form their identity reaches MSPclaw, and two-person tools need two people.

Every decision goes through the real API (``POST /api/approvals/{id}/approve``) of a live server
with a real technician roster; openers are the ``actor`` of the ticket's ``ticket_opened`` audit event,
recorded by the real ticket service in the logged-in case and in the same shape for the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from tests.conftest import Live, live_server
from tests.roster import put_roster

from mspclaw.errors import ConfigError
from mspclaw.pipeline.approvers import FIRST_APPROVAL
from mspclaw.pipeline.identity import identity_keys, same_person
from mspclaw.protocol.signing import check_approval
from mspclaw.settings import Settings
from mspclaw.store.tables import utcnow
from mspclaw.wiring import build

pytestmark = pytest.mark.anyio
PASSWORD = "correct horse battery staple"
DANA = "Dana Scully <dana@msp.example>"
TECHS = {"techs": [
    {"name": "Dana Scully", "email": "dana@msp.example", "role": "tech", "clients": ["Acme Dental"],
     "aliases": ["dana.scully@gmail.com", "D. Scully", "cw-contact-4711"]},
    {"name": "Fox Mulder", "email": "fox@msp.example", "role": "tech", "clients": ["Acme Dental"]},
    {"name": "Ada Admin", "email": "ada@msp.example", "role": "admin", "clients": ["*"]},
]}

# Dana's identity in every form a requester field carries it: each must be refused as approver.
DANA_AS_REQUESTER = [
    "dana@msp.example", "DANA@MSP.EXAMPLE", "  Dana@Msp.Example  ", "<dana@msp.example>", "mailto:dana@msp.example",
    "Dana Scully <dana@msp.example>", '"Scully, Dana" <DANA@msp.example>', "'Dana Scully' <dana@msp.example>",
    "Dana Scully <dana@msp.example> (work)", "Dana <dana@msp.example", "Someone Else <dana+tickets@msp.example>",
    "Dana Scully", "dana scully", "DANA   SCULLY", "Scully, Dana", '"Dana Scully"',
    "=?utf-8?q?Dana_Scully?= <front-desk@acme.example>", "ＤＡＮＡ@msp.example", "Ｄａｎａ Ｓｃｕｌｌｙ",
    "maria@acme.example, dana@msp.example", "Maria <maria@acme.example>; Dana <dana@msp.example>",
    "dana.scully@gmail.com", "Dana.Scully@GMAIL.com", "D. Scully", "D Scully <d.s@elsewhere.example>",
    "cw-contact-4711", "CW-Contact-4711",
]
# Other people, some close to Dana in form: each may be approved by Dana.
OTHERS_AS_REQUESTER = [
    "", "maria@acme.example", "Maria Lopez <maria@acme.example>", "Dana Lopez <dana@acme.example>",
    "danas@msp.example", "dana@msp.example.org", "Dana", "Scully", "cw-contact-4712", "front-desk",
]


async def setup(live: Live) -> str:
    put_roster(live.services, TECHS)
    return await live.client("Acme Dental")


async def opener(live: Live, client_id: str, *, requester: str = "maria@acme.example",
                 opened_by: str | None = "admin", tool: str = "clear_temp_files") -> str:
    """A pending approval on a new ticket ``opened_by`` someone (as the ticket service records it)."""
    svc = live.services
    ticket, session = svc.store.open_ticket(client_id=client_id, subject="disk full", body="", requester=requester,
                                            device_id=None)
    if opened_by is not None:
        await svc.audit.record("ticket_opened", actor=opened_by, client_id=client_id, session_id=session.id,
                               data={"ticket_id": ticket.id, "subject": ticket.subject, "requester": requester})
    return svc.store.request_approval(session_id=session.id, client_id=client_id, tool=tool, args={},
                                      target="pc", reason="r", deadline=utcnow() + timedelta(minutes=5)).id


Decide = Callable[..., Awaitable[httpx.Response]]


def decider(live: Live) -> Decide:
    async def decide(approval_id: str, approver: str, *, approve: bool = True,
                     token: str | None = None) -> httpx.Response:
        verb = "approve" if approve else "deny"
        headers = {"Authorization": f"Bearer {token}"} if token else None
        return await live.http.post(f"/api/approvals/{approval_id}/{verb}", json={"approver": approver},
                                    headers=headers)
    return decide


async def test_the_requester_never_approves_in_any_form_of_their_identity(tmp_path: Path) -> None:
    async with live_server(tmp_path, workers=0) as live:
        acme = await setup(live)
        decide = decider(live)
        failures: list[str] = []
        for approver in ("dana@msp.example", "Dana Scully", "DANA@MSP.EXAMPLE"):
            for requester in DANA_AS_REQUESTER:
                r = await decide(await opener(live, acme, requester=requester), approver)
                if r.status_code != 403 or "requested this ticket" not in r.json()["detail"]["message"]:
                    failures.append(f"{approver} approved for requester {requester!r}: {r.status_code} {r.text}")
            for requester in OTHERS_AS_REQUESTER:
                r = await decide(await opener(live, acme, requester=requester), approver)
                if r.status_code != 200 or r.json()["approver"] != DANA:
                    failures.append(f"{approver} refused for requester {requester!r}: {r.status_code} {r.text}")
        assert not failures, "\n".join(failures)
        # the refusal says who, what, and what to do
        r = await decide(await opener(live, acme, requester='"Scully, Dana" <DANA@msp.example>'), "dana@msp.example")
        message = r.json()["detail"]["message"]
        assert "Dana Scully requested this ticket" in message and "another technician must decide" in message


async def test_the_opener_never_approves_and_a_shared_key_or_the_psa_is_no_person(tmp_path: Path) -> None:
    async with live_server(tmp_path, workers=0) as live, httpx.AsyncClient(base_url=live.url) as anon:
        acme = await setup(live)
        decide = decider(live)
        refused = ["Dana Scully", "dana@msp.example", "DANA@msp.example", "Dana Scully <dana@msp.example>",
                   "D. Scully", "dana.scully@gmail.com"]
        allowed = ["admin", "key:cli", "key:slack-bridge", "psa:halo", "api", "Fox Mulder", "fox@msp.example"]
        failures: list[str] = []
        for who in refused:
            r = await decide(await opener(live, acme, opened_by=who), "Dana Scully")
            if r.status_code != 403 or "opened this ticket" not in r.json()["detail"]["message"]:
                failures.append(f"opener {who!r} approved their own ticket: {r.status_code} {r.text}")
        for other in [*allowed, None]:
            r = await decide(await opener(live, acme, opened_by=other), "Dana Scully")
            if r.status_code != 200:
                failures.append(f"Dana refused on a ticket opened by {other!r}: {r.status_code} {r.text}")
        assert not failures, "\n".join(failures)

        # the real path: Dana logs in, opens a ticket through the API, and cannot approve its step
        live.services.staff.logins.set_password("dana@msp.example", PASSWORD)
        token = (await anon.post("/auth/login", json={"email": "dana@msp.example", "password": PASSWORD})
                 ).json()["access_token"]
        opened = await anon.post("/api/tickets", json={"client": "Acme Dental", "subject": "printer jammed",
                                                       "requester": "maria@acme.example"},
                                 headers={"Authorization": f"Bearer {token}"})
        assert opened.status_code == 202, opened.text
        session_id = opened.json()["session_id"]
        ap = live.services.store.request_approval(session_id=session_id, client_id=acme, tool="clear_temp_files",
                                                  args={}, target="pc", reason="r",
                                                  deadline=utcnow() + timedelta(minutes=5)).id
        for token_or_key, name in ((token, ""), (None, "dana@msp.example")):
            r = await decide(ap, name, token=token_or_key)
            assert r.status_code == 403 and "opened this ticket (as Dana Scully)" in r.json()["detail"]["message"]
        r = await decide(ap, "fox@msp.example")
        assert r.status_code == 200 and r.json()["approver"] == "Fox Mulder <fox@msp.example>"


async def test_two_person_tools_need_two_different_technicians(tmp_path: Path) -> None:
    async with live_server(tmp_path, workers=0, two_person_tools=["clear_temp_files"]) as live:
        acme = await setup(live)
        decide = decider(live)
        svc = live.services
        ap = await opener(live, acme)
        r = await decide(ap, "Dana Scully")
        assert r.status_code == 200 and r.json()["status"] == "pending" and r.json()["approver"] is None
        firsts = svc.audit.query(kind=FIRST_APPROVAL)
        assert [(e.actor, e.data["approval_id"]) for e in firsts] == [(DANA, ap)]
        for again in ("Dana Scully", "dana@msp.example", "DANA@MSP.EXAMPLE"):
            r = await decide(ap, again)
            assert r.status_code == 403 and "second, different technician" in r.json()["detail"]["message"], again
        assert svc.store.approval(ap).status == "pending"
        r = await decide(ap, "fox@msp.example")
        assert r.status_code == 200 and r.json()["status"] == "approved"
        assert r.json()["approver"] == "Dana Scully <dana@msp.example> + Fox Mulder <fox@msp.example>"
        decided = svc.audit.query(kind="approval_decided")
        assert [e.actor for e in decided] == [r.json()["approver"]]
        assert (await decide(ap, "ada@msp.example")).status_code == 409  # decided once

        # a denial by either person is final at once
        ap = await opener(live, acme)
        assert (await decide(ap, "Dana Scully")).json()["status"] == "pending"
        r = await decide(ap, "fox@msp.example", approve=False)
        assert r.status_code == 200 and r.json()["status"] == "denied"
        ap = await opener(live, acme)
        r = await decide(ap, "fox@msp.example", approve=False)
        assert r.status_code == 200 and r.json()["status"] == "denied"
        # the second person is checked like the first: the requester cannot be the second approver
        ap = await opener(live, acme, requester="Fox Mulder <FOX@msp.example>")
        assert (await decide(ap, "Dana Scully")).json()["status"] == "pending"
        r = await decide(ap, "fox@msp.example")
        assert r.status_code == 403 and "requested this ticket" in r.json()["detail"]["message"]
        assert (await decide(ap, "ada@msp.example")).json()["status"] == "approved"
        # a tool not on the list still takes one approval
        ap = await opener(live, acme, tool="reboot")
        r = await decide(ap, "Dana Scully")
        assert r.status_code == 200 and r.json()["status"] == "approved" and r.json()["approver"] == DANA


async def test_the_grant_a_waiting_call_receives_is_bound_to_its_call_id_after_both_approvals(tmp_path: Path) -> None:
    async with live_server(tmp_path, workers=0, two_person_tools=["clear_temp_files"]) as live:
        acme = await setup(live)
        decide = decider(live)
        svc = live.services
        ticket, session = svc.store.open_ticket(client_id=acme, subject="disk", body="", requester="maria@acme.example",
                                                device_id=None)
        args = {"older_than_days": 7, "dry_run": False}
        waiting = asyncio.create_task(svc.approvals.request(
            session_id=session.id, client_id=acme, ticket_id=ticket.id, target="pc", tool="clear_temp_files",
            args=args, reason="r", call_id=f"call_{session.id}_3", agent_id="ag_1"))
        approval = await live.wait_approval()
        assert (await decide(approval["id"], "Dana Scully")).json()["status"] == "pending"
        await asyncio.sleep(0.2)
        assert not waiting.done(), "one approval of a two-person tool must not release the call"
        assert (await decide(approval["id"], "Fox Mulder")).json()["status"] == "approved"
        grant = await asyncio.wait_for(waiting, 10)
        assert grant.approver == "Dana Scully <dana@msp.example> + Fox Mulder <fox@msp.example>"
        key = bytes.fromhex(svc.approvals.public_key_hex)
        now = utcnow().timestamp()
        assert check_approval(key, grant, call_id=f"call_{session.id}_3", tool="clear_temp_files", args=args,
                              agent_id="ag_1", now=now) is None
        why = check_approval(key, grant, call_id=f"call_{session.id}_4", tool="clear_temp_files", args=args,
                             agent_id="ag_1", now=now)
        assert why is not None and "another call" in why


def test_an_unknown_two_person_tool_stops_the_server_with_the_names_to_use(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", api_key="test_key", two_person_tools=["reset_pasword"])
    with pytest.raises(ConfigError) as info:
        build(settings)
    assert "reset_pasword" in info.value.message and "reset_password" in info.value.message


def test_identity_keys_meet_for_the_same_person_and_not_for_near_misses() -> None:
    same = [("dana@msp.example", '"Scully, Dana" <DANA@MSP.example>'), ("Dana Scully", "Scully, Dana"),
            ("dana+x@msp.example", "dana@msp.example"), ("ＤＡＮＡ@msp.example", "dana@msp.example")]
    different = [("dana@msp.example", "dana@msp.example.org"), ("Dana", "Dana Scully"),
                 ("dana@msp.example", "danas@msp.example"), ("", ""), ("key:cli", "cli")]
    assert all(same_person(a, b) for a, b in same)
    assert not any(same_person(a, b) for a, b in different)
    assert identity_keys("x" * 100_000 + "@example.com") == identity_keys("x" * 1_000)  # bounded work


def test_aliases_in_techs_yaml_are_validated_with_their_line_and_kept_when_the_file_is_rewritten() -> None:
    from mspclaw.pipeline.techs import dump, parse

    text = ("techs:\n  - name: Dana Scully\n    email: dana@msp.example\n    clients: ['*']\n"
            "    aliases: ['dana.scully@gmail.com', '  ']\n")
    with pytest.raises(ConfigError) as info:
        parse(text, "techs.yaml")
    assert "techs.yaml:5: techs.0.aliases: " in info.value.message and "non-empty" in info.value.message
    doc = parse(text.replace(", '  '", ""), "techs.yaml")
    assert parse(dump(doc), "techs.yaml").techs[0].aliases == ["dana.scully@gmail.com"]
    assert "aliases" not in dump(parse(text.replace("    aliases: ['dana.scully@gmail.com', '  ']\n", ""), "t"))


async def test_bootstrap_mode_compares_the_named_approver_the_same_way(tmp_path: Path) -> None:
    async with live_server(tmp_path, workers=0, two_person_tools=["clear_temp_files"]) as live:
        acme = await live.client("Acme Dental")  # no roster: an admin names the approver
        decide = decider(live)
        refused = {"maria@acme.example": "requested", "MARIA@ACME.EXAMPLE": "requested", "Maria Lopez": "requested",
                   "Lopez, Maria": "requested", "maria+it@acme.example": "requested", "Oscar Opener": "opened"}
        for approver, why in refused.items():
            r = await decide(await opener(live, acme, requester="Maria Lopez <Maria@Acme.example>",
                                    opened_by="Oscar Opener"), approver)
            assert r.status_code == 403 and f"{why} this ticket" in r.json()["detail"]["message"], approver
        ap = await opener(live, acme, requester="Maria Lopez <Maria@Acme.example>")
        r = await decide(ap, "")
        assert r.status_code == 409 and "approver's name" in r.json()["detail"]["message"]
        assert (await decide(ap, "Dana")).json()["status"] == "pending"
        assert (await decide(ap, "DANA")).status_code == 403
        r = await decide(ap, "Fox")
        assert r.status_code == 200 and r.json()["approver"] == "Dana + Fox"
