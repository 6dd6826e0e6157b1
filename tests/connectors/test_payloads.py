"""Every connector reads vendor JSON through its private models, validated once where it arrives.

For each PSA, an answer shaped like the vendor's documented example (shared/reference/vendor-apis.md)
is served by ``httpx.MockTransport``: it parses into the ticket we expect. Then one field is
renamed or given the wrong type, as a vendor's API change would: the connector raises one
:class:`PSAError` naming the PSA, the request and the field's path, instead of a half-filled
ticket; and when the answer that does not fit is the one ``add_note`` reads before it writes,
nothing is written. Last, hypothesis changes or drops any field of the recorded answers: the
connector gives the ticket or a PSA error, never another exception.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mspclaw.connectors.autotask import AutotaskConnector
from mspclaw.connectors.base import PSAConnector, PSANote
from mspclaw.connectors.connectwise import ConnectWiseConnector
from mspclaw.connectors.freshdesk import FreshdeskConnector
from mspclaw.connectors.halo import HaloConnector
from mspclaw.connectors.local import LocalPSAConnector
from mspclaw.connectors.payload import Payload, field_path, read
from mspclaw.connectors.superops import SuperOpsConnector
from mspclaw.errors import PSAError

pytestmark = pytest.mark.anyio

Routes = dict[tuple[str, str], Any]
"""(method, path or GraphQL operation) → the JSON answered."""


async def no_wait(seconds: float) -> None:
    return None


@dataclass
class Vendor:
    """A PSA's recorded answers, how to build its connector on them, and the changes to break them."""

    name: str
    make: Callable[[httpx.MockTransport], PSAConnector]
    routes: Routes
    ticket_id: str
    expected: dict[str, Any]
    notes: list[PSANote]
    break_ticket: Callable[[Routes], None]
    ticket_error: str
    """A regular expression the error must match: the PSA, the request and the field path."""
    break_notes: Callable[[Routes], None]
    notes_error: str
    writes: list[tuple[str, str]] = field(default_factory=list)
    """The requests that change something at the PSA."""


class Served:
    def __init__(self, routes: Routes) -> None:
        self.routes = routes
        self.requests: list[tuple[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        key = (request.method, request.url.path)
        if request.url.path == "/msp":  # SuperOps: one endpoint, answered by GraphQL operation
            found = re.search(r"(?:query|mutation) (\w+)", json.loads(request.content)["query"])
            assert found is not None
            key = (request.method, found.group(1))
        self.requests.append(key)
        return httpx.Response(200, json=self.routes[key]) if key in self.routes else httpx.Response(201, json={})


# --- the vendors' answers ------------------------------------------------------------------------

SO_TICKET = {
    "ticketId": "7928838372746166987", "displayId": "062822-0005", "subject": "Help! Internet is not working!",
    "ticketType": "INCIDENT", "source": "FORM",
    "client": {"accountId": "7928838372746166998", "name": "Acme Management Pvt. Ltd."},
    "site": {"id": "7928838372746169876", "name": "Austin"},
    "requester": {"userId": "5928838372746169876", "name": "John Williams"}, "status": "New",
    "createdTime": "2022-06-28T05:25:10", "updatedTime": "2022-06-29T10:25:10", "customFields": {"udf1text": "LT-042"}}
SO_NOTES = [{"noteId": "11", "content": "<p>Rebooted the router</p>", "addedOn": "2022-06-28T06:00:00",
             "privacyType": "PRIVATE"}]


def superops() -> Vendor:
    routes: Routes = {
        ("POST", "getTicket"): {"data": {
            "getTicket": SO_TICKET,
            "getTicketConversationList": [{"conversationId": "9", "content": "<div>The WiFi drops</div>",
                                           "time": "2022-06-28T05:25:10", "type": "DESCRIPTION"}],
            "getTicketNoteList": SO_NOTES}},
        ("POST", "getTicketNoteList"): {"data": {"getTicketNoteList": SO_NOTES}},
        ("POST", "createTicketNote"): {"data": {"createTicketNote": {"noteId": "12", "privacyType": "PRIVATE"}}},
    }

    def rename_account(r: Routes) -> None:
        client = r["POST", "getTicket"]["data"]["getTicket"]["client"]
        client["id"] = client.pop("accountId")

    def note_as_number(r: Routes) -> None:
        r["POST", "getTicketNoteList"]["data"]["getTicketNoteList"][0]["content"] = 42

    return Vendor(
        "superops",
        lambda t: SuperOpsConnector(subdomain="acme", token="so-token", endpoint="https://api.superops.ai/msp",
                                    asset_field="udf1text", transport=t, sleep=no_wait),
        routes, "7928838372746166987",
        {"company": "7928838372746166998", "requester": "John Williams", "subject": "Help! Internet is not working!",
         "body": "The WiFi drops", "asset": "LT-042", "status": "open",
         "created_at": datetime(2022, 6, 28, 5, 25, 10, tzinfo=UTC)},
        [PSANote("Rebooted the router", False)],
        rename_account, r"SuperOps answered POST /msp .*data\.getTicket\.client\.accountId: Field required",
        note_as_number, r"SuperOps answered POST /msp .*data\.getTicketNoteList\[0\]\.content: .*JSON number",
        writes=[("POST", "createTicketNote"), ("POST", "createTicketConversation")])


CW = "/v2025_1/apis/3.0"
CW_NOTES = [{"id": 11, "ticketId": 7, "text": "Called the user back", "detailDescriptionFlag": False,
             "internalAnalysisFlag": True, "resolutionFlag": False, "issueFlag": False,
             "member": {"id": 1, "identifier": "api", "name": "API"}, "dateCreated": "2026-11-30T09:30:00Z",
             "createdBy": "api", "internalFlag": True, "externalFlag": False}]


def connectwise() -> Vendor:
    routes: Routes = {
        ("GET", f"{CW}/service/tickets/7"): {
            "id": 7, "summary": "Printer offline", "recordType": "ServiceTicket",
            "board": {"id": 1, "name": "Help Desk"}, "status": {"id": 16, "name": "New"},
            "company": {"id": 250, "identifier": "ACME", "name": "Acme Inc."},
            "contact": {"id": 77, "name": "Maria Lopez"}, "contactEmailAddress": "maria@acme.example",
            "initialDescription": "It does not print.", "closedFlag": False,
            "customFields": [{"id": 4, "caption": "Asset", "type": "Text", "entryMethod": "EntryField",
                              "numberOfDecimals": 0, "value": "ACME-LT-042"}],
            "_info": {"dateEntered": "2026-11-30T09:00:00Z", "lastUpdated": "2026-11-30T10:00:00Z",
                      "updatedBy": "api"}},
        ("GET", f"{CW}/service/tickets/7/notes"): CW_NOTES,
    }

    def rename_company(r: Routes) -> None:
        ticket = r["GET", f"{CW}/service/tickets/7"]
        ticket["companyRef"] = ticket.pop("company")

    def text_as_number(r: Routes) -> None:
        r["GET", f"{CW}/service/tickets/7/notes"][0]["text"] = 42

    return Vendor(
        "connectwise",
        lambda t: ConnectWiseConnector(site="https://api-na.myconnectwise.net", company="acme", public_key="pub",
                                       private_key="priv", client_id="cid", codebase="v2025_1", asset_field="Asset",
                                       transport=t, sleep=no_wait),
        routes, "7",
        {"company": "ACME", "requester": "maria@acme.example", "subject": "Printer offline",
         "body": "It does not print.", "asset": "ACME-LT-042", "status": "open",
         "created_at": datetime(2026, 11, 30, 9, 0, tzinfo=UTC)},
        [PSANote("Called the user back", False)],
        rename_company, rf"ConnectWise answered GET {CW}/service/tickets/7 .*: company: Field required",
        text_as_number, rf"ConnectWise answered GET {CW}/service/tickets/7/notes .*: \[0\]\.text: .*JSON number",
        writes=[("POST", f"{CW}/service/tickets/7/notes")])


HALO_ACTIONS = {"record_count": 1, "actions": [
    {"id": 3, "ticket_id": 7, "outcome": "Private Note", "note": "Checked the spooler", "hiddenfromuser": True,
     "datetime": "2026-11-30T09:30:00"}]}


def halo() -> Vendor:
    routes: Routes = {
        ("POST", "/auth/token"): {"access_token": "halo-token", "token_type": "Bearer", "expires_in": 3600},
        ("GET", "/api/Tickets/7"): {
            "id": 7, "summary": "Printer offline", "details": "<p>It does not print.</p>", "status_id": 1,
            "status_name": "New", "client_id": 12, "client_name": "Acme Dental", "site_id": 3, "user_id": 41,
            "user_name": "Maria Lopez", "user_email": "maria@acme.example", "tickettype_id": 1,
            "datecreated": "2026-11-30T09:00:00", "lastactiondate": "2026-11-30T10:00:00", "hasbeenclosed": False,
            "assets": [{"id": 5, "inventory_number": "ACME-LT-042"}]},
        ("GET", "/api/Actions"): HALO_ACTIONS,
    }

    def rename_client(r: Routes) -> None:
        ticket = r["GET", "/api/Tickets/7"]
        ticket["clientid"] = ticket.pop("client_id")

    def note_as_number(r: Routes) -> None:
        r["GET", "/api/Actions"]["actions"][0]["note"] = 42

    return Vendor(
        "halo",
        lambda t: HaloConnector(host="acme.halopsa.com", client_id="cid", client_secret="secret", transport=t,
                                sleep=no_wait),
        routes, "7",
        {"company": "12", "requester": "maria@acme.example", "subject": "Printer offline",
         "body": "It does not print.", "asset": "ACME-LT-042", "status": "open",
         "created_at": datetime(2026, 11, 30, 9, 0, tzinfo=UTC)},
        [PSANote("Checked the spooler", False)],
        rename_client, r"Halo answered GET /api/Tickets/7 .*: client_id: Field required",
        note_as_number, r"Halo answered GET /api/Actions .*: actions\[0\]\.note: .*JSON number",
        writes=[("POST", "/api/Actions")])


AT = "/atservicesrest/v1.0"
AT_NOTES = {"items": [{"id": 90, "ticketID": 7, "title": "MSPclaw", "description": "Asked the user to reboot",
                       "noteType": 1, "publish": 2, "createDateTime": "2026-11-30T09:30:00Z"}],
            "pageDetails": {"count": 1, "requestCount": 500, "prevPageUrl": None, "nextPageUrl": None}}


def autotask() -> Vendor:
    def picklist(*values: tuple[str, str, bool]) -> list[dict[str, Any]]:
        return [{"value": v, "label": label, "isDefaultValue": default, "sortOrder": 0, "isActive": True,
                 "isSystem": True} for v, label, default in values]

    routes: Routes = {
        ("GET", f"{AT}/Tickets/7"): {"item": {
            "id": 7, "ticketNumber": "T20261130.0007", "title": "Printer offline", "description": "It does not print.",
            "status": 1, "companyID": 175, "contactID": 30, "configurationItemID": 40,
            "createDate": "2026-11-30T09:00:00.000Z", "lastActivityDate": "2026-11-30T10:00:00Z", "priority": 2,
            "queueID": 8}},
        ("GET", f"{AT}/Contacts/30"): {"item": {"id": 30, "firstName": "Maria", "lastName": "Lopez",
                                                "emailAddress": "maria@acme.example", "companyID": 175}},
        ("GET", f"{AT}/ConfigurationItems/40"): {"item": {"id": 40, "referenceTitle": "ACME-LT-042"}},
        ("GET", f"{AT}/Tickets/entityInformation/fields"): {"fields": [
            {"name": "status", "dataType": "integer", "isPickList": True,
             "picklistValues": picklist(("1", "New", True), ("5", "Complete", False), ("8", "In Progress", False))}]},
        ("GET", f"{AT}/TicketNotes/entityInformation/fields"): {"fields": [
            {"name": "publish", "dataType": "integer", "isPickList": True,
             "picklistValues": picklist(("1", "All Autotask Users", True), ("2", "Internal Only", False))},
            {"name": "noteType", "dataType": "integer", "isPickList": True,
             "picklistValues": picklist(("1", "Task Summary", True))}]},
        ("POST", f"{AT}/TicketNotes/query"): AT_NOTES,
    }

    def rename_company(r: Routes) -> None:
        item = r["GET", f"{AT}/Tickets/7"]["item"]
        item["accountID"] = item.pop("companyID")

    def description_as_number(r: Routes) -> None:
        r["POST", f"{AT}/TicketNotes/query"]["items"][0]["description"] = 42

    return Vendor(
        "autotask",
        lambda t: AutotaskConnector(username="api@acme.example", integration_code="code", secret="secret",
                                    zone_url="https://webservices5.autotask.net/atservicesrest/", transport=t,
                                    sleep=no_wait),
        routes, "7",
        {"company": "175", "requester": "maria@acme.example", "subject": "Printer offline",
         "body": "It does not print.", "asset": "ACME-LT-042", "status": "open",
         "created_at": datetime(2026, 11, 30, 9, 0, tzinfo=UTC)},
        [PSANote("Asked the user to reboot", False)],
        rename_company, rf"Autotask answered GET {AT}/Tickets/7 .*: item\.companyID: Field required",
        description_as_number, rf"Autotask answered POST {AT}/TicketNotes/query .*: items\[0\]\.description: .*number",
        writes=[("POST", f"{AT}/Tickets/7/Notes")])


FD = "/api/v2"
FD_CONVERSATIONS = [{"id": 5, "body": "<div>Asked for the printer model</div>",
                     "body_text": "Asked for the printer model", "incoming": False, "private": True, "user_id": 1,
                     "ticket_id": 7, "created_at": "2026-11-30T09:30:00Z", "updated_at": "2026-11-30T09:30:00Z"}]


def freshdesk() -> Vendor:
    routes: Routes = {
        ("GET", f"{FD}/tickets/7"): {
            "id": 7, "subject": "Printer offline", "description": "<div>It does not print.</div>",
            "description_text": "It does not print.", "status": 2, "priority": 1, "source": 1, "type": "Incident",
            "requester_id": 9007, "responder_id": None, "group_id": None, "company_id": 44, "tags": [],
            "custom_fields": {"cf_asset": "ACME-LT-042"}, "created_at": "2026-11-30T09:00:00Z",
            "updated_at": "2026-11-30T10:00:00Z",
            "requester": {"id": 9007, "name": "Maria Lopez", "email": "maria@acme.example", "mobile": None}},
        ("GET", f"{FD}/tickets/7/conversations"): FD_CONVERSATIONS,
    }

    def drop_updated(r: Routes) -> None:
        del r["GET", f"{FD}/tickets/7"]["updated_at"]

    def body_as_number(r: Routes) -> None:
        r["GET", f"{FD}/tickets/7/conversations"][0]["body_text"] = 42

    return Vendor(
        "freshdesk",
        lambda t: FreshdeskConnector(domain="acme", api_key="key", asset_field="cf_asset", transport=t, sleep=no_wait),
        routes, "7",
        {"company": "44", "requester": "maria@acme.example", "subject": "Printer offline",
         "body": "It does not print.", "asset": "ACME-LT-042", "status": "open",
         "created_at": datetime(2026, 11, 30, 9, 0, tzinfo=UTC)},
        [PSANote("Asked for the printer model", False)],
        drop_updated, rf"Freshdesk answered GET {FD}/tickets/7 .*: updated_at: Field required",
        body_as_number, rf"Freshdesk answered GET {FD}/tickets/7/conversations .*: \[0\]\.body_text: .*number",
        writes=[("POST", f"{FD}/tickets/7/notes"), ("POST", f"{FD}/tickets/7/reply")])


LOCAL_NOTES = [{"text": "Looking into it", "public": False}]


def local() -> Vendor:
    ticket = {"id": "T-1", "company_id": "c-acme", "requester": "maria@acme.example", "subject": "Printer offline",
              "body": "It does not print.", "asset": "ACME-LT-042", "status": "Open",
              "created_at": "2026-11-30T09:00:00+00:00", "updated_at": "2026-11-30T10:00:00+00:00"}
    routes: Routes = {
        ("GET", "/api/v1/tickets/T-1"): {**ticket, "notes": LOCAL_NOTES},
        ("GET", "/api/v1/tickets/T-1/notes"): {"notes": LOCAL_NOTES},
    }

    def rename_company(r: Routes) -> None:
        answer = r["GET", "/api/v1/tickets/T-1"]
        answer["company"] = answer.pop("company_id")

    def public_as_text(r: Routes) -> None:
        r["GET", "/api/v1/tickets/T-1/notes"]["notes"][0]["public"] = "perhaps"

    return Vendor(
        "local",
        lambda t: LocalPSAConnector("http://psa.example", "local-token", transport=t),
        routes, "T-1",
        {"company": "c-acme", "requester": "maria@acme.example", "subject": "Printer offline",
         "body": "It does not print.", "asset": "ACME-LT-042", "status": "open",
         "created_at": datetime(2026, 11, 30, 9, 0, tzinfo=UTC)},
        [PSANote("Looking into it", False)],
        rename_company, r"the local PSA answered GET /api/v1/tickets/T-1 .*: company_id: Field required",
        public_as_text, r"the local PSA answered GET /api/v1/tickets/T-1/notes .*: notes\[0\]\.public: .*boolean",
        writes=[("POST", "/api/v1/tickets/T-1/notes")])


VENDORS = [superops, connectwise, halo, autotask, freshdesk, local]


async def _closed(connector: PSAConnector) -> None:
    close = getattr(connector, "aclose", None)
    if close is not None:
        await close()


@pytest.mark.parametrize("vendor", [pytest.param(v, id=v.__name__) for v in VENDORS])
async def test_a_recorded_answer_parses_into_the_ticket(vendor: Callable[[], Vendor]) -> None:
    case = vendor()
    connector = case.make(httpx.MockTransport(Served(case.routes)))
    try:
        ticket = await connector.get_ticket(case.ticket_id)
    finally:
        await _closed(connector)
    assert {key: getattr(ticket, key) for key in case.expected} == case.expected
    assert ticket.notes == case.notes
    assert ticket.updated_at is not None and ticket.updated_at.tzinfo is UTC


@pytest.mark.parametrize("vendor", [pytest.param(v, id=v.__name__) for v in VENDORS])
async def test_a_renamed_or_missing_required_field_is_one_clear_error(vendor: Callable[[], Vendor]) -> None:
    case = vendor()
    routes = copy.deepcopy(case.routes)
    case.break_ticket(routes)
    connector = case.make(httpx.MockTransport(Served(routes)))
    try:
        with pytest.raises(PSAError) as caught:
            await connector.get_ticket(case.ticket_id)
    finally:
        await _closed(connector)
    assert type(caught.value) is PSAError and not caught.value.retryable
    assert re.search(case.ticket_error, caught.value.message), caught.value.message


@pytest.mark.parametrize("vendor", [pytest.param(v, id=v.__name__) for v in VENDORS])
async def test_nothing_is_written_on_the_strength_of_an_answer_that_does_not_fit(
        vendor: Callable[[], Vendor]) -> None:
    case = vendor()
    routes = copy.deepcopy(case.routes)
    case.break_notes(routes)
    served = Served(routes)
    connector = case.make(httpx.MockTransport(served))
    try:
        with pytest.raises(PSAError) as caught:
            await connector.add_note(case.ticket_id, "Cleared the print queue.", public=False)
    finally:
        await _closed(connector)
    assert re.search(case.notes_error, caught.value.message), caught.value.message
    assert served.requests, "the notes were read first"
    assert not [r for r in served.requests if r in case.writes], served.requests
    # the same connector, on the vendor's unbroken answer, does write: the check above could fail
    served = Served(copy.deepcopy(case.routes))
    connector = case.make(httpx.MockTransport(served))
    try:
        await connector.add_note(case.ticket_id, "Cleared the print queue.", public=False)
    finally:
        await _closed(connector)
    assert [r for r in served.requests if r in case.writes]


class _Sample(Payload):
    id: int
    tags: list[str]


def test_an_error_names_the_field_path_and_the_json_type_never_the_value() -> None:
    request = httpx.Request("GET", "https://psa.example/api/tickets?token=s3cret-query")
    answer = httpx.Response(200, json={"id": "s3cret-value", "tags": ["a", {"x": 1}]}, request=request)
    with pytest.raises(PSAError) as caught:
        read(_Sample, answer, service="Some PSA")
    message = caught.value.message
    assert message.startswith("Some PSA answered GET /api/tickets with a payload we cannot read: ")
    assert "id: Input should be a valid integer" in message and "(got a JSON string)" in message
    assert "tags[1]: Input should be a valid string (got a JSON object)" in message
    assert "s3cret" not in message
    not_json = httpx.Response(200, content=b"<html>maintenance</html>", request=request)
    with pytest.raises(PSAError, match=r"Some PSA answered GET /api/tickets with something that is not JSON"):
        read(_Sample, not_json, service="Some PSA")
    assert field_path(("data", "tickets", 3, "id")) == "data.tickets[3].id"
    assert field_path((2, "text")) == "[2].text"
    assert field_path(()) == "(the answer)"


# --- fuzz: any change to a recorded answer gives the ticket or a PSA error ------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6) | st.sampled_from(["", "2026-11-30T09:00:00Z", "7", "DESCRIPTION", "PUBLIC"]),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=4), inner, max_size=2),
    max_leaves=4)


def _paths(value: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


async def _ticket_or_psa_error(case: Vendor, routes: Routes) -> str:
    connector = case.make(httpx.MockTransport(Served(routes)))
    try:
        await connector.get_ticket(case.ticket_id)
    except PSAError as exc:
        return type(exc).__name__
    finally:
        await _closed(connector)
    return "ticket"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(VENDORS), st.data())
def test_fuzz_a_changed_answer_gives_the_ticket_or_a_psa_error(vendor: Callable[[], Vendor],
                                                               data: st.DataObject) -> None:
    case = vendor()
    routes = copy.deepcopy(case.routes)
    key = data.draw(st.sampled_from(sorted(routes, key=str)), label="answer")
    path = data.draw(st.sampled_from(_paths(routes[key])), label="field")
    if not path:
        routes[key] = data.draw(_JSON, label="value")
    else:
        parent = routes[key]
        for part in path[:-1]:
            parent = parent[part]
        if isinstance(parent, dict) and data.draw(st.booleans(), label="drop it"):
            del parent[path[-1]]
        else:
            parent[path[-1]] = data.draw(_JSON, label="value")
    outcome = asyncio.run(_ticket_or_psa_error(case, routes))
    assert outcome == "ticket" or outcome.startswith("PSA"), outcome
