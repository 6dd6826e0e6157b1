"""Signed checkpoints of the audit chain's head: a tail cut from the database and the files fails."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from mspclaw.errors import AuditIntegrityError
from mspclaw.store.audit import AuditLog
from mspclaw.store.audit_checkpoint import CHECKPOINT_FILE, Checkpoints
from mspclaw.store.database import Database
from mspclaw.store.db import make_engine, migrate, sqlite_url


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Engine, AuditLog, Path]]:
    engine = make_engine(sqlite_url(tmp_path))
    migrate(engine)
    audit = AuditLog(Database(engine), tmp_path / "audit", checkpoints=Checkpoints.in_data_dir(tmp_path),
                     seal_interval_s=3600)
    yield engine, audit, tmp_path
    engine.dispose()


def cut_tail(engine: Engine, audit_dir: Path, keep: int) -> None:
    """What someone covering their tracks does: the last events go from both copies, consistently."""
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq > :keep"), {"keep": keep})
    for day in sorted(audit_dir.glob("*.jsonl")):
        lines = [line for line in day.read_text().splitlines() if json.loads(line)["seq"] <= keep]
        day.write_text("".join(line + "\n" for line in lines))


def fill(audit: AuditLog, n: int) -> None:
    for i in range(n):
        audit.append("tool_call", data={"i": i})


def test_an_untouched_sealed_trail_verifies_and_says_how_far_it_is_sealed(setup: Any) -> None:
    _, audit, _ = setup
    fill(audit, 10)
    audit.close()
    report = audit.verify(require_checkpoint=True)
    assert report.last_seq == 10 and report.sealed is not None and report.sealed.seq == 10


def test_a_tail_cut_from_both_the_database_and_the_files_fails_with_the_checkpoint(setup: Any) -> None:
    engine, audit, tmp = setup
    fill(audit, 10)
    sealed = audit.seal()
    assert sealed is not None
    cut_tail(engine, tmp / "audit", keep=7)
    with pytest.raises(AuditIntegrityError) as caught:
        audit.verify()
    assert (f"the chain ends at seq 7 but checkpoint says seq 10 was sealed at {sealed.sealed_at.isoformat()}"
            in caught.value.message)
    assert caught.value.location == f"{CHECKPOINT_FILE}:1"
    unchecked = AuditLog(Database(engine), tmp / "audit")
    assert unchecked.verify().last_seq == 7, "without checkpoints the cut goes unnoticed"


def test_a_tail_cut_and_written_again_past_the_checkpoint_fails(setup: Any) -> None:
    engine, audit, tmp = setup
    fill(audit, 10)
    audit.seal()
    cut_tail(engine, tmp / "audit", keep=6)
    fill(AuditLog(Database(engine), tmp / "audit"), 6)  # the chain is whole again, and longer
    with pytest.raises(AuditIntegrityError, match=r"seq 10 is not the event sealed at .*cut and written again"):
        audit.verify()


def test_an_edited_checkpoint_fails_its_signature(setup: Any) -> None:
    _, audit, tmp = setup
    fill(audit, 3)
    audit.seal()
    path = tmp / CHECKPOINT_FILE
    path.write_text(path.read_text().replace('"seq":3', '"seq":2'))
    with pytest.raises(AuditIntegrityError, match="checkpoint signature does not match"):
        audit.verify()


def test_a_deleted_checkpoint_file_fails_when_a_checkpoint_is_required(setup: Any) -> None:
    engine, audit, tmp = setup
    fill(audit, 5)
    audit.seal()
    cut_tail(engine, tmp / "audit", keep=3)
    (tmp / CHECKPOINT_FILE).unlink()
    with pytest.raises(AuditIntegrityError, match=r"no checkpoint seals this trail .* \(seq 3\)"):
        audit.verify(require_checkpoint=True)


def test_a_checkpoint_kept_off_the_host_catches_a_cut_of_the_checkpoint_file_too(setup: Any) -> None:
    engine, audit, tmp = setup
    fill(audit, 4)
    audit.seal()
    fill(audit, 4)
    kept = audit.seal()
    assert kept is not None
    cut_tail(engine, tmp / "audit", keep=4)
    path = tmp / CHECKPOINT_FILE
    path.write_text(path.read_text().splitlines()[0] + "\n")  # the newest checkpoint removed as well
    assert audit.verify().last_seq == 4
    with pytest.raises(AuditIntegrityError, match="the chain ends at seq 4 but checkpoint says seq 8"):
        audit.verify(checkpoint=kept.line())


def test_the_head_is_sealed_periodically_while_events_come_in(tmp_path: Path) -> None:
    engine = make_engine(sqlite_url(tmp_path))
    migrate(engine)
    try:
        audit = AuditLog(Database(engine), tmp_path / "audit", checkpoints=Checkpoints.in_data_dir(tmp_path),
                         seal_interval_s=0.05)
        fill(audit, 3)
        deadline = time.monotonic() + 10
        while audit.checkpoints is not None and audit.checkpoints.last_seq() < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [c.seq for c in Checkpoints.in_data_dir(tmp_path).read()] == [3]
        assert (tmp_path / "audit_checkpoint_key").stat().st_mode & 0o777 == 0o600
    finally:
        engine.dispose()


@pytest.mark.anyio
async def test_mspclaw_audit_verify_reports_a_cut_with_exit_1(tmp_path: Path) -> None:
    from tests.conftest import live_server

    async with live_server(tmp_path) as live:
        for name in ("Acme", "Bravo", "Charlie"):
            await live.client(name)
        total = live.services.audit.verify().last_seq
    data = tmp_path / "data"

    def verify() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mspclaw", "--data-dir", str(data), "audit", "verify"],
                              capture_output=True, text=True, timeout=120)

    ok = verify()
    assert ok.returncode == 0, ok.stderr
    assert f"sealed up to seq {total}" in ok.stdout
    engine = make_engine(sqlite_url(data))
    try:
        cut_tail(engine, data / "audit", keep=total - 2)
    finally:
        engine.dispose()
    bad = verify()
    assert bad.returncode == 1
    said = " ".join(bad.stderr.split())  # the console wraps long lines
    assert f"the chain ends at seq {total - 2} but checkpoint says seq {total} was sealed at" in said
    assert "Traceback" not in bad.stderr
