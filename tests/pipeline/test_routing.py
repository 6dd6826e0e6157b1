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
from mspclaw.store.database import Database
from mspclaw.store.db import make_engine, migrate, sqlite_url
from mspclaw.store.registry import Registry
from mspclaw.store.tables import Device


def test_a_thousand_tickets_route_to_the_right_device_and_never_across_clients(tmp_path: Path) -> None:
    engine = make_engine(sqlite_url(tmp_path))
    migrate(engine)
    database = Database(engine)
    sessions = database.sessions
    registry = Registry(database)
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
            if len(mine) == 1:  # the only device is user0's: never used for a stranger's ticket
                assert route.device is None and route.agent_id is None, route
                assert f"is user0@{client.id}.example's" in route.reason
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


def test_revoked_agents_never_route_and_the_only_device_is_used_only_for_its_own_user(tmp_path: Path) -> None:
    engine = make_engine(sqlite_url(tmp_path))
    migrate(engine)
    database = Database(engine)
    sessions = database.sessions
    registry = Registry(database)
    router = Router(registry, Hub())

    def enroll(client_id: str, hostname: str, owner: str | None = None) -> Device:
        code = registry.issue_code(client_id, ttl=timedelta(hours=1)).code
        agent = registry.enroll(code, hostname=hostname, os="linux", os_version="", agent_version="", tools=[]).agent
        device = next(d for d in registry.devices(client_id) if d.agent_id == agent.id)
        if owner is not None:
            with sessions.begin() as db:
                db.execute(update(Device).where(Device.id == device.id).values(primary_user=owner))
        return device

    # (b) the client's only device belongs to Tom: Maria's ticket must not run tools on it
    solo = registry.add_client("Solo Dental").id
    toms = enroll(solo, "tom-pc", owner="tom@solo.example")
    for requester in ("maria@solo.example", "Maria <maria@solo.example>", "", None):
        route = router.route(solo, device=None, requester=requester)
        assert route.device is None and route.agent_id is None, (requester, route)
        assert "tom-pc" in route.reason and "tom@solo.example's" in route.reason and "asset" in route.reason
    for requester in ("tom@solo.example", "TOM@Solo.Example", "Tom Becker <tom@solo.example>"):
        route = router.route(solo, device=None, requester=requester)
        assert route.device is not None and route.device.id == toms.id, (requester, route)
    # an only device with no recorded primary user is still the fallback
    bare = registry.add_client("Bare Law").id
    shared = enroll(bare, "front-desk")
    route = router.route(bare, device=None, requester="anyone@bare.example")
    assert route.device is not None and route.device.id == shared.id and "only device" in route.reason
    # the named asset wins whoever owns it (the ticket says so)
    route = router.route(solo, device="TOM-PC", requester="maria@solo.example")
    assert route.device is not None and route.device.id == toms.id and "asset" in route.reason

    # (a) a revoked agent's device routes by no rule: asset, primary user or only device
    assert toms.agent_id is not None and shared.agent_id is not None
    registry.revoke(toms.agent_id)
    registry.revoke(shared.agent_id)
    route = router.route(solo, device="tom-pc", requester=None)
    assert route.device is None and route.agent_id is None and "revoked" in route.reason
    route = router.route(solo, device=None, requester="tom@solo.example")
    assert route.device is None and route.agent_id is None and "revoked" in route.reason
    route = router.route(bare, device=None, requester="anyone@bare.example")
    assert route.device is None and route.agent_id is None and "revoked" in route.reason
    # a re-enrolled machine routes again, and the revoked one does not count as a second device
    again = enroll(bare, "front-desk")
    route = router.route(bare, device=None, requester="anyone@bare.example")
    assert route.device is not None and route.device.id == again.id and route.agent_id == again.agent_id
    route = router.route(bare, device="front-desk", requester=None)  # two rows share the host name
    assert route.agent_id == again.agent_id, route
    engine.dispose()
