"""The ConnectWise connector against a local server following the vendor reference's documented shapes
(``connectwise_server.py``: ConnectWise's OpenAPI document is not kept in shared/specs). Retry waits
run on the fake clock; the fixture fails a test when the connector sent a request the server refuses
as not following those shapes."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from tests.connectors.connectwise_server import FakeConnectWise, run_connectwise

from mspclaw.connectors.base import PreparesWebhooks, PSAConnector, RegistersWebhooks
from mspclaw.connectors.connectwise import (
    KEY_FETCHES_PER_MINUTE,
    KEY_REFETCH_S,
    MAX_CACHED_KEYS,
    ConnectWiseConnector,
    sign_callback,
    site_origin,
)
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
Make = Callable[..., ConnectWiseConnector]


@pytest.fixture
async def cw() -> AsyncIterator[FakeConnectWise]:
    async with run_connectwise() as fake:
        yield fake
        assert fake.violations == [], f"the connector sent requests ConnectWise would refuse: {fake.violations}"


@pytest.fixture
async def make(cw: FakeConnectWise, fake_time: FakeTime) -> AsyncIterator[Make]:
    made: list[ConnectWiseConnector] = []

    def factory(**kwargs: Any) -> ConnectWiseConnector:
        options: dict[str, Any] = {"site": cw.url, "company": cw.company, "public_key": cw.public_key,
                                   "private_key": cw.private_key, "client_id": cw.client_id,
                                   "sleep": fake_time.sleep, "clock": fake_time.clock, **kwargs}
        connector = ConnectWiseConnector(**options)
        made.append(connector)
        return connector

    yield factory
    for connector in made:
        await connector.aclose()


def test_it_implements_the_connector_protocols() -> None:
    connector = ConnectWiseConnector(site="api-na.myconnectwise.net", company="acme", public_key="p",
                                     private_key="k", client_id="c")
    assert isinstance(connector, PreparesWebhooks) and isinstance(connector, RegistersWebhooks)
    psa: PSAConnector = connector
    assert psa.name == "connectwise" and connector.origin == "https://api-na.myconnectwise.net"


def test_bad_configuration_is_refused_saying_what_is_missing() -> None:
    with pytest.raises(ConfigError, match=r"private key, client id"):
        ConnectWiseConnector(site="api-na.myconnectwise.net", company="acme", public_key="p", private_key="",
                             client_id="")
    with pytest.raises(ConfigError, match=r"not a host name"):
        site_origin("https://api-na.myconnectwise.net/v4_6_release/apis/3.0")
    with pytest.raises(ConfigError, match=r"resolved/escalated"):
        ConnectWiseConnector(site="h", company="a", public_key="p", private_key="k", client_id="c",
                             status_map={"closed": "Closed"})


async def test_get_ticket_discovers_the_codebase_once_and_maps_the_ticket(cw: FakeConnectWise, make: Make) -> None:
    ticket_id = cw.add_ticket(summary="Outlook keeps asking for a password", custom={"Device": "ACME-PC-042"})
    connector = make(asset_field="device")
    ticket = await connector.get_ticket(str(ticket_id))
    assert (ticket.id, ticket.company, ticket.requester) == (str(ticket_id), "ACME", "maria@acme.example")
    assert (ticket.subject, ticket.body, ticket.asset, ticket.status) == (
        "Outlook keeps asking for a password", "It does not print.", "ACME-PC-042", "open")
    assert ticket.created_at is not None and ticket.created_at.tzinfo is not None
    await connector.get_ticket(str(ticket_id))
    assert len(cw.requests("GET", "/login/companyinfo/")) == 1
    first = cw.seen[1]
    assert first.path.startswith("/v2025_1/apis/3.0/") and first.headers["clientid"] == cw.client_id
    assert first.headers["accept"] == "application/vnd.connectwise.com+json; version=2025.16"


async def test_without_description_the_first_discussion_note_is_the_body(cw: FakeConnectWise, make: Make) -> None:
    ticket_id = cw.add_ticket(description=None, email=None)
    connector = make()
    await connector.add_note(str(ticket_id), "Screen is black", public=True)
    ticket = await connector.get_ticket(str(ticket_id))
    assert ticket.body == "Screen is black" and ticket.requester == "Maria Lopez"


async def test_missing_tickets_and_bad_keys_become_our_errors(cw: FakeConnectWise, make: Make) -> None:
    with pytest.raises(PSANotFound, match=r"Ticket recId 999 not found"):
        await make().get_ticket("999")
    with pytest.raises(PSAAuthError, match=r"401.*clientId"):
        await make(private_key="wrong").get_ticket("1001")
    with pytest.raises(PSANotFound, match=r"numbers"):
        await make().get_ticket("abc")


async def test_listing_since_uses_conditions_and_pages_by_1000(cw: FakeConnectWise, make: Make) -> None:
    base = datetime(2026, 11, 1, tzinfo=UTC)
    for i in range(1002):
        cw.add_ticket(summary=f"t{i}", updated=base + timedelta(minutes=i))
    found = await make().list_tickets(base + timedelta(minutes=500))
    assert len(found) == 501 and found[0].subject == "t501" and found[-1].subject == "t1001"
    listed = cw.requests("GET", "/service/tickets")
    assert listed[0].query["conditions"] == "lastUpdated > [2026-11-01T08:20:00Z]"
    assert listed[0].query["pageSize"] == "1000" and len(await make().list_tickets()) == 1002


async def test_account_conditions_narrow_the_listing(cw: FakeConnectWise, make: Make) -> None:
    cw.add_ticket(summary="mine")
    found = await make(conditions='board/name="Help Desk"').list_tickets(datetime(2020, 1, 1, tzinfo=UTC))
    assert [t.subject for t in found] == ["mine"]
    assert await make(conditions='board/name="Projects"').list_tickets() == []


async def test_internal_and_customer_notes_carry_their_flags_once(cw: FakeConnectWise, make: Make) -> None:
    ticket_id = cw.add_ticket()
    connector = make()
    for _ in range(2):
        await connector.add_note(str(ticket_id), "MSPclaw: RESOLVED\nsteps...", public=False)
        await connector.add_note(str(ticket_id), "Hi Maria, your printer works again.", public=True)
    internal, public = cw.notes[ticket_id]
    assert internal["internalAnalysisFlag"] is True and internal["detailDescriptionFlag"] is False
    assert internal["processNotifications"] is False
    assert public["detailDescriptionFlag"] is True and public["processNotifications"] is True
    ticket = await connector.get_ticket(str(ticket_id))
    assert [(n.public, n.text) for n in ticket.notes] == [(False, "MSPclaw: RESOLVED\nsteps..."),
                                                          (True, "Hi Maria, your printer works again.")]


async def test_a_note_whose_answer_timed_out_is_not_posted_again(cw: FakeConnectWise, make: Make) -> None:
    ticket_id = cw.add_ticket()
    cw.fail("POST", "/notes", delay=3.0)  # stored at once, answered too late
    connector = make(timeout=1.0, max_retries=0)  # room for the other calls on a busy machine
    with pytest.raises(PSAUnavailable, match=r"did not answer"):
        await connector.add_note(str(ticket_id), "done", public=False)
    await connector.add_note(str(ticket_id), "done", public=False)  # the job's retry
    assert len(cw.notes[ticket_id]) == 1


async def test_set_status_patches_the_board_status_by_name(cw: FakeConnectWise, make: Make) -> None:
    ticket_id = cw.add_ticket()
    connector = make()
    await connector.set_status(str(ticket_id), "resolved")
    (patch,) = cw.requests("PATCH")
    assert patch.body == [{"op": "replace", "path": "status", "value": {"id": 4}}]
    assert (await connector.get_ticket(str(ticket_id))).status == "resolved"
    with pytest.raises(PSARejected, match=r"no active status 'Escalated'.*'In Progress'"):
        await make(status_map={"escalated": "Escalated"}).set_status(str(ticket_id), "escalated")
    with pytest.raises(PSARejected, match=r"no active status 'closed \(cancelled\)'"):
        await make(status_map={"resolved": "closed (cancelled)"}).set_status(str(ticket_id), "resolved")


async def test_429_with_retry_after_is_honoured(cw: FakeConnectWise, make: Make, fake_time: FakeTime) -> None:
    ticket_id = cw.add_ticket()
    cw.fail("GET", "/service/tickets/", status=429, headers={"Retry-After": "7"},
            body={"code": "TooManyRequests", "message": "slow down"})
    assert (await make().get_ticket(str(ticket_id))).id == str(ticket_id)
    assert fake_time.sleeps == [7.0]
    cw.fail("GET", "/service/tickets/", status=429, headers={"Retry-After": "7"}, times=4)
    with pytest.raises(PSARateLimited, match=r"after 4 attempts"):
        await make().get_ticket(str(ticket_id))


async def test_5xx_is_retried_for_reads_but_not_for_note_posts(cw: FakeConnectWise, make: Make) -> None:
    ticket_id = cw.add_ticket()
    cw.fail("GET", "/service/tickets/", status=503, times=2)
    assert (await make().get_ticket(str(ticket_id))).id == str(ticket_id)
    cw.fail("POST", "/notes", status=500, body={"code": "Unexpected", "message": "database timeout"})
    with pytest.raises(PSAUnavailable, match=r"500.*database timeout"):
        await make().add_note(str(ticket_id), "x", public=False)
    assert len(cw.requests("POST", "/notes")) == 1


async def test_validation_errors_quote_connectwise(cw: FakeConnectWise, make: Make) -> None:
    ticket_id = cw.add_ticket()
    cw.fail("POST", "/notes", status=400, body={"code": "InvalidObject", "message": "ServiceNote object is invalid",
                                                "errors": [{"code": "NullOrEmpty", "message": "text is required",
                                                            "resource": "ServiceNote", "field": "text"}]})
    with pytest.raises(PSARejected, match=r"InvalidObject.*text is required"):
        await make().add_note(str(ticket_id), "x", public=False)


# --- callbacks -----------------------------------------------------------------------------------


async def test_a_signed_callback_is_verified_with_the_fetched_key_cached(cw: FakeConnectWise, make: Make) -> None:
    ticket_id = cw.add_ticket()
    connector = make()
    headers, body = cw.callback(ticket_id)
    await connector.prepare_webhook(headers, body)
    event = connector.parse_webhook(headers, body)
    assert (event.ticket_id, event.event, event.psa) == (str(ticket_id), "ticket.created", "connectwise")
    assert event.delivery_id
    headers2, body2 = cw.callback(ticket_id, action="updated")
    await connector.prepare_webhook(headers2, body2)
    assert connector.parse_webhook(headers2, body2).event == "ticket.updated"
    assert len(cw.requests("GET", "/system/callbacks/keys/")) == 1


async def test_a_tampered_callback_is_refused(cw: FakeConnectWise, make: Make) -> None:
    ticket_id = cw.add_ticket()
    connector = make()
    headers, body = cw.callback(ticket_id, tamper=True)
    with pytest.raises(AuthError, match=r"does not match"):
        await connector.prepare_webhook(headers, body)
    with pytest.raises(AuthError, match=r"not been fetched and verified"):
        connector.parse_webhook(headers, body)
    with pytest.raises(AuthError, match=r"no x-content-signature"):
        connector.parse_webhook({}, body)


async def test_a_rotated_key_is_fetched_again(cw: FakeConnectWise, make: Make, fake_time: FakeTime) -> None:
    ticket_id = cw.add_ticket()
    connector = make()
    key_id = cw.rotate_key()
    headers, body = cw.callback(ticket_id)
    await connector.prepare_webhook(headers, body)
    old = cw.signing_keys[key_id]
    cw.signing_keys[key_id] = "rotated-" + old  # same key_url, new key
    fake_time.now += KEY_REFETCH_S
    headers, body = cw.callback(ticket_id)
    await connector.prepare_webhook(headers, body)
    assert connector.parse_webhook(headers, body).ticket_id == str(ticket_id)
    assert len(cw.requests("GET", "/system/callbacks/keys/")) == 2


async def test_forged_signatures_cannot_make_us_refetch_the_key_again_and_again(cw: FakeConnectWise, make: Make,
                                                                               fake_time: FakeTime) -> None:
    ticket_id = cw.add_ticket()
    connector = make()
    headers, body = cw.callback(ticket_id)
    await connector.prepare_webhook(headers, body)  # the key, fetched and verified
    forged = {**headers, "x-content-signature": base64.b64encode(b"f" * 32).decode()}
    for _ in range(50):
        with pytest.raises(AuthError, match=r"does not match"):
            await connector.prepare_webhook(forged, body)
        fake_time.now += 2
    assert len(cw.requests("GET", "/system/callbacks/keys/")) == 2  # 100 s of forgeries: one refetch a minute
    await connector.prepare_webhook(headers, body)  # the genuine delivery still verifies, from the cache
    assert connector.parse_webhook(headers, body).ticket_id == str(ticket_id)


async def test_made_up_key_ids_are_fetched_within_a_budget_and_never_evict_a_good_key(
        cw: FakeConnectWise, make: Make, fake_time: FakeTime) -> None:
    ticket_id = cw.add_ticket()
    connector = make()
    headers, body = cw.callback(ticket_id)
    await connector.prepare_webhook(headers, body)
    for i in range(MAX_CACHED_KEYS * 3):
        forged_headers, forged = cw.callback(ticket_id, key_url=f"{cw.api}/system/callbacks/keys/made-up-{i}")
        with pytest.raises(AuthError, match=r"no signing key|fetched in the last minute"):
            await connector.prepare_webhook(forged_headers, forged)
        fake_time.now += 0.5
    fetches = len(cw.requests("GET", "/system/callbacks/keys/")) - 1
    assert fetches <= KEY_FETCHES_PER_MINUTE * 2  # 96 seconds of forgeries: at most two minutes' budget
    before = len(cw.seen)
    await connector.prepare_webhook(headers, body)
    assert connector.parse_webhook(headers, body).ticket_id == str(ticket_id)
    assert len(cw.seen) == before  # the good key is still cached: no request


@pytest.mark.parametrize("key_url", [
    "https://evil.example/key",
    "{localhost}/v2025_1/apis/3.0/system/callbacks/keys/k",
    "{https}/v2025_1/apis/3.0/system/callbacks/keys/k",
    "{other_port}/v2025_1/apis/3.0/system/callbacks/keys/k",
    "{user}/v2025_1/apis/3.0/system/callbacks/keys/k",
    "{site}/v2025_1/apis/3.0/service/tickets/1001",
    "{site}/v2025_1/apis/3.0/system/members",
    "{site}/v2025_1/apis/3.0/system/callbacks/keys/../../../service/tickets",
    "{site}/v2025_1/apis/3.0/system/callbacks/keys/k?conditions=x",
    "{site}/v2025_1/apis/3.0/system/callbacks/keys/k#x",
    "{site}/v2025_1/apis/3.0/system/callbacks/keys/k%2F..",
    "{site}/v2025_1/apis/3.0/system/callbacks/keys/",
    "{site}//apis/3.0/system/callbacks/keys/k",
    "{site}/login/companyinfo/acmemsp",
    "ftp://127.0.0.1/k",
    "not a url",
])
async def test_a_key_url_other_than_the_site_key_endpoint_is_never_fetched(cw: FakeConnectWise, make: Make,
                                                                          key_url: str) -> None:
    ticket_id = cw.add_ticket()
    connector = make()
    port = int(cw.url.rsplit(":", 1)[1])
    url = key_url.format(site=cw.url, localhost=cw.url.replace("127.0.0.1", "localhost"),
                         https=cw.url.replace("http://", "https://"), other_port=f"http://127.0.0.1:{port + 1}",
                         user=cw.url.replace("http://", "http://admin@"))
    headers, body = cw.callback(ticket_id, key_url=url)
    with pytest.raises(AuthError, match=r"not on the configured site|not the site's signing-key endpoint|no Metadata"):
        await connector.prepare_webhook(headers, body)
    with pytest.raises(AuthError):
        connector.parse_webhook(headers, body)
    assert cw.seen == []


async def test_implausible_callbacks_are_refused_without_any_request(cw: FakeConnectWise, make: Make) -> None:
    ticket_id = cw.add_ticket()
    connector = make()
    headers, body = cw.callback(ticket_id)
    with pytest.raises(MalformedWebhook, match=r"not JSON"):
        await connector.prepare_webhook(headers, b"{nope")
    with pytest.raises(AuthError, match=r"no x-content-signature"):
        await connector.prepare_webhook({}, body)
    for bad in ("not base64!", base64.b64encode(b"short").decode(), ""):
        with pytest.raises(AuthError, match=r"not base64 of an HMAC-SHA256|no x-content-signature"):
            await connector.prepare_webhook({"x-content-signature": bad}, body)
    with pytest.raises(AuthError, match=r"no Metadata.key_url"):
        await connector.prepare_webhook(headers, b'{"ID": 1, "Type": "ticket"}')
    with pytest.raises(MalformedWebhook, match=r"not a ticket"):
        await connector.prepare_webhook(headers, body.replace(b'"Type": "ticket"', b'"Type": "company"'))
    with pytest.raises(MalformedWebhook, match=r'no ticket "ID"'):
        await connector.prepare_webhook(headers, body.replace(b'"ID": %d' % ticket_id, b'"ID": null'))
    with pytest.raises(MalformedWebhook, match=r"Metadata"):
        await connector.prepare_webhook(headers, b'{"ID": 1, "Type": "ticket", "Metadata": [1]}')
    with pytest.raises(AuthError, match=r"for company 'othermsp', not the configured"):
        await connector.prepare_webhook(headers, body.replace(cw.company.encode(), b"othermsp"))
    assert cw.seen == []


async def test_key_fetch_failures_are_refusals_or_psa_errors(cw: FakeConnectWise, make: Make) -> None:
    ticket_id = cw.add_ticket()
    connector = make(max_retries=0)
    headers, body = cw.callback(ticket_id, key_url=f"{cw.api}/system/callbacks/keys/gone")
    with pytest.raises(AuthError, match=r"no signing key at the callback's key_url"):
        await connector.prepare_webhook(headers, body)
    headers, body = cw.callback(ticket_id)
    cw.fail("GET", "/system/callbacks/keys/", status=503)
    with pytest.raises(PSAUnavailable, match=r"ConnectWise failed \(503\)"):
        await connector.prepare_webhook(headers, body)


async def test_unreadable_or_foreign_callbacks(cw: FakeConnectWise, make: Make) -> None:
    ticket_id = cw.add_ticket()
    connector = make()
    headers, body = cw.callback(ticket_id)
    await connector.prepare_webhook(headers, body)
    foreign = body.replace(b'"Type": "ticket"', b'"Type": "company"')
    with pytest.raises(MalformedWebhook, match=r"not a ticket"):
        connector.parse_webhook({"x-content-signature": sign_callback(next(iter(cw.signing_keys.values())),
                                                                       foreign)}, foreign)


async def test_register_webhook_creates_one_owner_level_ticket_callback(cw: FakeConnectWise, make: Make) -> None:
    connector = make()
    said = await connector.register_webhook("https://msp.example/webhooks/connectwise")
    assert "created" in said
    (entry,) = cw.callbacks
    assert (entry["type"], entry["level"], entry["objectId"]) == ("Ticket", "Owner", 0)
    again = await connector.register_webhook("https://msp.example/webhooks/connectwise")
    assert "already" in again and len(cw.callbacks) == 1
    await make(callback_board_id=1).register_webhook("https://msp.example/webhooks/cw2")
    assert (cw.callbacks[1]["level"], cw.callbacks[1]["objectId"]) == ("Board", 1)
