"""The SuperOps connector against a local GraphQL server following the vendor's published schema subset.

``superops_server.py`` serves the SDL of the vendor reference (section 1.9) on loopback and executes
every request with graphql-core, so each query and mutation the connector sends is validated
against that schema: the ``server`` fixture fails the test when any request was rejected by it.
Retry waits and the rate limiter run on the fake clock of ``conftest.py``; only the timeout tests
really wait, for a fraction of a second.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from graphql import parse, validate
from tests.connectors.superops_server import SCHEMA, FakeSuperOps, run_superops, stamp

from mspclaw.connectors.base import PSAConnector, PSANote, WebhookEvent
from mspclaw.connectors.http import RateLimiter
from mspclaw.connectors.superops import DOCUMENTS, SuperOpsConnector, sign_webhook
from mspclaw.errors import (
    AuthError,
    MalformedWebhook,
    PSAAuthError,
    PSAError,
    PSANotFound,
    PSARateLimited,
    PSARejected,
    PSAUnavailable,
)

if TYPE_CHECKING:
    from tests.connectors.conftest import FakeTime

pytestmark = pytest.mark.anyio

TOKEN = "so_api_token_0123456789"
SUBDOMAIN = "acmemsp"
ACCOUNT = "7928838372746166998"
SECRET = "whsec_superops_test"
NOW = 1_767_000_000.0

Make = Callable[..., SuperOpsConnector]


@pytest.fixture
async def server() -> AsyncIterator[FakeSuperOps]:
    async with run_superops(token=TOKEN, subdomain=SUBDOMAIN) as fake:
        yield fake
        assert fake.schema_errors == [], f"the connector sent requests the schema rejects: {fake.schema_errors}"


@pytest.fixture
async def make(server: FakeSuperOps, fake_time: FakeTime) -> AsyncIterator[Make]:
    made: list[SuperOpsConnector] = []

    def factory(**kwargs: Any) -> SuperOpsConnector:
        options: dict[str, Any] = {"subdomain": SUBDOMAIN, "token": TOKEN, "endpoint": server.url,
                                   "clock": fake_time.clock, "sleep": fake_time.sleep, "now": lambda: NOW,
                                   "webhook_secret": SECRET, **kwargs}
        connector = SuperOpsConnector(**options)
        made.append(connector)
        return connector

    yield factory
    for connector in made:
        await connector.aclose()


def test_every_document_the_connector_sends_is_valid_against_the_schema() -> None:
    for document in DOCUMENTS:
        assert validate(SCHEMA, parse(document)) == [], document


def test_it_implements_the_connector_protocol() -> None:
    connector: PSAConnector = SuperOpsConnector(subdomain=SUBDOMAIN, token=TOKEN)
    assert connector.name == "superops"


# --- reading -------------------------------------------------------------------------------------


async def test_get_ticket_maps_the_superops_ticket(server: FakeSuperOps, make: Make) -> None:
    created = datetime(2026, 6, 28, 5, 25, 10, tzinfo=UTC)
    ticket_id = server.add_ticket(
        subject="Help! Internet is not working!", status="Open", created=created,
        updated=created + timedelta(days=1),
        requester={"userId": "5928838372746169876", "name": "John Williams", "email": "john@acme.example"},
        description="<p>The Wi-Fi drops&nbsp;every hour.</p><p>Laptop: <b>ACME-LT-7</b></p>",
        custom_fields={"udf1text": "ACME-LT-7"})
    server.notes[ticket_id] = [{"noteId": "1", "addedOn": stamp(created), "content": "checked AP",
                                "privacyType": "PRIVATE"}]
    ticket = await make(asset_field="udf1text").get_ticket(ticket_id)
    assert (ticket.id, ticket.company, ticket.requester) == (ticket_id, ACCOUNT, "john@acme.example")
    assert ticket.subject == "Help! Internet is not working!"
    assert ticket.body == "The Wi-Fi drops every hour.\n\nLaptop: ACME-LT-7"
    assert ticket.asset == "ACME-LT-7" and ticket.status == "open"
    assert ticket.created_at == created and ticket.updated_at == created + timedelta(days=1)
    assert ticket.notes == [PSANote("checked AP", public=False)]
    assert len(server.received) == 1  # ticket, description and notes in one GraphQL request


async def test_requester_falls_back_to_name_and_asset_to_none(server: FakeSuperOps, make: Make) -> None:
    ticket_id = server.add_ticket(description=None, status="Resolved")
    ticket = await make().get_ticket(ticket_id)
    assert ticket.requester == "John Williams" and ticket.asset is None and ticket.body == ""
    assert ticket.status == "resolved"


async def test_a_missing_ticket_is_psa_not_found(server: FakeSuperOps, make: Make) -> None:
    with pytest.raises(PSANotFound, match="Ticket does not exist"):
        await make().get_ticket("404")


async def test_listing_pages_past_100_tickets_oldest_first(server: FakeSuperOps, make: Make) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    ids = [server.add_ticket(subject=f"t{i}", updated=start + timedelta(minutes=i)) for i in range(250)]
    tickets = await make().list_tickets()
    assert [t.id for t in tickets] == ids
    pages = [r.variables["input"] for r in server.calls("getTicketList")]
    assert [(p["page"], p["pageSize"]) for p in pages] == [(1, 100), (2, 100), (3, 100)]
    assert all(p["sort"] == [{"attribute": "updatedTime", "order": "ASC"}] and "condition" not in p for p in pages)
    assert tickets[0].body == "" and tickets[0].company == ACCOUNT


async def test_listing_since_filters_on_update_time(server: FakeSuperOps, make: Make) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    ids = [server.add_ticket(subject=f"t{i}", updated=start + timedelta(minutes=i)) for i in range(120)]
    since = start + timedelta(minutes=99)
    tickets = await make().list_tickets(since)
    assert [t.id for t in tickets] == ids[100:]
    first = server.calls("getTicketList")[0].variables["input"]
    assert first["condition"] == {"attribute": "updatedTime", "operator": "after", "value": "2026-01-01T01:39:00"}
    naive = await make().list_tickets(since.replace(tzinfo=None))
    assert [t.id for t in naive] == ids[100:]
    assert await make().list_tickets(start + timedelta(hours=5)) == []


# --- writing -------------------------------------------------------------------------------------


async def test_private_and_public_notes_are_recorded_with_their_privacy(server: FakeSuperOps, make: Make) -> None:
    ticket_id = server.add_ticket()
    connector = make()
    await connector.add_note(ticket_id, "Cleared the print queue on ACME-LT-7.", public=False)
    await connector.add_note(ticket_id, "Your printer works again.", public=True)
    assert [(n["content"], n["privacyType"]) for n in server.notes[ticket_id]] == [
        ("<div>Cleared the print queue on ACME-LT-7.</div>", "PRIVATE"),
        ("<div>Your printer works again.</div>", "PUBLIC")]
    assert (await connector.get_ticket(ticket_id)).notes == [
        PSANote("Cleared the print queue on ACME-LT-7.", False), PSANote("Your printer works again.", True)]


async def test_the_same_note_twice_is_posted_once(server: FakeSuperOps, make: Make) -> None:
    ticket_id = server.add_ticket()
    connector = make()
    for _ in range(2):
        await connector.add_note(ticket_id, "Reset done via AD", public=False)
    await connector.add_note(ticket_id, "Reset done via AD", public=True)  # other visibility: a new note
    assert [n["privacyType"] for n in server.notes[ticket_id]] == ["PRIVATE", "PUBLIC"]
    assert len(server.calls("createTicketNote")) == 2


async def test_a_note_whose_answer_timed_out_is_not_posted_again_on_retry(server: FakeSuperOps, make: Make) -> None:
    ticket_id = server.add_ticket()
    connector = make(timeout=0.3)
    server.fail("createTicketNote", delay=0.6)  # the note is written, the answer comes too late
    with pytest.raises(PSAUnavailable, match="did not answer"):
        await connector.add_note(ticket_id, "Rebooted the spooler", public=False)
    assert len(server.calls("createTicketNote")) == 1  # a mutation is not resent after a timeout
    await connector.add_note(ticket_id, "Rebooted the spooler", public=False)  # the job's retry
    assert [n["content"] for n in server.notes[ticket_id]] == ["<div>Rebooted the spooler</div>"]
    assert len(server.calls("createTicketNote")) == 1


async def test_public_replies_can_go_out_as_conversations(server: FakeSuperOps, make: Make) -> None:
    ticket_id = server.add_ticket()
    connector = make(public_reply="conversation")
    for _ in range(2):
        await connector.add_note(ticket_id, "Your VPN is fixed.", public=True)
    await connector.add_note(ticket_id, "Renewed the VPN profile.", public=False)
    replies = [c for c in server.conversations[ticket_id] if c["type"] == "TECH_REPLY"]
    assert [(c["content"], c["sendMail"]) for c in replies] == [("<div>Your VPN is fixed.</div>", True)]
    assert [(n["content"], n["privacyType"]) for n in server.notes[ticket_id]] == [
        ("<div>Renewed the VPN profile.</div>", "PRIVATE")]


async def test_a_note_on_a_missing_ticket_is_psa_not_found(server: FakeSuperOps, make: Make) -> None:
    with pytest.raises(PSANotFound):
        await make().add_note("404", "hello", public=False)


async def test_set_status_uses_the_mapped_status_names(server: FakeSuperOps, make: Make) -> None:
    first, second = server.add_ticket(), server.add_ticket()
    connector = make()
    await connector.set_status(first, "resolved")
    await connector.set_status(second, "escalated")
    assert (server.tickets[first]["status"], server.tickets[second]["status"]) == ("Resolved", "Open")
    assert len(server.calls("getStatusList")) == 1  # checked once, then remembered
    assert (await connector.get_ticket(first)).status == "resolved"


async def test_a_status_name_the_instance_lacks_is_rejected_naming_the_available_ones(
        server: FakeSuperOps, make: Make) -> None:
    ticket_id = server.add_ticket()
    connector = make(status_map={"escalated": "Escalated to L2"})
    with pytest.raises(PSARejected, match="'Escalated to L2'") as info:
        await connector.set_status(ticket_id, "escalated")
    assert "'New', 'Open', 'In Progress'" in info.value.message and "'Closed'" in info.value.message
    assert server.calls("updateTicket") == [] and server.tickets[ticket_id]["status"] == "New"
    server.statuses.append("Escalated to L2")  # the admin adds it: the next call finds it
    await connector.set_status(ticket_id, "escalated")
    assert server.tickets[ticket_id]["status"] == "Escalated to L2"
    assert (await connector.get_ticket(ticket_id)).status == "escalated"


async def test_set_status_on_a_missing_ticket_is_psa_not_found(server: FakeSuperOps, make: Make) -> None:
    with pytest.raises(PSANotFound):
        await make().set_status("404", "resolved")


# --- errors, retries, limits ---------------------------------------------------------------------


async def test_429_retry_after_is_honoured(server: FakeSuperOps, make: Make, fake_time: FakeTime) -> None:
    ticket_id = server.add_ticket()
    server.fail("getTicket", status=429, headers={"Retry-After": "2"})
    assert (await make().get_ticket(ticket_id)).id == ticket_id
    assert fake_time.sleeps == [2.0] and len(server.calls("getTicket")) == 2


async def test_503_is_retried_then_psa_unavailable(server: FakeSuperOps, make: Make, fake_time: FakeTime) -> None:
    ticket_id = server.add_ticket()
    server.fail("getTicket", status=503)
    await make().get_ticket(ticket_id)
    server.fail("getTicket", status=503, times=10)
    with pytest.raises(PSAUnavailable, match="after 4 attempts"):
        await make().get_ticket(ticket_id)
    assert len(fake_time.sleeps) == 1 + 3


async def test_a_slow_query_is_retried_after_its_timeout(server: FakeSuperOps, make: Make) -> None:
    ticket_id = server.add_ticket()
    server.fail("getTicket", delay=0.6)
    assert (await make(timeout=0.3).get_ticket(ticket_id)).id == ticket_id
    assert len(server.calls("getTicket")) == 2


async def test_rate_limit_exceeded_in_a_200_is_retried_then_psa_rate_limited(
        server: FakeSuperOps, make: Make, fake_time: FakeTime) -> None:
    ticket_id = server.add_ticket()
    server.fail("createTicketNote", code="rate_limit_exceeded")
    await make().add_note(ticket_id, "done", public=False)  # refused, not done: safe to resend a mutation
    assert len(server.notes[ticket_id]) == 1 and len(fake_time.sleeps) == 1
    server.fail("getTicket", code="rate_limit_exceeded", times=10)
    with pytest.raises(PSARateLimited, match="800 requests/minute"):
        await make().get_ticket(ticket_id)


@pytest.mark.parametrize(("code", "error", "words"), [
    ("entity_does_not_exist", PSANotFound, "no such record"),
    ("mandatory_validation_failed", PSARejected, "mandatory_validation_failed"),
    ("forbidden", PSAAuthError, "forbids"),
    ("subscription_paused", PSAAuthError, "subscription is paused"),
    ("something_new", PSAError, "something_new"),
])
async def test_graphql_errors_with_http_200_become_our_errors(
        server: FakeSuperOps, make: Make, fake_time: FakeTime, code: str, error: type[PSAError], words: str) -> None:
    ticket_id = server.add_ticket()
    server.fail("createTicketNote", code=code)
    with pytest.raises(error, match=words) as info:
        await make().add_note(ticket_id, "done", public=False)
    assert type(info.value) is error
    assert len(server.calls("createTicketNote")) == 1 and fake_time.sleeps == []
    assert server.notes.get(ticket_id, []) == []


async def test_a_request_the_schema_rejects_raises(server: FakeSuperOps, make: Make) -> None:
    with pytest.raises(PSARejected, match="Cannot query field 'description'"):
        await make().graphql("query { getTicket(input: {ticketId: \"1\"}) { description } }", idempotent=True)
    with pytest.raises(PSARejected, match="NOTE_TYPE"):
        await make().graphql("mutation m($input: CreateTicketNoteInput!) { createTicketNote(input: $input) "
                             "{ noteId } }", {"input": {"ticket": {"ticketId": "1"}, "content": "x",
                                                        "privacyType": "NOTE_TYPE"}}, idempotent=False)
    assert len(server.schema_errors) == 2
    server.schema_errors.clear()  # expected here; every other test fails on them


async def test_a_wrong_token_is_psa_auth_error(server: FakeSuperOps, make: Make) -> None:
    with pytest.raises(PSAAuthError, match=r"401.*invalid or deleted"):
        await make(token="wrong").get_ticket("1")


async def test_a_wrong_subdomain_is_psa_auth_error_naming_it(server: FakeSuperOps, make: Make) -> None:
    with pytest.raises(PSAAuthError, match="CustomerSubDomain 'nosuch'"):
        await make(subdomain="nosuch").get_ticket("1")


async def test_the_client_side_rate_limit_spaces_requests(
        server: FakeSuperOps, make: Make, fake_time: FakeTime) -> None:
    ticket_id = server.add_ticket()
    moments: list[float] = []
    server.on_request = lambda: moments.append(fake_time.now)
    limiter = RateLimiter(5, 1.0, clock=fake_time.clock, sleep=fake_time.sleep)
    connector = make(rate_limiter=limiter)
    for _ in range(12):
        await connector.get_ticket(ticket_id)
    assert len(moments) == 12
    assert all(sum(1 for m in moments if start <= m < start + 1.0) <= 5 for start in moments)
    assert moments[-1] - moments[0] >= 2.0 and sum(fake_time.sleeps) == pytest.approx(2.0)


async def test_the_default_limit_is_800_a_minute_per_connector(make: Make) -> None:
    limiter = make().rate_limiter
    assert (limiter.limit, limiter.period) == (800, 60.0)


async def test_regions_pick_the_us_or_eu_endpoint_with_the_auth_headers() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"data": {"getStatusList": [{"id": "1", "name": "Open"}]}})

    for region in ("us", "eu"):
        async with SuperOpsConnector(subdomain=SUBDOMAIN, token=TOKEN, region=region,
                                     transport=httpx.MockTransport(handler)) as connector:
            assert await connector.status_names() == ["Open"]
    assert [str(r.url) for r in seen] == ["https://api.superops.ai/msp", "https://euapi.superops.ai/msp"]
    for request in seen:
        assert request.method == "POST" and request.headers["authorization"] == f"Bearer {TOKEN}"
        assert request.headers["customersubdomain"] == SUBDOMAIN
        assert request.headers["content-type"] == "application/json"
        assert json.loads(request.content)["query"].strip().startswith("query getStatusList")


def test_bad_configuration_is_refused() -> None:
    from mspclaw.errors import ConfigError

    with pytest.raises(ConfigError, match="region"):
        SuperOpsConnector(subdomain=SUBDOMAIN, token=TOKEN, region="apac")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="sub-domain"):
        SuperOpsConnector(subdomain="", token=TOKEN)
    with pytest.raises(ConfigError, match="status_map"):
        SuperOpsConnector(subdomain=SUBDOMAIN, token=TOKEN, status_map={"closed": "Closed"})


# --- webhooks ------------------------------------------------------------------------------------

BODY = json.dumps({"ticketId": "7928838372746166987", "event": "ticket.created", "deliveryId": "d-1"}).encode()


def signed(body: bytes = BODY, *, secret: str = SECRET, at: float = NOW) -> dict[str, str]:
    stamp_ = str(int(at))
    return {"X-MSPclaw-Timestamp": stamp_, "X-MSPclaw-Signature": sign_webhook(secret, stamp_, body)}


def hook(**kwargs: Any) -> SuperOpsConnector:
    options: dict[str, Any] = {"subdomain": SUBDOMAIN, "token": TOKEN, "webhook_secret": SECRET, "now": lambda: NOW,
                               **kwargs}
    return SuperOpsConnector(**options)


def test_a_signed_webhook_is_an_event() -> None:
    event = hook().parse_webhook(signed(), BODY)
    assert event == WebhookEvent(psa="superops", ticket_id="7928838372746166987", event="ticket.created",
                                 delivery_id="d-1")
    lower = {k.lower(): v.removeprefix("sha256=") for k, v in signed().items()}  # any case, bare hex
    assert hook().parse_webhook(lower, BODY) == event
    minimal = json.dumps({"ticketId": 7928838372746166987}).encode()
    assert hook().parse_webhook(signed(minimal), minimal) == WebhookEvent("superops", "7928838372746166987")


@pytest.mark.parametrize(("headers", "body", "words"), [
    (signed(), BODY.replace(b"6987", b"6988"), "signature does not match"),
    (signed(secret="other-secret"), BODY, "signature does not match"),
    ({"X-MSPclaw-Timestamp": str(int(NOW))}, BODY, "no X-MSPclaw-Timestamp or X-MSPclaw-Signature"),
    ({}, BODY, "no X-MSPclaw-Timestamp or X-MSPclaw-Signature"),
    (signed(at=NOW - 301), BODY, "outside the 300s replay window"),
    (signed(at=NOW + 301), BODY, "outside the 300s replay window"),
    ({"X-MSPclaw-Secret": SECRET}, BODY, "no X-MSPclaw-Timestamp"),  # an hmac account refuses a bare secret
])
def test_a_webhook_that_fails_authentication_is_auth_error(headers: dict[str, str], body: bytes, words: str) -> None:
    with pytest.raises(AuthError, match=words):
        hook().parse_webhook(headers, body)


def test_without_a_configured_secret_every_webhook_is_refused() -> None:
    with pytest.raises(AuthError, match="no webhook secret"):
        hook(webhook_secret=None).parse_webhook(signed(), BODY)


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'{"event": "ticket.created"}', b'{"ticketId": true}',
                                  b'{"ticketId": "1", "event": 5}', b"\xff\xfe"])
def test_a_signed_body_that_is_not_an_event_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedWebhook):
        hook().parse_webhook(signed(body), body)


def test_shared_secret_accounts_accept_the_plain_secret_header() -> None:
    connector = hook(webhook_auth="shared_secret")
    assert connector.parse_webhook({"x-mspclaw-secret": SECRET}, BODY).ticket_id == "7928838372746166987"
    with pytest.raises(AuthError, match="secret does not match"):
        connector.parse_webhook({"X-MSPclaw-Secret": "guess"}, BODY)
    with pytest.raises(AuthError, match="no X-MSPclaw-Secret"):
        connector.parse_webhook(signed(), BODY)
    with pytest.raises(AuthError, match="outside the 300s replay window"):
        connector.parse_webhook({"X-MSPclaw-Secret": SECRET, "X-MSPclaw-Timestamp": str(int(NOW - 900))}, BODY)
