"""The technician roster in the database, on SQLite and PostgreSQL: two servers (two engines) on one database see
one change at their next read, concurrent edits from both lose none, channel webhook URLs are sealed at rest and
move to a new key on rotation, and an upgrade from the schema before the roster imports a data directory's
techs.yaml once, keeping everything else."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from alembic import command
from sqlalchemy import text

from mspclaw.pipeline.techs import Tech, TechRegistry, parse
from mspclaw.store.database import Database
from mspclaw.store.db import alembic_config, migrate
from mspclaw.store.logins import Logins
from mspclaw.store.secretbox import SecretBox, SecretKey
from mspclaw.store.technicians import CHANGED_CHANNEL, RosterStore
from mspclaw.store.wakeups import Wakeups

if TYPE_CHECKING:
    from tests.store.conftest import TestDatabase

GOOD = """\
techs:
  - name: Dana Scully
    email: dana@msp.example
    clients: ["Acme Dental"]
  - name: Night Owl
    email: owl@msp.example
    role: admin
    clients: ["*"]
channels:
  - name: ops
    kind: slack
    url: https://hooks.example.invalid/services/T0/B0/not-in-the-database
"""


def test_two_servers_see_one_change_at_once_and_concurrent_edits_lose_none(database: TestDatabase) -> None:
    box = SecretBox.ephemeral()
    one, two = Database(database.new_engine()), Database(database.new_engine())
    a, b = TechRegistry(RosterStore(one, box)), TechRegistry(RosterStore(two, box))
    assert b.techs() == []
    a.replace_all(parse(GOOD, "techs.yaml"))
    assert [t.email for t in b.techs()] == ["dana@msp.example", "owl@msp.example"], "B's next read"
    dana = b.find("dana@msp.example")
    assert dana is not None
    b.replace(dana.email, dana.model_copy(update={"role": "viewer", "clients": ["Beta Law"]}))
    narrowed = a.find("Dana Scully")
    assert narrowed is not None and (narrowed.role, narrowed.clients) == ("viewer", ["Beta Law"])

    errors: list[BaseException] = []

    def add(registry: TechRegistry, who: str, n: int) -> None:
        try:
            for i in range(n):
                registry.add(Tech(name=f"{who}{i}", email=f"{who}{i}@msp.example", clients=["*"]))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(reg, f"{who}{k}-", 5))
               for reg, who in ((a, "a"), (b, "b")) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    emails = [t.email for t in a.techs()]
    assert len(emails) == 2 + 30 and len(set(emails)) == len(emails), "none lost, none twice"
    assert emails[:2] == ["dana@msp.example", "owl@msp.example"], "the roster's order is kept"
    b.remove("Night Owl")
    assert a.find("owl@msp.example") is None


def test_channel_urls_are_sealed_at_rest_and_move_to_a_new_key(database: TestDatabase) -> None:
    old, new = SecretKey.generate(), SecretKey.generate()
    db = Database(database.new_engine())
    TechRegistry(RosterStore(db, SecretBox([old], origin="old"))).replace_all(parse(GOOD, "techs.yaml"))
    with db.engine.connect() as conn:
        stored = conn.execute(text("SELECT url FROM notification_channels")).scalar_one()
    assert "not-in-the-database" not in stored and stored.startswith(f"v1:{old.id}:")
    assert RosterStore(db, SecretBox([new, old], origin="both")).reencrypt() == 1
    roster = TechRegistry(RosterStore(db, SecretBox([new], origin="new only")))
    assert roster.channels("cl_1", "Acme Dental", "approval")[0].url.endswith("/not-in-the-database")
    # a roster whose channels cannot be opened still signs technicians in
    locked_out = TechRegistry(RosterStore(db, SecretBox([old], origin="old only")))
    assert locked_out.find("dana@msp.example") is not None


def test_an_upgrade_imports_the_data_directorys_techs_yaml_once_and_keeps_the_rest(
        blank_database: TestDatabase, tmp_path: Path) -> None:
    engine = blank_database.new_engine()
    with engine.begin() as conn:
        cfg = alembic_config(engine)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0010")  # the release before the roster moved into the database
    db = Database(engine)
    Logins(db).set_password("dana@msp.example", "correct horse battery")
    data = tmp_path / "data"
    data.mkdir()
    (data / "techs.yaml").write_text(GOOD)
    migrate(engine)
    box = SecretBox.ephemeral()
    servers = [TechRegistry(RosterStore(Database(blank_database.new_engine()), box)) for _ in range(2)]
    outcomes = [s.adopt_file(data / "techs.yaml").outcome for s in servers]  # two replicas, one data directory
    assert outcomes == ["imported", "absent"], outcomes
    assert not (data / "techs.yaml").exists() and (data / "techs.yaml.imported").read_text() == GOOD
    for server in servers:
        assert [t.email for t in server.techs()] == ["dana@msp.example", "owl@msp.example"]
    Logins(db).check_password("dana@msp.example", "correct horse battery")  # her password is kept
    assert RosterStore(db, box).state().imported_from == str(data / "techs.yaml")


@pytest.mark.anyio
@pytest.mark.postgres
async def test_an_edit_is_notified_to_every_listener_as_it_commits(blank_postgres: TestDatabase) -> None:
    """``NOTIFY mspclaw_roster`` from the edit's transaction, heard by a replica's listener; a notification of
    another test's roster (another schema, same database) would only wake it early, never fail this."""
    Database.open(blank_postgres.url).dispose()  # migrated
    wakeups = Wakeups.for_engine(blank_postgres.new_engine())
    changes = wakeups.channel(CHANGED_CHANNEL, fallback_s=30)
    heard = asyncio.Event()
    changes.subscribe(heard)
    listener = asyncio.get_running_loop().create_task(wakeups.run())
    editor = TechRegistry(RosterStore(Database(blank_postgres.new_engine()), SecretBox.ephemeral()))
    try:
        await asyncio.wait_for(heard.wait(), 10)  # the wake-up of a listener that has just connected
        assert changes.listening
        for n in range(2):
            heard.clear()
            before = changes.received
            await asyncio.to_thread(editor.add, Tech(name=f"Fox{n}", email=f"fox{n}@msp.example", clients=["*"]))
            await asyncio.wait_for(heard.wait(), 10)
            assert changes.received > before
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
