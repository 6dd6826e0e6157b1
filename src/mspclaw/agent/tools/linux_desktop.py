"""Linux device tools beyond the first six: Wi-Fi, VPN, DNS, printers, software, apps, crashes, reboot.

Commands are the distribution's standard ones: NetworkManager's ``nmcli`` (terse ``-t`` output),
``resolvectl``, CUPS ``lpstat``, ``dpkg-query`` and ``apt``, ``journalctl`` and ``/var/crash``.
Parsers are pure functions so recorded output tests them; the tools run for real in CI, where
a missing command (no NetworkManager in a container) is reported as such, never faked.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

from mspclaw.agent.tools import JsonObject, ToolContext, cups
from mspclaw.agent.tools.commands import NotInstalled
from mspclaw.agent.tools.portable import clear_browser_cache as _clear_browser_cache
from mspclaw.agent.tools.portable import large_files as _large_files
from mspclaw.errors import ToolFailed
from mspclaw.tools.device import (
    AppArgs,
    BrowserCacheArgs,
    CrashReportsArgs,
    EndProcessArgs,
    InstalledSoftwareArgs,
    InstallPackageArgs,
    InterfaceArgs,
    LargeFilesArgs,
    NoArgs,
    PrinterArgs,
    RebootArgs,
    RenewDhcpArgs,
    VpnArgs,
)

NMCLI_DEVICES = ["nmcli", "-t", "-f", "DEVICE,TYPE,STATE,CONNECTION", "device", "status"]
NMCLI_WIFI = ["nmcli", "-t", "-f", "ACTIVE,SSID,SIGNAL,CHAN,SECURITY", "device", "wifi", "list", "--rescan", "no"]
NMCLI_CONNECTIONS = ["nmcli", "-t", "-f", "NAME,TYPE,AUTOCONNECT,AUTOCONNECT-PRIORITY,ACTIVE", "connection", "show"]
APT_UPGRADABLE = ["apt", "list", "--upgradable"]
DPKG_LIST = ["dpkg-query", "-W", "-f", "${Package}\\t${Version}\\t${db:Status-Abbrev}\\n"]
VPN_TYPES = {"vpn", "wireguard", "tun"}


def nm_fields(line: str) -> list[str]:
    """Split one line of ``nmcli -t`` output: ``:`` separates fields, ``\\:`` is a literal colon."""
    fields, current, escaped = [], "", False
    for char in line:
        if escaped:
            current, escaped = current + char, False
        elif char == "\\":
            escaped = True
        elif char == ":":
            fields.append(current)
            current = ""
        else:
            current += char
    fields.append(current)
    return fields


# --- uptime, end_process ----------------------------------------------------------------------


def uptime(args: NoArgs, context: ToolContext) -> JsonObject:
    seconds = float(Path("/proc/uptime").read_text().split()[0])
    booted = time.time() - seconds
    return {"uptime_s": round(seconds, 1), "boot_time": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(booted)),
            "days": round(seconds / 86400, 2)}


def _comm(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def end_process(args: EndProcessArgs, context: ToolContext) -> JsonObject:
    """SIGTERM, then SIGKILL after 3 s; only if ``pid`` still runs the program ``name``."""
    if args.pid == os.getpid() or args.pid == os.getppid():
        raise ToolFailed("end_process: refusing to end the MSPclaw agent itself")
    current = _comm(args.pid)
    if current is None:
        return {"pid": args.pid, "name": args.name, "ended": True, "already_gone": True}
    if current != args.name[:15]:  # the kernel keeps 15 characters of the name
        raise ToolFailed(f"end_process: pid {args.pid} now runs {current!r}, not {args.name!r}; nothing was ended")
    os.kill(args.pid, signal.SIGTERM)
    forced = False
    deadline = time.monotonic() + 3.0
    while _comm(args.pid) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    if _comm(args.pid) is not None:
        os.kill(args.pid, signal.SIGKILL)
        forced = True
    return {"pid": args.pid, "name": args.name, "ended": True, "already_gone": False, "forced": forced}


# --- Wi-Fi, DHCP, DNS, VPN ---------------------------------------------------------------------


def parse_nm_devices(text: str) -> list[JsonObject]:
    return [{"device": f[0], "type": f[1], "state": f[2], "connection": f[3] or None}
            for line in text.splitlines() if len(f := nm_fields(line)) >= 4]


def parse_nm_wifi(text: str) -> list[JsonObject]:
    networks = []
    for line in text.splitlines():
        f = nm_fields(line)
        if len(f) >= 5:
            networks.append({"active": f[0] == "yes", "ssid": f[1], "signal_percent": int(f[2]) if f[2].isdigit()
                             else None, "channel": int(f[3]) if f[3].isdigit() else None, "security": f[4] or None})
    return networks


def parse_nm_connections(text: str) -> list[JsonObject]:
    conns = []
    for line in text.splitlines():
        f = nm_fields(line)
        if len(f) >= 5:
            conns.append({"name": f[0], "type": f[1], "autoconnect": f[2] == "yes",
                          "priority": int(f[3]) if f[3].lstrip("-").isdigit() else 0, "active": f[4] == "yes"})
    return conns


def wifi_status(args: NoArgs, context: ToolContext) -> JsonObject:
    devices = [d for d in parse_nm_devices(context.run(NMCLI_DEVICES, 10).ok()) if d["type"] == "wifi"]
    if not devices:
        return {"interface": None, "present": False, "powered": False, "connected": False, "ssid": None,
                "signal_percent": None, "channel": None, "security": None}
    device = devices[0]
    active = next((n for n in parse_nm_wifi(context.run(NMCLI_WIFI, 15).ok()) if n["active"]), None)
    return {
        "interface": device["device"], "present": True, "powered": device["state"] != "unavailable",
        "connected": device["state"] == "connected", "ssid": active["ssid"] if active else device["connection"],
        "signal_percent": active["signal_percent"] if active else None,
        "channel": active["channel"] if active else None, "security": active["security"] if active else None,
    }


def wifi_networks(args: InterfaceArgs, context: ToolContext) -> JsonObject:
    conns = [c for c in parse_nm_connections(context.run(NMCLI_CONNECTIONS, 10).ok())
             if c["type"] in ("802-11-wireless", "wifi")]
    conns.sort(key=lambda c: -int(c["priority"]))
    return {"interface": args.interface, "preferred": [c["name"] for c in conns], "networks": conns}


def _default_interface(context: ToolContext) -> str:
    routes: list[dict[str, Any]] = json.loads(context.run(["ip", "-j", "route", "show", "default"], 5).ok() or "[]")
    for route in routes:
        if route.get("dev"):
            return str(route["dev"])
    raise ToolFailed("renew_dhcp: there is no default route; name the interface")


def renew_dhcp(args: RenewDhcpArgs, context: ToolContext) -> JsonObject:
    interface = args.interface or _default_interface(context)
    context.run(["nmcli", "device", "reapply", interface], 25).ok()
    return {"interface": interface, "renewed": True}


def flush_dns(args: NoArgs, context: ToolContext) -> JsonObject:
    try:
        context.run(["resolvectl", "flush-caches"], 10).ok()
    except NotInstalled:
        return {"flushed": False, "cache": None,
                "reason": "no local DNS cache: systemd-resolved is not in use, so every lookup is fresh"}
    return {"flushed": True, "cache": "systemd-resolved", "reason": None}


def vpn_status(args: NoArgs, context: ToolContext) -> JsonObject:
    """NetworkManager VPN and WireGuard connections; without NetworkManager, tunnel interfaces from ``ip``."""
    connections: list[JsonObject] = []
    try:
        listed = context.run(NMCLI_CONNECTIONS, 10).ok()
    except NotInstalled:
        listed = None
    if listed is not None:
        for conn in parse_nm_connections(listed):
            if conn["type"] in VPN_TYPES:
                connections.append({"name": conn["name"], "type": conn["type"], "connected": conn["active"]})
    else:
        links: list[dict[str, Any]] = json.loads(context.run(["ip", "-j", "link", "show"], 5).ok() or "[]")
        for link in links:
            name = str(link.get("ifname", ""))
            if name.startswith(("tun", "wg", "ppp", "tap")):
                connections.append({"name": name, "type": "interface",
                                    "connected": "UP" in link.get("flags", [])})
    return {"connections": connections, "connected": [c["name"] for c in connections if c["connected"]]}


def restart_vpn(args: VpnArgs, context: ToolContext) -> JsonObject:
    names = [c["name"] for c in vpn_status(NoArgs(), context)["connections"]]
    if args.name not in names:
        raise ToolFailed(f"no VPN connection named {args.name!r}; configured: {', '.join(names) or 'none'}")
    context.run(["nmcli", "connection", "down", args.name], 20)  # already down is fine
    context.run(["nmcli", "connection", "up", args.name], 40).ok()
    return {"name": args.name, "restarted": True}


# --- printers ----------------------------------------------------------------------------------


def printer_queues(args: NoArgs, context: ToolContext) -> JsonObject:
    return cups.printer_queues(context.run)


def clear_print_queue(args: PrinterArgs, context: ToolContext) -> JsonObject:
    return cups.clear_print_queue(context.run, args.printer)


def resume_printer(args: PrinterArgs, context: ToolContext) -> JsonObject:
    return cups.resume_printer(context.run, args.printer)


def restart_print_spooler(args: NoArgs, context: ToolContext) -> JsonObject:
    """Start or restart CUPS through systemd (the agent runs as a system service)."""
    return cups.start_print_service(context.run, ["systemctl", "restart", "cups.service"])


# --- software ----------------------------------------------------------------------------------


def parse_dpkg(text: str) -> list[JsonObject]:
    out = []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and parts[2].startswith("ii"):
            out.append({"name": parts[0], "version": parts[1]})
    return out


def installed_software(args: InstalledSoftwareArgs, context: ToolContext) -> JsonObject:
    try:
        manager, items = "dpkg", parse_dpkg(context.run(DPKG_LIST, 30).ok())
    except NotInstalled:
        manager = "rpm"
        items = [{"name": n, "version": v} for line in context.run(
            ["rpm", "-qa", "--qf", "%{NAME}\\t%{VERSION}-%{RELEASE}\\n"], 30).ok().splitlines()
            for n, _, v in [line.partition("\t")]]
    needle = args.name_contains.lower()
    matched = [i for i in items if needle in str(i["name"]).lower()]
    return {"manager": manager, "count": len(matched), "software": matched[: args.limit]}


def parse_apt_upgradable(text: str) -> list[JsonObject]:
    """``apt list --upgradable``: ``name/suite version arch [upgradable from: old]``."""
    updates = []
    for line in text.splitlines():
        if "/" not in line or "[upgradable from:" not in line:
            continue
        head, _, old = line.partition("[upgradable from:")
        parts = head.split()
        name, _, suite = parts[0].partition("/")
        updates.append({"name": name, "version": parts[1] if len(parts) > 1 else "", "from": old.strip(" ]"),
                        "security": "security" in suite})
    return updates


def pending_updates(args: NoArgs, context: ToolContext) -> JsonObject:
    updates = parse_apt_upgradable(context.run(APT_UPGRADABLE, 60).ok())
    return {"count": len(updates), "security": sum(1 for u in updates if u["security"]), "updates": updates,
            "restart_required": Path("/var/run/reboot-required").exists()}


def install_package(args: InstallPackageArgs, context: ToolContext) -> JsonObject:
    argv = ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q", "--no-install-recommends",
            "--", args.package]
    done = context.run(argv, 850)
    done.ok()
    version = next((i["version"] for i in parse_dpkg(context.run([*DPKG_LIST, args.package], 20).ok())), None)
    return {"package": args.package, "installed": version is not None, "version": version, "manager": "apt"}


# --- browser, mail, apps, crashes, reboot -------------------------------------------------------


def clear_browser_cache(args: BrowserCacheArgs, context: ToolContext) -> JsonObject:
    return _clear_browser_cache(args, context.home_dir(), "linux")


def large_files(args: LargeFilesArgs, context: ToolContext) -> JsonObject:
    return _large_files(args, context.home_dir())


def _running(names: set[str]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (comm := _comm(int(entry.name))) in names:
            found.setdefault(comm, []).append(int(entry.name))
    return found


MAIL_CLIENTS = {"thunderbird": "Thunderbird", "evolution": "Evolution", "geary": "Geary"}


def _version(context: ToolContext, command: str) -> str | None:
    """``thunderbird --version`` -> ``115.6.0``; None when the program is not installed."""
    try:
        done = context.run([command, "--version"], 15)
    except NotInstalled:
        return None
    words = done.stdout.split()
    return words[-1] if done.returncode == 0 and words else None


def mail_client_status(args: NoArgs, context: ToolContext) -> JsonObject:
    running = _running(set(MAIL_CLIENTS))
    clients = []
    for cmd, label in MAIL_CLIENTS.items():
        version = _version(context, cmd)
        clients.append({"name": label, "installed": version is not None, "version": version,
                        "running": cmd in running})
    return {"clients": clients, "installed": [c["name"] for c in clients if c["installed"]],
            "running": [c["name"] for c in clients if c["running"]],
            "restart_names": [cmd for cmd, label in MAIL_CLIENTS.items() if cmd in running]}


def restart_app(args: AppArgs, context: ToolContext) -> JsonObject:
    """End every process of the program (SIGTERM, then SIGKILL after 5 s) and start it again."""
    path = shutil.which(args.name)
    pids = _running({args.name[:15]}).get(args.name[:15], [])
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5.0
    while any(_comm(p) is not None for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in pids:
        if _comm(pid) is not None:
            os.kill(pid, signal.SIGKILL)
    if path is not None:
        # setsid -f: the program runs in its own session, reparented to init, never the agent's zombie
        context.run(["setsid", "-f", path], 10).ok()
    return {"name": args.name, "ended": len(pids), "restarted": path is not None}


def parse_apport(text: str) -> JsonObject:
    """The header fields of an Ubuntu ``/var/crash/*.crash`` (apport) report."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if line[:1] in (" ", "\t") or ":" not in line:
            continue
        key, _, value = line.partition(":")
        if key in ("ProblemType", "Date", "ExecutablePath", "Package", "Signal", "Title"):
            fields[key] = value.strip()
        if len(fields) == 6:
            break
    exe = fields.get("ExecutablePath", "")
    return {"app": Path(exe).name or fields.get("Package", "?"), "time": fields.get("Date"),
            "what": fields.get("Title") or (f"signal {fields['Signal']}" if "Signal" in fields else None),
            "source": "apport"}


def crash_reports(args: CrashReportsArgs, context: ToolContext) -> JsonObject:
    """Apport reports in ``/var/crash`` and systemd-coredump entries in the journal."""
    reports: list[JsonObject] = []
    cutoff = time.time() - args.days * 86400
    crash_dir = Path("/var/crash")
    if crash_dir.is_dir():
        for path in sorted(crash_dir.glob("*.crash"), key=lambda p: p.stat().st_mtime, reverse=True):
            if path.stat().st_mtime < cutoff:
                continue
            try:
                with path.open(errors="replace") as handle:
                    reports.append(parse_apport(handle.read(16384)))
            except OSError:
                continue
    try:
        done = context.run(["journalctl", "-q", "--no-pager", "-o", "json", "-t", "systemd-coredump",
                            "--since", f"-{args.days}d", "-n", str(args.limit)], 30)
    except NotInstalled:
        done = None
    if done is not None and done.returncode == 0:
        reports.extend(parse_coredump_journal(done.stdout))
    needle = args.app.lower()
    reports = [r for r in reports if needle in str(r["app"]).lower()]
    return {"days": args.days, "count": len(reports), "reports": reports[: args.limit]}


def parse_coredump_journal(text: str) -> list[JsonObject]:
    reports = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        exe = entry.get("COREDUMP_EXE") or entry.get("COREDUMP_COMM") or "?"
        when = entry.get("__REALTIME_TIMESTAMP")
        reports.append({"app": Path(str(exe)).name, "time": time.strftime(
            "%Y-%m-%dT%H:%M:%S", time.gmtime(int(when) / 1e6)) if when else None,
            "what": f"signal {entry.get('COREDUMP_SIGNAL_NAME') or entry.get('COREDUMP_SIGNAL', '?')}",
            "source": "systemd-coredump"})
    return reports


def reboot(args: RebootArgs, context: ToolContext) -> JsonObject:
    when = f"+{args.delay_minutes}" if args.delay_minutes else "now"
    context.run(["shutdown", "-r", when, "MSPclaw: your IT support is restarting this computer"], 15).ok()
    return {"scheduled": True, "delay_minutes": args.delay_minutes}
