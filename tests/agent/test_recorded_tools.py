"""The macOS and Windows tools (and Linux's command-based ones) against replayed command output.

Each tool runs with :class:`tests.recorded.Recorded` as its command runner: a tool that builds
an argument list other than the recorded one fails, and what it parses out of the real output
is checked field by field. Each fixture (``tests/fixtures/<os>/``) names the command, the OS
version and, in a mandatory ``# source:`` line, where its text comes from: a capture on a real
machine, a public capture (real output published by others, cited), or text written by hand to
the command's documented format (most macOS and Windows ones: no Mac or Windows machine was
available). Only the first two show that a parser reads what the real command prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.recorded import FIXTURES, SOURCE_KINDS, Recorded, load_json_fixture, read_fixture, sidecar_source
from tests.simulated import WINDOWS_TEMP, seed_home

from mspclaw.agent.tools import ToolContext, WithSecret, tool_registry
from mspclaw.agent.tools.commands import POWERSHELL
from mspclaw.errors import ToolFailed
from mspclaw.protocol.frames import OSName
from mspclaw.tools import CATALOGUE


def call(os_name: OSName, tool: str, args: dict[str, Any] | None = None, home: Path | None = None,
         runner: Recorded | None = None) -> tuple[dict[str, Any], Recorded]:
    runner = runner or Recorded(os_name)
    temp = (home / "tmp",) if home else (Path("/nonexistent"),)
    context = ToolContext(temp_roots=WINDOWS_TEMP if os_name == "windows" else temp, run=runner, home=home)
    parsed = CATALOGUE[tool].validate(args or {})
    output = tool_registry(os_name)[tool](parsed, context)
    assert not isinstance(output, WithSecret), f"{tool} is a device tool: it hands over no secret"
    return output, runner


@pytest.mark.parametrize("os_name", ["macos", "windows", "linux"])
def test_every_fixture_names_its_command_and_os(os_name: str) -> None:
    files = sorted((FIXTURES / os_name).glob("*.txt"))
    assert len(files) >= 20
    for path in files:
        argv, headers, _ = read_fixture(path)
        assert argv and all(isinstance(a, str) for a in argv), path
        assert headers["source"].startswith(SOURCE_KINDS), path
        if headers["source"].startswith("written to format: "):
            assert headers["os"].startswith("format of ") and headers["os"].endswith("(not a capture)"), path
        else:
            assert headers["os"].split()[0] in ("macOS", "Mac", "Windows", "Ubuntu", "Debian"), path
        if argv[0] == "powershell.exe":
            assert tuple(argv[:-1]) == POWERSHELL, path
            assert "ConvertTo-Json" in argv[-1] or argv[-1].startswith("Stop-Process"), path


def test_every_other_fixture_says_where_it_comes_from() -> None:
    others = [p for p in FIXTURES.rglob("*") if p.is_file() and p.suffix not in (".txt", ".md", ".source")]
    assert len(others) >= 8
    for path in others:
        if path.suffix == ".json":
            assert load_json_fixture(path)["source"].startswith(SOURCE_KINDS), path
        else:
            assert sidecar_source(path).startswith(SOURCE_KINDS), path


def fixture_kinds() -> dict[str, dict[str, int]]:
    """How many fixtures of each source kind each fixture folder holds."""
    counts: dict[str, dict[str, int | None]] = {}
    for path in sorted(FIXTURES.rglob("*")):
        if not path.is_file() or path.suffix in (".md", ".source"):
            continue
        parts = path.relative_to(FIXTURES).parts
        group = parts[0] + ("/tools" if parts[1:2] == ("tools",) else "") + "/"
        if path.suffix == ".txt":
            source = read_fixture(path)[1]["source"]
        elif path.suffix == ".json":
            source = load_json_fixture(path)["source"]
        else:
            source = sidecar_source(path)
        kind = source.split(": ", 1)[0]
        counts.setdefault(group, dict.fromkeys(k.strip(": ") for k in SOURCE_KINDS))
        counts[group][kind] = (counts[group][kind] or 0) + 1
    return {g: {k: n or 0 for k, n in kinds.items()} for g, kinds in counts.items()}


def test_the_fixture_table_in_docs_is_current() -> None:
    docs = (FIXTURES.parents[1] / "docs" / "playbooks.md").read_text(encoding="utf-8")
    table = {}
    for line in docs.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`") and cells[1].isdigit():
            table[cells[0].split("`")[1]] = dict(zip(("captured", "public capture", "written to format"),
                                                     map(int, cells[1:]), strict=True))
    assert table == fixture_kinds()


def test_a_fixture_without_a_source_line_is_refused(tmp_path: Path) -> None:
    text = '# command: ["sw_vers"]\n# os: macOS 14.5 (23F79)\n# exit: 0\n--- stdout ---\nProductName: macOS\n'
    (tmp_path / "sw_vers.txt").write_text(text)
    with pytest.raises(ValueError, match=r"sw_vers\.txt: no '# source:' line"):
        Recorded("macos", tmp_path)
    (tmp_path / "sw_vers.txt").write_text(text.replace("# os:", "# source: seen somewhere\n# os:"))
    with pytest.raises(ValueError, match=r"sw_vers\.txt: source 'seen somewhere' must start with one of"):
        read_fixture(tmp_path / "sw_vers.txt")
    (tmp_path / "sw_vers.txt").write_text(text.replace("# os:", "# source: written to format: sw_vers(1)\n# os:"))
    with pytest.raises(ValueError, match=r"sw_vers\.txt: a hand-written fixture's '# os:' line must say"):
        read_fixture(tmp_path / "sw_vers.txt")
    (tmp_path / "site.json").write_text('{"directory_user": []}')
    with pytest.raises(ValueError, match=r"site\.json: no '# source:' line \(or \"source\" key\)"):
        load_json_fixture(tmp_path / "site.json")


@pytest.mark.parametrize("os_name", ["macos", "windows", "linux"])
def test_at_least_twenty_device_tools_per_os_all_in_the_catalogue(os_name: OSName) -> None:
    registry = tool_registry(os_name)
    assert len(registry) >= 20
    device_tools = {n for n, s in CATALOGUE.items() if s.runs_on == "device" and os_name in s.os}
    assert set(registry) == device_tools  # every catalogue device tool exists on this OS, nothing else


# --- macOS -------------------------------------------------------------------------------------


def test_macos_system_info_and_uptime() -> None:
    info, runner = call("macos", "system_info")
    assert runner.calls[0] == ["sysctl", "-n", "hw.memsize", "hw.ncpu", "machdep.cpu.brand_string", "kern.boottime",
                               "vm.loadavg"]
    assert info["hostname"] == "Marias-MacBook-Air"
    # sw_vers is a public capture from OS X 10.11 (tab-separated, "Mac OS X"); sysctl is still hand-written
    assert info["os"] == {"name": "Mac OS X", "version": "10.11.6", "pretty_name": "Mac OS X 10.11.6 (15G31)"}
    # sysctl values from jc's macOS 10.14.6 `sysctl -a` capture (an Intel Mac)
    assert info["cpu"] == {"model": "Intel(R) Core(TM) i5-8279U CPU @ 2.40GHz", "count": 8}
    assert info["memory"]["total_bytes"] == 17179869184
    # vm_stat is a public capture (Ansible's M1 Pro fixture): free + inactive + speculative + purgeable pages
    assert info["memory"]["available_bytes"] == (6472 + 710941 + 18210 + 19224) * 16384
    assert info["load_average"] == {"1m": 2.57, "5m": 2.41, "15m": 2.24} and info["cpu_load_percent"] == 32.1
    assert info["uptime_s"] > 0 and not info["cpu_overloaded"]
    up, _ = call("macos", "uptime")
    assert up["uptime_s"] > 0 and up["boot_time"].startswith("2024-03-28")  # kern.boottime sec = 1711644864


def test_macos_disk_usage_skips_hidden_apfs_volumes() -> None:
    out, _ = call("macos", "disk_usage")
    mounts = {f["mount_point"]: f for f in out["filesystems"]}
    assert set(mounts) == {"/", "/System/Volumes/Data"}
    data = mounts["/System/Volumes/Data"]
    assert data["used_bytes"] == 204876312 * 1024 and data["free_bytes"] == 14417212 * 1024
    assert data["percent_used"] == 93.4


def test_macos_top_processes_names_with_spaces() -> None:
    out, runner = call("macos", "top_processes", {"sort_by": "memory", "limit": 3})
    assert runner.calls == [["ps", "-Aco", "pid,pcpu,rss,user,comm", "-m"]]
    assert [p["name"] for p in out["processes"]] == ["Microsoft Excel", "Microsoft Outlook",
                                                    "Google Chrome Helper (Renderer)"]
    assert out["processes"][0] == {"pid": 812, "name": "Microsoft Excel", "user": "maria", "cpu_percent": 38.2,
                                   "rss_bytes": 1184544 * 1024, "memory_percent": None}


def test_macos_network_status() -> None:
    """ifconfig, route and scutil --dns are public captures (jc's macOS 10.14.6, Ohai's 2012 Mac, Plaitway's macOS 27).

    Three machines: the route's interface (en1) is not the ifconfig capture's en0.

    The real ``scutil --dns`` lists a WireGuard tunnel's supplemental resolver (203.0.113.1) as
    ``resolver #1``: the default resolver is the first one that is neither supplemental nor for
    one domain, the system's 1.1.1.1, without search domains.
    """
    out, _ = call("macos", "network_status")
    en0 = next(i for i in out["interfaces"] if i["name"] == "en0")
    assert en0 == {"name": "en0", "state": "up", "mac": "f0:18:98:03:d9:30", "mtu": 1500,
                   "ipv4": ["192.168.1.72/24"],
                   "ipv6": ["fe80::8b7:1281:7499:b504/64", "2600:1700:bab0:d40:bb:9ad:34c5:2e9a/64",
                            "2600:1700:bab0:d40:4573:9380:5ecb:ef52/64", "2600:1700:bab0:d40::24/64"]}
    states = {i["name"]: i["state"] for i in out["interfaces"]}
    # UP in the flags but "status: inactive": the cable or radio is down, so is the interface
    assert states["p2p0"] == "down" and states["en1"] == "down" and states["awdl0"] == "up"
    assert states["gif0"] == "down" and states["lo0"] == "up"
    assert out["default_route"] == {"gateway": "10.20.10.1", "interface": "en1"}
    assert out["dns"] == {"servers": ["1.1.1.1"], "search": []}


def test_macos_wifi() -> None:
    out, runner = call("macos", "wifi_status")
    assert runner.calls[1] == ["networksetup", "-getairportpower", "en0"]
    assert out == {"interface": "en0", "present": True, "powered": True, "connected": True,
                   "ssid": "AcmeDental-Staff", "signal_percent": 84, "signal_dbm": -58, "channel": 149,
                   "security": "wpa2_personal"}
    known, _ = call("macos", "wifi_networks")
    assert known["preferred"] == ["AcmeDental-Staff", "AcmeDental-Guest", "Home-5G", "Starbucks WiFi"]
    renewed, runner = call("macos", "renew_dhcp", {"interface": "en0"})
    assert runner.calls == [["ipconfig", "set", "en0", "DHCP"]] and renewed["renewed"]
    _, runner = call("macos", "flush_dns")
    assert runner.calls == [["dscacheutil", "-flushcache"], ["killall", "-HUP", "mDNSResponder"]]


def test_macos_vpn_status_and_restart() -> None:
    out, _ = call("macos", "vpn_status")
    assert out["connections"] == [{"name": "Acme Office VPN", "type": "IPSec", "connected": False,
                                   "state": "Disconnected", "enabled": True}]
    runner = Recorded("macos")
    call("macos", "restart_vpn", {"name": "Acme Office VPN"}, runner=runner)
    assert runner.calls[1:] == [["scutil", "--nc", "stop", "Acme Office VPN"], ["scutil", "--nc", "start",
                                                                                 "Acme Office VPN"]]
    with pytest.raises(ToolFailed, match="no VPN connection named 'Other'; configured: Acme Office VPN"):
        call("macos", "restart_vpn", {"name": "Other"})


def test_macos_printers_paused_queue_then_resumed_and_cleared() -> None:
    runner = Recorded("macos")
    first, _ = call("macos", "printer_queues", runner=runner)
    color = next(p for p in first["printers"] if p["name"] == "Office_Color")
    assert color["state"] == "paused" and color["reason"] == "Paused" and not color["accepting"]
    assert color["jobs"] == [{"id": "Office_Color-212", "printer": "Office_Color", "user": "maria",
                              "size_bytes": 1049600, "submitted": "Tue Apr 16 10:01:58 2024"}]
    assert first["paused"] == ["Office_Color"] and first["attention"] == ["Office_Color"]
    resumed, _ = call("macos", "resume_printer", {"printer": "Office_Color"}, runner=runner)
    assert resumed == {"printer": "Office_Color", "resumed": True, "state": "idle"}
    assert ["cupsenable", "Office_Color"] in runner.calls and ["cupsaccept", "Office_Color"] in runner.calls
    cleared, _ = call("macos", "clear_print_queue", {"printer": "Office_Color"}, runner=runner)
    assert runner.calls[-2:] == [["cancel", "-a", "Office_Color"], ["lpstat", "-o"]] and cleared["cleared"]
    with pytest.raises(ToolFailed, match="no printer named 'Nope'"):
        call("macos", "clear_print_queue", {"printer": "Nope"})


def test_macos_software_updates_and_install() -> None:
    out, _ = call("macos", "installed_software", {"name_contains": "microsoft"})
    assert [s["name"] for s in out["software"]] == ["Microsoft Excel", "Microsoft Outlook"]
    assert out["software"][0]["version"] == "16.84"
    updates, _ = call("macos", "pending_updates")  # a public capture (munki's test, macOS Monterey)
    assert updates["count"] == 3 and updates["restart_required"] and updates["security"] == 0
    assert updates["updates"][0] == {"label": "Safari17.6MontereyAuto-17.6", "title": "Safari", "version": "17.6",
                                     "recommended": True, "restart": False}
    assert updates["updates"][1] == {"label": "macOS Monterey 12.7.6-21H1320", "title": "macOS Monterey 12.7.6",
                                     "version": "12.7.6", "recommended": True, "restart": True}
    installed, runner = call("macos", "install_package", {"package": "slack"})
    assert runner.calls == [["brew", "install", "slack"], ["brew", "list", "--versions", "slack"]]
    assert installed == {"package": "slack", "installed": True, "version": "4.37.101", "manager": "brew"}


def test_macos_mail_apps_and_crashes(tmp_path: Path) -> None:
    mail, _ = call("macos", "mail_client_status")
    assert mail["installed"] == ["Mail", "Microsoft Outlook"] and mail["running"] == ["Microsoft Outlook"]
    restarted, runner = call("macos", "restart_app", {"name": "Microsoft Outlook"})
    assert runner.calls[1:] == [["osascript", "-e", 'tell application "Microsoft Outlook" to quit'],
                                ["open", "-a", "Microsoft Outlook"]]
    assert restarted["restarted"]
    seed_home("macos", tmp_path, tmp_path / "tmp")
    crashes, _ = call("macos", "crash_reports", {"app": "excel"}, home=tmp_path)
    assert crashes["reports"] == [{"app": "Microsoft Excel", "version": "16.84", "time": "2024-04-16 10:15:22.00 +0200",
                                   "what": "EXC_BAD_ACCESS SIGSEGV", "source": "DiagnosticReports"}]


def test_macos_end_process_checks_the_name_first() -> None:
    ended, runner = call("macos", "end_process", {"pid": 812, "name": "Microsoft Excel"})
    assert runner.calls == [["ps", "-p", "812", "-co", "comm="], ["kill", "-TERM", "812"]] and ended["ended"]
    with pytest.raises(ToolFailed, match="now runs 'Microsoft Excel', not 'Safari'; nothing was ended"):
        call("macos", "end_process", {"pid": 812, "name": "Safari"})
    rebooted, runner = call("macos", "reboot", {"delay_minutes": 1})
    assert runner.calls == [["shutdown", "-r", "+1"]] and rebooted["scheduled"]


# --- Windows -----------------------------------------------------------------------------------


def test_windows_runs_powershell_without_profile_and_parses_json() -> None:
    info, runner = call("windows", "system_info")
    assert runner.calls[0][:6] == ["powershell.exe", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass",
                                   "-Command"]
    assert info["hostname"] == "FRONTDESK-01" and info["os"]["name"] == "Microsoft Windows 11 Pro"
    assert info["cpu"] == {"model": "13th Gen Intel(R) Core(TM) i5-1335U", "count": 12}
    assert info["memory"]["available_bytes"] == 5293112 * 1024 and info["cpu_load_percent"] == 23.0
    assert info["uptime_s"] == 95008 and info["users"] == [{"user": "ACME\\tom.becker"}]
    up, _ = call("windows", "uptime")
    assert up["uptime_s"] == 95008


def test_windows_disks_processes_network() -> None:
    disks, _ = call("windows", "disk_usage")
    c = disks["filesystems"][0]
    assert c["path"] == "C:\\" and c["total_bytes"] == 254721126400 and c["percent_used"] == 75.7
    only_d, _ = call("windows", "disk_usage", {"paths": ["D:\\"]})
    assert [f["device"] for f in only_d["filesystems"]] == ["D:"]
    top, runner = call("windows", "top_processes", {"sort_by": "cpu", "limit": 5})
    assert "Sort-Object -Property CPU -Descending | Select-Object -First 5" in runner.calls[0][-1]
    assert top["processes"][0] == {"pid": 9412, "name": "OUTLOOK", "cpu_seconds": 412.3, "rss_bytes": 402653184,
                                   "session": 1}
    net, _ = call("windows", "network_status")
    wifi = next(i for i in net["interfaces"] if i["name"] == "Wi-Fi")
    assert wifi["state"] == "up" and wifi["mac"] == "8c:17:59:3e:a1:c4" and wifi["ipv4"] == ["192.168.10.64/24"]
    assert net["default_route"] == {"gateway": "192.168.10.1", "interface": "Wi-Fi"}
    assert net["dns"]["servers"] == ["192.168.10.1", "1.1.1.1"]


def test_windows_wifi_dns_vpn() -> None:
    wifi, runner = call("windows", "wifi_status")
    assert runner.calls == [["netsh", "wlan", "show", "interfaces"]]
    assert wifi == {"interface": "Wi-Fi", "present": True, "powered": True, "connected": True,
                    "ssid": "AcmeDental-Staff", "signal_percent": 78, "channel": 44, "security": "WPA2-Personal"}
    known, _ = call("windows", "wifi_networks")
    assert known["preferred"] == ["AcmeDental-Staff", "AcmeDental-Guest", "Home-5G"]
    _, runner = call("windows", "renew_dhcp", {"interface": "Wi-Fi"})
    assert runner.calls == [["ipconfig", "/renew", "Wi-Fi"]]
    flushed, runner = call("windows", "flush_dns")
    assert runner.calls[0][-1].startswith("Clear-DnsClientCache") and flushed["flushed"]
    vpn, _ = call("windows", "vpn_status")
    assert vpn["connections"][0] == {"name": "Acme Office VPN", "type": "Ikev2", "server": "vpn.acme-dental.example",
                                     "connected": False, "state": "Disconnected"}
    _, runner = call("windows", "restart_vpn", {"name": "Acme Office VPN"})
    assert runner.calls[1:] == [["rasdial", "Acme Office VPN", "/disconnect"], ["rasdial", "Acme Office VPN"]]


def test_windows_printers_and_spooler() -> None:
    runner = Recorded("windows")
    queues, _ = call("windows", "printer_queues", runner=runner)
    hp = next(p for p in queues["printers"] if p["name"] == "Reception HP M404")
    assert [j["status"] for j in hp["jobs"]] == ["Error, Printing", "Normal"]
    assert queues["attention"] == ["Reception HP M404"] and queues["paused"] == []
    cleared, _ = call("windows", "clear_print_queue", {"printer": "Reception HP M404"}, runner=runner)
    assert "Get-PrintJob -PrinterName 'Reception HP M404' | Remove-PrintJob" in runner.calls[-1][-1]
    assert cleared["jobs_left"] == 0
    spooler, runner = call("windows", "restart_print_spooler")
    assert runner.calls[0][-1].startswith("Restart-Service -Name Spooler -Force")
    assert spooler == {"service": "Spooler", "restarted": True, "status": "Running"}
    resumed, _ = call("windows", "resume_printer", {"printer": "Reception HP M404"})
    assert resumed["resumed"]


def test_windows_software_updates_install() -> None:
    """The winget output is a public capture (winget-pkgs#88334); registry and updates are hand-written."""
    sw, _ = call("windows", "installed_software", {"name_contains": "microsoft"})
    assert [s["name"] for s in sw["software"]] == ["Microsoft 365 Apps for business - en-us", "Microsoft Edge",
                                                  "Microsoft Teams"]
    updates, _ = call("windows", "pending_updates")
    assert updates["count"] == 2 and updates["security"] == 1 and updates["updates"][0]["kb"] == "5036893"
    installed, runner = call("windows", "install_package", {"package": "Zoom.Zoom"})
    assert runner.calls == [["winget", "install", "--id", "Zoom.Zoom", "--exact", "--silent", "--scope", "machine",
                             "--accept-package-agreements", "--accept-source-agreements",
                             "--disable-interactivity"]]
    assert installed["installed"] and installed["version"] == "5.12.8964"


def test_windows_mail_apps_crashes_reboot_temp() -> None:
    mail, _ = call("windows", "mail_client_status")
    assert mail["running"] == ["Microsoft Outlook"] and mail["restart_names"] == ["OUTLOOK"]
    crashes, runner = call("windows", "crash_reports", {"app": "excel"})
    assert "ProviderName = 'Application Error'; Id = 1000" in runner.calls[0][-1]
    assert crashes["count"] == 2 and crashes["reports"][0]["what"] == "mso20win32client.dll exception c0000005"
    restarted, runner = call("windows", "restart_app", {"name": "EXCEL.EXE"})
    assert "Get-Process -Name 'EXCEL'" in runner.calls[0][-1] and not restarted["restarted"]
    ended, _ = call("windows", "end_process", {"pid": 9412, "name": "OUTLOOK.EXE"})
    assert ended["ended"] and not ended["already_gone"]
    _, runner = call("windows", "reboot", {"delay_minutes": 1})
    assert runner.calls == [["shutdown.exe", "/r", "/t", "60", "/c",
                             "MSPclaw: your IT support is restarting this computer"]]
    preview, runner = call("windows", "clear_temp_files", {"dry_run": True, "older_than_days": 7})
    assert "'C:\\Users\\tom.becker\\AppData\\Local\\Temp', 'C:\\Windows\\Temp'" in runner.calls[0][-1]
    assert "Remove-Item" not in runner.calls[0][-1] and preview["files"] == 412
    deleted, runner = call("windows", "clear_temp_files", {"dry_run": False, "older_than_days": 7})
    assert "Remove-Item -LiteralPath" in runner.calls[0][-1] and deleted["freed_bytes"] == 3809894400


def test_a_printer_name_cannot_break_out_of_its_quotes() -> None:
    from mspclaw.agent.tools.windows import clear_queue_script

    assert "'O''Brien Printer'" in clear_queue_script("O'Brien Printer")
    with pytest.raises(Exception, match="printer"):
        CATALOGUE["clear_print_queue"].validate({"printer": "x'; Remove-Item C:\\ -Recurse; '"})


# --- Linux commands (recorded; the tools also run for real in test_agent_linux_desktop.py) -------


def test_linux_nmcli_wifi_vpn_and_cups() -> None:
    wifi, _ = call("linux", "wifi_status")
    assert wifi == {"interface": "wlp0s20f3", "present": True, "powered": True, "connected": True,
                    "ssid": "AcmeDental-Staff", "signal_percent": 74, "channel": 44, "security": "WPA2"}
    known, _ = call("linux", "wifi_networks")
    assert known["preferred"] == ["Home-5G", "AcmeDental-Staff"]
    vpn, _ = call("linux", "vpn_status")
    assert vpn["connections"] == [{"name": "Acme Office VPN", "type": "vpn", "connected": False}]
    queues, _ = call("linux", "printer_queues")
    assert queues["attention"] == ["Lab_Brother_HL"] and len(queues["printers"][0]["jobs"]) == 2
    updates, _ = call("linux", "pending_updates")  # captured on this project's Debian 12 machine
    assert updates["count"] == 124 and updates["security"] == 69
    assert updates["updates"][2] == {"name": "apt", "version": "2.6.2", "from": "2.6.1", "security": True}
    mail, _ = call("linux", "mail_client_status")
    assert mail["installed"] == ["Thunderbird"]
    assert mail["clients"][0]["version"] == "115.6.0"
