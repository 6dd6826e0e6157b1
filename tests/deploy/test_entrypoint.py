"""``deploy/entrypoint.sh``, the images' launcher, run with ``sh`` and a stand-in ``mspclaw`` on ``PATH`` that
prints the environment it was given: secrets mounted as files become the variables MSPclaw reads, and the
settings that are file names themselves reach MSPclaw unchanged (a TLS certificate turned into a variable
nobody reads would leave the server on plain HTTP)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from mspclaw.settings import Settings

REPO = Path(__file__).resolve().parents[2]
ENTRYPOINT = REPO / "deploy" / "entrypoint.sh"
PRINT_ENV = "#!/bin/sh\nenv | grep -E '^(MSPCLAW_|PGPASSWORD)' | sort\n"


def launch(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stand_in = bin_dir / "mspclaw"
    stand_in.write_text(PRINT_ENV)
    stand_in.chmod(0o755)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MSPCLAW_", "PGPASSWORD"))}
    return subprocess.run(["sh", str(ENTRYPOINT), *args], env={**clean, **env, "PATH": f"{bin_dir}:{clean['PATH']}"},
                          capture_output=True, text=True, timeout=30, check=False)


def given(done: subprocess.CompletedProcess[str]) -> dict[str, str]:
    assert done.returncode == 0, done.stderr
    return dict(line.split("=", 1) for line in done.stdout.splitlines())


def file_settings() -> list[str]:
    """The environment names of the settings whose value is a file's path."""
    return [f"MSPCLAW_{name.upper()}" for name in Settings.model_fields if name.endswith("_file")]


def test_the_settings_that_are_file_names_reach_mspclaw_unchanged(tmp_path: Path) -> None:
    names = file_settings()
    assert {"MSPCLAW_TLS_CERT_FILE", "MSPCLAW_TLS_KEY_FILE", "MSPCLAW_SECRET_KEY_FILE"} <= set(names)
    env = {}
    for name in names:
        path = tmp_path / name.lower()
        path.write_text("# MSPclaw secret keys\n-----BEGIN SOMETHING-----\n")
        env[name] = str(path)
    seen = given(launch(tmp_path, env, "server"))
    for name in names:
        assert seen.get(name) == env[name], f"{name} must reach MSPclaw as the file's path"
        assert name.removesuffix("_FILE") not in seen, f"{name} was turned into a variable MSPclaw does not read"


def test_a_secret_mounted_as_a_file_becomes_its_variable(tmp_path: Path) -> None:
    (tmp_path / "api_key").write_text("msp_abc\n")
    (tmp_path / "db_password").write_text("pg-secret\n")
    seen = given(launch(tmp_path, {"MSPCLAW_API_KEY_FILE": str(tmp_path / "api_key"),
                                   "PGPASSWORD_FILE": str(tmp_path / "db_password")}, "server"))
    assert seen["MSPCLAW_API_KEY"] == "msp_abc" and seen["PGPASSWORD"] == "pg-secret"
    assert "MSPCLAW_API_KEY_FILE" not in seen and "PGPASSWORD_FILE" not in seen


@pytest.mark.parametrize("name", ["MSPCLAW_API_KEY_FILE", "MSPCLAW_TLS_CERT_FILE"])
def test_a_missing_file_stops_the_launch_naming_it(tmp_path: Path, name: str) -> None:
    done = launch(tmp_path, {name: str(tmp_path / "absent")}, "server")
    assert done.returncode == 78
    assert f"{name} names {tmp_path / 'absent'}, which is missing or unreadable" in done.stderr
    assert done.stdout == "", "MSPclaw was not started"
