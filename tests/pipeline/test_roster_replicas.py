"""Two servers on one PostgreSQL share one technician roster: the first to start after the upgrade imports its
data directory's techs.yaml, the other's is left unread; a technician added, narrowed or removed through one
server's API applies on the other at its next request (sign-in by link, role, access); with Redis, the other
server's coroutines hear of it through the shared channel, and without Redis through PostgreSQL's NOTIFY. Real
servers on loopback, a private schema, a private redis-server."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from tests.conftest import Live, live_server
from tests.dispatch.cluster_replicas import OwnRedis
from tests.private_schema import postgres_schema

from mspclaw.store.secretbox import SecretKey

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

DANA = {"name": "Dana Scully", "email": "dana@msp.example", "clients": ["Acme Dental"]}
MALLORY = {"name": "Mallory", "email": "mallory@msp.example", "role": "admin", "clients": ["*"]}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def until(condition: Callable[[], bool], what: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what} (waited {seconds:g} s)"
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def two_servers(tmp_path: Path, **settings: Any) -> AsyncIterator[tuple[Live, Live]]:
    """Servers A and B (no workers) on one private, migrated schema, with the same secrets and ``settings``."""
    schema = postgres_schema("roster")
    shared: dict[str, Any] = {"database_url": next(schema), "jwt_secret": secrets.token_urlsafe(32),
                              "secret_key": SecretKey.generate().encoded(), **settings}
    try:
        async with live_server(tmp_path / "a", workers=0, **shared) as a, \
                live_server(tmp_path / "b", workers=0, **shared) as b:
            yield a, b
    finally:
        schema.close()


async def test_two_servers_on_one_database_share_the_roster_at_once(tmp_path: Path) -> None:
    for name, techs in (("a", [DANA]), ("b", [MALLORY])):  # each server's data directory before the upgrade
        (tmp_path / name / "data").mkdir(parents=True)
        (tmp_path / name / "data" / "techs.yaml").write_text(yaml.safe_dump({"techs": techs}))
    async with two_servers(tmp_path) as (a, b), httpx.AsyncClient(base_url=b.url, timeout=30) as anon_b:
        assert (tmp_path / "a" / "data" / "techs.yaml.imported").exists(), "A imported its file"
        imported = a.services.audit.query(kind="tech_roster_imported")
        assert [e.data["techs"] for e in imported] == [["dana@msp.example"]]
        assert (tmp_path / "b" / "data" / "techs.yaml").exists(), "B's is not read over the shared roster"
        assert [t["email"] for t in (await b.http.get("/api/techs")).json()] == ["dana@msp.example"]

        # a technician added on A signs in on B with a link made on A
        r = await a.http.post("/api/techs", json={"name": "Fox Mulder", "email": "fox@msp.example",
                                                  "role": "tech", "clients": ["Acme Dental"]})
        assert r.status_code == 201, r.text
        link = (await a.http.post("/api/techs/fox@msp.example/login-link")).json()["url"]
        r = await anon_b.post(link.removeprefix(a.url))
        assert r.status_code == 200, r.text
        token = r.json()["access_token"]
        me = await anon_b.get("/api/me", headers=bearer(token))
        assert me.status_code == 200 and me.json()["role"] == "tech"

        # narrowed on A: B's next request has the new role; removed on A: B refuses the token
        r = await a.http.patch("/api/techs/fox@msp.example", json={"role": "viewer"})
        assert r.status_code == 200, r.text
        assert (await anon_b.get("/api/me", headers=bearer(token))).json()["role"] == "viewer"
        r = await anon_b.post("/api/tickets", headers=bearer(token), json={"client": "Acme Dental",
                                                                             "subject": "x"})
        assert r.status_code == 403
        assert (await a.http.delete("/api/techs/fox@msp.example")).status_code == 204
        assert (await anon_b.get("/api/me", headers=bearer(token))).status_code == 401


async def test_with_redis_a_change_is_announced_and_the_other_replicas_coroutines_see_it(tmp_path: Path) -> None:
    """What runs on B's event loop (Slack buttons, the session socket, notifications) uses the roster B holds: A's
    change reaches it through A's `roster` message on the shared channel (and B's refresh every second)."""
    redis = OwnRedis()
    await redis.start()
    try:
        async with two_servers(tmp_path, redis_url=redis.url) as (a, b):
            assert a.services.broadcast is not None and b.services.broadcast is not None
            a_broadcast, b_broadcast = a.services.broadcast, b.services.broadcast
            await until(lambda: a_broadcast.healthy and b_broadcast.healthy, "a replica did not subscribe", 10)
            r = await a.http.post("/api/techs", json={"name": "Fox Mulder", "email": "fox@msp.example",
                                                      "role": "tech", "clients": ["Acme Dental"]})
            assert r.status_code == 201, r.text
            await until(lambda: b.services.staff.techs.find("fox@msp.example") is not None,
                        "B's coroutines never saw the technician A added", 10)
            assert b.services.broadcast.received >= 1, "A announced the change on the shared channel"
            received = b.services.broadcast.received
            r = await a.http.patch("/api/techs/fox@msp.example", json={"role": "viewer"})
            assert r.status_code == 200, r.text
            answered = time.monotonic()
            await until(lambda: getattr(b.services.staff.techs.find("fox@msp.example"), "role", None) == "viewer",
                        "B's coroutines never saw Fox narrowed", 10)
            print(f"\nA's change seen by B's coroutines {(time.monotonic() - answered) * 1000:.1f} ms after A answered")
            assert b.services.broadcast.received > received
    finally:
        redis.stop()


async def test_without_redis_postgresql_notifies_the_other_replicas_coroutines(tmp_path: Path) -> None:
    """No Redis: A's edit commits with ``NOTIFY mspclaw_roster`` and B's listener wakes B's refresher at once (its
    poll every second stays the fallback). Counted as B's refreshes started by a notification, not by its poll."""
    async with two_servers(tmp_path) as (a, b):
        assert a.services.broadcast is None and b.services.broadcast is None
        b_techs = b.services.staff.techs
        await until(lambda: b_techs.notified >= 1, "B's roster listener never connected", 10)

        async def change(method: str, path: str, body: dict[str, Any], seen: Callable[[], bool]) -> None:
            notified = b_techs.notified
            r = await a.http.request(method, path, json=body)
            assert r.status_code in (200, 201), r.text
            answered = time.monotonic()
            await until(seen, f"B's coroutines never saw A's {method} {path}", 10)
            print(f"\nA's {method} seen by B's coroutines {(time.monotonic() - answered) * 1000:.1f} ms after "
                  "A answered")
            await until(lambda: b_techs.notified > notified, f"B was not notified of A's {method} {path}", 10)

        await change("POST", "/api/techs", {"name": "Fox Mulder", "email": "fox@msp.example", "role": "tech",
                                            "clients": ["Acme Dental"]},
                     lambda: b_techs.find("fox@msp.example") is not None)
        await change("PATCH", "/api/techs/fox@msp.example", {"role": "viewer"},
                     lambda: getattr(b_techs.find("fox@msp.example"), "role", None) == "viewer")
