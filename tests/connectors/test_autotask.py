"""The Autotask connector against a local server following the vendor reference's documented shapes
(``autotask_server.py``: Autotask's Swagger document is served by each zone, not kept in
shared/specs), including its thread limit, its 500-for-validation error bodies, 401, 429 and 5xx."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from tests.connectors.autotask_server import FakeAutotask, run_autotask

from mspclaw.connectors.autotask import AutotaskConnector, sign_hook
from mspclaw.connectors.base import PSAConnector, RegistersWebhooks
from mspclaw.connectors.freshness import REPLAY_WINDOW_S
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
Make = Callable[..., AutotaskConnector]
SECRET = "at-hook-secret"


@pytest.fixture
async def at() -> AsyncIterator[FakeAutotask]:
    async with run_autotask() as fake:
        yield fake
        assert fake.violations == [], f"the connector sent requests Autotask would refuse: {fake.violations}"


@pytest.fixture
async def make(at: FakeAutotask, fake_time: FakeTime) -> AsyncIterator[Make]:
    made: list[AutotaskConnector] = []

    def factory(**kwargs: Any) -> AutotaskConnector:
        options: dict[str, Any] = {"username": at.username, "integration_code": at.integration_code,
                                   "secret": at.secret, "discovery_url": at.url, "webhook_secret": SECRET,
                                   "sleep": fake_time.sleep, "clock": fake_time.clock, **kwargs}
        connector = AutotaskConnector(**options)
        made.append(connector)
        return connector

    yield factory
    for connector in made:
        await connector.aclose()


def test_it_implements_the_connector_protocol_and_refuses_bad_configuration() -> None:
    connector: PSAConnector = AutotaskConnector(username="u@x", integration_code="c", secret="s")
    assert connector.name == "autotask" and isinstance(connector, RegistersWebhooks)
    with pytest.raises(ConfigError, match="tracking identifier"):
        AutotaskConnector(username="u@x", integration_code="", secret="s")
    with pytest.raises(ConfigError, match="64 characters"):
        AutotaskConnector(username="u@x", integration_code="c", secret="s", webhook_secret="x" * 65)


async def test_get_ticket_discovers_the_zone_without_credentials_and_maps_the_ticket(
        at: FakeAutotask, make: Make) -> None:
    ticket_id = at.add_ticket(title="Outlook crashes", asset="ACME-PC-7")
    connector = make()
    ticket = await connector.get_ticket(str(ticket_id))
    assert (ticket.id, ticket.company, ticket.requester, ticket.subject, ticket.body) == (
        str(ticket_id), "175", "maria@acme.example", "Outlook crashes", "It does not print.")
    assert (ticket.asset, ticket.status, ticket.notes) == ("ACME-PC-7", "open", [])
    await connector.get_ticket(str(ticket_id))
    (zone,) = at.requests("GET", "zoneInformation")
    assert zone.query == {"user": at.username} and "secret" not in zone.headers
    call = at.requests("GET", f"/Tickets/{ticket_id}")[0]
    assert (call.headers["apiintegrationcode"], call.headers["username"]) == (at.integration_code, at.username)


async def test_a_ticket_without_contact_or_item(at: FakeAutotask, make: Make) -> None:
    ticket = await make().get_ticket(str(at.add_ticket(contact=False)))
    assert ticket.requester == "" and ticket.asset is None


async def test_missing_tickets_and_bad_credentials(at: FakeAutotask, make: Make) -> None:
    with pytest.raises(PSANotFound, match="not found"):
        await make().get_ticket("99")
    with pytest.raises(PSAAuthError, match="401"):
        await make(secret="wrong").get_ticket("4001")


async def test_listing_follows_next_page_urls_since_the_cursor(at: FakeAutotask, make: Make) -> None:
    base = datetime(2026, 11, 1, tzinfo=UTC)
    for i in range(620):
        at.add_ticket(title=f"t{i}", contact=False, updated=base + timedelta(minutes=i))
    found = await make().list_tickets(base + timedelta(minutes=9))
    assert len(found) == 610 and found[0].subject == "t10" and found[-1].subject == "t619"
    (query,) = at.requests("POST", "/Tickets/query")
    assert query.body == {"MaxRecords": 500, "filter": [
        {"op": "gt", "field": "lastActivityDate", "value": "2026-11-01T00:09:00Z"}]}
    assert len(at.requests("GET", "/query/next")) == 1
    assert len(await make().list_tickets()) == 620


async def test_notes_use_the_publish_values_from_entity_information_once(at: FakeAutotask, make: Make) -> None:
    ticket_id = at.add_ticket()
    connector = make()
    for _ in range(2):
        await connector.add_note(str(ticket_id), "MSPclaw: RESOLVED", public=False)
        await connector.add_note(str(ticket_id), "Hi Maria, fixed.", public=True)
    internal, public = at.notes
    assert (internal["publish"], internal["noteType"], internal["title"]) == (2, 1, "MSPclaw")
    assert public["publish"] == 1
    notes = (await connector.get_ticket(str(ticket_id))).notes
    assert [(n.public, n.text) for n in notes] == [(False, "MSPclaw: RESOLVED"), (True, "Hi Maria, fixed.")]
    assert len(at.requests("GET", "/TicketNotes/entityInformation/fields")) == 1
    await make(internal_publish="Internal & Co-managed").add_note(str(ticket_id), "co-managed", public=False)
    assert at.notes[-1]["publish"] == 4
    with pytest.raises(PSARejected, match=r"no active 'Secret'.*'Internal Only'"):
        await make(internal_publish="Secret").add_note(str(ticket_id), "x", public=False)


async def test_a_note_whose_answer_timed_out_is_not_posted_again(at: FakeAutotask, make: Make) -> None:
    ticket_id = at.add_ticket()
    at.fail("POST", "/Notes", delay=3.0)  # stored at once, answered too late
    connector = make(timeout=1.0, max_retries=0)  # room for the other calls on a busy machine
    await connector.base()
    with pytest.raises(PSAUnavailable):
        await connector.add_note(str(ticket_id), "done", public=False)
    await connector.add_note(str(ticket_id), "done", public=False)
    assert len(at.notes) == 1


async def test_set_status_patches_the_picklist_value(at: FakeAutotask, make: Make) -> None:
    ticket_id = at.add_ticket()
    await make().set_status(str(ticket_id), "resolved")
    assert at.tickets[ticket_id]["status"] == 5
    assert at.requests("PATCH", "/Tickets")[0].body == {"id": ticket_id, "status": 5}
    assert (await make().get_ticket(str(ticket_id))).status == "resolved"
    await make().set_status(str(ticket_id), "escalated")
    assert (await make().get_ticket(str(ticket_id))).status == "escalated"
    with pytest.raises(PSARejected, match=r"no active 'Escalated'.*'Waiting Customer'"):
        await make(status_map={"escalated": "Escalated"}).set_status(str(ticket_id), "escalated")


async def test_validation_errors_arrive_as_500_and_are_rejections(at: FakeAutotask, make: Make) -> None:
    ticket_id = at.add_ticket()
    at.fail("POST", "/Notes", status=500, body={"errors": ["Title is required for this ticket category."]})
    with pytest.raises(PSARejected, match="Title is required"):
        await make().add_note(str(ticket_id), "x", public=False)
    at.fail("GET", "/Tickets/", status=500, body={"message": "database"}, times=4)
    with pytest.raises(PSAUnavailable, match=r"500.*after 4 attempts"):
        await make().get_ticket(str(ticket_id))


async def test_429_retry_after_is_honoured(at: FakeAutotask, make: Make, fake_time: FakeTime) -> None:
    ticket_id = at.add_ticket(contact=False)
    at.fail("GET", "/Tickets/", status=429, headers={"Retry-After": "30"}, body={"errors": ["threshold"]})
    await make().get_ticket(str(ticket_id))
    assert fake_time.sleeps == [30.0]
    at.fail("GET", "/Tickets/", status=429, times=4)
    with pytest.raises(PSARateLimited):
        await make().get_ticket(str(ticket_id))


async def test_never_more_than_three_requests_at_once(at: FakeAutotask, make: Make) -> None:
    ids = [at.add_ticket(contact=False) for _ in range(8)]
    connector = make()
    await connector.base()
    at.latency = 0.05
    found = await asyncio.gather(*(connector.get_ticket(str(i)) for i in ids))
    assert [t.id for t in found] == [str(i) for i in ids]
    assert at.most_in_flight == 3


async def test_the_hourly_limit_is_a_sliding_hour(make: Make) -> None:
    limiter = make(hourly_limit=5000).rate_limiter
    assert (limiter.limit, limiter.period) == (5000, 3600.0)
    assert make().rate_limiter.limit == 10_000


async def test_register_webhook_creates_a_ticket_webhook_with_a_status_field(at: FakeAutotask, make: Make) -> None:
    connector = make(notification_email="ops@acme-msp.example")
    said = await connector.register_webhook("https://msp.example/webhooks/autotask")
    assert "created" in said
    (hook,) = at.webhooks
    assert (hook["SecretKey"], hook["IsSubscribedToCreateEvents"], hook["NotificationEmailAddress"]) == (
        SECRET, True, "ops@acme-msp.example")
    assert at.webhook_fields == [{"webhookID": hook["id"], "FieldID": 14, "IsSubscribedField": True,
                                  "IsDisplayAlwaysField": False}]
    assert "already" in await connector.register_webhook("https://msp.example/webhooks/autotask")
    with pytest.raises(ConfigError, match="no webhook secret"):
        await make(webhook_secret=None).register_webhook("https://x")


# --- webhooks --------------------------------------------------------------------------------------


def hook(**kwargs: Any) -> AutotaskConnector:
    return AutotaskConnector(username="u@x", integration_code="c", secret="s",
                             **{"webhook_secret": SECRET, **kwargs})


async def test_a_signed_delivery_is_an_event_and_a_tampered_one_is_refused(at: FakeAutotask) -> None:
    headers, body = at.delivery(4001, secret=SECRET)
    event = hook().parse_webhook(headers, body)
    assert (event.psa, event.ticket_id, event.event) == ("autotask", "4001", "ticket.created")
    assert event.delivery_id and event.delivery_id.startswith("5b4f3c7e-")
    without_prefix = {"x-hook-signature": headers["X-Hook-Signature"].removeprefix("sha1=")}
    assert hook().parse_webhook(without_prefix, body).ticket_id == "4001"
    headers, body = at.delivery(4001, secret=SECRET, tamper=True)
    with pytest.raises(AuthError, match="does not match"):
        hook().parse_webhook(headers, body)
    headers, body = at.delivery(4001, secret="someone-else")
    with pytest.raises(AuthError, match="does not match"):
        hook().parse_webhook(headers, body)


async def test_a_delivery_outside_the_replay_window_is_refused(at: FakeAutotask) -> None:
    """EventTime is under the signature: a captured delivery stops working after the window."""
    sent = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    headers, body = at.delivery(4001, secret=SECRET, sent=sent)
    for later in (0, REPLAY_WINDOW_S - 1, -(REPLAY_WINDOW_S - 1)):
        assert hook(now=lambda later=later: sent.timestamp() + later).parse_webhook(headers, body).ticket_id == "4001"
    with pytest.raises(AuthError, match=r"is 301s old, outside the 300s replay window"):
        hook(now=lambda: sent.timestamp() + REPLAY_WINDOW_S + 1).parse_webhook(headers, body)
    with pytest.raises(AuthError, match=r"in the future"):
        hook(now=lambda: sent.timestamp() - REPLAY_WINDOW_S - 1).parse_webhook(headers, body)
    broken = body.replace(b'"EventTime": "', b'"EventTime": "not ')
    with pytest.raises(MalformedWebhook, match=r"EventTime is not a time"):
        hook().parse_webhook({"X-Hook-Signature": sign_hook(SECRET, broken)}, broken)
    unsigned_time = json.dumps({"EntityType": "Ticket", "Id": 4001}).encode()  # no EventTime: nothing to check
    assert hook().parse_webhook({"X-Hook-Signature": sign_hook(SECRET, unsigned_time)}, unsigned_time).ticket_id


def test_missing_signature_or_secret_is_refused() -> None:
    with pytest.raises(AuthError, match="no X-Hook-Signature"):
        hook().parse_webhook({}, b"{}")
    with pytest.raises(AuthError, match="no webhook secret"):
        hook(webhook_secret=None).parse_webhook({"X-Hook-Signature": "sha1=x"}, b"{}")


@pytest.mark.parametrize("data", [{"EntityType": "Company", "Id": 1}, {"EntityType": "Ticket"},
                                  {"EntityType": "Ticket", "Id": "abc"}, [1]])
def test_signed_bodies_that_are_not_ticket_events_are_malformed(data: object) -> None:
    body = json.dumps(data).encode()
    with pytest.raises(MalformedWebhook):
        hook().parse_webhook({"X-Hook-Signature": sign_hook(SECRET, body)}, body)
