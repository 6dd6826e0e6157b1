"""The local PSA simulator over real HTTP on loopback, and the connector that talks to it.

The simulator runs under uvicorn with ``run_local_psa``; the "MSPclaw side" of its webhooks is
a small Starlette receiver under uvicorn on another loopback port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mspclaw.connectors.base import PSAConnector, PSANote, PSATicket
from mspclaw.connectors.local import LocalPSA, LocalPSAConnector, sign_webhook
from mspclaw.errors import (
    AuthError,
    MalformedWebhook,
    PSAAuthError,
    PSANotFound,
    PSARejected,
    PSAUnavailable,
)
from mspclaw.simulators.local_psa import PSAStore, RunningPSA, run_local_psa

pytestmark = pytest.mark.anyio

SECRET = "whsec_test_0123456789"
FAST = (0.05, 0.1, 0.2)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Receiver:
    """The MSPclaw side: records every webhook POST; answers 503 to the first ``fail_first``."""

    url: str = ""
    fail_first: int = 0
    requests: int = 0
    received: asyncio.Queue[tuple[dict[str, str], bytes]] = field(default_factory=asyncio.Queue)

    async def next(self) -> tuple[dict[str, str], bytes]:
        return await asyncio.wait_for(self.received.get(), 5)


@contextlib.asynccontextmanager
async def receiver(fail_first: int = 0) -> AsyncIterator[Receiver]:
    rec = Receiver(fail_first=fail_first)

    async def hook(request: Request) -> Response:
        rec.requests += 1
        if rec.requests <= rec.fail_first:
            return Response("busy", status_code=503)
        rec.received.put_nowait((dict(request.headers), await request.body()))
        return Response(status_code=204)

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    rec.url = f"http://127.0.0.1:{sock.getsockname()[1]}/webhooks/local"
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=[Route("/webhooks/local", hook, methods=["POST"])]),
                                           log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        assert not task.done()
        await asyncio.sleep(0.01)
    try:
        yield rec
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raw(psa: RunningPSA, token: str | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=psa.base_url + "/api/v1",
                             headers={"Authorization": f"Bearer {token or psa.api_token}"})


def signed(body: bytes, *, secret: str = SECRET, at: float | None = None) -> dict[str, str]:
    stamp = str(int(time.time() if at is None else at))
    return {"X-LocalPSA-Timestamp": stamp, "X-LocalPSA-Signature": sign_webhook(secret, stamp, body)}


# --- REST API and connector ------------------------------------------------------------------------


async def test_samples_are_listed_oldest_first_with_psa_ids_and_timestamps() -> None:
    async with run_local_psa(samples=("Acme Dental", "ACME-WS-07")) as psa:
        tickets = await psa.connector.list_tickets()
        assert [t.id for t in tickets] == ["1001", "1002", "1003", "1004", "1005", "1006"]
        assert {t.company for t in tickets} == {psa.company_id}
        assert {t.asset for t in tickets} == {"ACME-WS-07"}
        assert tickets[0].requester == "maria.lopez@acme-dental.example"
        # a person's mailbox has a contact name; the shared front-desk mailbox has none
        assert (tickets[0].requester_name, tickets[3].requester_name) == ("Maria Lopez", None)
        assert all(t.created_at and t.created_at.tzinfo is not None for t in tickets)
        stamps = [t.updated_at or datetime.min for t in tickets]
        assert stamps == sorted(stamps) and len(set(stamps)) == 6
        async with raw(psa) as http:
            companies = (await http.get("/companies")).json()["companies"]
        assert [(c["id"], c["name"]) for c in companies] == [(psa.company_id, "Acme Dental")]


async def test_a_created_ticket_gets_the_next_id_and_real_timestamps() -> None:
    async with run_local_psa() as psa:
        company = await psa.connector.create_company("Beta Law")
        before = datetime.now(UTC)
        made = await psa.connector.create_ticket(company, requester="ann@beta.example", subject="VPN drops",
                                                 body="every hour", asset="BETA-LT-2", requester_name="Ann Ito")
        assert made.id == "1001" and made.company == company and made.status == "open"
        assert made.created_at is not None and before <= made.created_at <= datetime.now(UTC)
        again = await psa.connector.create_ticket(company, requester="bob@beta.example", subject="printer")
        assert again.id == "1002" and again.asset is None
        got = await psa.connector.get_ticket("1001")
        assert (got.subject, got.body, got.asset, got.notes) == ("VPN drops", "every hour", "BETA-LT-2", [])
        assert got.requester_name == "Ann Ito" and again.requester_name is None


async def test_listing_follows_pages_and_filters_on_updated_since() -> None:
    async with run_local_psa(samples=("Acme Dental", None)) as psa:
        async with raw(psa) as http:
            first = (await http.get("/tickets", params={"page": 1, "page_size": 4})).json()
            second = (await http.get("/tickets", params={"page": 2, "page_size": 4})).json()
            bad = await http.get("/tickets", params={"updated_since": "yesterday"})
        assert [t["id"] for t in first["tickets"]] == ["1001", "1002", "1003", "1004"] and first["has_more"]
        assert [t["id"] for t in second["tickets"]] == ["1005", "1006"] and not second["has_more"]
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_request"

        async with LocalPSAConnector(psa.base_url, psa.api_token, page_size=4) as paged:
            listed = await paged.list_tickets()
            assert [t.id for t in listed] == ["1001", "1002", "1003", "1004", "1005", "1006"]
            mark = listed[-1].updated_at
            assert mark is not None
            assert await paged.list_tickets(since=mark) == []
            await paged.set_status("1003", "resolved")
            await paged.add_note("1001", "looked at it", public=False)
            changed = await paged.list_tickets(since=mark)
        assert [t.id for t in changed] == ["1003", "1001"]
        assert all(t.updated_at and t.created_at and t.updated_at > mark > t.created_at for t in changed)
        naive = await psa.connector.list_tickets(since=mark.replace(tzinfo=None))
        assert [t.id for t in naive] == ["1003", "1001"]


async def test_notes_are_public_or_private_and_the_same_note_is_posted_once() -> None:
    async with run_local_psa(samples=("Acme Dental", None)) as psa:
        c = psa.connector
        await c.add_note("1002", "Restarted the WiFi adapter.", public=False)
        await c.add_note("1002", "Hi Tom, your internet is back.", public=True)
        await c.add_note("1002", "Restarted the WiFi adapter.", public=False)
        await c.add_note("1002", "Restarted the WiFi adapter.", public=True)
        ticket = await c.get_ticket("1002")
        assert ticket.notes == [PSANote("Restarted the WiFi adapter.", False),
                                PSANote("Hi Tom, your internet is back.", True),
                                PSANote("Restarted the WiFi adapter.", True)]
        async with raw(psa) as http:
            notes = (await http.get("/tickets/1002/notes")).json()["notes"]
        assert [n["id"] for n in notes] == ["1", "2", "3"] and {n["ticket_id"] for n in notes} == {"1002"}
        assert all(datetime.fromisoformat(n["created_at"]).tzinfo is not None for n in notes)


class TimeoutAfterPost(httpx.AsyncBaseTransport):
    """The real network, except that the first note POST times out on the way back: it reached
    the simulator, which stored the note, but the connector never hears so (a lost answer)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.sent: list[str] = []
        self.lost = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        self.sent.append(f"{request.method} {request.url.path.removeprefix('/api/v1')}")
        if request.method == "POST" and request.url.path.endswith("/notes") and not self.lost:
            self.lost = True
            await response.aclose()
            raise httpx.ReadTimeout("the answer was lost", request=request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_notes_read_or_posted_recently_are_not_read_again() -> None:
    """Intake reads the ticket with its notes (one request), then the internal note and the public reply
    go out without reading the notes again, and a retried write-back finds its note posted."""
    async with run_local_psa(samples=("Acme Dental", None)) as psa:
        transport = TimeoutAfterPost()
        transport.lost = True  # no lost answer in this test
        async with LocalPSAConnector(psa.base_url, psa.api_token, transport=transport) as c:
            await c.get_ticket("1002")
            await c.add_note("1002", "Cleared 2 GB of temp files.", public=False)
            await c.add_note("1002", "Hi Tom, your disk has room again.", public=True)
            await c.add_note("1002", "Cleared 2 GB of temp files.", public=False)  # a retried write-back
        assert transport.sent == ["GET /tickets/1002", "POST /tickets/1002/notes",
                                  "POST /tickets/1002/notes"]
        assert [n.text for n in psa.store.notes("1002")] == ["Cleared 2 GB of temp files.",
                                                             "Hi Tom, your disk has room again."]


async def test_a_note_whose_post_timed_out_is_not_posted_again_by_the_retry() -> None:
    async with run_local_psa(samples=("Acme Dental", None)) as psa:
        transport = TimeoutAfterPost()
        async with LocalPSAConnector(psa.base_url, psa.api_token, transport=transport) as c:
            await c.get_ticket("1002")
            with pytest.raises(PSAUnavailable):
                await c.add_note("1002", "Cleared 2 GB of temp files.", public=False)
            await c.add_note("1002", "Cleared 2 GB of temp files.", public=False)  # the job's retry
        assert transport.sent[-2:] == ["POST /tickets/1002/notes", "GET /tickets/1002/notes"]
        assert [n.text for n in psa.store.notes("1002")] == ["Cleared 2 GB of temp files."]


async def test_notes_remembered_too_long_ago_are_read_again() -> None:
    """A note added on the PSA by someone else since is seen once the remembered notes are stale."""
    now = [1000.0]
    async with run_local_psa(samples=("Acme Dental", None)) as psa:
        async with LocalPSAConnector(psa.base_url, psa.api_token, clock=lambda: now[0]) as c, raw(psa) as http:
            await c.get_ticket("1002")
            (await http.post("/tickets/1002/notes", json={"text": "Done by hand.", "public": False})).raise_for_status()
            now[0] += 61
            await c.add_note("1002", "Done by hand.", public=False)
        assert [n.text for n in psa.store.notes("1002")] == ["Done by hand."]


async def test_set_status_uses_the_simulator_status_names() -> None:
    async with run_local_psa(samples=("Acme Dental", None)) as psa:
        await psa.connector.set_status("1001", "resolved")
        await psa.connector.set_status("1004", "escalated")
        async with raw(psa) as http:
            assert (await http.get("/tickets/1001")).json()["status"] == "Resolved"
            assert (await http.get("/tickets/1004")).json()["status"] == "Escalated"
            assert (await http.get("/tickets/1002")).json()["status"] == "New"
            bad = await http.patch("/tickets/1002", json={"status": "resolved"})
            assert bad.status_code == 400 and "status" in bad.json()["error"]["message"]
        assert (await psa.connector.get_ticket("1001")).status == "resolved"
        assert (await psa.connector.get_ticket("1004")).status == "escalated"
        assert (await psa.connector.get_ticket("1002")).status == "open"


async def test_http_errors_become_the_psa_error_tree() -> None:
    async with run_local_psa(samples=("Acme Dental", None)) as psa:
        async with raw(psa, token="wrong") as http:
            refused = await http.get("/tickets")
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "unauthorized"
        async with LocalPSAConnector(psa.base_url, "wrong") as bad:
            with pytest.raises(PSAAuthError) as auth:
                await bad.get_ticket("1001")
        assert isinstance(auth.value.__cause__, httpx.HTTPStatusError)

        with pytest.raises(PSANotFound, match="no ticket '9999'"):
            await psa.connector.get_ticket("9999")
        with pytest.raises(PSANotFound):
            await psa.connector.add_note("9999", "x", public=False)
        with pytest.raises(PSANotFound):
            await psa.connector.set_status("../companies", "resolved")
        with pytest.raises(PSARejected, match="company_id"):
            await psa.connector.create_ticket("404", requester="a@b.example", subject="x")
        with pytest.raises(PSARejected, match="requester"):
            await psa.connector.create_ticket(psa.company_id or "", requester="not an email", subject="x")
        async with raw(psa) as http:
            missing = await http.get("/tickets/9999")
            not_json = await http.post("/tickets", content=b"{nope")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        assert not_json.status_code == 400 and not_json.json()["error"]["code"] == "bad_request"

    async with LocalPSAConnector(f"http://127.0.0.1:{closed_port()}", "token") as nowhere:
        with pytest.raises(PSAUnavailable) as down:
            await nowhere.list_tickets()
    assert isinstance(down.value.__cause__, httpx.TransportError) and down.value.retryable


async def test_a_store_on_disk_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "psa.json"
    async with run_local_psa(samples=("Acme Dental", "WS-1"), store=PSAStore(path)) as psa:
        await psa.connector.add_note("1003", "checked", public=False)
        await psa.connector.set_status("1003", "resolved")
        before = await psa.connector.get_ticket("1003")
    async with run_local_psa(samples=("Acme Dental", "WS-1"), store=PSAStore(path)) as psa:
        after = await psa.connector.get_ticket("1003")
        assert after == before
        assert len(await psa.connector.list_tickets()) == 6
        made = await psa.connector.create_ticket(psa.company_id or "", requester="x@acme.example", subject="new")
        assert made.id == "1007" and made.created_at and before.updated_at and made.created_at > before.updated_at
        async with raw(psa) as http:
            assert len((await http.get("/companies")).json()["companies"]) == 1


async def test_the_in_memory_psa_keeps_the_same_promises() -> None:
    memory = LocalPSA.with_samples("acme-dental", "WS-1")
    psa: PSAConnector = memory
    listed = await psa.list_tickets()
    assert [t.id for t in listed] == ["1001", "1002", "1003", "1004", "1005", "1006"]
    mark = listed[-1].updated_at
    await psa.add_note("1002", "done", public=False)
    await psa.add_note("1002", "done", public=False)
    await psa.set_status("1002", "resolved")
    ticket = await psa.get_ticket("1002")
    assert ticket.notes == [PSANote("done", False)] and ticket.status == "resolved"
    assert [t.id for t in await psa.list_tickets(since=mark)] == ["1002"]
    memory.add(PSATicket(id="7", company="acme-dental", requester="a@b.example", subject="s", body="b"))
    assert "7" in memory._tickets
    with pytest.raises(PSANotFound):
        await psa.get_ticket("nope")
    with pytest.raises(AuthError):
        psa.parse_webhook({}, b"{}")


# --- webhooks --------------------------------------------------------------------------------------


async def test_a_new_ticket_sends_a_signed_webhook_that_the_connector_verifies() -> None:
    async with receiver() as rec, run_local_psa(webhook_url=rec.url, webhook_secret=SECRET) as psa:
        company = await psa.connector.create_company("Acme Dental")
        made = await psa.connector.create_ticket(company, requester="maria@acme.example", subject="disk full")
        headers, body = await rec.next()
        event = psa.connector.parse_webhook(headers, body)
        assert (event.psa, event.ticket_id, event.event) == ("local", made.id, "ticket.created")
        data = json.loads(body)
        assert event.delivery_id == data["delivery_id"] == headers["x-localpsa-delivery"]
        assert abs(int(headers["x-localpsa-timestamp"]) - time.time()) < 5
        assert headers["x-localpsa-signature"].startswith("sha256=")
        assert datetime.fromisoformat(data["occurred_at"]).tzinfo is not None
        upper = {k.upper(): v for k, v in headers.items()}
        assert psa.connector.parse_webhook(upper, body) == event


async def test_opened_samples_each_send_a_webhook() -> None:
    async with receiver() as rec, run_local_psa(webhook_url=rec.url, webhook_secret=SECRET) as psa:
        opened = await psa.open_samples("Acme Dental", "ACME-WS-07")
        assert [t.id for t in opened] == ["1001", "1002", "1003", "1004", "1005", "1006"]
        events = [psa.connector.parse_webhook(*await rec.next()) for _ in opened]
        assert sorted(e.ticket_id for e in events) == [t.id for t in opened]
        assert len({e.delivery_id for e in events}) == 6
        assert {t.company for t in await psa.connector.list_tickets()} == {psa.company_id}


async def test_tampered_wrongly_signed_or_stale_webhooks_are_refused() -> None:
    async with receiver() as rec, run_local_psa(webhook_url=rec.url, webhook_secret=SECRET,
                                                samples=("Acme Dental", None)) as psa:
        await psa.connector.create_ticket(psa.company_id or "", requester="a@acme.example", subject="help")
        headers, body = await rec.next()
        psa.connector.parse_webhook(headers, body)

        tampered = body.replace(b'"ticket_id": "1007"', b'"ticket_id": "1001"')
        assert tampered != body
        with pytest.raises(AuthError, match="signature does not match"):
            psa.connector.parse_webhook(headers, tampered)
        async with LocalPSAConnector(psa.base_url, psa.api_token, webhook_secret="another-secret") as other:
            with pytest.raises(AuthError, match="signature does not match"):
                other.parse_webhook(headers, body)
        async with LocalPSAConnector(psa.base_url, psa.api_token) as unconfigured:
            with pytest.raises(AuthError, match="no webhook secret"):
                unconfigured.parse_webhook(headers, body)
        unsigned = {k: v for k, v in headers.items() if k != "x-localpsa-signature"}
        with pytest.raises(AuthError, match="no X-LocalPSA"):
            psa.connector.parse_webhook(unsigned, body)
        for skew in (-301, 301):
            with pytest.raises(AuthError, match="five minutes"):
                psa.connector.parse_webhook(signed(body, at=time.time() + skew), body)
        assert psa.connector.parse_webhook(signed(body, at=time.time() - 200), body).ticket_id == "1007"


async def test_a_correctly_signed_body_that_is_not_an_event_is_malformed() -> None:
    async with LocalPSAConnector("http://127.0.0.1:9", "token", webhook_secret=SECRET) as connector:
        for body in (b"{not json", b"\xff\xfe", b"[1, 2]", b'{"event": "ticket.created"}'):
            with pytest.raises(MalformedWebhook):
                connector.parse_webhook(signed(body), body)


async def test_a_redelivery_arrives_again_with_the_same_delivery_id() -> None:
    async with receiver() as rec, run_local_psa(webhook_url=rec.url, webhook_secret=SECRET) as psa:
        company = await psa.connector.create_company("Acme Dental")
        made = await psa.connector.create_ticket(company, requester="a@acme.example", subject="printer")
        first = psa.connector.parse_webhook(*await rec.next())
        async with raw(psa) as http:
            r = await http.post(f"/webhook-deliveries/{first.delivery_id}/redeliver")
            assert r.status_code == 202
            assert (await http.post("/webhook-deliveries/nope/redeliver")).status_code == 404
        second = psa.connector.parse_webhook(*await rec.next())
        assert second == first and second.ticket_id == made.id
        assert psa.webhooks is not None
        psa.webhooks.redeliver(first.delivery_id or "")
        assert psa.connector.parse_webhook(*await rec.next()) == first
        await psa.webhooks.drain()
        assert psa.webhooks.deliveries[first.delivery_id or ""].received == 3


async def test_failed_deliveries_are_retried_in_the_background() -> None:
    async with receiver(fail_first=2) as rec, run_local_psa(webhook_url=rec.url, webhook_secret=SECRET,
                                                            retry_delays=FAST) as psa:
        company = await psa.connector.create_company("Acme Dental")
        made = await psa.connector.create_ticket(company, requester="a@acme.example", subject="wifi")
        event = psa.connector.parse_webhook(*await rec.next())
        assert event.ticket_id == made.id and rec.requests == 3
        assert psa.webhooks is not None
        await psa.webhooks.drain()
        delivery = psa.webhooks.deliveries[event.delivery_id or ""]
        assert (delivery.status, delivery.attempts) == ("delivered", 3)


async def test_an_unreachable_receiver_never_blocks_the_api() -> None:
    url = f"http://127.0.0.1:{closed_port()}/webhooks/local"
    async with run_local_psa(webhook_url=url, webhook_secret=SECRET, retry_delays=(0.5, 0.5)) as psa:
        company = await psa.connector.create_company("Acme Dental")
        started = time.monotonic()
        await psa.connector.create_ticket(company, requester="a@acme.example", subject="vpn")
        assert time.monotonic() - started < 0.9, "the API call waited for the webhook retries"
        assert psa.webhooks is not None
        await psa.webhooks.drain()
        async with raw(psa) as http:
            [delivery] = (await http.get("/webhook-deliveries")).json()["deliveries"]
        assert (delivery["status"], delivery["attempts"]) == ("failed", 3)
        assert "ConnectError" in delivery["last_error"]
