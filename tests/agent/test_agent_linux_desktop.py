"""The Linux device tools run for real on this machine (CI runs Linux).

Where the machine lacks a program (a CI container has no NetworkManager and no CUPS) the test
checks the tool says so plainly; the parsing of those programs' output is covered by their
recorded output in ``test_recorded_tools.py``. Destructive tools act only on what the test
created: its own processes and files in a temporary home folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from mspclaw.agent.tools import ToolContext
from mspclaw.agent.tools.linux import LINUX_TOOLS
from mspclaw.errors import ToolFailed
from mspclaw.tools import CATALOGUE


def run(tool: str, args: dict[str, Any] | None = None, home: Path | None = None) -> dict[str, Any]:
    context = ToolContext(temp_roots=(), home=home)
    out = LINUX_TOOLS[tool](CATALOGUE[tool].validate(args or {}), context)
    assert isinstance(out, dict)
    return out


def test_uptime_matches_proc() -> None:
    out = run("uptime")
    proc = float(Path("/proc/uptime").read_text().split()[0])
    assert abs(out["uptime_s"] - proc) < 5 and out["boot_time"]


def test_system_info_has_the_cross_os_load_figure() -> None:
    out = run("system_info")
    assert 0 <= out["cpu_load_percent"] <= 100


def test_large_files_lists_only_big_files_largest_first(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    for name, size in (("video.mov", 30), ("backup.zip", 12), ("small.txt", 1)):
        with open(tmp_path / "docs" / name, "wb") as handle:
            handle.truncate(size * 1024 * 1024)
    (tmp_path / "link.mov").symlink_to(tmp_path / "docs" / "video.mov")
    out = run("large_files", {"min_size_mb": 10}, home=tmp_path)
    assert [Path(f["path"]).name for f in out["files"]] == ["video.mov", "backup.zip"]
    assert out["total_bytes"] == 42 * 1024 * 1024


def _wait_for_name(pid: int, name: str) -> None:
    """A child runs Python's name until it has exec'd its program."""
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pid}/comm").read_text().strip() != name and time.monotonic() < deadline:
        time.sleep(0.01)


def test_end_process_ends_only_the_named_program() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        _wait_for_name(child.pid, "sleep")
        with pytest.raises(ToolFailed, match=f"pid {child.pid} now runs 'sleep', not 'firefox'"):
            run("end_process", {"pid": child.pid, "name": "firefox"})
        assert child.poll() is None
        out = run("end_process", {"pid": child.pid, "name": "sleep"})
        assert out["ended"] and not out["already_gone"]
        assert child.wait(timeout=5) is not None
    finally:
        child.kill()
        child.wait()
    with pytest.raises(ToolFailed, match="agent itself"):
        run("end_process", {"pid": os.getpid(), "name": "python"})


def test_clear_browser_cache_empties_only_cache_folders(tmp_path: Path) -> None:
    cache = tmp_path / ".cache/google-chrome/Default/Cache/Cache_Data"
    cache.mkdir(parents=True)
    for i in range(3):
        (cache / f"f_{i}").write_bytes(b"x" * 1000)
    history = tmp_path / ".config/google-chrome/Default/History"
    history.parent.mkdir(parents=True)
    history.write_bytes(b"keep me")
    preview = run("clear_browser_cache", {"browser": "chrome", "dry_run": True}, home=tmp_path)
    assert preview["bytes"] == 3000 and len(list(cache.iterdir())) == 3
    done = run("clear_browser_cache", {"browser": "chrome", "dry_run": False}, home=tmp_path)
    assert done["freed_bytes"] == 3000 and list(cache.parent.iterdir()) == []
    assert history.read_bytes() == b"keep me"


def test_restart_app_ends_the_program_and_starts_it_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    program = tmp_path / "mspdemoapp"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", program)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    first = subprocess.Popen([str(program), "30"])
    try:
        _wait_for_name(first.pid, "mspdemoapp")
        out = run("restart_app", {"name": "mspdemoapp"})
        assert out == {"name": "mspdemoapp", "ended": 1, "restarted": True}
        assert first.wait(timeout=5) is not None  # started again detached (setsid -f), not as our child
    finally:
        first.kill()
        first.wait()


def test_installed_software_reads_the_package_database() -> None:
    if shutil.which("dpkg-query") is None:
        pytest.skip("no dpkg on this machine")
    out = run("installed_software", {"name_contains": "dpkg"})
    assert out["manager"] == "dpkg" and any(s["name"] == "dpkg" for s in out["software"])


def test_missing_programs_are_reported_plainly() -> None:
    for tool, program in (("wifi_status", "nmcli"), ("printer_queues", "lpstat")):
        if shutil.which(program) is None:
            with pytest.raises(ToolFailed, match=f"`{program}` is not installed on this machine"):
                run(tool)
        else:
            out = run(tool)
            if tool == "printer_queues" and not out["scheduler_running"]:
                assert out["finding"] == "the print service is not running" and out["printers"] == []
    flushed = run("flush_dns")
    if shutil.which("resolvectl") is None:
        assert flushed["flushed"] is False and "systemd-resolved is not in use" in flushed["reason"]


@pytest.mark.skipif(shutil.which("lpstat") is None, reason="cups-client (lpstat) is not installed")
def test_a_stopped_print_service_is_a_finding_with_its_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUPS_SERVER", "127.0.0.1:1")  # nothing listens there: the scheduler is "not running"
    out = run("printer_queues")
    assert out["scheduler_running"] is False and out["finding"] == "the print service is not running"
    assert "start" in out["fix"] and "approval" in out["fix"]
    assert out["printers"] == [] and out["attention"] == [] and out["paused"] == []
    with pytest.raises(ToolFailed, match="the print service is not running"):
        run("clear_print_queue", {"printer": "office"})


def test_vpn_status_mail_and_crash_reports_run() -> None:
    vpn = run("vpn_status")
    assert isinstance(vpn["connections"], list) and set(vpn["connected"]) <= {c["name"] for c in vpn["connections"]}
    mail = run("mail_client_status")
    assert {c["name"] for c in mail["clients"]} == {"Thunderbird", "Evolution", "Geary"}
    crashes = run("crash_reports", {"days": 1})
    assert crashes["count"] == len(crashes["reports"])
