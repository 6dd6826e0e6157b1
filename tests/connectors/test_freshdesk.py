"""The Freshdesk connector against a local server that validates every request, and every answer it
gives, against the Freshdesk OpenAPI document in shared/specs with openapi-core
(``freshdesk_server.py``); a request the spec rejects fails the test through the fixture."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from tests.connectors.freshdesk_server import FakeFreshdesk, run_freshdesk

from mspclaw.connectors.base import PSAConnector, RegistersWebhooks
from mspclaw.connectors.freshdesk import FreshdeskConnector
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
Make = Callable[..., FreshdeskConnector]
SECRET = "fd-hook-secret-789"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture
async def fd() -> AsyncIterator[FakeFreshdesk]:
    async with run_freshdesk() as fake:
        yield fake
        assert fake.violations == [], f"requests or answers the Freshdesk OpenAPI document rejects: {fake.violations}"


@pytest.fixture
async def make(fd: FakeFreshdesk, fake_time: FakeTime) -> AsyncIterator[Make]:
    made: list[FreshdeskConnector] = []

    def factory(**kwargs: Any) -> FreshdeskConnector:
        options: dict[str, Any] = {"domain": "acme", "api_key": fd.api_key, "base_url": fd.url,
                                   "webhook_secret": SECRET, "sleep": fake_time.sleep, "clock": fake_time.clock,
                                   **kwargs}
        connector = FreshdeskConnector(**options)
        made.append(connector)
        return connector

    yield factory
    for connector in made:
        await connector.aclose()


def test_it_implements_the_connector_protocol_and_refuses_bad_configuration() -> None:
    connector: PSAConnector = FreshdeskConnector(domain="acme.freshdesk.com", api_key="k")
    assert connector.name == "freshdesk" and not isinstance(connector, RegistersWebhooks)
    assert FreshdeskConnector(domain="acme", api_key="k").base_url == "https://acme.freshdesk.com/api/v2"
    with pytest.raises(ConfigError, match="API key"):
        FreshdeskConnector(domain="acme", api_key="")
    with pytest.raises(ConfigError, match="2 Open, 3 Pending"):
        FreshdeskConnector(domain="acme", api_key="k", status_map={"resolved": 9})


async def test_get_ticket_maps_the_freshdesk_ticket(fd: FakeFreshdesk, make: Make) -> None:
    ticket_id = fd.add_ticket(subject="Laptop slow", custom={"cf_device": "ACME-LT-9"})
    ticket = await make(asset_field="cf_device").get_ticket(str(ticket_id))
    assert (ticket.id, ticket.company, ticket.requester, ticket.subject, ticket.body) == (
        str(ticket_id), "44", "maria@acme.example", "Laptop slow", "It does not print.")
    assert (ticket.asset, ticket.status, ticket.notes) == ("ACME-LT-9", "open", [])
    assert fd.requests("GET", f"/tickets/{ticket_id}")[0].query == {"include": "requester"}


async def test_a_ticket_without_company_maps_to_an_empty_company(fd: FakeFreshdesk, make: Make) -> None:
    ticket = await make().get_ticket(str(fd.add_ticket(company_id=None)))
    assert ticket.company == "" and ticket.asset is None


async def test_missing_tickets_and_bad_keys(fd: FakeFreshdesk, make: Make) -> None:
    with pytest.raises(PSANotFound):
        await make().get_ticket("99999")
    with pytest.raises(PSAAuthError, match="invalid_credentials"):
        await make(api_key="wrong").get_ticket("3001")


async def test_listing_since_pages_by_100_oldest_first(fd: FakeFreshdesk, make: Make) -> None:
    base = NOW - timedelta(days=2)
    for i in range(150):
        fd.add_ticket(subject=f"t{i}", updated=base + timedelta(minutes=i))
    found = await make().list_tickets(base + timedelta(minutes=29))
    assert len(found) == 120 and found[0].subject == "t30" and found[-1].subject == "t149"
    assert len(fd.requests("GET", "/tickets")) == 2
    first = fd.requests("GET", "/tickets")[0].query
    assert first["updated_since"] == "2026-11-21T12:29:00Z" and first["order_by"] == "updated_at"
    assert first["per_page"] == "100" and first["order_type"] == "asc"


async def test_listing_without_a_cursor_asks_for_the_last_30_days(fd: FakeFreshdesk, make: Make) -> None:
    fd.add_ticket()
    assert len(await make(now=lambda: datetime.now(UTC).timestamp()).list_tickets()) == 1
    (listed,) = fd.requests("GET", "/tickets")
    assert datetime.fromisoformat(listed.query["updated_since"]) < datetime.now(UTC) - timedelta(days=29)


async def test_private_notes_and_replies_are_written_once(fd: FakeFreshdesk, make: Make) -> None:
    ticket_id = fd.add_ticket()
    connector = make()
    for _ in range(2):
        await connector.add_note(str(ticket_id), "MSPclaw: RESOLVED\n<steps>", public=False)
        await connector.add_note(str(ticket_id), "Hi Maria,\nall fixed.", public=True)
    note, reply = fd.conversations[ticket_id]
    assert note["private"] is True and note["body"] == "<div>MSPclaw: RESOLVED<br>&lt;steps&gt;</div>"
    assert reply["private"] is False and reply["to_emails"] == ["maria@acme.example"]
    assert len(fd.requests("POST", "/reply")) == 1 and len(fd.requests("POST", "/notes")) == 1
    notes = (await connector.get_ticket(str(ticket_id))).notes
    assert [(n.public, " ".join(n.text.split())) for n in notes] == [
        (False, "MSPclaw: RESOLVED <steps>"), (True, "Hi Maria, all fixed.")]


async def test_a_note_whose_answer_timed_out_is_not_posted_again(fd: FakeFreshdesk, make: Make) -> None:
    ticket_id = fd.add_ticket()
    fd.fail("POST", "/notes", delay=3.0)  # stored at once, answered too late
    connector = make(timeout=1.0, max_retries=0)  # room for the other calls on a busy machine
    with pytest.raises(PSAUnavailable):
        await connector.add_note(str(ticket_id), "done", public=False)
    await connector.add_note(str(ticket_id), "done", public=False)
    assert len(fd.conversations[ticket_id]) == 1


async def test_set_status_puts_the_mapped_number(fd: FakeFreshdesk, make: Make) -> None:
    ticket_id = fd.add_ticket()
    await make().set_status(str(ticket_id), "resolved")
    assert fd.tickets[ticket_id]["status"] == 4
    assert (await make().get_ticket(str(ticket_id))).status == "resolved"
    await make(status_map={"escalated": 3}).set_status(str(ticket_id), "escalated")
    assert (await make(status_map={"escalated": 3}).get_ticket(str(ticket_id))).status == "escalated"


async def test_429_retry_after_is_honoured(fd: FakeFreshdesk, make: Make, fake_time: FakeTime) -> None:
    ticket_id = fd.add_ticket()
    fd.fail("GET", "/tickets/", status=429, headers={"Retry-After": "12"}, body={"code": "too_many"})
    await make().get_ticket(str(ticket_id))
    assert fake_time.sleeps == [12.0]
    fd.fail("GET", "/tickets/", status=429, headers={"Retry-After": "3600"})
    with pytest.raises(PSARateLimited) as caught:
        await make().get_ticket(str(ticket_id))
    assert caught.value.retry_after == 3600.0 and fake_time.sleeps == [12.0]


async def test_validation_errors_are_rejected_with_freshdesks_words(fd: FakeFreshdesk, make: Make) -> None:
    ticket_id = fd.add_ticket()
    fd.fail("PUT", "/tickets/", status=400, body={"description": "Validation failed", "errors": [
        {"field": "custom_fields.cf_reason", "message": "It should be a/an String", "code": "missing_field"}]})
    with pytest.raises(PSARejected, match=r"cf_reason.*missing_field"):
        await make().set_status(str(ticket_id), "resolved")


async def test_the_default_limit_is_200_a_minute(make: Make) -> None:
    assert (make().rate_limiter.limit, make(rate_per_minute=700).rate_limiter.limit) == (200, 700)


async def test_the_fake_refuses_what_the_spec_rejects(fd: FakeFreshdesk) -> None:
    auth = httpx.BasicAuth(fd.api_key, "X")
    async with httpx.AsyncClient(base_url=fd.url, auth=auth) as http:
        bad = [await http.get("/tickets", params={"per_page": "500"}),
               await http.get("/tickets", params={"updatedsince": "x"}),
               await http.put("/tickets/3001", json={"status": 7}),
               await http.post("/tickets/3001/notes", json={"private": True}),
               await http.get("/tickets/3001", params={"include": "everything"})]
    assert [r.status_code for r in bad] == [400] * 5 and len(fd.violations) == 5
    fd.violations.clear()


# --- webhooks --------------------------------------------------------------------------------------


def hook(**kwargs: Any) -> FreshdeskConnector:
    return FreshdeskConnector(domain="acme", api_key="k", **{"webhook_secret": SECRET, **kwargs})


def test_an_automation_webhook_with_the_secret_header_is_an_event() -> None:
    advanced = json.dumps({"ticket_id": "3001", "event": "ticket.created"}).encode()
    event = hook().parse_webhook({"X-MSPclaw-Secret": SECRET}, advanced)
    assert (event.psa, event.ticket_id, event.event) == ("freshdesk", "3001", "ticket.created")
    simple = json.dumps({"freshdesk_webhook": {"ticket_id": 3002, "ticket_subject": "x"}}).encode()
    assert hook().parse_webhook({"x-mspclaw-secret": SECRET}, simple).ticket_id == "3002"


@pytest.mark.parametrize(("headers", "words"), [({}, "no X-MSPclaw-Secret"),
                                                ({"X-MSPclaw-Secret": "guess"}, "does not match")])
def test_a_webhook_without_the_secret_is_refused(headers: dict[str, str], words: str) -> None:
    with pytest.raises(AuthError, match=words):
        hook().parse_webhook(headers, b'{"ticket_id": 1}')
    with pytest.raises(AuthError, match="no webhook secret"):
        hook(webhook_secret=None).parse_webhook({"X-MSPclaw-Secret": SECRET}, b'{"ticket_id": 1}')


@pytest.mark.parametrize("body", [b"<xml/>", b"[]", b'{"ticket_id": "{{ticket.id}}"}', b"{}"])
def test_a_body_without_a_ticket_id_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedWebhook):
        hook().parse_webhook({"X-MSPclaw-Secret": SECRET}, body)
