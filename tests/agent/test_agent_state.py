"""The agent's state folder: where it lives on each system, and who may read it.

POSIX permissions are checked on this machine for real; the Windows ACL path runs here too, with
only its command runner (``icacls``) faked.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from mspclaw.agent.state import (
    ADMINISTRATORS_SID,
    SYSTEM_SID,
    AgentState,
    default_state_dir,
    ensure_state_dir,
    load_state,
    save_state,
)
from mspclaw.errors import ConfigError

STATE = AgentState(agent_id="ag_1", client_id="cl_1", role="device", credential="secret-credential",
                   server_key="ab" * 32)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the Linux conventions")
def test_the_state_folder_follows_the_linux_conventions(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert default_state_dir(elevated=True) == Path("/var/lib/mspclaw-agent")
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_state_dir(elevated=False) == tmp_path / ".local" / "state" / "mspclaw-agent"
    # the site-agent container image sets XDG_STATE_HOME=/var/lib for its non-root user
    monkeypatch.setenv("XDG_STATE_HOME", "/var/lib")
    assert default_state_dir(elevated=False) == Path("/var/lib/mspclaw-agent")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_on_posix_the_folder_is_0700_and_the_credential_0600_whatever_the_umask(tmp_path: Path) -> None:
    state_dir = tmp_path / "deep" / "state"
    previous = os.umask(0)
    try:
        save_state(state_dir, STATE)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((state_dir / "agent.json").stat().st_mode) == 0o600
    state_dir.chmod(0o755)  # loosened by hand: the next start makes it private again
    ensure_state_dir(state_dir)
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    assert load_state(state_dir) == STATE


class FakeIcacls:
    def __init__(self, returncode: int = 0, stderr: str = "") -> None:
        self.commands: list[list[str]] = []
        self.returncode, self.stderr = returncode, stderr

    def __call__(self, command: Sequence[str]) -> subprocess.CompletedProcess[str]:
        self.commands.append(list(command))
        return subprocess.CompletedProcess(list(command), self.returncode, "", self.stderr)


def test_on_windows_a_service_folder_is_left_to_system_and_administrators(tmp_path: Path) -> None:
    icacls = FakeIcacls()
    ensure_state_dir(tmp_path / "state", platform="win32", elevated=True, run=icacls)
    assert icacls.commands == [["icacls", str(tmp_path / "state"), "/inheritance:r",
                                "/grant:r", f"{SYSTEM_SID}:(OI)(CI)F",
                                "/grant:r", f"{ADMINISTRATORS_SID}:(OI)(CI)F"]]
    assert SYSTEM_SID == "*S-1-5-18" and ADMINISTRATORS_SID == "*S-1-5-32-544"


def test_on_windows_an_agent_run_by_a_user_keeps_access_for_that_user(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USERNAME", "maria")
    monkeypatch.setenv("USERDOMAIN", "ACME")
    icacls = FakeIcacls()
    ensure_state_dir(tmp_path / "state", platform="win32", elevated=False, run=icacls)
    assert icacls.commands[0][-2:] == ["/grant:r", "ACME\\maria:(OI)(CI)F"]
    assert "/inheritance:r" in icacls.commands[0], "inherited grants (Users, Everyone) are removed"


def test_on_windows_a_failed_icacls_stops_the_agent_with_a_clear_error(tmp_path: Path) -> None:
    icacls = FakeIcacls(returncode=5, stderr="Access is denied.")
    with pytest.raises(ConfigError, match=r"cannot restrict access to .*icacls exited 5: Access is denied"):
        ensure_state_dir(tmp_path / "state", platform="win32", elevated=True, run=icacls)

    def missing(command: Sequence[str]) -> subprocess.CompletedProcess[str]:
        raise FileNotFoundError(2, "No such file or directory", "icacls")

    with pytest.raises(ConfigError, match="icacls did not run"):
        ensure_state_dir(tmp_path / "state", platform="win32", elevated=True, run=missing)
