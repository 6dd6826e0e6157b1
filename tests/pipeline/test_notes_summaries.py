"""Every tool of the catalogue has a readable one-line summary of what it found or changed: no tool
falls back to JSON or to a bare "ok", odd outputs never break a note, and a temporary password or
access pass is described, never shown."""

from __future__ import annotations

from typing import Any

import pytest

from mspclaw.engine.plan import StepRecord
from mspclaw.pipeline.notes import SUMMARIES, summarise
from mspclaw.pipeline.tool_summaries import SUMMARY_CHARS, changes
from mspclaw.tools import CATALOGUE

ACCOUNT = {"found": True, "username": "maria@acme.example", "enabled": True, "locked_out": False,
           "password_expired": False, "must_change_password": True, "privileged": False,
           "authority": {"password": "ad", "sessions_and_mfa": "entra", "why": "synced"},
           "mfa_methods": ["microsoftAuthenticator"],
           "verification": {"requester": "maria@acme.example", "verified_by": ["psa_contact"]}}
MAC = {"name": "Maria's MacBook", "serial": "C02XK1ZQJGH5", "model": "MacBook Air", "os_version": "14.5",
       "last_check_in": "2026-12-06T09:00:00Z", "managed": True, "user": "maria", "disk_free_gb": 12.5}

# One realistic output per tool (the shapes the agents return), and words its summary must contain.
SAMPLES: dict[str, tuple[dict[str, Any], dict[str, Any], tuple[str, ...]]] = {
    "system_info": ({}, {"os": {"pretty_name": "Debian GNU/Linux 12"}, "cpu": {"count": 2},
                         "memory": {"total_bytes": 8 << 30, "available_bytes": 2 << 30},
                         "load_average": {"1m": 3.5}, "cpu_overloaded": True, "uptime_s": 90000},
                    ("Debian GNU/Linux 12", "2.0 GB of 8.0 GB memory free", "load 3.50 on 2 CPUs", "overloaded")),
    "disk_usage": ({}, {"filesystems": [{"mount_point": "/", "percent_used": 97.0, "free_bytes": 1000}],
                        "errors": []}, ("/ 97% used, 1000 B free",)),
    "top_processes": ({"sort_by": "cpu"}, {"sort_by": "cpu", "processes": [
        {"name": "chrome", "cpu_percent": 88.0, "rss_bytes": 900 << 20}]}, ("chrome (88% CPU, 900.0 MB)", "by CPU")),
    "network_status": ({}, {"interfaces": [{"name": "eth0", "state": "up"}],
                            "default_route": {"gateway": "192.0.2.1"}, "dns": {"servers": ["192.0.2.53"]}},
                       ("gateway 192.0.2.1", "DNS servers 192.0.2.53", "eth0")),
    "check_connectivity": ({"host": "example.com"}, {"host": "example.com", "port": 443, "dns": {"ok": False,
                           "error": "Name or service not known"}, "tcp": {"ok": False}},
                           ("DNS lookup of example.com failed", "Name or service not known")),
    "clear_temp_files": ({"dry_run": False}, {"dry_run": False, "deleted": 24, "freed_bytes": 6 << 20,
                                              "errors": []}, ("deleted 24 old temp files", "6.0 MB")),
    "uptime": ({}, {"uptime_s": 200000, "boot_time": "2026-12-04T06:00:00+0000"}, ("up 2 d 7 h",)),
    "large_files": ({}, {"count": 2, "min_size_mb": 500, "total_bytes": 3 << 30, "files": [
        {"path": "/home/maria/Videos/scan.mov", "size_bytes": 2 << 30}]}, ("2 files of at least 500 MB", "scan.mov")),
    "end_process": ({"pid": 812, "name": "Excel"}, {"pid": 812, "name": "Excel", "ended": True,
                                                   "already_gone": False, "forced": True}, ("ended Excel (pid 812)",)),
    "wifi_status": ({}, {"interface": "wlan0", "present": True, "powered": True, "connected": True,
                         "ssid": "AcmeOffice", "signal_percent": 41, "channel": 36},
                    ("connected to AcmeOffice", "41%")),
    "wifi_networks": ({}, {"preferred": ["AcmeOffice", "Home"]}, ("2 remembered networks", "AcmeOffice")),
    "renew_dhcp": ({}, {"interface": "eth0", "renewed": True}, ("new address on eth0",)),
    "flush_dns": ({}, {"flushed": True, "cache": "DNS Client", "reason": None}, ("flushed the DNS cache",)),
    "vpn_status": ({}, {"connections": [{"name": "Office", "connected": False}], "connected": []},
                   ("Office", "connected: none")),
    "restart_vpn": ({"name": "Office"}, {"name": "Office", "restarted": True}, ("reconnected VPN connection Office",)),
    "printer_queues": ({}, {"scheduler_running": True, "printers": [{"name": "HP-2F"}], "jobs": 3,
                            "attention": ["HP-2F"], "paused": ["HP-2F"]}, ("1 printer, 3 jobs waiting", "HP-2F")),
    "clear_print_queue": ({"printer": "HP-2F"}, {"printer": "HP-2F", "cleared": True, "jobs_left": 0},
                          ("cancelled the jobs of HP-2F", "0 jobs left")),
    "resume_printer": ({"printer": "HP-2F"}, {"printer": "HP-2F", "resumed": True, "state": "idle"},
                       ("resumed HP-2F (now idle)",)),
    "restart_print_spooler": ({}, {"service": "Spooler", "restarted": True, "status": "Running"},
                              ("restarted the print service Spooler: running",)),
    "installed_software": ({}, {"manager": "dpkg", "count": 1, "software": [{"name": "vlc", "version": "3.0"}]},
                           ("1 matching package", "vlc 3.0")),
    "install_package": ({"package": "vlc"}, {"package": "vlc", "installed": True, "version": "3.0", "manager": "apt"},
                        ("installed vlc 3.0 with apt",)),
    "pending_updates": ({}, {"count": 4, "security": 2, "restart_required": True}, ("4 updates waiting", "2 security")),
    "clear_browser_cache": ({"dry_run": True}, {"dry_run": True, "caches": [{"browser": "chrome"}], "bytes": 5 << 20},
                            ("browser caches hold 5.0 MB", "chrome")),
    "mail_client_status": ({}, {"installed": ["Outlook"], "running": []}, ("installed: Outlook", "running: none")),
    "restart_app": ({"name": "Outlook"}, {"name": "Outlook", "ended": 1, "restarted": True},
                    ("quit Outlook", "started it again")),
    "crash_reports": ({}, {"days": 7, "count": 1,
                           "reports": [{"app": "Excel", "time": "2026-12-05", "what": "SIGSEGV"}]},
                      ("1 crash report in the last 7 days", "Excel")),
    "reboot": ({}, {"scheduled": True, "delay_minutes": 5}, ("restart scheduled in 5 minutes",)),
    "directory_user": ({"username": "maria"}, ACCOUNT, ("maria@acme.example", "enabled", "not locked out",
                                                        "must change password", "password held in AD")),
    "unlock_account": ({"username": "maria"}, {**ACCOUNT, "unlocked": True}, ("unlocked maria@acme.example",
                                                                              "verified by psa contact")),
    "reset_password": ({"username": "maria"}, {**ACCOUNT, "reset": True, "directory": "ad",
                       "handed_over": {"to": "device", "device": "LT-7", "what": "temporary password"}},
                       ("set a temporary password on maria@acme.example", "shown to the user only", "LT-7")),
    "reset_mfa": ({"username": "maria"}, {**ACCOUNT, "removed_methods": ["phone"], "access_pass_minutes": 60,
                  "handed_over": {"to": "view-once link", "sent_by": "PSA reply to the requester"}},
                  ("removed phone MFA methods", "Temporary Access Pass valid 60 minutes", "view-once link")),
    "revoke_sessions": ({"username": "maria"}, {**ACCOUNT, "sessions_revoked": True},
                        ("signed maria@acme.example out",)),
    "create_user": ({}, {"created": True, "username": "new.hire@acme.example", "directory": "ad",
                         "groups": ["Staff", "Finance"], "enabled": True},
                    ("created new.hire@acme.example", "2 groups")),
    "disable_user": ({"username": "leaver"}, {**ACCOUNT, "username": "leaver@acme.example", "disabled": True,
                     "changed": ["AD account disabled", "sessions revoked"]},
                     ("offboarded leaver@acme.example", "AD account disabled", "nothing deleted")),
    "enable_user": ({"username": "maria"}, {**ACCOUNT, "enabled_again": True}, ("enabled maria@acme.example again",)),
    "share_access": ({}, {"username": "maria", "share": r"\\fs01\Finance", "groups": ["FS-Finance"],
                          "has_access": False, "through": [], "known_share": True},
                     ("has no access", "FS-Finance")),
    "add_to_group": ({}, {"username": "maria", "group": "FS-Finance", "added": True}, ("maria added to FS-Finance",)),
    "remove_from_group": ({}, {"username": "maria", "group": "FS-Finance", "removed": False},
                          ("maria was not a member of FS-Finance",)),
    "assign_licence": ({}, {"username": "maria", "sku": "SPE_E3", "assigned": True},
                       ("assigned licence SPE_E3 to maria",)),
    "remove_licence": ({}, {"username": "maria", "sku": "SPE_E3", "removed": True},
                       ("removed licence SPE_E3 from maria",)),
    "mac_lookup": ({"serial": "C02XK1ZQJGH5"}, {"found": True, "count": 1, "computers": [MAC]},
                   ("Maria's MacBook (C02XK1ZQJGH5", "macOS 14.5", "managed", "12.5 GB free")),
    "mac_update_inventory": ({"serial": "C02XK1ZQJGH5"}, {"serial": "C02XK1ZQJGH5", "computer": "Maria's MacBook",
                             "command": "DEVICE_INFORMATION", "queued": True}, ("a fresh inventory report queued",)),
    "mac_restart": ({"serial": "C02XK1ZQJGH5"}, {"serial": "C02XK1ZQJGH5", "computer": "Maria's MacBook",
                    "command": "RESTART_DEVICE", "queued": True}, ("a restart queued in Jamf Pro",)),
    "mac_redeploy_framework": ({"serial": "C02XK1ZQJGH5"}, {"serial": "C02XK1ZQJGH5", "computer": "Maria's MacBook",
                               "redeploy_queued": True}, ("framework redeploy queued",)),
    "print_server_queues": ({}, {"server": "print01", "queues": [{"name": "Office-2F"}], "attention": ["Office-2F"],
                                 "stuck_jobs": 2}, ("1 queue on print01", "2 stuck jobs", "Office-2F")),
    "print_server_clear_queue": ({"queue": "Office-2F"}, {"queue": "Office-2F", "cancelled_jobs": 2, "jobs_left": 0,
                                 "state": "idle", "accepting": True}, ("cancelled 2 jobs on Office-2F", "accepting")),
    "vpn_sessions": ({"username": "maria"}, {"connected": False, "username": "maria", "sessions": [], "count": 0},
                     ("maria is not connected to the VPN",)),
    "vpn_disconnect": ({"username": "maria"}, {"disconnected": True, "username": "maria", "sessions_ended": 1},
                       ("ended 1 VPN session of maria",)),
}


def step(tool: str, args: dict[str, Any], output: Any, ok: bool = True, error: str | None = None) -> StepRecord:
    return StepRecord(1, "s1", "A step", tool, args, ok, output, error)


def test_every_tool_a_playbook_can_run_has_a_summary_and_a_sample_here() -> None:
    assert sorted(set(CATALOGUE) - set(SUMMARIES)) == [], "tools without a summary"
    assert sorted(set(CATALOGUE) ^ set(SAMPLES)) == [], "add a sample output for each new tool"


@pytest.mark.parametrize("tool", sorted(SAMPLES))
def test_a_summary_says_what_was_found_in_words(tool: str) -> None:
    args, output, words = SAMPLES[tool]
    line = summarise(step(tool, args, output))
    for word in words:
        assert word in line, (tool, line)
    assert "{" not in line and '"' not in line and line.strip().lower() not in ("ok", "done")
    assert "\n" not in line and len(line) <= SUMMARY_CHARS


@pytest.mark.parametrize("tool", sorted(CATALOGUE))
@pytest.mark.parametrize("output", [{}, {"unexpected": [1, 2]}, {"filesystems": "not a list", "count": "x",
                                                                 "processes": [None, 3], "sessions": {"a": 1}}])
def test_an_odd_output_never_breaks_a_note_nor_shows_as_json(tool: str, output: dict[str, Any]) -> None:
    line = summarise(step(tool, {}, output))
    assert line and "{" not in line and "[1, 2]" not in line and line.lower() != "ok"


def test_a_secret_is_described_never_shown() -> None:
    secret = "Vx!9-Temp-Pass-2026"
    output = {**ACCOUNT, "reset": True, "directory": "entra", "password": secret, "value": secret,
              "username": f"maria password: {secret}", "handed_over": {"to": "device", "device": "LT-7"}}
    line = summarise(step("reset_password", {"username": "maria"}, output))
    assert secret not in line and "temporary password" in line and "not recorded" in line
    failed = summarise(step("reset_password", {}, None, ok=False, error=f"failed; password={secret}"))
    assert secret not in failed and failed.startswith("failed:")


def test_failures_skips_and_trimmed_outputs_say_so() -> None:
    assert summarise(step("disk_usage", {}, None, ok=False, error="tool_failed: df is missing")) == \
        "failed: tool_failed: df is missing"
    assert summarise(StepRecord(1, "s", "t", "disk_usage", {}, None, skipped=True)) == "skipped (not needed)"
    assert "too long" in summarise(step("top_processes", {}, {"trimmed": True, "first_part": "{...}"}))
    assert "no summary is known" in summarise(step("format_disk", {}, {"a": 1}))


def test_outside_text_in_an_output_is_one_inert_line() -> None:
    output = {"filesystems": [{"mount_point": "/mnt/[click](https://evil.example)\n<script>x</script>",
                               "percent_used": 50, "free_bytes": 1}]}
    line = summarise(step("disk_usage", {}, output))
    assert "](" not in line and "\n" not in line and "[click] (https://evil.example)" in line


def test_a_change_is_told_from_a_check() -> None:
    assert changes(step("clear_temp_files", {"dry_run": False}, {}))
    assert not changes(step("clear_temp_files", {"dry_run": True}, {}))
    assert not changes(step("clear_temp_files", {}, {})), "dry_run defaults to a preview"
    assert changes(step("reset_password", {"username": "maria"}, {}))
    assert changes(step("flush_dns", {}, {})), "no approval needed, but it changes something"
    assert not changes(step("directory_user", {"username": "maria"}, {}))
    assert not changes(step("format_disk", {}, {}))
