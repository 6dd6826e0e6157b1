"""The contribution check (`mspclaw playbooks test DIR`) over the shipped library and over broken playbooks.

The snapshots it replays were recorded from the agent's real OS tools over recorded command output and
from the site agent's real account tools against Samba AD on loopback and the local Graph tenant
(spec-checked against Graph v1.0's metadata, not live); see ``record_playbook_snapshots.py``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.playbooks.registry_helpers import community_playbook
from typer.testing import CliRunner

from mspclaw.cli.app import app
from mspclaw.playbooks.contribution import SNAPSHOTS, check_directory, load_snapshots
from mspclaw.playbooks.loader import LIBRARY

runner = CliRunner()


def run_check(directory: Path) -> tuple[int, list[dict[str, str]], str]:
    result = runner.invoke(app, ["playbooks", "test", str(directory), "--json"])
    return result.exit_code, json.loads(result.stdout) if result.stdout.strip() else [], result.stderr


def test_the_shipped_library_passes_on_every_os_and_identity_system() -> None:
    code, rows, err = run_check(LIBRARY)
    assert code == 0, [r for r in rows if r["result"] != "ok"] or err
    cells = {(r["playbook"], r["os"], r["identity"]): r for r in rows}
    assert len(rows) == 51
    assert cells[("password_reset", "linux", "entra_id")]["approvals"] == "reset_password"
    assert cells[("password_reset", "windows", "active_directory")]["outcome"] == "resolved"
    assert ("account_locked", "macos", "entra_id") not in cells  # Entra's smart lockout has no unlock tool
    assert ("onboarding", "linux", "entra_id") not in cells  # declared: tested against AD only
    assert cells[("disk_full", "macos", "-")]["outcome"] == "escalated"  # its own success check: the disk is full
    assert cells[("printer", "windows", "-")]["approvals"] == "clear_print_queue, restart_print_spooler"


def test_snapshots_are_what_the_recorder_writes() -> None:
    devices, sites = load_snapshots(SNAPSHOTS)
    assert set(devices) == {"linux", "macos", "windows"} and set(sites) == {"active_directory", "entra_id"}
    assert "unlock_account" in sites["active_directory"].offers and "unlock_account" not in sites["entra_id"].offers
    for snap in (*devices.values(), *sites.values()):
        assert snap.source.startswith("recorded by tests/playbooks/record_playbook_snapshots.py")


def test_broken_playbooks_fail_with_the_reason(tmp_path: Path) -> None:
    books = tmp_path / "books"
    # reads an output field no recorded device has: the success check cannot be evaluated
    community_playbook(books, book="wifi", new_id="acme_wifi", version="1.0.0",
                       edit=("success_check: \"", "success_check: \"after.no_such_field and "))
    # a required account step this identity system cannot run
    community_playbook(books, book="mfa_reset", new_id="acme_mfa", version="1.0.0",
                       edit=("os: [macos, windows, linux]",
                             "os: [linux]\ntested_against: {identity: [active_directory]}"))
    code, rows, _ = run_check(books)
    assert code == 1
    wifi = [r for r in rows if r["playbook"] == "acme_wifi"]
    assert wifi and all(r["result"].startswith("FAIL: escalated because success check could not be evaluated")
                        for r in wifi)
    (mfa,) = [r for r in rows if r["playbook"] == "acme_mfa"]
    assert mfa["identity"] == "active_directory" and "no site agent offers reset_mfa" in mfa["result"]


def test_invalid_playbooks_fail_the_check(tmp_path: Path) -> None:
    books = tmp_path / "books"
    community_playbook(books, edit=("requires_approval: [clear_print_queue, restart_print_spooler]",
                                    "requires_approval: [restart_print_spooler]"))
    cells = asyncio.run(check_directory(books))
    assert len(cells) == 1 and not cells[0].ok
    assert "tool 'clear_print_queue' changes the machine or an account: list it in requires_approval" in \
        cells[0].problems[0]
    (books / "acme_printer.yaml").write_text("a: &x [1]\nb: *x\n")
    code, rows, _ = run_check(books)
    assert code == 1 and "YAML aliases (*x) are not allowed" in rows[0]["result"]
