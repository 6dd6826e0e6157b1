"""A PSA ticket's client and its route come from one read (``Registry.routable_client_by_psa_ref``,
``Router.route_company``): the same client, devices and revoked agents as the reads it replaces, on SQLite and
PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Engine
from tests.store.statement_log import statements_seen

from mspclaw.dispatch import Hub
from mspclaw.pipeline.routing import Route, Router
from mspclaw.store.database import Database
from mspclaw.store.registry import Registry
from mspclaw.store.tables import Client, Device, new_id


def _enroll(reg: Registry, client_id: str, hostname: str, *, role: str = "device") -> str:
    code = reg.issue_code(client_id, role=role, ttl=timedelta(hours=1)).code
    return reg.enroll(code, hostname=hostname, os="linux", os_version="", agent_version="", tools=[]).agent.id


def _fields(device: Device) -> tuple[Any, ...]:
    return (device.id, device.client_id, device.agent_id, device.hostname, device.os, device.primary_user,
            device.created_at)


def _plain(route: Route) -> tuple[Any, ...]:
    return (_fields(route.device) if route.device else None, route.agent_id, route.online, route.reason)


def test_a_companys_client_comes_with_its_devices_and_revoked_agents_in_one_statement(engine: Engine) -> None:
    database = Database(engine)
    reg = Registry(database)
    acme = reg.add_client("Acme", {"superops": "4007", "local": "1"})
    other = reg.add_client("Beta", {"superops": "40070"})
    kept = _enroll(reg, acme.id, "pc-kept")
    gone = _enroll(reg, acme.id, "pc-gone")
    site = _enroll(reg, acme.id, "dc01", role="site")  # revoked, but no device's agent
    _enroll(reg, other.id, "pc-other")
    with database.sessions.begin() as db:
        db.add(Device(id=new_id("dv"), client_id=acme.id, agent_id=None, hostname="pc-bare", os="linux"))
    reg.revoke(gone)
    reg.revoke(site)

    with statements_seen(engine) as seen:
        found = reg.routable_client_by_psa_ref("superops", "4007")

    assert len(seen) == 1, seen
    assert found is not None and found.client.id == acme.id
    assert found.client.psa_refs == {"superops": "4007", "local": "1"}
    devices, revoked = reg.devices_for_routing(acme.id)
    assert [_fields(d) for d in found.devices] == [_fields(d) for d in devices]  # same rows, order, values
    assert [d.hostname for d in found.devices] == ["pc-bare", "pc-gone", "pc-kept"]
    assert found.revoked == revoked == {gone} and kept not in found.revoked
    beta = reg.routable_client_by_psa_ref("superops", "40070")
    assert beta is not None and beta.client.id == other.id and [d.hostname for d in beta.devices] == ["pc-other"]
    assert beta.revoked == frozenset()


def test_a_company_maps_as_client_by_psa_ref_maps_it(engine: Engine) -> None:
    database = Database(engine)
    reg = Registry(database)
    reg.add_client("Zeta", {"superops": "7"})
    alpha = reg.add_client("Alpha", {"superops": "7"})  # two clients for one company: the first by name
    bare = reg.add_client("Bare", {"halo": "12"})
    _enroll(reg, alpha.id, "pc-alpha")
    with database.sessions.begin() as db:  # a reference stored as a JSON boolean (not through add_client)
        db.add(Client(id="cl_flag", name="Delta", psa_refs={"flag": True}))
    _enroll(reg, "cl_flag", "pc-flag")

    first = reg.routable_client_by_psa_ref("superops", "7")
    by_ref = reg.client_by_psa_ref("superops", "7")
    assert first is not None and by_ref is not None and first.client.id == alpha.id == by_ref.id
    assert [d.hostname for d in first.devices] == ["pc-alpha"]
    no_devices = reg.routable_client_by_psa_ref("halo", "12")
    assert no_devices is not None and (no_devices.client.id, no_devices.devices, no_devices.revoked) == (
        bare.id, [], frozenset())
    flag = reg.routable_client_by_psa_ref("flag", "True")  # found by the rule when the database renders it otherwise
    assert flag is not None and flag.client.id == "cl_flag" and [d.hostname for d in flag.devices] == ["pc-flag"]
    assert reg.routable_client_by_psa_ref("superops", "8") is None
    assert reg.routable_client_by_psa_ref("halo", "1") is None  # no prefix match


def test_a_companys_route_is_the_route_of_its_client(engine: Engine) -> None:
    database = Database(engine)
    reg = Registry(database)
    acme = reg.add_client("Acme", {"local": "1"})
    _enroll(reg, acme.id, "pc-maria")
    gone = _enroll(reg, acme.id, "pc-tom")
    reg.revoke(gone)
    router = Router(reg, Hub())

    for device, requester in (("PC-MARIA", None), ("pc-tom", None), ("pc-nope", None), (None, "x@example.com")):
        with statements_seen(engine) as seen:
            found = router.route_company("local", "1", device=device, requester=requester)
        assert len(seen) == 1, seen
        assert found is not None and found[0].id == acme.id
        assert _plain(found[1]) == _plain(router.route(acme.id, device=device, requester=requester)), device
    assert router.route_company("local", "2", device="pc-maria", requester=None) is None
