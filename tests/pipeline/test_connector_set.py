"""PSA accounts changed while the server runs, with no restart: a new account's webhook is accepted at once and
its ticket is worked and written back; a disabled account's webhook is refused with a clear message; enabled
again, the PSA's redelivery is taken; an account's poller starts and stops with it.

Real server (uvicorn, SQLite, the intake's workers) and MSPclaw's shipped local PSA simulator on loopback,
which signs and sends its own webhooks (``X-LocalPSA-Signature``) when a ticket is opened in it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import httpx
import pytest
from tests.conftest import live_server

from mspclaw.connectors.base import PSAConnector
from mspclaw.connectors.local import LocalPSA, sign_webhook
from mspclaw.pipeline.connector_set import AccountUnavailable, ConnectorSet
from mspclaw.simulators.local_psa import Delivery, run_local_psa

pytestmark = pytest.mark.anyio
HOOK = "lpsa-hook-secret-31c9"
TICKET = {"requester": "maria@acme.example", "subject": "printer offline", "body": "the printer in room 2 is offline"}


async def wait_for(predicate: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_a_connector_set_changes_in_one_step_and_names_a_disabled_account() -> None:
    first, second = LocalPSA(), LocalPSA()
    live = ConnectorSet({"a": first}, disabled=frozenset({"b"}))
    seen: dict[str, PSAConnector] = dict(live)  # a reader's snapshot is not changed under it
    assert "b" not in live and "b" not in live.taking
    assert live.put("b", second) is None and set(live.taking) == {"a", "b"} and seen == {"a": first}
    live.pause("a")  # takes no new tickets; the tickets it gave are still written back through it
    assert live["a"] is first and "a" not in live.taking and set(live.taking) == {"b"}
    with pytest.raises(AccountUnavailable) as caught:
        live.taking["a"]
    assert "PSA account 'a' is disabled" in caught.value.error.message and "/admin/psa" in caught.value.error.message
    assert live.resume("a") and live.taking["a"] is first
    assert live.drop("a") is first and live.resume("a") is False and live.disabled == frozenset()
    with pytest.raises(KeyError) as unknown:
        live.taking["a"]
    assert not isinstance(unknown.value, AccountUnavailable)


async def test_accounts_added_disabled_and_enabled_while_tickets_flow(tmp_path: Path) -> None:
    async with live_server(tmp_path, workers=2) as live, \
            run_local_psa(webhook_url=f"{live.url}/webhooks/lpsa", webhook_secret=HOOK, retry_delays=()) as psa:
        assert psa.webhooks is not None
        company = await psa.connector.create_company("Acme Dental")
        r = await live.http.post("/api/clients", json={"name": "Acme Dental", "psa_refs": {"lpsa": company}})
        assert r.status_code == 201, r.text

        before = await psa.connector.create_ticket(company, **TICKET)  # no account yet: unknown
        await psa.webhooks.drain()
        assert [(d.status, d.last_error) for d in psa.webhooks.deliveries.values()] == [("failed", "HTTP 404")]

        added = await live.http.post("/api/psa-accounts", json={
            "name": "lpsa", "kind": "local", "poll_interval_s": 0,
            "fields": {"base_url": psa.base_url, "token": psa.api_token, "webhook_secret": HOOK}})
        assert added.status_code == 201, added.text
        first = await psa.connector.create_ticket(company, **TICKET)
        await psa.webhooks.drain()
        assert _delivery(psa.webhooks.deliveries.values(), first.id).status == "delivered"
        await wait_for(lambda: [j.status for j in live.services.jobs.list()] == ["done"])
        await wait_for(lambda: any(n.text.startswith("MSPclaw") for n in psa.store.notes(first.id)))
        assert live.services.jobs.list()[0].payload["ticket_id"] == first.id

        assert (await live.http.post("/api/psa-accounts/lpsa/disable")).status_code == 200
        second = await psa.connector.create_ticket(company, **TICKET)
        await psa.webhooks.drain()
        refused = _delivery(psa.webhooks.deliveries.values(), second.id)
        assert (refused.status, refused.last_error) == ("failed", "HTTP 409")
        stamp = str(int(time.time()))
        async with httpx.AsyncClient(base_url=live.url) as sender:
            said = await sender.post("/webhooks/lpsa", content=refused.body, headers={
                "Content-Type": "application/json", "X-LocalPSA-Timestamp": stamp,
                "X-LocalPSA-Signature": sign_webhook(HOOK, stamp, refused.body)})
        assert said.status_code == 409
        assert said.json()["detail"]["message"].startswith(
            "PSA account 'lpsa' is disabled: MSPclaw takes no tickets from it until an admin enables it")
        assert len(live.services.jobs.list()) == 1

        assert (await live.http.post("/api/psa-accounts/lpsa/enable")).status_code == 200
        psa.webhooks.redeliver(refused.id)  # the PSA sends it again, as PSAs do after a failure
        await psa.webhooks.drain()
        assert _delivery(psa.webhooks.deliveries.values(), second.id).status == "delivered"
        await wait_for(lambda: [j.status for j in live.services.jobs.list()] == ["done", "done"])
        assert {j.payload["ticket_id"] for j in live.services.jobs.list()} == {first.id, second.id}
        assert before.id not in {j.payload["ticket_id"] for j in live.services.jobs.list()}


async def test_an_accounts_poller_starts_and_stops_with_it(tmp_path: Path) -> None:
    async with live_server(tmp_path, workers=1) as live, run_local_psa() as psa:
        company = await psa.connector.create_company("Acme Dental")
        await psa.connector.create_ticket(company, **TICKET)
        added = await live.http.post("/api/psa-accounts", json={
            "name": "polled", "kind": "local", "poll_interval_s": 0.1, "enabled": False,
            "fields": {"base_url": psa.base_url, "token": psa.api_token}})
        assert added.status_code == 201 and not live.services.psa_accounts.polling("polled")
        await asyncio.sleep(0.3)
        assert live.services.jobs.list() == []  # disabled: not polled

        assert (await live.http.post("/api/psa-accounts/polled/enable")).status_code == 200
        assert live.services.psa_accounts.polling("polled")
        await wait_for(lambda: [j.payload["source"] for j in live.services.jobs.list()] == ["poll"])

        assert (await live.http.post("/api/psa-accounts/polled/disable")).status_code == 200
        assert not live.services.psa_accounts.polling("polled")
        await psa.connector.create_ticket(company, **TICKET)
        await asyncio.sleep(0.4)
        assert len(live.services.jobs.list()) == 1  # the new ticket was not polled


def _delivery(deliveries: Iterable[Delivery], ticket_id: str) -> Delivery:
    found = [d for d in deliveries if d.ticket_id == ticket_id]
    assert len(found) == 1, found
    return found[0]
