"""`mspclaw backup` / `mspclaw restore` on SQLite and PostgreSQL, and `mspclaw prune`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import func, insert, select
from typer.testing import CliRunner

from mspclaw.cli import config
from mspclaw.cli.app import app
from mspclaw.settings import Settings
from mspclaw.store.backup import MANIFEST, BackupError, backup, restore
from mspclaw.store.database import Database
from mspclaw.store.jobs import PSAAccounts
from mspclaw.store.retention import Pruner, Retention
from mspclaw.store.secretbox import KEY_FILE
from mspclaw.store.tables import (
    ApprovalRow,
    AuditEvent,
    Client,
    JobRow,
    Session,
    Step,
    Ticket,
    ToolCallRow,
)
from mspclaw.wiring import open_store, secret_box

if TYPE_CHECKING:
    from tests.store.conftest import TestDatabase

TOKEN = "sk-live-backup-0123456789"


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setattr(config, "_overrides", {})
    monkeypatch.setenv("MSPCLAW_API_KEY", "test-key")
    return CliRunner()


def populate(settings: Settings, events: int = 20) -> None:
    """A data directory as a running server leaves it: audit events (sealed), a PSA account, techs."""
    db, audit = open_store(settings)
    try:
        PSAAccounts(db, secret_box(settings)).add("psa", "local", {"base_url": "http://127.0.0.1:9"},
                                                  {"token": TOKEN})
        for n in range(events):
            audit.append("ticket_received", actor="test", data={"n": n})
    finally:
        audit.close()  # sealed
        db.dispose()
    (settings.data_dir / "techs.yaml").write_text("techs: []\n")


def audit_count(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(AuditEvent)).scalar_one())


def check_restored(settings: Settings, events: int) -> None:
    db, audit = open_store(settings)
    try:
        report = audit.verify(require_checkpoint=True)
        assert report.events == events == audit_count(db)
        (account,) = PSAAccounts(db, secret_box(settings)).list()
        assert account.secret_values() == {"token": TOKEN}
    finally:
        db.dispose()
    assert (settings.data_dir / "techs.yaml").read_text() == "techs: []\n"
    assert stat.S_IMODE(settings.data_dir.stat().st_mode) == 0o700
    for path in settings.data_dir.rglob("*"):
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_backup_and_restore_into_a_fresh_place_verify_the_audit_chain(
        tmp_path: Path, kind: str, pg_database: Callable[[], str], cli: CliRunner,
        monkeypatch: pytest.MonkeyPatch) -> None:
    source_url = pg_database() if kind == "postgres" else None
    target_url = pg_database() if kind == "postgres" else None
    source = Settings(data_dir=tmp_path / "data", database_url=source_url)
    populate(source)
    monkeypatch.setenv("MSPCLAW_DATA_DIR", str(source.data_dir))
    if source_url:
        monkeypatch.setenv("MSPCLAW_DATABASE_URL", source_url)

    result = cli.invoke(app, ["backup", str(tmp_path / "backup")])
    assert result.exit_code == 0, result.output
    assert "the secret key is in it" in result.output
    backup_dir = tmp_path / "backup"
    assert (backup_dir / MANIFEST).exists() and (backup_dir / "files" / KEY_FILE).exists()
    assert stat.S_IMODE(backup_dir.stat().st_mode) == 0o700

    db, audit = open_store(source)  # events after the backup are not in it
    audit.append("after_backup", actor="test")
    audit.close()
    db.dispose()

    restored = tmp_path / "restored"
    args = ["restore", str(backup_dir), "--data-dir", str(restored)]
    result = cli.invoke(app, args + (["--database-url", target_url] if target_url else []))
    assert result.exit_code == 0, result.output
    assert "audit chain verified: 20 events" in result.output
    check_restored(Settings(data_dir=restored, database_url=target_url), events=20)

    # restoring again onto what is now a live installation is refused, and changes nothing
    before = sorted((p.relative_to(restored), p.stat().st_mtime_ns) for p in restored.rglob("*"))
    result = cli.invoke(app, args + (["--database-url", target_url] if target_url else []))
    assert result.exit_code == 1 and isinstance(result.exception, BackupError)
    assert "not empty" in str(result.exception)
    assert sorted((p.relative_to(restored), p.stat().st_mtime_ns) for p in restored.rglob("*")) == before


def test_a_backup_taken_while_events_are_appended_is_consistent(tmp_path: Path) -> None:
    source = Settings(data_dir=tmp_path / "data")
    populate(source, events=5)
    db, audit = open_store(source)
    stop = threading.Event()

    def keep_appending() -> None:
        while not stop.is_set():
            audit.append("heartbeat", actor="test")

    writer = threading.Thread(target=keep_appending)
    writer.start()
    try:
        report = backup(db, source.data_dir, tmp_path / "backup")
    finally:
        stop.set()
        writer.join()
    assert report.database == "sqlite" and report.secret_key_included
    restore(tmp_path / "backup", tmp_path / "restored")
    restored = Settings(data_dir=tmp_path / "restored")
    rdb, raudit = open_store(restored)
    try:
        verified = raudit.verify()
        assert 5 <= verified.events == audit_count(rdb) <= audit_count(db)
    finally:
        rdb.dispose()
        audit.close()
        db.dispose()


@pytest.mark.postgres
def test_restore_refusals_change_nothing(tmp_path: Path, pg_database: Callable[[], str]) -> None:
    source = Settings(data_dir=tmp_path / "data")
    populate(source, events=3)
    db = Database.open(source.resolved_database_url())
    try:
        with pytest.raises(BackupError, match="outside the data directory"):
            backup(db, source.data_dir, source.data_dir / "backup")
        report = backup(db, source.data_dir, tmp_path / "backup", include_key=False)
        assert not report.secret_key_included
        with pytest.raises(BackupError, match="not empty"):
            backup(db, source.data_dir, tmp_path / "backup")
    finally:
        db.dispose()
    assert not (tmp_path / "backup" / "files" / KEY_FILE).exists()

    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "mspclaw.db").write_bytes(b"a live database")
    with pytest.raises(BackupError, match="not empty"):
        restore(tmp_path / "backup", occupied)
    assert [p.name for p in occupied.iterdir()] == ["mspclaw.db"]
    assert (occupied / "mspclaw.db").read_bytes() == b"a live database"

    with pytest.raises(BackupError, match="sqlite database; it cannot be restored into postgresql"):
        restore(tmp_path / "backup", tmp_path / "pg", database_url=pg_database())
    assert not (tmp_path / "pg").exists()

    damaged = next((tmp_path / "backup" / "files" / "audit").glob("*.jsonl"))
    damaged.write_bytes(damaged.read_bytes().replace(b"ticket_received", b"ticket_deleted!", 1))
    with pytest.raises(BackupError, match="does not match its checksum"):
        restore(tmp_path / "backup", tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists()
    with pytest.raises(BackupError, match="not an MSPclaw backup"):
        restore(tmp_path / "occupied", tmp_path / "fresh")


@pytest.mark.postgres
def test_restore_refuses_a_postgresql_database_that_has_tables(tmp_path: Path,
                                                                pg_database: Callable[[], str]) -> None:
    source = Settings(data_dir=tmp_path / "data", database_url=pg_database())
    populate(source, events=2)
    db = Database.open(source.resolved_database_url())
    try:
        backup(db, source.data_dir, tmp_path / "backup")
    finally:
        db.dispose()
    in_use = pg_database()
    Database.open(in_use).dispose()  # migrated: it has tables
    with pytest.raises(BackupError, match="already has tables"):
        restore(tmp_path / "backup", tmp_path / "restored", database_url=in_use)
    assert not (tmp_path / "restored").exists()


@pytest.mark.postgres
def test_a_postgresql_backup_without_pg_dump_is_refused_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 pg_database: Callable[[], str]) -> None:
    db = Database.open(pg_database())
    try:
        with pytest.raises(BackupError, match="pg_dump-that-is-not-there is not installed"):
            backup(db, tmp_path / "data", tmp_path / "backup", pg_dump="pg_dump-that-is-not-there")
    finally:
        db.dispose()
    assert not (tmp_path / "backup").exists()


# --- retention ---------------------------------------------------------------------------------


def seed_history(db: Database, now: datetime) -> dict[str, Any]:
    """Two clients' worth of sessions, old and new, finished and not, each with steps, calls, approvals."""
    old, new = now - timedelta(days=40), now - timedelta(days=2)
    with db.engine.begin() as conn:
        conn.execute(insert(Client).values(id="cl_1", name="Acme"))
        conn.execute(insert(Ticket).values(id="tk_1", client_id="cl_1", subject="printer"))
        sessions = {"old_done": (old, "resolved"), "new_done": (new, "escalated"), "old_open": (old, "running")}
        for sid, (when, status) in sessions.items():
            conn.execute(insert(Session).values(id=sid, ticket_id="tk_1", client_id="cl_1", status=status,
                                                created_at=when, updated_at=when))
            for i in range(3):
                conn.execute(insert(Step).values(session_id=sid, index=i, title=f"step {i}", created_at=when))
            conn.execute(insert(ToolCallRow).values(call_id=f"call_{sid}", session_id=sid, client_id="cl_1",
                                                    agent_id="ag_1", tool="disk_usage", created_at=when))
            conn.execute(insert(ApprovalRow).values(id=f"ap_{sid}", session_id=sid, client_id="cl_1", tool="x",
                                                    deadline=when, status="approved", created_at=when))
        for jid, (when, status) in {"job_old_done": (old, "done"), "job_new_done": (new, "done"),
                                    "job_old_dead": (old, "dead"), "job_old_queued": (old, "queued")}.items():
            conn.execute(insert(JobRow).values(id=jid, kind="psa_ticket", status=status, run_after=when,
                                               created_at=when, updated_at=when,
                                               finished_at=when if status != "queued" else None))
    return sessions


def ids(db: Database, column: Any) -> set[str]:
    with db.engine.connect() as conn:
        return {str(v) for v in conn.execute(select(column)).scalars()}


def test_prune_deletes_finished_work_past_retention_and_the_audit_chain_still_verifies(
        tmp_path: Path, database: TestDatabase, cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=database.url)
    db, audit = open_store(settings)
    try:
        seed_history(db, datetime.now(UTC))
        for sid in ("old_done", "new_done", "old_open"):
            audit.append("session_started", actor="test", session_id=sid, data={"tool": "disk_usage"})
        audit.seal()

        steps_only = Pruner(db, Retention(steps_days=30)).prune()
        assert steps_only.steps == 3 and steps_only.sessions == 0
        with db.engine.connect() as conn:
            assert {r for r in conn.execute(select(Step.session_id)).scalars()} == {"new_done", "old_open"}

        monkeypatch.setenv("MSPCLAW_DATA_DIR", str(settings.data_dir))
        monkeypatch.setenv("MSPCLAW_DATABASE_URL", database.url)
        result = cli.invoke(app, ["prune", "--jobs-days", "30", "--sessions-days", "30", "--json"])
        assert result.exit_code == 0, result.output
        assert ids(db, Session.id) == {"new_done", "old_open"}  # a running session is kept whatever its age
        assert ids(db, ToolCallRow.call_id) == {"call_new_done", "call_old_open"}
        assert ids(db, ApprovalRow.id) == {"ap_new_done", "ap_old_open"}
        assert ids(db, JobRow.id) == {"job_new_done", "job_old_queued"}
        assert ids(db, Ticket.id) == {"tk_1"}

        report = audit.verify(require_checkpoint=True)  # every event kept, the pruning recorded too
        assert report.events == 4 and audit.query(kind="records_pruned")
    finally:
        audit.close()
        db.dispose()


def test_no_retention_set_deletes_nothing(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", retention_jobs_days=0)
    db, _ = open_store(settings)
    try:
        seed_history(db, datetime.now(UTC))
        report = Pruner(db, Retention()).prune()
        assert (report.jobs, report.sessions, report.steps, report.rows) == (0, 0, 0, {})
        assert len(ids(db, Session.id)) == 3 and len(ids(db, JobRow.id)) == 4
    finally:
        db.dispose()
    assert os.path.exists(settings.data_dir)


@pytest.mark.anyio
async def test_the_periodic_pruner_prunes_and_records_it(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    db, audit = open_store(settings)
    try:
        seed_history(db, datetime.now(UTC))
        pruner = Pruner(db, Retention(jobs_days=30, sessions_days=30))
        task = asyncio.create_task(pruner.run(audit, interval_s=0.05))
        try:
            for _ in range(100):
                if audit.query(kind="records_pruned"):
                    break
                await asyncio.sleep(0.05)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        (event,) = audit.query(kind="records_pruned")  # later rounds found nothing more to delete
        assert event.data["rows"]["sessions"] == 1 and event.data["rows"]["jobs"] == 2
        assert ids(db, Session.id) == {"new_done", "old_open"}
        assert (await asyncio.to_thread(audit.verify)).events == 1
    finally:
        audit.close()
        db.dispose()


@pytest.mark.anyio
async def test_the_server_prunes_by_its_retention_settings(tmp_path: Path) -> None:
    """The composition root builds the pruner from the settings and the server's start runs it."""
    from mspclaw.wiring import build

    settings = Settings(data_dir=tmp_path / "data", retention_jobs_days=30, retention_sessions_days=30)
    services = build(settings)
    seeding = Database.open(settings.resolved_database_url())
    try:
        seed_history(seeding, datetime.now(UTC))
        await services.start(workers=False)
        try:
            for _ in range(100):
                if services.audit.query(kind="records_pruned"):
                    break
                await asyncio.sleep(0.05)
        finally:
            await services.stop()
        assert ids(seeding, JobRow.id) == {"job_new_done", "job_old_queued"}
        assert ids(seeding, Session.id) == {"new_done", "old_open"}
    finally:
        seeding.dispose()
