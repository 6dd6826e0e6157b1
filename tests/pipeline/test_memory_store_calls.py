"""Device learning asks the store only when there is a fact to store: most tool results tell nothing about the
device, and each store call is a thread hop on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from mspclaw.pipeline.memory import DeviceLearning
from mspclaw.store.audit import AuditLog
from mspclaw.store.database import Database
from mspclaw.store.db import sqlite_url
from mspclaw.store.devices import DeviceMemory
from mspclaw.store.registry import Registry

pytestmark = pytest.mark.anyio


class CountingMemory(DeviceMemory):
    remembered: list[dict[str, Any]]

    def remember(self, device_id: str, facts: Mapping[str, Any], *, source: str) -> list[str]:
        self.remembered.append(dict(facts))
        return super().remember(device_id, facts, source=source)


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = Database.open(sqlite_url(tmp_path))
    yield db
    db.dispose()


async def test_facts_with_nothing_to_store_make_no_store_call(database: Database, tmp_path: Path) -> None:
    registry = Registry(database)
    client = registry.add_client("Acme")
    code = registry.issue_code(client.id, ttl=timedelta(hours=1)).code
    agent = registry.enroll(code, hostname="pc-1", os="linux", os_version="", agent_version="", tools=[]).agent
    device = next(d for d in registry.devices(client.id) if d.agent_id == agent.id)
    memory = CountingMemory(database)
    memory.remembered = []
    audit = AuditLog(database, tmp_path / "audit")
    learning = DeviceLearning(memory, audit)

    assert await learning.learn_from_tool(device.id, "disk_usage", {"filesystems": []}, client_id=client.id,
                                          session_id="ss_1") == []
    assert await learning.record(device.id, {"model": None, "serial": "  "}, source="tool:x", client_id=client.id) == []
    assert await learning.learn_from_ticket(device.id, "maria@acme.example", client_id=client.id, session_id="ss_1",
                                            known={"email": "maria@acme.example", "primary_user": "maria@acme.example"}
                                            ) == []
    assert memory.remembered == []

    assert await learning.learn_from_tool(device.id, "system_info", {"hostname": "pc-1"}, client_id=client.id,
                                          session_id="ss_1") == ["hostname"]
    assert memory.remembered == [{"hostname": "pc-1"}]
    assert [e.kind for e in audit.query()] == ["device_facts_learned"]
    assert memory.facts(device.id) == {"hostname": "pc-1"}
