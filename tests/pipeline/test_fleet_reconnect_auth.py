"""Agent authentication and the agents' hellos under a reconnect storm, on two replicas of one database.

Real SQLite database (a file in the test's directory, shared by two ``wiring.build`` replicas as two
server processes share it), real agent listeners on loopback, real WebSocket clients
(``websockets``): each upgrade reads the agent's row fresh, so a revocation made through one replica
refuses the agent's next upgrade on the other at once, with one upgrade per read or with many upgrades
sharing a read (``Fleet.authenticate_soon``); hellos and disconnects are group-committed; statements are
counted with SQLAlchemy's ``before_cursor_execute`` event, and every write lands in the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from mspclaw.api.agent_listener import AgentListener
from mspclaw.api.auth import bearer as bearer_of
from mspclaw.api.server import start_agent_listener
from mspclaw.dispatch import AgentIdentity
from mspclaw.errors import AuthError
from mspclaw.protocol.codec import decode_agent_frame, encode
from mspclaw.protocol.frames import PROTOCOL_VERSION, Hello, Welcome
from mspclaw.settings import Settings
from mspclaw.store.registry import MAX_BEARER_CHARS, EnrolledAgent
from mspclaw.wiring import Services, build

pytestmark = pytest.mark.anyio


@pytest.fixture
async def replicas(tmp_path: Path) -> AsyncIterator[tuple[Services, Services]]:
    settings = Settings(data_dir=tmp_path / "data", api_key="k" * 20)
    a, b = build(settings), build(settings)
    yield a, b
    for svc in (a, b):
        await svc.activity.aclose()
        svc.close()


def enroll(svc: Services, client_id: str, host: str) -> EnrolledAgent:
    issued = svc.registry.issue_code(client_id, role="device", ttl=timedelta(hours=1))
    return svc.registry.enroll(issued.code, hostname=host, os="linux", os_version="", agent_version="t",
                               tools=["system_info"])


def bearer(enrolled: EnrolledAgent) -> str:
    return f"Bearer {enrolled.agent.id}.{enrolled.credential}"


async def say_hello(url: str, enrolled: EnrolledAgent, hostname: str) -> Any:
    """Upgrade with the agent's credential and say hello; the open socket once welcomed."""
    ws = await connect(url, compression=None, additional_headers={"Authorization": bearer(enrolled)})
    agent = enrolled.agent
    await ws.send(encode(Hello(protocol=PROTOCOL_VERSION, agent_id=agent.id, client_id=agent.client_id,
                               role="device", hostname=hostname, os="linux", os_version="14.1",
                               agent_version="9.9", tools=["system_info"])))
    assert isinstance(decode_agent_frame(await ws.recv()), Welcome)
    return ws


async def listen(svc: Services) -> tuple[AgentListener, str]:
    listener = await start_agent_listener(svc, host="127.0.0.1", port=0)
    return listener, f"ws://127.0.0.1:{listener.port}/ws/agent"


async def test_a_revocation_through_one_replica_refuses_the_next_upgrade_on_the_other_at_once(
        replicas: tuple[Services, Services]) -> None:
    a, b = replicas
    client = a.registry.add_client("Acme Dental")
    enrolled = enroll(a, client.id, "pc-1")
    listener, url = await listen(b)
    try:
        ws = await say_hello(url, enrolled, "pc-1")  # connects through replica B
        await ws.close()
        await a.fleet.revoke(enrolled.agent.id, actor="tech")  # revoked through replica A
        with pytest.raises(InvalidStatus) as refused:  # the very next upgrade on B is refused
            await connect(url, compression=None, additional_headers={"Authorization": bearer(enrolled)})
        assert refused.value.response.status_code == 401
        assert b"revoked" in refused.value.response.body
        with pytest.raises(AuthError, match="revoked"):
            b.fleet.authenticate(f"{enrolled.agent.id}.{enrolled.credential}", remote="127.0.0.1")
    finally:
        await listener.close()


async def test_the_identity_comes_from_the_database_and_wrong_or_oversized_bearers_are_refused(
        replicas: tuple[Services, Services]) -> None:
    a, _ = replicas
    client = a.registry.add_client("Acme Dental")
    enrolled = enroll(a, client.id, "pc-1")
    identity = a.fleet.authenticate(f"{enrolled.agent.id}.{enrolled.credential}", remote="127.0.0.1")
    assert identity == AgentIdentity(enrolled.agent.id, client.id, "device", bytes.fromhex(enrolled.agent.signing_key))
    for wrong in (f"{enrolled.agent.id}.{enrolled.credential}x", f"ag_nobody.{enrolled.credential}",
                  enrolled.agent.id, f".{enrolled.credential}"):
        with pytest.raises(AuthError, match="unknown agent or wrong credential"):
            a.fleet.authenticate(wrong, remote="127.0.0.1")
    with pytest.raises(AuthError, match=f"longer than {MAX_BEARER_CHARS} characters"):
        a.fleet.authenticate(f"{enrolled.agent.id}.{'x' * MAX_BEARER_CHARS}", remote="127.0.0.1")
    assert a.fleet.refusals.counts()["agent_refused"] == 5


async def test_hellos_and_disconnects_of_a_storm_are_group_committed_and_all_written(
        replicas: tuple[Services, Services]) -> None:
    a, _ = replicas
    client = a.registry.add_client("Acme Dental")
    agents = [enroll(a, client.id, f"pc-{i}") for i in range(60)]
    updates: list[tuple[str, bool]] = []

    def count(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.lstrip().upper().startswith("UPDATE AGENTS"):
            updates.append((statement, executemany))

    event.listen(a.engine, "before_cursor_execute", count)
    listener, url = await listen(a)
    try:
        sockets = await asyncio.gather(*(say_hello(url, e, f"renamed-{i}") for i, e in enumerate(agents)))
        await a.activity.drain()
        written = {agent.id: agent for agent in a.registry.agents(client.id)}
        assert all(written[e.agent.id].hostname == f"renamed-{i}" for i, e in enumerate(agents))
        assert all(written[e.agent.id].os_version == "14.1" and written[e.agent.id].agent_version == "9.9"
                   for e in agents)
        hello_statements = len(updates)
        assert 1 <= hello_statements <= 10  # 60 hellos, a few transactions: not one commit each
        seen = {e.agent.id: written[e.agent.id].last_seen_at for e in agents}

        await asyncio.gather(*(ws.close() for ws in sockets))
        for _ in range(200):
            if not a.hub.online_count():
                break
            await asyncio.sleep(0.01)
        await a.activity.drain()
        after = {agent.id: agent for agent in a.registry.agents(client.id)}
        for e in agents:
            before, now = seen[e.agent.id], after[e.agent.id].last_seen_at
            assert before is not None and now is not None and now >= before
            assert after[e.agent.id].hostname == written[e.agent.id].hostname  # a disconnect keeps the hello
        assert len(updates) - hello_statements <= 10
    finally:
        event.remove(a.engine, "before_cursor_execute", count)
        await listener.close()


async def test_a_disconnect_right_after_its_hello_keeps_the_hello_fields(replicas: tuple[Services, Services]) -> None:
    a, _ = replicas
    client = a.registry.add_client("Acme Dental")
    enrolled = enroll(a, client.id, "pc-1")
    identity = a.fleet.authenticate(f"{enrolled.agent.id}.{enrolled.credential}", remote="127.0.0.1")
    hello = Hello(protocol=PROTOCOL_VERSION, agent_id=enrolled.agent.id, client_id=client.id, role="device",
                  hostname="new-name", os="linux", os_version="15", agent_version="2.0", tools=["disk_usage"])
    a.activity.connected(identity, hello)
    a.activity.disconnected(identity, "connection lost")  # before the batch is written
    await a.activity.drain()
    agent = a.registry.agent(enrolled.agent.id)
    assert (agent.hostname, agent.os_version, agent.agent_version, agent.tools) == ("new-name", "15", "2.0",
                                                                                    ["disk_usage"])
    assert agent.last_seen_at is not None


async def listen_batched(svc: Services) -> tuple[AgentListener, str]:
    """The listener with :meth:`Fleet.authenticate_soon`: upgrades share reads, off the event loop."""
    listener = AgentListener(lambda header, remote: svc.fleet.authenticate_soon(bearer_of(header), remote=remote),
                             svc.hub.serve)
    await listener.start("127.0.0.1", 0)
    return listener, f"ws://127.0.0.1:{listener.port}/ws/agent"


async def test_a_storm_of_upgrades_shares_reads_and_every_agent_is_welcomed(
        replicas: tuple[Services, Services]) -> None:
    a, _ = replicas
    client = a.registry.add_client("Acme Dental")
    agents = [enroll(a, client.id, f"pc-{i}") for i in range(80)]
    reads: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "credential_hash" in statement:
            reads.append(statement)

    event.listen(a.engine, "before_cursor_execute", count)
    listener, url = await listen_batched(a)
    try:
        sockets = await asyncio.gather(*(say_hello(url, e, f"pc-{i}") for i, e in enumerate(agents)))
        assert a.hub.online_count() == len(agents)
        assert 1 <= len(reads) < len(agents) // 2  # 80 upgrades, a few reads: not one round trip each
        await asyncio.gather(*(ws.close() for ws in sockets))
    finally:
        event.remove(a.engine, "before_cursor_execute", count)
        await listener.close()


async def test_batched_upgrades_refuse_the_revoked_the_wrong_and_the_oversized_at_once(
        replicas: tuple[Services, Services]) -> None:
    a, b = replicas
    client = a.registry.add_client("Acme Dental")
    good, revoked = enroll(a, client.id, "pc-1"), enroll(a, client.id, "pc-2")
    listener, url = await listen_batched(b)
    try:
        ws = await say_hello(url, revoked, "pc-2")
        await ws.close()
        await a.fleet.revoke(revoked.agent.id, actor="tech")  # through the other replica

        async def upgrade(header: str) -> int:
            try:
                ws = await connect(url, compression=None, additional_headers={"Authorization": header})
            except InvalidStatus as exc:
                return exc.response.status_code
            await ws.close()
            return 101

        statuses = await asyncio.gather(
            upgrade(bearer(good)), upgrade(bearer(revoked)), upgrade(bearer(good) + "x"),
            upgrade(f"Bearer {good.agent.id}.{'x' * MAX_BEARER_CHARS}"), upgrade("Bearer "))
        assert list(statuses) == [101, 401, 401, 401, 401]
    finally:
        await listener.close()
    assert b.fleet.refusals.counts()["agent_refused"] == 4


async def test_an_upgrade_the_database_cannot_check_gets_503_and_the_next_read_tries_again(
        replicas: tuple[Services, Services]) -> None:
    a, _ = replicas
    client = a.registry.add_client("Acme Dental")
    enrolled = enroll(a, client.id, "pc-1")
    listener, url = await listen_batched(a)
    try:
        with a.engine.begin() as conn:  # the agents' table is away: the read fails
            conn.exec_driver_sql("ALTER TABLE agents RENAME TO agents_away")
        with pytest.raises(InvalidStatus) as failed:
            await connect(url, compression=None, additional_headers={"Authorization": bearer(enrolled)})
        assert failed.value.response.status_code == 503
        assert b"could not check the credential" in failed.value.response.body
        with a.engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE agents_away RENAME TO agents")
        ws = await say_hello(url, enrolled, "pc-1")
        await ws.close()
    finally:
        await listener.close()
