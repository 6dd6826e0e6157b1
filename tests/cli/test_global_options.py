"""The global options (``--data-dir``, ``--url``) hold for the invocation that gives them, and only for it."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from mspclaw.cli.app import app


def test_an_in_process_invocation_does_not_inherit_an_earlier_data_dir(tmp_path: Path) -> None:
    runner = CliRunner()
    first, second = tmp_path / "first", tmp_path / "second"
    added = runner.invoke(app, ["--data-dir", str(first), "tech", "add", "Dana Scully", "--email",
                                "dana@msp.example", "--client", "*"])
    assert added.exit_code == 0, added.output
    assert (first / "mspclaw.db").exists()  # the roster is in the first data directory's database
    again = runner.invoke(app, ["--data-dir", str(first), "tech", "list", "--json"])
    assert [t["email"] for t in json.loads(again.stdout)] == ["dana@msp.example"]
    listed = runner.invoke(app, ["tech", "list", "--json"], env={"MSPCLAW_DATA_DIR": str(second)})
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.stdout) == []  # the environment's data directory, not the first run's
