"""The HaloPSA connector against a local server that validates every request against Halo's published
OpenAPI document with openapi-core (``halo_server.py``) and answers with records valid under its
schemas; a request the spec rejects fails the test through the fixture."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from tests.connectors.halo_server import FakeHalo, run_halo

from mspclaw.connectors.base import PSAConnector, RegistersWebhooks
from mspclaw.connectors.halo import HaloConnector
from mspclaw.errors import (
    AuthError,
    ConfigError,
    MalformedWebhook,
    PSAAuthError,
    PSANotFound,
    PSARateLimited,
    PSARejected,
    PSAUnavailable,
)

if TYPE_CHECKING:
    from tests.connectors.conftest import FakeTime

pytestmark = pytest.mark.anyio
Make = Callable[..., HaloConnector]
HOOK_USER, HOOK_PASSWORD = "mspclaw", "hook-password-123"


@pytest.fixture
async def halo() -> AsyncIterator[FakeHalo]:
    async with run_halo() as fake:
        yield fake
        assert fake.violations == [], f"requests or answers Halo's OpenAPI document rejects: {fake.violations}"


@pytest.fixture
async def make(halo: FakeHalo, fake_time: FakeTime) -> AsyncIterator[Make]:
    made: list[HaloConnector] = []

    def factory(**kwargs: Any) -> HaloConnector:
        options: dict[str, Any] = {"host": halo.url, "client_id": halo.client_id, "client_secret": halo.client_secret,
                                   "tenant": halo.tenant, "webhook_username": HOOK_USER,
                                   "webhook_password": HOOK_PASSWORD, "sleep": fake_time.sleep,
                                   "clock": fake_time.clock, **kwargs}
        connector = HaloConnector(**options)
        made.append(connector)
        return connector

    yield factory
    for connector in made:
        await connector.aclose()


def test_it_implements_the_connector_protocol_and_refuses_bad_configuration() -> None:
    connector: PSAConnector = HaloConnector(host="acme.halopsa.com", client_id="c", client_secret="s")
    assert connector.name == "halo" and isinstance(connector, RegistersWebhooks)
    with pytest.raises(ConfigError, match="client id and secret"):
        HaloConnector(host="acme.halopsa.com", client_id="c", client_secret="")
    with pytest.raises(ConfigError, match="resolved/escalated"):
        HaloConnector(host="h", client_id="c", client_secret="s", status_map={"done": "Closed"})


async def test_get_ticket_maps_the_halo_ticket_and_its_actions(halo: FakeHalo, make: Make) -> None:
    ticket_id = halo.add_ticket(summary="VPN drops", details="<p>Every <b>hour</b></p>", asset="ACME-LT-7")
    ticket = await make().get_ticket(str(ticket_id))
    assert (ticket.id, ticket.company, ticket.requester, ticket.subject) == (
        str(ticket_id), "12", "maria@acme.example", "VPN drops")
    assert (ticket.body, ticket.asset, ticket.status, ticket.notes) == ("Every hour", "ACME-LT-7", "open", [])
    assert ticket.updated_at is not None and ticket.updated_at.tzinfo is UTC
    (get,) = halo.requests("GET", f"/api/Tickets/{ticket_id}")
    assert get.query == {"includedetails": "true"}


async def test_the_token_is_fetched_once_with_the_tenant_and_refreshed_before_expiry(
        halo: FakeHalo, make: Make, fake_time: FakeTime) -> None:
    ticket_id = halo.add_ticket()
    connector = make()
    await connector.get_ticket(str(ticket_id))
    await connector.get_ticket(str(ticket_id))
    (token,) = halo.requests("POST", "/auth/token")
    assert token.query == {"tenant": "acmemsp"}
    assert token.body == {"grant_type": "client_credentials", "client_id": halo.client_id,
                          "client_secret": halo.client_secret, "scope": "all"}
    fake_time.now += 3600 - 59  # within a minute of expiry: a new token before the call
    await connector.get_ticket(str(ticket_id))
    assert len(halo.requests("POST", "/auth/token")) == 2


async def test_a_revoked_token_is_replaced_once(halo: FakeHalo, make: Make) -> None:
    ticket_id = halo.add_ticket()
    connector = make()
    await connector.get_ticket(str(ticket_id))
    halo.revoke_tokens()
    assert (await connector.get_ticket(str(ticket_id))).id == str(ticket_id)
    assert len(halo.requests("POST", "/auth/token")) == 2


async def test_wrong_client_credentials_are_psa_auth_error(halo: FakeHalo, make: Make) -> None:
    with pytest.raises(PSAAuthError, match="invalid_client: Invalid client credentials"):
        await make(client_secret="wrong").get_ticket("1")
    assert "wrong" not in str(halo.requests("GET"))


async def test_a_missing_ticket_is_psa_not_found(halo: FakeHalo, make: Make) -> None:
    with pytest.raises(PSANotFound):
        await make().get_ticket("999999")
    with pytest.raises(PSANotFound, match="numbers"):
        await make().get_ticket("T-1")


async def test_listing_pages_by_100_since_the_cursor(halo: FakeHalo, make: Make) -> None:
    base = datetime(2026, 11, 1, tzinfo=UTC)
    for i in range(250):
        halo.add_ticket(summary=f"t{i}", updated=base + timedelta(minutes=i))
    found = await make().list_tickets(base + timedelta(minutes=99))
    assert [t.subject for t in found][:2] == ["t100", "t101"] and len(found) == 150
    pages = halo.requests("GET", "/api/Tickets")
    assert [p.query["page_no"] for p in pages] == ["1", "2"]
    assert pages[0].query["lastupdatefromdate"] == "2026-11-01T01:39:00" and pages[0].query["page_size"] == "100"
    assert len(await make().list_tickets()) == 250


async def test_notes_are_actions_hidden_from_the_user_or_emailed_once(halo: FakeHalo, make: Make) -> None:
    ticket_id = halo.add_ticket()
    connector = make()
    for _ in range(2):
        await connector.add_note(str(ticket_id), "MSPclaw: RESOLVED", public=False)
        await connector.add_note(str(ticket_id), "Hi Maria, all fixed.", public=True)
    internal, public = halo.notes(ticket_id)
    assert (internal["hiddenfromuser"], internal["sendemail"], internal["outcome"]) == (True, False, "Private Note")
    assert (public["hiddenfromuser"], public["sendemail"], public["outcome"]) == (False, True, "Email User")
    notes = (await connector.get_ticket(str(ticket_id))).notes
    assert [(n.public, n.text) for n in notes] == [(False, "MSPclaw: RESOLVED"), (True, "Hi Maria, all fixed.")]


async def test_a_note_whose_answer_timed_out_is_not_posted_again(halo: FakeHalo, make: Make) -> None:
    ticket_id = halo.add_ticket()
    halo.fail("POST", "/api/Actions", delay=3.0)  # stored at once, answered too late
    connector = make(timeout=1.0, max_retries=0)  # room for the other calls on a busy machine
    await connector.token()
    with pytest.raises(PSAUnavailable, match="POST /api/Actions"):
        await connector.add_note(str(ticket_id), "done", public=False)
    await connector.add_note(str(ticket_id), "done", public=False)
    assert len(halo.notes(ticket_id)) == 1


async def test_set_status_looks_the_name_up_and_posts_the_ticket(halo: FakeHalo, make: Make) -> None:
    ticket_id = halo.add_ticket()
    connector = make()
    await connector.set_status(str(ticket_id), "resolved")
    assert halo.tickets[ticket_id]["status_id"] == 9
    assert (await connector.get_ticket(str(ticket_id))).status == "resolved"
    await connector.set_status(str(ticket_id), "escalated")
    assert halo.tickets[ticket_id]["status_name"] == "In Progress"
    with pytest.raises(PSARejected, match=r"no ticket status 'Escalated'.*'Action Required'"):
        await make(status_map={"escalated": "Escalated"}).set_status(str(ticket_id), "escalated")


async def test_429_retry_after_is_honoured_then_rate_limited(halo: FakeHalo, make: Make, fake_time: FakeTime) -> None:
    ticket_id = halo.add_ticket()
    halo.fail("GET", "/api/Tickets/", status=429, headers={"Retry-After": "4"})
    await make().get_ticket(str(ticket_id))
    assert fake_time.sleeps == [4.0]
    halo.fail("GET", "/api/Tickets/", status=429, headers={"Retry-After": "4"}, times=9)
    with pytest.raises(PSARateLimited):
        await make().get_ticket(str(ticket_id))


async def test_the_client_side_limit_is_700_in_five_minutes(make: Make) -> None:
    limiter = make().rate_limiter
    assert (limiter.limit, limiter.period) == (700, 300.0)


async def test_register_webhook_creates_a_basic_auth_webhook_once(halo: FakeHalo, make: Make) -> None:
    connector = make()
    said = await connector.register_webhook("https://msp.example/webhooks/halo")
    assert "created" in said and "New Ticket Logged" in said
    (hook,) = halo.webhooks
    assert (hook["url"], hook["basic_username"], hook["basic_password"]) == (
        "https://msp.example/webhooks/halo", HOOK_USER, HOOK_PASSWORD)
    assert "already" in await connector.register_webhook("https://msp.example/webhooks/halo")
    assert len(halo.webhooks) == 1
    with pytest.raises(ConfigError, match="no webhook credentials"):
        await make(webhook_password=None).register_webhook("https://msp.example/webhooks/halo")


# --- webhooks --------------------------------------------------------------------------------------

BODY = json.dumps({"ticket": {"id": 2001, "summary": "x"}, "action": {"id": 9}}).encode()


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def connector(**kwargs: Any) -> HaloConnector:
    return HaloConnector(host="acme.halopsa.com", client_id="c", client_secret="s",
                         **{"webhook_username": HOOK_USER, "webhook_password": HOOK_PASSWORD, **kwargs})


def test_a_webhook_with_the_configured_basic_credentials_is_an_event() -> None:
    event = connector().parse_webhook(basic(HOOK_USER, HOOK_PASSWORD), BODY)
    assert (event.psa, event.ticket_id, event.event) == ("halo", "2001", "ticket.updated")
    flat = json.dumps({"ticket_id": 7, "event": "ticket.created"}).encode()
    assert connector().parse_webhook({"authorization": basic(HOOK_USER, HOOK_PASSWORD)["Authorization"]},
                                     flat).ticket_id == "7"


@pytest.mark.parametrize(("headers", "words"), [
    ({}, "no Basic Authorization"),
    (basic(HOOK_USER, "guess"), "do not match"),
    (basic("someone", HOOK_PASSWORD), "do not match"),
    ({"Authorization": "Basic !!!"}, "not base64"),
    ({"Authorization": "Bearer x"}, "no Basic"),
])
def test_a_webhook_without_the_right_credentials_is_refused(headers: dict[str, str], words: str) -> None:
    with pytest.raises(AuthError, match=words):
        connector().parse_webhook(headers, BODY)


def test_without_configured_credentials_every_webhook_is_refused() -> None:
    with pytest.raises(AuthError, match="no webhook credentials"):
        connector(webhook_password=None).parse_webhook(basic(HOOK_USER, HOOK_PASSWORD), BODY)


@pytest.mark.parametrize("body", [b"nope", b"[1]", b'{"ticket": {"id": "abc"}}', b'{"summary": "x"}'])
def test_an_authenticated_body_without_a_ticket_id_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedWebhook):
        connector().parse_webhook(basic(HOOK_USER, HOOK_PASSWORD), body)


async def test_the_fake_refuses_what_halos_spec_rejects() -> None:
    """The check the fixture relies on: requests off the spec are answered 400 and recorded."""
    import httpx

    async with run_halo() as fake, httpx.AsyncClient(base_url=fake.url, headers={"Authorization": "Bearer x"}) as http:
        bad = [
            await http.get("/api/Tickets", params={"page_size": "many"}),
            await http.get("/api/Tickets", params={"pagesize": "10"}),
            await http.post("/api/Actions", json={"ticket_id": 1, "note": "not an array"}),
            await http.post("/api/Actions", json=[{"ticket_id": 1, "hidden_from_user": True}]),
            await http.get("/api/NoSuchThing"),
            await http.get("/api/Tickets/1", headers={"Authorization": ""}),
        ]
        assert [r.status_code for r in bad] == [400] * 6
        assert len(fake.violations) == 6
        assert "pagesize" in fake.violations[1] and "hidden_from_user" in fake.violations[3]
