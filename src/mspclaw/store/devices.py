"""Device memory: facts per device (who uses it, where it is, what it is), with source and time.

Facts come from the answers end users give and from tool results; the engine reads them as
context and never asks for a fact it already has. ``forget`` removes every fact of a device
and its primary user. Every read takes the caller's client scope.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update

from mspclaw.errors import NotFound
from mspclaw.store.database import Database
from mspclaw.store.tables import Device, DeviceFact, utcnow

Scope = Collection[str] | None
MAX_VALUE = 1000
KNOWN_KEYS = ("user_name", "email", "department", "location", "primary_user", "os_version", "model", "serial",
              "hostname", "cpu_count", "memory_bytes")


@dataclass(frozen=True)
class Fact:
    key: str
    value: str
    source: str
    updated_at: datetime


@dataclass(frozen=True)
class DeviceFacts:
    device: Device
    facts: list[Fact]

    def as_dict(self) -> dict[str, str]:
        return {f.key: f.value for f in self.facts}


def telling(facts: Mapping[str, Any]) -> bool:
    """Whether ``facts`` hold a value to store (``None`` and blank values are not stored)."""
    return any(raw is not None and str(raw).strip() != "" for raw in facts.values())


class DeviceMemory:
    def __init__(self, db: Database) -> None:
        self._sessions = db.sessions
        self._db = db

    @property
    def commits_wait_for_server(self) -> bool:
        """PostgreSQL (async callers offload: :func:`mspclaw.pipeline.offload.run_store`), not SQLite."""
        return self._db.commits_wait_for_server

    def devices(self, scope: Scope, client_id: str | None = None) -> list[tuple[Device, int]]:
        """Devices the caller may see, each with its number of facts."""
        counts = (select(DeviceFact.device_id, func.count().label("n")).group_by(DeviceFact.device_id)
                  .subquery())
        stmt = (select(Device, func.coalesce(counts.c.n, 0)).outerjoin(counts, counts.c.device_id == Device.id)
                .order_by(Device.client_id, Device.hostname))
        if scope is not None:
            stmt = stmt.where(Device.client_id.in_(list(scope)))
        if client_id is not None:
            stmt = stmt.where(Device.client_id == client_id)
        with self._sessions() as db:
            return [(d, int(n)) for d, n in db.execute(stmt).all()]

    def device(self, device_id: str, scope: Scope) -> DeviceFacts:
        with self._sessions() as db:
            stmt = select(Device).where(Device.id == device_id)
            if scope is not None:
                stmt = stmt.where(Device.client_id.in_(list(scope)))
            device = db.scalars(stmt).first()
            if device is None:
                raise NotFound(f"no device {device_id!r}; list them with `mspclaw devices list`")
            rows = db.scalars(select(DeviceFact).where(DeviceFact.device_id == device_id).order_by(DeviceFact.key))
            facts = [Fact(r.key, r.value, r.source, r.updated_at) for r in rows]
        return DeviceFacts(device, facts)

    def facts(self, device_id: str) -> dict[str, str]:
        with self._sessions() as db:
            rows = db.execute(select(DeviceFact.key, DeviceFact.value).where(DeviceFact.device_id == device_id))
            return {k: v for k, v in rows}

    def remember(self, device_id: str, facts: Mapping[str, Any], *, source: str) -> list[str]:
        """Store facts (newer values replace older ones); returns the keys that changed."""
        changed: list[str] = []
        if not telling(facts):
            return changed  # nothing to store (most tool results tell nothing about the device): no transaction
        now = utcnow()
        with self._sessions.begin() as db:
            current = {r.key: r for r in db.scalars(select(DeviceFact).where(DeviceFact.device_id == device_id))}
            for key, raw in facts.items():
                if raw is None or str(raw).strip() == "":
                    continue
                value = str(raw).strip()[:MAX_VALUE]
                row = current.get(key)
                if row is None:
                    db.add(DeviceFact(device_id=device_id, key=key, value=value, source=source, updated_at=now))
                elif row.value != value:
                    row.value, row.source, row.updated_at = value, source, now
                else:
                    continue
                changed.append(key)
            if "primary_user" in changed:
                db.execute(update(Device).where(Device.id == device_id)
                           .values(primary_user=str(facts["primary_user"]).strip().lower()[:255]))
        return changed

    def forget(self, device_id: str, scope: Scope) -> list[str]:
        """Remove every fact of the device and its primary user; returns the keys removed."""
        found = self.device(device_id, scope)
        with self._sessions.begin() as db:
            db.execute(delete(DeviceFact).where(DeviceFact.device_id == device_id))
            db.execute(update(Device).where(Device.id == device_id).values(primary_user=None))
        keys = [f.key for f in found.facts]
        if found.device.primary_user and "primary_user" not in keys:
            keys.append("primary_user")
        return keys
