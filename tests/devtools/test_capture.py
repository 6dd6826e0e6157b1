"""mspclaw-capture (``python -m mspclaw.devtools.capture``): real runs on this machine, the read-only list, redaction.

No Mac or Windows machine is available here, so the capture itself runs for real on this Linux
machine against a temporary ``linux`` fixture directory (copies of ``tests/fixtures/linux`` files
plus two of our own); what it writes is read back with ``tests/recorded.py``, the same loader
the tool tests replay. The macOS and Windows fixtures are only classified, never run.
"""

from __future__ import annotations

import datetime
import getpass
import io
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from tests.recorded import FIXTURES, Recorded, read_fixture

from mspclaw.devtools.capture import POWERSHELL, Redactor, classify, main
from mspclaw.devtools.capture import read_fixture as read_header

on_linux = pytest.mark.skipif(sys.platform != "linux", reason="runs real Linux commands")

MACOS_READ_ONLY = {
    "brew_list_slack", "defaults_mail", "defaults_outlook", "df", "ifconfig", "lpstat_a.1", "lpstat_a.2",
    "lpstat_o.1", "lpstat_o.2", "lpstat_o.3", "lpstat_p.1", "lpstat_p.2", "lpstat_p.3", "networksetup_airportpower",
    "networksetup_hardwareports", "networksetup_preferred", "ps_cpu", "ps_mem", "ps_names", "ps_pid_812",
    "route_default", "scutil_dns", "scutil_hostname", "scutil_nc_list.1", "scutil_nc_list.2", "scutil_nc_list.3",
    "softwareupdate", "sw_vers", "sysctl_boottime", "sysctl_system", "system_profiler_airport",
    "system_profiler_apps.1", "system_profiler_apps.2", "vm_stat",
}
WINDOWS_READ_ONLY = {
    "crashes", "disks", "mail", "netsh_interfaces", "netsh_profiles", "network", "printers.1", "printers.2",
    "printers.3", "printers.4", "process_9412", "software.1", "software.2", "system_info", "temp_preview",
    "top_cpu", "top_mem", "updates", "uptime", "vpn.1", "vpn.2", "vpn.3",
}


def fixture_file(directory: Path, name: str, argv: str, exit_code: int = 0) -> Path:
    path = directory / f"{name}.txt"
    path.write_text(f"# command: {argv}\n# source: written to format: a test's own fixture\n"
                    f"# os: format of Linux (not a capture)\n# exit: {exit_code}\n--- stdout ---\n", encoding="utf-8")
    return path


@pytest.fixture
def linux_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "linux"
    directory.mkdir()
    for name in ("apt_upgradable", "dpkg_list.1", "dpkg_list.2", "dpkg_vlc", "thunderbird_version", "cancel_all"):
        shutil.copy(FIXTURES / "linux" / f"{name}.txt", directory)
    fixture_file(directory, "hostname", '["hostname"]')
    return directory


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def real(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=False,
                          env={**os.environ, "LC_ALL": "C", "LANG": "C"}).stdout


@on_linux
def test_captures_linux_commands_for_real_in_the_recorded_format(linux_dir: Path) -> None:
    before = snapshot(linux_dir)
    done = subprocess.run([sys.executable, "-m", "mspclaw.devtools.capture", "--fixtures", str(linux_dir)],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert re.fullmatch(r"\[1/7\] apt list --upgradable \.\.\. ok \(exit 0, \d+\.\d KiB\)", lines[lines.index(
        next(x for x in lines if x.startswith("[1/7]")))])
    assert "[3/7] dpkg-query -W -f" in done.stdout
    assert "cancel -a Lab_Brother_HL ... skipped: changes the machine (cancels print jobs)" in done.stdout
    assert "thunderbird --version ... not installed here: thunderbird_version.txt kept" in done.stdout
    assert "the fixture records exit 0: this machine is not in that state" in done.stdout  # dpkg-query ... vlc
    assert "4 written to" in done.stdout and "series now holding this machine's current state" in done.stdout

    pretty = re.search(r'^PRETTY_NAME="?([^"\n]+)"?$', Path("/etc/os-release").read_text(), re.M)
    assert pretty
    today = datetime.date.today().isoformat()
    for name in ("apt_upgradable", "dpkg_list.1", "dpkg_list.2", "hostname"):
        path = linux_dir / f"{name}.txt"
        argv, headers, completed = read_fixture(path)
        assert path.read_bytes() != before[path.name]
        assert path.read_text().splitlines()[0] == before[path.name].decode().splitlines()[0]  # command kept as is
        assert headers["source"] == (f"captured: mspclaw-capture on a technician's Linux machine on {today}, "
                                     "through the same argv the agent uses (LC_ALL=C); verbatim")
        assert headers["os"] == pretty.group(1) and headers["os"].split()[0] in ("Debian", "Ubuntu")
        assert headers["exit"] == "0" and completed.returncode == 0
        assert "missing" not in headers
        if name != "apt_upgradable":  # apt's list may move on between two runs; the others cannot
            assert completed.stdout == real(argv)
    assert read_fixture(linux_dir / "hostname.txt")[2].stdout == socket.gethostname() + "\n"
    assert read_fixture(linux_dir / "apt_upgradable.txt")[1]["stderr"].startswith("WARNING: apt does not have")
    for kept in ("dpkg_vlc.txt", "thunderbird_version.txt", "cancel_all.txt"):
        assert (linux_dir / kept).read_bytes() == before[kept]
    replay = Recorded("linux", linux_dir)  # the loader the tool tests use reads what was written
    assert replay(["hostname"], 5.0).stdout == socket.gethostname() + "\n"


@on_linux
def test_redact_replaces_this_machines_names_and_says_so(linux_dir: Path) -> None:
    fixture_file(linux_dir, "id_user", '["id", "-un"]')
    out = io.StringIO()
    assert main(["--fixtures", str(linux_dir), "--only", "hostname", "id_user", "--redact"], out=out) == 0
    user, host = getpass.getuser(), socket.gethostname()
    _, headers, completed = read_fixture(linux_dir / "id_user.txt")
    assert "verbatim except that the host name, user name, MAC addresses, serial numbers and public IP addresses " \
           "were replaced by placeholders (redacted-host, redacted-user, MAC 00:00:5e:00:53:xx" in headers["source"]
    assert completed.stdout == ("redacted-user\n" if len(user) >= 3 else f"{user}\n")
    hostname = read_fixture(linux_dir / "hostname.txt")[2].stdout
    if len(host) >= 3:
        assert hostname == "redacted-host\n"
    else:  # this machine is called "vm": replacing it would also hit vm.loadavg, so the run warns instead
        assert hostname == f"{host}\n" and f"--redact leaves '{host}' as it is" in out.getvalue()
    assert "[2/2] id -un ... ok (exit 0, 0.0 KiB)" in out.getvalue()


@pytest.mark.parametrize("os_name", ["macos", "windows"])
def test_every_macos_and_windows_fixture_command_is_classified(os_name: str) -> None:
    read_only = set()
    for path in sorted((FIXTURES / os_name).glob("*.txt")):
        verdict = classify(os_name, read_header(path).argv)  # type: ignore[arg-type]
        assert verdict.kind != "unknown", f"{path.name}: add its command to READ_ONLY or CHANGES in capture.py"
        if verdict.read_only:
            read_only.add(path.stem)
    assert read_only == (MACOS_READ_ONLY if os_name == "macos" else WINDOWS_READ_ONLY)


@pytest.mark.parametrize(("os_name", "argv", "why"), [
    ("macos", ["kill", "-TERM", "812"], "ends a process"),
    ("macos", ["shutdown", "-r", "+1"], "restarts the Mac"),
    ("macos", ["sysctl", "-n", "kern.maxfiles=1"], "not on the read-only list"),
    ("macos", ["sysctl", "-w", "kern.maxfiles"], "not on the read-only list"),
    ("macos", ["scutil", "--set", "HostName", "x"], "not on the read-only list"),
    ("macos", ["networksetup", "-setairportpower", "en0", "off"], "turns Wi-Fi on or off"),
    ("macos", ["lpstat", "-p", "-d"], "not on the read-only list"),
    ("linux", ["hostname", "newname"], "not on the read-only list"),
    ("windows", ["ipconfig", "/flushdns"], "flushes the DNS cache"),
    ("windows", ["netsh", "wlan", "disconnect"], "not on the read-only list"),
    ("windows", [*POWERSHELL, "Get-Process; shutdown /r"], "runs 'shutdown'"),
    ("windows", [*POWERSHELL, "Get-Process | % { $_.Kill() }"], "calls the method Kill()"),
    ("windows", [*POWERSHELL, "[IO.File]::Delete('C:\\x')"], "calls the method Delete()"),
    ("windows", [*POWERSHELL, "& 'cmd.exe' /c del x"], "the call operator &"),
    ("windows", [*POWERSHELL, "iex 'Stop-Computer'"], "runs 'iex'"),
    ("windows", [*POWERSHELL, 'Get-Process -Name "$(Stop-Process -Id 4)"'], "substitutes a value"),
    ("windows", [*POWERSHELL, "$x = Stop-Service Spooler"], "runs Stop-Service"),
    ("windows", [*POWERSHELL, "Get-Process -Name 'a'; Restart-Computer"], "runs Restart-Computer"),
    ("windows", ["powershell.exe", "-EncodedCommand", "RwBlAHQALQBQAHIAbwBjAGUAcwBzAA=="], "not on the read-only"),
])
def test_a_command_that_changes_the_machine_is_not_read_only(os_name: str, argv: list[str], why: str) -> None:
    verdict = classify(os_name, argv)  # type: ignore[arg-type]
    assert not verdict.read_only and why in verdict.reason


def test_a_quoted_name_in_a_read_only_script_stays_read_only() -> None:
    script = "Get-Printer -Name 'O''Brien; Stop-Process' | Select-Object Name | ConvertTo-Json -Compress"
    assert classify("windows", [*POWERSHELL, script]).read_only


@on_linux
def test_a_state_changing_command_runs_only_when_asked_and_confirmed(tmp_path: Path) -> None:
    directory = tmp_path / "linux"
    directory.mkdir()
    marker = tmp_path / "marker"
    fixture_file(directory, "touch_marker", f'["touch", "{marker}"]')  # on no list: treated as a change
    shutil.copy(FIXTURES / "linux" / "cancel_all.txt", directory)
    before = snapshot(directory)
    asked: list[str] = []

    out = io.StringIO()
    assert main(["--fixtures", str(directory)], ask=asked.append, out=out) == 0  # type: ignore[arg-type]
    assert not marker.exists() and not asked and snapshot(directory) == before
    assert "2 of 2 commands change this machine and are skipped" in out.getvalue()
    assert re.search(r"\] touch /.* skipped: changes the machine \(not on the read-only list\)", out.getvalue())

    no = subprocess.run([sys.executable, "-m", "mspclaw.devtools.capture", "--fixtures", str(directory),
                         "--include-changes"], input="n\nn\n", capture_output=True, text=True, timeout=60, check=False)
    assert no.returncode == 0 and "Run `touch" in no.stdout and "[y/N]" in no.stdout
    assert no.stdout.count("skipped: not confirmed") == 2 and not marker.exists() and snapshot(directory) == before

    def answer(prompt: str) -> str:
        asked.append(prompt)
        return "y" if prompt.startswith("Run `touch") else "n"

    out = io.StringIO()
    assert main(["--fixtures", str(directory), "--include-changes"], ask=answer, out=out) == 0
    assert marker.exists() and len(asked) == 2
    assert read_fixture(directory / "touch_marker.txt")[1]["source"].startswith("captured: mspclaw-capture")
    assert (directory / "cancel_all.txt").read_bytes() == before["cancel_all.txt"]


@on_linux
def test_dry_run_runs_and_writes_nothing(linux_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    fixture_file(linux_dir, "touch_marker", f'["touch", "{marker}"]')
    before = snapshot(linux_dir)
    out = io.StringIO()
    assert main(["--fixtures", str(linux_dir), "--dry-run", "--include-changes", "--out", str(tmp_path / "o")],
                ask=lambda _: "y", out=out) == 0
    assert snapshot(linux_dir) == before and not marker.exists() and not (tmp_path / "o").exists()
    text = out.getvalue()
    assert f"hostname ... would run and write {tmp_path / 'o' / 'hostname.txt'}" in text
    assert "cancel -a Lab_Brother_HL ... would ask first (cancels print jobs)" in text
    assert "dry run: 8 of 8 commands would run; nothing was run or written" in text


@on_linux
def test_wrong_os_missing_directory_and_unknown_names_are_clear_errors(
        tmp_path: Path, linux_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--fixtures", str(FIXTURES / "macos")]) == 2
    assert "holds macOS commands, but this machine runs Linux: run mspclaw-capture on a Mac" in capsys.readouterr().err
    assert main(["--fixtures", str(FIXTURES / "windows"), "--dry-run"]) == 2
    assert "run mspclaw-capture on a Windows PC" in capsys.readouterr().err
    assert main(["--fixtures", str(tmp_path / "nowhere" / "linux")]) == 2
    assert "fixture directory" in capsys.readouterr().err
    assert main(["--fixtures", str(tmp_path)]) == 2
    assert "the directory must be named macos, windows, linux" in capsys.readouterr().err
    assert main(["--fixtures", str(linux_dir), "--only", "hostname", "nope"]) == 2
    assert "no fixture named nope; there are: apt_upgradable, cancel_all" in capsys.readouterr().err


def test_redactor_replaces_personal_data_and_keeps_the_rest() -> None:
    redact = Redactor(hosts=["Marias-MacBook-Air"], users=["maria", "Maria Schmidt"], serials=["C02XK1ZJJG5J"])
    sample = "\n".join([
        "Marias-MacBook-Air.local: /Users/maria/Library owned by Maria Schmidt (marias files stay)",
        "\tether f0:18:98:03:d9:30 ether F0-18-98-03-D9-30 broadcast ff:ff:ff:ff:ff:ff",
        "\tinet 192.168.1.72 netmask 0xffffff00 gateway 10.20.10.1 dns 1.1.1.1 public 17.253.144.10",
        "\tinet6 fe80::8b7:1281:7499:b504%en0 prefixlen 64 inet6 2600:1700:bab0:d40:bb:9ad:34c5:2e9a/64",
        '{"DisplayName":"Microsoft Edge","DisplayVersion":"124.0.2478.80","SerialNumber":"PF3ABC12"}',
        "socat\t1.7.4.4-2\topenjdk 17.0.21.1+2-1~deb12u1 v1.2.3.4 from=8.8.4.4:53",
        "      Serial Number (system): C02XK1ZJJG5J   at 10:01:58, uptime 1.2.3",
        "hw serial C02XK1ZJJG5J; again 1.1.1.1 and f0:18:98:03:d9:30",
    ])
    assert redact(sample).splitlines() == [
        "redacted-host.local: /Users/redacted-user/Library owned by redacted-user (marias files stay)",
        "\tether 00:00:5e:00:53:01 ether 00-00-5E-00-53-01 broadcast ff:ff:ff:ff:ff:ff",
        "\tinet 192.168.1.72 netmask 0xffffff00 gateway 10.20.10.1 dns 192.0.2.1 public 192.0.2.2",
        "\tinet6 fe80::8b7:1281:7499:b504%en0 prefixlen 64 inet6 2001:db8::1/64",
        '{"DisplayName":"Microsoft Edge","DisplayVersion":"124.0.2478.80","SerialNumber":"REDACTED-SERIAL"}',
        "socat\t1.7.4.4-2\topenjdk 17.0.21.1+2-1~deb12u1 v1.2.3.4 from=192.0.2.3:53",
        "      Serial Number (system): REDACTED-SERIAL   at 10:01:58, uptime 1.2.3",
        "hw serial REDACTED-SERIAL; again 192.0.2.1 and 00:00:5e:00:53:01",
    ]
