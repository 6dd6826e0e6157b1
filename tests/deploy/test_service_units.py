"""Service definitions an MSP installs: systemd units, the macOS launch daemon, the Windows scripts.

``systemd-analyze verify`` checks the units (with their ``/opt/mspclaw`` paths pointed at a stand-in
executable, since verify insists the program exists) and ``systemd-analyze security`` scores their
hardening; the plist is linted with ``plutil`` where it exists and parsed with plistlib always. The
PowerShell scripts are parsed by ``pwsh`` when installed; otherwise a static check holds them to what
an RMM push needs: parameters, no download or dynamic code, the service name and SIDs the agent uses.
"""

from __future__ import annotations

import ast
import plistlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from mspclaw.agent import winservice
from mspclaw.agent.state import ADMINISTRATORS_SID, APP_NAME, SYSTEM_SID, default_state_dir
from mspclaw.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
UNITS = ["mspclaw-server.service", "mspclaw-agent.service"]
HARDENING = {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes", "PrivateDevices": "yes",
             "RestrictSUIDSGID": "yes", "CapabilityBoundingSet": "", "UMask": "0077", "StateDirectoryMode": "0700"}


def unit_settings(path: Path) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


@pytest.mark.parametrize("unit", UNITS)
def test_each_unit_runs_as_its_own_user_with_the_hardening(unit: str) -> None:
    settings = unit_settings(DEPLOY / "systemd" / unit)
    user = settings["User"][0]
    assert user.startswith("mspclaw") and user != "root"
    for key, value in HARDENING.items():
        assert settings.get(key) == [value], f"{unit}: {key}"
    state = settings["StateDirectory"][0]
    assert settings["ReadWritePaths"] == [f"/var/lib/{state}"], "writable: the state directory only"
    assert settings["Restart"] == ["on-failure"]


@pytest.fixture
def stand_in_units(tmp_path: Path) -> list[Path]:
    """The units with their programs in /opt/mspclaw/bin replaced by an executable stand-in."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    bin_dir = tmp_path / "opt" / "bin"
    bin_dir.mkdir(parents=True)
    for program in ("mspclaw", "mspclaw-launch"):
        (bin_dir / program).write_text("#!/bin/sh\n")
        (bin_dir / program).chmod(0o755)
    units = []
    for unit in UNITS:
        text = (DEPLOY / "systemd" / unit).read_text().replace("/opt/mspclaw/bin/", f"{bin_dir}/")
        (tmp_path / unit).write_text(text)
        units.append(tmp_path / unit)
    return units


def test_systemd_analyze_verifies_the_units(stand_in_units: list[Path]) -> None:
    done = subprocess.run(["systemd-analyze", "verify", *map(str, stand_in_units)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and not done.stderr.strip() and not done.stdout.strip(), done.stderr


def test_systemd_rates_the_units_exposure_low(stand_in_units: list[Path]) -> None:
    for unit in stand_in_units:
        done = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager", "--threshold=25",
                               str(unit)], capture_output=True, text=True, timeout=60)
        if "--offline" in done.stderr and "unrecognized" in done.stderr:
            pytest.skip("this systemd-analyze cannot score unit files offline")
        level = re.search(r"Overall exposure level for \S+: ([0-9.]+)", done.stdout)
        assert level is not None, done.stdout[-2000:] + done.stderr
        assert done.returncode == 0 and float(level.group(1)) <= 2.5, f"{unit.name}: exposure {level.group(1)}"


def test_the_launch_daemon_plist() -> None:
    path = DEPLOY / "macos" / "com.mspclaw.agent.plist"
    if shutil.which("plutil") is not None:
        subprocess.run(["plutil", "-lint", str(path)], check=True, capture_output=True, timeout=30)
    plist = plistlib.loads(path.read_bytes())
    assert plist["Label"] == "com.mspclaw.agent"
    args = plist["ProgramArguments"]
    assert args[:2] == ["/usr/local/mspclaw/mspclaw-agent", "agent"]
    assert args[args.index("--state-dir") + 1] == f"/Library/Application Support/{APP_NAME}"
    assert args[args.index("--server") + 1] == "https://msp.example:8700", "install-agent.sh replaces this URL"
    assert plist["RunAtLoad"] is True and plist["KeepAlive"] == {"SuccessfulExit": False}
    assert plist["Umask"] == 0o077
    install = (DEPLOY / "macos" / "install-agent.sh").read_text()
    assert "https://msp.example:8700" in install and "--enroll-code" in install
    subprocess.run(["sh", "-n", str(DEPLOY / "macos" / "install-agent.sh")], check=True, timeout=30)


# -- Windows ---------------------------------------------------------------------------------------------------
SCRIPTS = ["Install-MSPclawAgent.ps1", "Uninstall-MSPclawAgent.ps1"]
FORBIDDEN = ["Invoke-Expression", "iex ", "DownloadString", "DownloadFile", "Invoke-WebRequest", "Invoke-RestMethod",
             "Net.WebClient", "Start-BitsTransfer", "EncodedCommand", "FromBase64String", "curl ", "wget "]


def _code(text: str) -> str:
    """The script without its comments (help block and ``#`` lines)."""
    text = re.sub(r"<#.*?#>", "", text, flags=re.S)
    return re.sub(r"(?m)^\s*#[^\n]*|\s#[^\n'\"]*$", "", text)


def _balanced(text: str) -> bool:
    """Brackets balance outside strings and comments (a crude stand-in for PowerShell's parser)."""
    text = _code(text)
    text = re.sub(r"'[^']*'", "''", text)
    text = re.sub(r'"(?:`.|[^"`])*"', '""', text)
    pairs, stack = {")": "(", "}": "{", "]": "["}, []
    for ch in text:
        if ch in "({[":
            stack.append(ch)
        elif ch in pairs and (not stack or stack.pop() != pairs[ch]):
            return False
    return not stack


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_windows_scripts_parse_and_download_nothing(script: str, tmp_path: Path) -> None:
    path = DEPLOY / "windows" / script
    text = path.read_text()
    pwsh = shutil.which("pwsh")
    if pwsh is not None:
        check = ("$errors = $null; [System.Management.Automation.Language.Parser]::ParseFile("
                 f"'{path}', [ref]$null, [ref]$errors) | Out-Null; if ($errors) {{ $errors; exit 1 }}")
        subprocess.run([pwsh, "-NoProfile", "-NonInteractive", "-Command", check], check=True, timeout=120)
    assert _balanced(text), "unbalanced brackets"
    code = _code(text).lower()
    for word in FORBIDDEN:
        assert word.lower() not in code, f"{script} must not use {word.strip()}"
    assert text.lstrip().startswith("<#") and "[CmdletBinding()]" in text and "Set-StrictMode" in text
    assert "$ErrorActionPreference = 'Stop'" in text
    assert f"$ServiceName = '{winservice.SERVICE_NAME}'" in text
    assert f"Join-Path $env:ProgramData '{APP_NAME}'" in text


def test_the_install_script_takes_the_server_and_code_as_parameters() -> None:
    text = (DEPLOY / "windows" / "Install-MSPclawAgent.ps1").read_text()
    params = text[text.index("param(") : text.index("Set-StrictMode")]
    assert re.search(r"Mandatory = \$true\)\]\s*\[ValidatePattern\('[^']+'\)\]\s*\[string\] \$ServerUrl", params)
    assert re.search(r"\[ValidatePattern\('[^']+'\)\]\s*\[string\] \$EnrollmentCode", params)
    # the state folder gets the same ACL the agent applies at every start (mspclaw.agent.state)
    assert f"'{SYSTEM_SID}:(OI)(CI)F'" in text and f"'{ADMINISTRATORS_SID}:(OI)(CI)F'" in text
    assert "'/inheritance:r'" in text
    # the service runs the single-file agent's `service` mode, which hosts mspclaw.agent.winservice
    assert '-BinaryPathName "`"$Exe`" service"' in text
    entry = (DEPLOY / "pyinstaller" / "agent_entry.py").read_text()
    assert 'sys.argv[1] == "service"' in entry and "mspclaw.agent.winservice" in entry
    assert "service.json" in text and winservice.SERVICE_CONFIG == "service.json"


def test_the_service_class_is_what_the_script_installs() -> None:
    tree = ast.parse((REPO / "src" / "mspclaw" / "agent" / "winservice.py").read_text())
    classes = [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == "AgentService"]
    assert len(classes) == 1
    methods = {n.name for n in classes[0].body if isinstance(n, ast.FunctionDef)}
    assert {"SvcDoRun", "SvcStop"} <= methods
    bases = [ast.unparse(b) for b in classes[0].bases]
    assert bases == ["win32serviceutil.ServiceFramework"]


def test_the_service_reads_its_configuration_and_builds_the_agent_command(tmp_path: Path) -> None:
    (tmp_path / "service.json").write_text('{"server": "https://msp.example:8700", "log_level": "info"}')
    config = winservice.load_service_config(tmp_path)
    assert winservice.agent_command("C:\\Program Files\\MSPclaw\\mspclaw-agent.exe", config, tmp_path) == [
        "C:\\Program Files\\MSPclaw\\mspclaw-agent.exe", "agent", "--server", "https://msp.example:8700",
        "--state-dir", str(tmp_path), "--log-level", "info"]
    (tmp_path / "service.json").write_text('{"server": "ftp://elsewhere"}')
    with pytest.raises(ConfigError, match="not a valid service configuration"):
        winservice.load_service_config(tmp_path)
    (tmp_path / "service.json").write_text(" " * (winservice.MAX_CONFIG_BYTES + 1))
    with pytest.raises(ConfigError, match="larger than"):
        winservice.load_service_config(tmp_path)
    (tmp_path / "service.json").unlink()
    with pytest.raises(ConfigError, match=r"run Install-MSPclawAgent\.ps1"):
        winservice.load_service_config(tmp_path)
    assert winservice.service_state_dir() == default_state_dir(elevated=True)


def test_the_ci_matrix_builds_the_agent_for_macos_and_windows() -> None:
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "agent-binaries.yml").read_text())
    job = workflow["jobs"]["build"]
    systems = {entry["os"].split("-")[0] for entry in job["strategy"]["matrix"]["include"]}
    assert {"macos", "windows", "ubuntu"} <= systems
    commands = "\n".join(step.get("run", "") for step in job["steps"])
    assert "deploy/pyinstaller/mspclaw-agent.spec" in commands
    assert "-c constraints.txt '.[site,agent-build]'" in commands, "pinned, with pywin32 on Windows"
