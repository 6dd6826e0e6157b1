"""Working an escalation (take, hand over, close) through the service, on SQLite and on the PostgreSQL server
at ``TEST_POSTGRES_URL`` (each test in its own schema): who may act, who wins a race, what is audited, who is
told on Slack (a local stand-in checked against Block Kit, tests/webhook_sink.py) and the internal note the
PSA ticket gets (the in-memory PSA the package ships, ``connectors.local.LocalPSA``)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.store.conftest import DATABASE_KINDS, provision
from tests.webhook_sink import Sink, check_block_kit, webhook_sink

from mspclaw.connectors.base import PSATicket
from mspclaw.connectors.local import LocalPSA
from mspclaw.errors import Conflict, Forbidden, InvalidRequest, NotFound
from mspclaw.pipeline.access import Principal
from mspclaw.settings import Settings
from mspclaw.wiring import Services, build

pytestmark = pytest.mark.anyio

TECHS: list[dict[str, Any]] = [
    {"name": "Dana Scully", "email": "dana@msp.example", "role": "tech", "slack_id": "U0DANA",
     "clients": ["Acme Dental"]},
    {"name": "Fox Mulder", "email": "fox@msp.example", "role": "tech", "slack_id": "U0FOX", "clients": ["Acme Dental"]},
    {"name": "Eve Other", "email": "eve@beta.example", "role": "tech", "clients": ["Beta Law"]},
    {"name": "Vic Viewer", "email": "vic@msp.example", "role": "viewer", "clients": ["Acme Dental"]},
    {"name": "Ada Admin", "email": "ada@msp.example", "role": "admin", "clients": ["*"]},
]


class World:
    def __init__(self, svc: Services, psa: LocalPSA, sink: Sink) -> None:
        self.svc, self.psa, self.sink = svc, psa, sink

    def who(self, email: str) -> Principal:
        tech = self.svc.staff.techs.find(email)
        assert tech is not None
        return self.svc.staff.access.principal_for(tech)

    async def escalation(self, client_name: str = "Acme Dental", external_id: str = "T-1") -> str:
        client = next((c for c in self.svc.registry.clients() if c.name == client_name), None) \
            or self.svc.registry.add_client(client_name)
        self.psa.add(PSATicket(id=external_id, company=client.id, requester="maria@acme.example",
                               subject="printer jams", body="it jams on every page"))
        ticket, session = self.svc.store.open_ticket(client_id=client.id, subject="printer jams", body="",
                                                     requester="maria@acme.example", device_id=None, psa="local",
                                                     external_id=external_id)
        recorded = await self.svc.staff.escalations.record(ticket, session_id=session.id, kind="failed",
                                                         reason="step print_test failed", device=None)
        return recorded.row.id


@pytest.fixture(params=DATABASE_KINDS)
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    with provision(request.param, tmp_path) as db:
        async with webhook_sink() as sink:
            data = tmp_path / "data"
            data.mkdir()
            # a data directory of the release before the roster moved into the database: imported at build
            (data / "techs.yaml").write_text(yaml.safe_dump({"techs": TECHS, "channels": [
                {"name": "acme-slack", "kind": "slack", "url": sink.hook("acme"), "clients": ["Acme Dental"]}]}))
            psa = LocalPSA()
            svc = build(Settings(data_dir=data, api_key="k" * 20, database_url=db.url, notify_backoff_s=0.01,
                                 notify_retries=2), connectors={"local": psa})
            try:
                yield World(svc, psa, sink)
            finally:
                await svc.stop()  # the notifier's deliveries, the audit log's writer and its connection
                svc.close()


async def test_take_hand_over_close_audited_notified_and_noted(world: World) -> None:
    svc, handling = world.svc, world.svc.staff.handling
    es = await world.escalation()
    dana, fox = world.who("dana@msp.example"), world.who("fox@msp.example")

    taken = await handling.take(es, dana)
    assert (taken.state, taken.held_by, taken.held_by_name) == ("taken", "dana@msp.example", "Dana Scully")
    assert taken.taken_at is not None
    again = await handling.take(es, dana)  # a double click changes nothing and audits nothing more
    assert again.version == taken.version

    handed = await handling.hand_over(es, dana, to="fox@msp.example", note="printer driver reinstalled; "
                                                                            "check the tray sensor")
    assert (handed.state, handed.held_by, handed.handed_over_by) == ("handed_over", "fox@msp.example",
                                                                     "dana@msp.example")
    assert handed.handover_note == "printer driver reinstalled; check the tray sensor"
    # the new holder is told on the client's channel, mentioned by their Slack id, with a link to the escalation
    messages = await world.sink.wait_for("acme", 2)  # the escalation itself, then the hand-over
    check_block_kit(messages[-1])
    text = str(messages[-1]["blocks"])
    assert "<@U0FOX>" in text and "Handed over to you" in text and f"/escalations/{es}" in text
    assert "check the tray sensor" in text

    closed = await handling.close(es, fox, resolution="Replaced the tray sensor. password: hunter2")
    assert (closed.state, closed.closed_by) == ("closed", "fox@msp.example")
    assert closed.resolution is not None and "hunter2" not in closed.resolution  # secrets never stored
    (note,) = [n for n in (await world.psa.get_ticket("T-1")).notes]
    assert not note.public and "Replaced the tray sensor" in note.text and "Fox Mulder" in note.text
    assert "hunter2" not in note.text

    kinds = [(a.kind, a.actor) for a in svc.audit.query(kind=None) if a.kind.startswith("escalation_")]
    assert sorted(kinds) == sorted([("escalation_taken", "dana@msp.example"),
                                    ("escalation_handed_over", "dana@msp.example"),
                                    ("escalation_closed", "fox@msp.example")])
    (closing,) = svc.audit.query(kind="escalation_closed")
    assert closing.data["psa_note"] == "written" and "hunter2" not in str(closing.data)

    with pytest.raises(Conflict, match=re.escape("closed by fox@msp.example")):
        await handling.close(es, fox, resolution="again")
    with pytest.raises(Conflict, match="closed by"):
        await handling.take(es, dana)


async def test_two_technicians_take_at_once_the_first_wins_and_the_other_learns_who(world: World) -> None:
    handling = world.svc.staff.handling
    es = await world.escalation()
    dana, fox = world.who("dana@msp.example"), world.who("fox@msp.example")
    results = await asyncio.gather(handling.take(es, dana), handling.take(es, fox), return_exceptions=True)
    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, BaseException)]
    assert len(won) == 1 and len(lost) == 1, results
    assert isinstance(lost[0], Conflict)
    assert won[0].held_by is not None and won[0].held_by in lost[0].message
    assert len(world.svc.audit.query(kind="escalation_taken")) == 1
    # a change made from a stale read is refused by the store itself
    stale = world.svc.staff.escalation_store.get(es, None)
    assert world.svc.staff.escalation_store.change(es, version=stale.version - 1, values={"state": "open"}) is None


async def test_who_may_act(world: World) -> None:
    handling = world.svc.staff.handling
    es = await world.escalation()
    dana, fox = world.who("dana@msp.example"), world.who("fox@msp.example")
    eve, vic, ada = world.who("eve@beta.example"), world.who("vic@msp.example"), world.who("ada@msp.example")

    with pytest.raises(NotFound):  # another client's technician: it does not exist for them
        await handling.take(es, eve)
    with pytest.raises(Forbidden, match="viewer"):
        await handling.take(es, vic)
    with pytest.raises(Forbidden, match="viewer"):
        await handling.close(es, vic, resolution="fixed it")
    with pytest.raises(InvalidRequest, match="empty"):
        await handling.close(es, dana, resolution="   ")
    with pytest.raises(InvalidRequest, match="at most"):
        await handling.hand_over(es, dana, to="fox@msp.example", note="x" * 5000)

    await handling.take(es, dana)
    with pytest.raises(Conflict, match=re.escape("Dana Scully <dana@msp.example> holds")):
        await handling.take(es, fox)
    with pytest.raises(Conflict, match="only they or an admin"):
        await handling.close(es, fox, resolution="fixed it")
    with pytest.raises(Forbidden, match="serves this escalation's client"):  # Eve serves Beta Law only
        await handling.hand_over(es, dana, to="eve@beta.example", note="yours")
    with pytest.raises(Forbidden, match="serves"):
        await handling.hand_over(es, dana, to="nobody@msp.example", note="yours")
    # an admin may hand over one someone else holds
    moved = await handling.hand_over(es, ada, to="fox@msp.example", note="Dana is on leave")
    assert moved.held_by == "fox@msp.example" and moved.handed_over_by == "ada@msp.example"
    assert world.svc.staff.escalation_store.get(es, None).state == "handed_over"

    # an integration's API key may take one (held by the key's name) and then Fox, its holder, may not close it
    other = await world.escalation(external_id="T-2")
    bot = Principal("key:psa-bot", None, "tech", "key")
    assert (await handling.take(other, bot)).held_by == "key:psa-bot"
    with pytest.raises(Conflict, match="key:psa-bot holds"):
        await handling.close(other, fox, resolution="fixed it")
    assert (await handling.close(other, bot, resolution="fixed it")).closed_by == "key:psa-bot"


async def test_a_ticket_without_a_psa_closes_and_says_so(world: World) -> None:
    svc = world.svc
    client = svc.registry.add_client("Acme Dental")
    ticket, session = svc.store.open_ticket(client_id=client.id, subject="vpn drops", body="", requester="bob",
                                            device_id=None)
    row = (await svc.staff.escalations.record(ticket, session_id=session.id, kind="offline", reason="offline",
                                              device=None)).row
    closed = await svc.staff.handling.close(row.id, world.who("dana@msp.example"), resolution="rebooted the router")
    assert closed.state == "closed"
    (event,) = svc.audit.query(kind="escalation_closed")
    assert event.data["psa_note"] == "no PSA"
