"""``mspclaw tech reset-2fa`` (a lost phone) and ``mspclaw secrets`` run bare, offline on a data directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mspclaw.cli.app import app
from mspclaw.settings import Settings
from mspclaw.store.console_logins import SecondFactors
from mspclaw.wiring import open_store, secret_box


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MSPCLAW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("MSPCLAW_DATABASE_URL", raising=False)
    return tmp_path / "data"


def test_reset_2fa_forgets_the_second_factor_and_audits_it(data_dir: Path) -> None:
    runner = CliRunner()
    added = runner.invoke(app, ["tech", "add", "Dana Scully", "--email", "dana@msp.example", "--client", "*"])
    assert added.exit_code == 0, added.output
    settings = Settings(data_dir=data_dir)
    db, audit = open_store(settings)
    try:
        SecondFactors(db, secret_box(settings)).begin("dana@msp.example", "JBSWY3DPEHPK3PXP")
    finally:
        audit.close()
        db.dispose()

    result = runner.invoke(app, ["tech", "reset-2fa", "Dana Scully"])
    assert result.exit_code == 0, result.output
    assert "second factor reset" in result.output
    again = runner.invoke(app, ["tech", "reset-2fa", "dana@msp.example"])
    assert again.exit_code == 0 and "had no second factor" in again.output
    unknown = runner.invoke(app, ["tech", "reset-2fa", "nobody@msp.example"])
    assert unknown.exit_code != 0

    db, audit = open_store(settings)
    try:
        assert SecondFactors(db, secret_box(settings)).secret("dana@msp.example") is None
        events = audit.query(kind="tech_second_factor_reset")
        assert [e.data["had_one"] for e in events] == [True, False]
    finally:
        audit.close()
        db.dispose()


def test_secrets_run_bare_shows_the_status(data_dir: Path) -> None:
    runner = CliRunner()
    bare = runner.invoke(app, ["secrets"])
    status = runner.invoke(app, ["secrets", "status"])
    assert bare.exit_code == 0 and status.exit_code == 0, bare.output
    assert bare.output.splitlines()[:2] == status.output.splitlines()[:2]
