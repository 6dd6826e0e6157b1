"""Routing at MSP scale: 50 clients, 500 devices, 1,000 tickets, every decision checked.

Real SQLite store and registry, enrolled through the same code path agents use; the hub has
no live connections, so every chosen agent is reported offline, which is part of the check.
"""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

from sqlalchemy import update

from mspclaw.dispatch import Hub
from mspclaw.pipeline.routing import Router
from mspclaw.store.db import make_engine, migrate, session_factory, sqlite_url
from mspclaw.store.registry import Registry
from mspclaw.store.tables import Device


def test_a_thousand_tickets_route_to_the_right_device_and_never_across_clients(tmp_path: Path) -> None:
    engine = make_engine(sqlite_url(tmp_path))
    migrate(engine)
    sessions = session_factory(engine)
    registry = Registry(sessions)
    rng = random.Random(7)
    clients = [registry.add_client(f"Client {i:02d}", {"superops": str(4000 + i)}) for i in range(50)]
    devices: dict[str, list[Device]] = {}
    for index, client in enumerate(clients):
        count = 1 if index % 10 == 0 else (0 if index % 10 == 1 else 11)  # some have one device, some none
        for n in range(count):
            code = registry.issue_code(client.id, ttl=timedelta(hours=1)).code
            registry.enroll(code, hostname=f"c{index:02d}-pc{n:02d}", os="linux", os_version="", agent_version="",
                            tools=[])
        devices[client.id] = registry.devices(client.id)
    assert sum(len(d) for d in devices.values()) >= 440
    owners: dict[str, Device] = {}
    with sessions.begin() as db:
        for client in clients:
            for n, device in enumerate(devices[client.id][:5]):
                user = f"user{n}@{client.id}.example"
                db.execute(update(Device).where(Device.id == device.id).values(primary_user=user))
                owners[user] = device
    router = Router(registry, Hub())

    for _ in range(1000):
        client = rng.choice(clients)
        mine = devices[client.id]
        case = rng.choice(["asset", "owner", "only", "foreign", "none"])
        if case == "asset" and mine:
            target = rng.choice(mine)
            route = router.route(client.id, device=target.hostname.upper(), requester=None)
            assert route.device is not None and route.device.id == target.id
            assert route.agent_id == target.agent_id and "asset" in route.reason
        elif case == "owner" and len(mine) > 1:
            user = f"user{rng.randrange(5)}@{client.id}.example"
            route = router.route(client.id, device=None, requester=user)
            assert route.device is not None and route.device.id == owners[user].id
            assert "primary device" in route.reason
        elif case == "foreign":
            other = rng.choice([c for c in clients if c.id != client.id and devices[c.id]])
            route = router.route(client.id, device=devices[other.id][0].hostname, requester=None)
            assert route.device is None and route.agent_id is None and "mspclaw enroll" in route.reason
        else:
            route = router.route(client.id, device=None, requester="stranger@example.com")
            if len(mine) == 1:
                assert route.device is not None and route.device.id == mine[0].id and "only device" in route.reason
            elif not mine:
                assert route.device is None and "no enrolled device" in route.reason
            else:
                assert route.device is None and "does not say which one" in route.reason
        if route.device is not None:
            assert route.device.client_id == client.id
            assert route.online is False and "offline" in route.reason
    found = router.client_for("superops", "4007")
    assert found is not None and found.id == clients[7].id
    assert router.client_for("superops", "9999") is None
    engine.dispose()
