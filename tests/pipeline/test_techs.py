"""The technician roster: techs.yaml validation that names the line (import and export), on-duty routing,
channels per client or global, the upgrade's one-time import, and edits in the database that every registry
sees at its next read and that are never lost when several run at once (SQLite here; PostgreSQL in
tests/store/test_technician_roster.py)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import event

from mspclaw.errors import ConfigError, Conflict, NotFound
from mspclaw.pipeline.techs import Tech, TechRegistry, TechsFile, parse, tech_from
from mspclaw.store.database import Database
from mspclaw.store.db import sqlite_url
from mspclaw.store.secretbox import SecretBox
from mspclaw.store.technicians import CHANGED_CHANNEL, RosterStore
from mspclaw.store.wakeups import Wakeups

GOOD = """\
techs:
  - name: Dana Scully
    email: Dana@MSP.example
    role: tech
    slack_id: U0DANA
    clients: ["Acme Dental"]
    on_duty: ["mon-fri 08:00-18:00"]
    timezone: Europe/Berlin
  - name: Night Owl
    email: owl@msp.example
    clients: ["*"]
    on_duty: ["mon-sun 22:00-06:00"]
channels:
  - name: acme
    kind: teams
    url: https://example.invalid/workflows/acme
    clients: [cl_acme]
"""


def test_a_valid_file_loads() -> None:
    doc = parse(GOOD, "techs.yaml")
    assert [t.email for t in doc.techs] == ["dana@msp.example", "owl@msp.example"]
    assert doc.channels[0].kind == "teams" and "url" not in repr(doc.channels[0])


@pytest.mark.parametrize(("text", "line", "words"), [
    (GOOD.replace("role: tech", "role: boss"), 4, "techs.0.role"),
    (GOOD.replace("Dana@MSP.example", "not-an-email"), 3, "techs.0.email"),
    (GOOD.replace('"mon-fri 08:00-18:00"', '"weekdays 9-5"'), 7, "write 'mon-fri 08:00-18:00'"),
    (GOOD.replace("Europe/Berlin", "Mars/Olympus"), 8, "unknown time zone"),
    (GOOD.replace("kind: teams", "kind: pager"), 15, "channels.0.kind"),
    (GOOD.replace("    clients: [\"*\"]\n", ""), 9, "techs.1.clients: Field required"),
    (GOOD.replace("slack_id: U0DANA", "slack_id: U0DANA\n    pager: 555"), 6, "techs.0.pager: Extra inputs"),
    (GOOD + "  - name: [unclosed\n", 19, "flow sequence at line 18"),
])
def test_errors_name_the_line(text: str, line: int, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(text, "techs.yaml")
    assert f"techs.yaml:{line}:" in info.value.message and words in info.value.message, info.value.message


def test_duplicate_emails_are_refused() -> None:
    text = GOOD.replace("owl@msp.example", "dana@msp.example")
    with pytest.raises(ConfigError, match=r"e-mail listed twice: dana@msp\.example"):
        parse(text, "techs.yaml")


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database.open(sqlite_url(tmp_path))
    yield database
    database.dispose()


@pytest.fixture
def box() -> SecretBox:
    return SecretBox.ephemeral()


def registry(db: Database, box: SecretBox) -> TechRegistry:
    return TechRegistry(RosterStore(db, box))


def test_on_duty_picks_the_first_technician_in_their_hours(db: Database, box: SecretBox) -> None:
    reg = registry(db, box)
    reg.replace_all(parse(GOOD, "techs.yaml"))
    tuesday_noon_berlin = datetime(2026, 11, 24, 11, 0, tzinfo=UTC)
    tuesday_night = datetime(2026, 11, 24, 23, 30, tzinfo=UTC)
    wednesday_early = datetime(2026, 11, 25, 5, 30, tzinfo=UTC)
    saturday_noon = datetime(2026, 11, 28, 11, 0, tzinfo=UTC)
    assert reg.on_duty("cl_acme", "Acme Dental", tuesday_noon_berlin).tech.name == "Dana Scully"  # type: ignore[union-attr]
    assert reg.on_duty("cl_acme", "Acme Dental", tuesday_night).tech.name == "Night Owl"  # type: ignore[union-attr]
    assert reg.on_duty("cl_acme", "Acme Dental", wednesday_early).tech.name == "Night Owl"  # type: ignore[union-attr]
    nobody = reg.on_duty("cl_acme", "Acme Dental", saturday_noon)
    assert nobody.tech is None and "none of the 2 technicians" in nobody.why
    assert reg.on_duty("cl_x", "Other", saturday_noon).tech is None
    assert reg.on_duty("cl_x", "Other", tuesday_night).tech.email == "owl@msp.example"  # type: ignore[union-attr]
    # channels: the client's own, else global (none here)
    assert [c.name for c in reg.channels("cl_acme", "Acme Dental", "escalation")] == ["acme"]
    assert reg.channels("cl_x", "Other", "escalation") == []
    # the roster's order is kept through a change: swap them, and the other one is first
    reg.replace_all(TechsFile(techs=list(reversed(reg.techs())), channels=reg.load().channels))
    assert [t.name for t in registry(db, box).techs()] == ["Night Owl", "Dana Scully"]


def test_an_edit_through_another_registry_applies_at_the_next_read(db: Database, box: SecretBox) -> None:
    mine, theirs = registry(db, box), registry(db, box)  # two servers on one database
    mine.replace_all(parse(GOOD, "techs.yaml"))
    assert theirs.find("night owl") is not None
    mine.replace("owl@msp.example", tech_from(mine.find("owl@msp.example").model_dump()  # type: ignore[union-attr]
                                              | {"name": "Day Owl", "role": "viewer"}))
    owl = theirs.find("owl@msp.example")
    assert owl is not None and owl.name == "Day Owl" and owl.role == "viewer"
    theirs.remove("Day Owl")
    assert mine.find("owl@msp.example") is None and [t.email for t in mine.techs()] == ["dana@msp.example"]


def test_add_and_remove_validate_and_name_the_roster(db: Database, box: SecretBox) -> None:
    reg = registry(db, box)
    reg.add(tech_from({"name": "Dana", "email": "dana@msp.example", "clients": ["Acme"]}))
    with pytest.raises(Conflict, match="already in the roster"):
        reg.add(tech_from({"name": "Dana 2", "email": "DANA@msp.example", "clients": ["Acme"]}))
    with pytest.raises(Conflict, match="role"):
        tech_from({"name": "X", "email": "x@msp.example", "clients": ["Acme"], "role": "root"})
    with pytest.raises(Conflict, match="e-mail is who they are"):
        reg.replace("dana@msp.example", tech_from({"name": "Dana", "email": "d2@msp.example", "clients": ["*"]}))
    assert [t.email for t in registry(db, box).techs()] == ["dana@msp.example"]
    reg.remove("Dana")
    with pytest.raises(NotFound, match="in the roster"):
        reg.remove("dana@msp.example")
    assert registry(db, box).techs() == []


def test_a_data_directorys_techs_yaml_is_imported_once_and_set_aside(db: Database, box: SecretBox,
                                                                     tmp_path: Path) -> None:
    path = tmp_path / "techs.yaml"
    reg = registry(db, box)
    assert reg.adopt_file(path).outcome == "absent"
    path.write_text("techs:\n  - name: [oops\n")
    with pytest.raises(ConfigError, match=r"techs\.yaml:3: not valid YAML.*flow sequence at line 2"):
        reg.adopt_file(path)
    assert path.read_text() == "techs:\n  - name: [oops\n" and reg.techs() == [], "left as it was"
    path.write_text(GOOD)
    adopted = reg.adopt_file(path)
    assert adopted.outcome == "imported" and adopted.moved and adopted.imported is not None
    assert adopted.imported.added == ["dana@msp.example", "owl@msp.example"] and adopted.imported.channels == 1
    assert not path.exists() and (tmp_path / "techs.yaml.imported").read_text() == GOOD
    assert [t.email for t in reg.techs()] == ["dana@msp.example", "owl@msp.example"]
    assert reg.channels("cl_acme", "Acme", "approval")[0].url == "https://example.invalid/workflows/acme"
    assert RosterStore(db, box).state().imported_from == str(path)
    # a later hand-written techs.yaml is not read over the roster in the database
    reg.remove("owl@msp.example")
    path.write_text(GOOD)
    assert reg.adopt_file(path).outcome == "ignored" and path.exists()
    assert [t.email for t in reg.techs()] == ["dana@msp.example"]


def test_concurrent_adds_from_threads_and_processes_lose_none(db: Database, tmp_path: Path) -> None:
    errors: list[BaseException] = []
    box = SecretBox.ephemeral()

    def add(i: int) -> None:
        try:
            registry(db, box).add(Tech(name=f"T{i}", email=f"t{i}@msp.example", clients=["*"]))
        except BaseException as exc:
            errors.append(exc)

    script = ("import sys; from mspclaw.pipeline.techs import Tech, TechRegistry; "
              "from mspclaw.store.database import Database; from mspclaw.store.secretbox import SecretBox; "
              "from mspclaw.store.technicians import RosterStore; i = sys.argv[2]; db = Database.open(sys.argv[1]); "
              "reg = TechRegistry(RosterStore(db, SecretBox.ephemeral())); "
              "[reg.add(Tech(name=f'P{i}-{n}', email=f'p{i}-{n}@msp.example', clients=['*'])) for n in range(3)]; "
              "db.dispose()")
    procs = [subprocess.Popen([sys.executable, "-c", script, sqlite_url(tmp_path), str(i)]) for i in range(2)]
    threads = [threading.Thread(target=add, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [p.wait(60) for p in procs] == [0, 0]
    assert not errors
    emails = {t.email for t in registry(db, box).techs()}
    from_procs = {f"p{i}-{n}@msp.example" for i in range(2) for n in range(3)}
    assert emails == {f"t{i}@msp.example" for i in range(12)} | from_procs


@pytest.mark.anyio
async def test_reads_on_the_event_loop_never_wait_for_the_database_and_are_refreshed(
        db: Database, box: SecretBox) -> None:
    announced: list[str] = []
    mine = TechRegistry(RosterStore(db, box), announce=lambda: announced.append("roster"))
    other = registry(db, box)  # another replica, or `mspclaw tech` on another host
    mine.replace_all(parse(GOOD, "techs.yaml"))
    assert announced == ["roster"], "an edit through this registry is announced to the other replicas"
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        assert mine.find("owl@msp.example") is not None and mine.channels("cl_acme", "x", "approval")
        assert statements == [], "on the loop: the roster held, no statement"
        await asyncio.to_thread(other.remove, "owl@msp.example")
        assert mine.find("owl@msp.example") is not None, "not read on the loop"
        await mine.reload()  # what another replica's message, or the refresh every second, does
        assert mine.find("owl@msp.example") is None
        await asyncio.to_thread(other.add, Tech(name="Fox", email="fox@msp.example", clients=["*"]))
        refresher = asyncio.create_task(mine.refresh_forever(0.01))
        try:
            for _ in range(500):
                if mine.find("fox@msp.example") is not None:
                    break
                await asyncio.sleep(0.01)
        finally:
            refresher.cancel()
        assert mine.find("fox@msp.example") is not None, "refreshed off the loop"
        assert await asyncio.to_thread(mine.find, "dana@msp.example") is not None  # off the loop: read through
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)


@pytest.mark.anyio
async def test_a_notified_change_is_read_at_once_not_at_the_next_poll(db: Database, box: SecretBox) -> None:
    """The refresher's poll is an hour here: only the wake-up (PostgreSQL's NOTIFY of the roster's channel, fanned
    out by the listener) can bring another registry's edit to the roster this loop holds."""
    mine, other = registry(db, box), registry(db, box)
    mine.replace_all(parse(GOOD, "techs.yaml"))
    changes = Wakeups(None).channel(CHANGED_CHANNEL)  # its wake() is what a notification of the roster's channel does
    refresher = asyncio.create_task(mine.refresh_forever(3600, changes=changes))
    try:
        await asyncio.sleep(0)  # the refresher subscribes
        await asyncio.to_thread(other.add, Tech(name="Fox", email="fox@msp.example", clients=["*"]))
        assert mine.find("fox@msp.example") is None, "not read on the loop"
        changes.wake()
        for _ in range(500):
            if mine.find("fox@msp.example") is not None:
                break
            await asyncio.sleep(0.01)
        assert mine.find("fox@msp.example") is not None, "read again when woken"
        assert mine.notified == 1
    finally:
        refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refresher
