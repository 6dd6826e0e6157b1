"""Routing's reads on SQLite and PostgreSQL: a ticket's route takes one statement (devices joined to agents)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Engine
from tests.store.statement_log import statements_seen

from mspclaw.dispatch import Hub
from mspclaw.pipeline.routing import Router
from mspclaw.store.database import Database
from mspclaw.store.registry import Registry
from mspclaw.store.tables import Device, new_id


def _enroll(reg: Registry, client_id: str, hostname: str, *, role: str = "device") -> str:
    code = reg.issue_code(client_id, role=role, ttl=timedelta(hours=1)).code
    return reg.enroll(code, hostname=hostname, os="linux", os_version="", agent_version="", tools=[]).agent.id


def _fields(device: Device) -> tuple[Any, ...]:
    return (device.id, device.client_id, device.agent_id, device.hostname, device.os, device.primary_user,
            device.created_at)


def test_devices_for_routing_is_devices_and_their_revoked_agents(engine: Engine) -> None:
    database = Database(engine)
    reg = Registry(database)
    acme, other = reg.add_client("Acme"), reg.add_client("Other")
    kept = _enroll(reg, acme.id, "pc-kept")
    gone = _enroll(reg, acme.id, "pc-gone")
    site = _enroll(reg, acme.id, "dc01", role="site")  # revoked, but no device's agent
    _enroll(reg, other.id, "pc-other")
    with database.sessions.begin() as db:
        db.add(Device(id=new_id("dv"), client_id=acme.id, agent_id=None, hostname="pc-bare", os="linux"))
    reg.revoke(gone)
    reg.revoke(site)

    devices, revoked = reg.devices_for_routing(acme.id)

    assert [_fields(d) for d in devices] == [_fields(d) for d in reg.devices(acme.id)]  # same rows, order, values
    assert [d.hostname for d in devices] == ["pc-bare", "pc-gone", "pc-kept"]
    assert revoked == {gone} == reg.revoked_agents(acme.id) - {site}
    assert kept not in revoked
    assert reg.devices_for_routing(other.id)[1] == frozenset()
    assert reg.devices_for_routing("cl_nobody") == ([], frozenset())


def test_a_route_takes_one_statement(engine: Engine) -> None:
    database = Database(engine)
    reg = Registry(database)
    acme = reg.add_client("Acme")
    _enroll(reg, acme.id, "pc-maria")
    gone = _enroll(reg, acme.id, "pc-tom")
    reg.revoke(gone)
    router = Router(reg, Hub())

    with statements_seen(engine) as seen:
        by_asset = router.route(acme.id, device="PC-MARIA", requester=None)
    assert by_asset.device is not None and by_asset.device.hostname == "pc-maria", by_asset
    assert len(seen) == 1 and "FROM devices" in seen[0], seen

    with statements_seen(engine) as seen:
        revoked = router.route(acme.id, device="pc-tom", requester=None)
    assert revoked.device is None and "revoked" in revoked.reason, revoked
    assert len(seen) == 1, seen

    with statements_seen(engine) as seen:  # the revoked machine does not count: the only device serves
        only = router.route(acme.id, device=None, requester="someone@acme.example")
    assert only.device is not None and only.device.hostname == "pc-maria", only
    assert len(seen) == 1, seen
