"""The composition root builds one of each shared thing: one :class:`Database` for every store, the console's
included (a second one over the same engine would keep its own sessionmaker and prepared statements)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import sessionmaker

from mspclaw.api.app import create_app
from mspclaw.console.sso import SingleSignOn
from mspclaw.settings import Settings
from mspclaw.store.database import Database
from mspclaw.store.fastsql import FastSQL
from mspclaw.wiring import Services, build

pytestmark = pytest.mark.anyio


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    svc = build(Settings(data_dir=tmp_path / "data", api_key="k" * 20))
    yield svc
    await svc.staff.notifier.aclose()
    svc.close()


def holders(roots: list[object], kind: tuple[type[Any], ...], limit: int = 20_000) -> list[tuple[str, Any]]:
    """Each (holder's class name, instance of one of ``kind``) found through the attributes of MSPclaw's own objects
    reachable from ``roots`` and the containers they hold (each object visited once)."""
    seen: set[int] = set()
    found: list[tuple[str, Any]] = []
    todo: list[tuple[str, object]] = [("root", root) for root in roots]
    while todo:
        holder, obj = todo.pop()
        if isinstance(obj, kind):
            found.append((holder, obj))
            continue
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        assert len(seen) < limit, "the object graph is larger than expected"
        if isinstance(obj, dict):
            todo.extend((holder, value) for value in obj.values())
        elif isinstance(obj, list | tuple | set | frozenset):
            todo.extend((holder, value) for value in obj)
        elif type(obj).__module__.startswith("mspclaw."):
            name = type(obj).__name__
            todo.extend((name, value) for value in getattr(obj, "__dict__", {}).values())
            todo.extend((name, getattr(obj, slot)) for cls in type(obj).__mro__
                        for slot in getattr(cls, "__slots__", ()) if hasattr(obj, slot))
    return found


async def test_every_store_the_server_and_its_console_use_shares_the_one_database(services: Services) -> None:
    app = create_app(services, manage_lifecycle=False)
    roots = [services, app.state.console, SingleSignOn.of(services)]
    ours = {id(services.db), id(services.db.sessions), id(services.db.fast)}
    found = holders(roots, (Database, sessionmaker, FastSQL))
    held_by = {holder for holder, _ in found}
    # the walk reached the stores of the pipeline, the staff, the audit log and the console's sign-in and SSO
    assert {"TicketStore", "Registry", "AuditLog", "ApiKeys", "ConsoleSessions", "SecondFactors", "Providers",
            "Pending"} <= held_by, held_by
    strays = sorted(f"{holder}: {type(value).__name__}" for holder, value in found if id(value) not in ours)
    assert strays == []
    assert services.engine is services.db.engine
