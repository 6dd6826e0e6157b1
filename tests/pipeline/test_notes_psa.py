"""Each PSA gets the note as it shows notes, and gives the contact's name the reply greets: checked
against the local vendor servers of ``tests/connectors`` (each refuses a request its API would refuse).

HTML PSAs (Halo, Freshdesk, SuperOps) receive escaped HTML built from a handful of attribute-free
elements; text PSAs (ConnectWise, Autotask) receive the text itself, in which no Markdown link
survives. Either way a ``<script>`` or a link planted in the ticket or a tool's output stays inert."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from tests.connectors.autotask_server import run_autotask
from tests.connectors.connectwise_server import run_connectwise
from tests.connectors.freshdesk_server import run_freshdesk
from tests.connectors.halo_server import run_halo
from tests.connectors.superops_server import run_superops

from mspclaw.connectors.autotask import AutotaskConnector
from mspclaw.connectors.base import PSAConnector, PSATicket
from mspclaw.connectors.connectwise import ConnectWiseConnector
from mspclaw.connectors.freshdesk import FreshdeskConnector
from mspclaw.connectors.halo import HaloConnector
from mspclaw.connectors.local import LocalPSA
from mspclaw.connectors.superops import SuperOpsConnector
from mspclaw.engine.plan import RunResult, StepRecord
from mspclaw.pipeline.closing import Closing
from mspclaw.pipeline.notes import ReplyCheck, first_name, internal_note
from mspclaw.pipeline.routing import Route
from mspclaw.pipeline.session_ports import QuietSessions
from mspclaw.settings import Settings
from mspclaw.wiring import Services, build

pytestmark = pytest.mark.anyio
TOKEN, SUBDOMAIN = "so_api_token_0123456789", "acmemsp"
INJECTED = ('It broke <script>alert("x")</script> <img src=x onerror=alert(1)> '
            "[reset your password](https://evil.example/login)")


@dataclass
class Vendor:
    kind: str
    fmt: str
    run: Callable[[], AbstractAsyncContextManager[Any]]
    connector: Callable[[Any], Any]
    open_ticket: Callable[[Any], Any]
    bodies: Callable[[Any, Any], list[str]]
    """What the PSA stored as the bodies of the ticket's notes, as it received them."""


VENDORS = [
    Vendor("connectwise", "text", run_connectwise,
           lambda f: ConnectWiseConnector(site=f.url, company=f.company, public_key=f.public_key,
                                          private_key=f.private_key, client_id=f.client_id),
           lambda f: f.add_ticket(), lambda f, t: [n["text"] for n in f.notes[t]]),
    Vendor("autotask", "text", run_autotask,
           lambda f: AutotaskConnector(username=f.username, integration_code=f.integration_code, secret=f.secret,
                                       discovery_url=f.url),
           lambda f: f.add_ticket(), lambda f, t: [n["description"] for n in f.notes if n["ticketID"] == t]),
    Vendor("halo", "html", run_halo,
           lambda f: HaloConnector(host=f.url, client_id=f.client_id, client_secret=f.client_secret, tenant=f.tenant),
           lambda f: f.add_ticket(), lambda f, t: [a["note_html"] for a in f.notes(t)]),
    Vendor("freshdesk", "html", run_freshdesk,
           lambda f: FreshdeskConnector(domain="acme", api_key=f.api_key, base_url=f.url),
           lambda f: f.add_ticket(), lambda f, t: [c["body"] for c in f.conversations[t]]),
    Vendor("superops", "html", lambda: run_superops(token=TOKEN, subdomain=SUBDOMAIN),
           lambda f: SuperOpsConnector(subdomain=SUBDOMAIN, token=TOKEN, endpoint=f.url),
           lambda f: f.add_ticket(), lambda f, t: [n["content"] for n in f.notes[t]]),
]


@pytest.fixture(params=VENDORS, ids=[v.kind for v in VENDORS])
async def psa(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Vendor, Any, Any]]:
    vendor: Vendor = request.param
    async with vendor.run() as fake:
        connector = vendor.connector(fake)
        try:
            yield vendor, fake, connector
        finally:
            await connector.aclose()
        assert getattr(fake, "violations", []) == [] and getattr(fake, "schema_errors", []) == []


class Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.attrs: list[tuple[str, str | None]] = []
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attrs += attrs

    def handle_data(self, data: str) -> None:
        self.text += data


def the_note() -> str:
    run = RunResult("resolved", "success check passed", "", [
        StepRecord(1, "p", "Look at the printers", "printer_queues", {}, True,
                   {"scheduler_running": True, "printers": [{"name": "HP <b>2F</b>"}], "jobs": 1,
                    "attention": ["[HP](https://evil.example/x)"], "paused": []})])
    return internal_note(playbook="printer", device="LT-7 (windows)", result=run, reason="success check passed",
                         approvals=[], subject="printer", body=INJECTED, requester="maria@acme.example")


async def test_the_contact_name_comes_from_the_psa(psa: tuple[Vendor, Any, Any]) -> None:
    vendor, fake, connector = psa
    ticket: PSATicket = await connector.get_ticket(str(vendor.open_ticket(fake)))
    expected = "John Williams" if vendor.kind == "superops" else "Maria Lopez"
    assert ticket.requester_name == expected
    assert first_name(ticket.requester_name) == expected.split()[0]


async def test_the_note_is_posted_as_the_psa_shows_notes_and_stays_inert(psa: tuple[Vendor, Any, Any]) -> None:
    vendor, fake, connector = psa
    typed: PSAConnector = connector
    assert typed.note_format == vendor.fmt
    ticket = vendor.open_ticket(fake)
    text = the_note()
    for _ in range(2):  # a retried write-back posts nothing twice
        await connector.add_note(str(ticket), text, public=False)
    (body,) = vendor.bodies(fake, ticket)
    if vendor.fmt == "html":
        parsed = Elements()
        parsed.feed(body)
        assert parsed.tags <= {"div", "strong", "ul", "li", "br"} and parsed.attrs == []
        assert "<script" not in body and '<script>alert("x")</script>' in parsed.text
        assert "<strong>What was checked</strong>" in body and "<li>Look at the printers (printer_queues):" in body
    else:
        assert body == text and "<script>" in body, "a text PSA shows the characters as written"
    assert "](" not in body and "[reset your password] (https://evil.example/login)" in body.replace("\n", " ")


async def test_an_autotask_ticket_without_contact_has_no_name() -> None:
    async with run_autotask() as fake:
        connector = AutotaskConnector(username=fake.username, integration_code=fake.integration_code,
                                      secret=fake.secret, discovery_url=fake.url)
        try:
            ticket = await connector.get_ticket(str(fake.add_ticket(contact=False)))
        finally:
            await connector.aclose()
    assert ticket.requester_name is None


async def test_a_superops_requester_without_a_name_is_greeted_neutrally() -> None:
    async with run_superops(token=TOKEN, subdomain=SUBDOMAIN) as fake:
        connector = SuperOpsConnector(subdomain=SUBDOMAIN, token=TOKEN, endpoint=fake.url)
        try:
            ticket_id = fake.add_ticket(requester={"userId": "77", "email": "front.desk@acme.example"})
            ticket = await connector.get_ticket(ticket_id)
        finally:
            await connector.aclose()
    assert ticket.requester == "front.desk@acme.example" and ticket.requester_name is None


# --- the closing greets the contact the PSA names ---------------------------------------------------


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    svc = build(Settings(data_dir=tmp_path / "data", api_key="k" * 20))
    yield svc
    svc.close()


@pytest.mark.parametrize(("name", "greeting"), [("Maria Lopez", "Hi Maria, "), ("Front Desk", "Hello, "),
                                                (None, "Hello, ")])
async def test_the_reply_greets_the_psa_contact_never_the_mailbox(services: Services, name: str | None,
                                                                  greeting: str) -> None:
    local = LocalPSA([PSATicket(id="41", company="acme", requester="front.desk@acme.example", subject="disk",
                                body="", requester_name=name)])
    closing = Closing(store=services.store, runs=services.tickets.runs, audit=services.audit, hub=services.hub,
                      events=services.events, connectors={"local": local}, reply_check=ReplyCheck([]),
                      quiet=QuietSessions(), observers=[])
    client = services.registry.add_client("Acme")
    ticket, session = services.store.open_ticket(client_id=client.id, subject="disk full", body="",
                                                 requester="front.desk@acme.example", device_id=None,
                                                 psa="local", external_id="41")
    result = RunResult("resolved", "success check passed", "we cleared old temporary files.", [])
    run = await closing.close(ticket, session, None, result, "success check passed",
                              Route(None, None, False, "no device"), [])
    assert run.reply == f"{greeting}we cleared old temporary files."
    assert (await local.get_ticket("41")).notes[1].text == run.reply


@pytest.mark.parametrize(("stored", "greeting"), [("Maria Lopez", "Hi Maria, "), ("", "Hello, ")])
async def test_the_name_read_at_intake_is_used_without_asking_the_psa_again(services: Services, stored: str,
                                                                            greeting: str) -> None:
    """Intake keeps the contact's name with the ticket ("" when the PSA gave none): the closing greets by it
    and does not read the ticket from the PSA a second time (here the PSA now says another name)."""
    local = LocalPSA([PSATicket(id="42", company="acme", requester="front.desk@acme.example", subject="disk",
                                body="", requester_name="Somebody Else")])
    closing = Closing(store=services.store, runs=services.tickets.runs, audit=services.audit, hub=services.hub,
                      events=services.events, connectors={"local": local}, reply_check=ReplyCheck([]),
                      quiet=QuietSessions(), observers=[])
    client = services.registry.add_client("Acme")
    ticket, session = services.store.open_ticket(client_id=client.id, subject="disk full", body="",
                                                 requester="front.desk@acme.example", device_id=None,
                                                 psa="local", external_id="42", requester_name=stored)
    assert services.store.ticket(ticket.id).requester_name == stored
    result = RunResult("resolved", "success check passed", "we cleared old temporary files.", [])
    run = await closing.close(ticket, session, None, result, "success check passed",
                              Route(None, None, False, "no device"), [])
    assert run.reply == f"{greeting}we cleared old temporary files."
