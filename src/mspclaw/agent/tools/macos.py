"""The catalogue's device tools on macOS, with macOS's own commands.

``sysctl``, ``sw_vers``, ``vm_stat``, ``df``, ``ps``, ``ifconfig``, ``route``, ``scutil``,
``networksetup``, ``ipconfig``, ``dscacheutil``, ``system_profiler -json``, ``softwareupdate``,
CUPS (``lpstat``, ``cancel``, ``cupsenable``), ``brew``, ``osascript``/``open`` and the
diagnostic reports folder. Each command is an argument list run through the context's runner
with a timeout; each parser is a pure function of the command's text, tested against
``tests/fixtures/macos/``: real published outputs where one was found (``ifconfig``, ``sysctl``,
``vm_stat``, ``sw_vers``, ``softwareupdate``, ``route``, ``scutil --dns``, ``networksetup
-listallhardwareports``), the rest written to the documented format (each file's ``# source:``
line says which; docs/playbooks.md lists them).
"""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path
from typing import Any

from mspclaw.agent.tools import JsonObject, ToolContext, ToolFn, cups, tool_table
from mspclaw.agent.tools.portable import check_connectivity
from mspclaw.agent.tools.portable import clear_browser_cache as _clear_browser_cache
from mspclaw.agent.tools.portable import large_files as _large_files
from mspclaw.errors import ToolFailed
from mspclaw.tools.catalogue import ClearTempFilesArgs, DiskUsageArgs, TopProcessesArgs
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

SYSCTL = ["sysctl", "-n", "hw.memsize", "hw.ncpu", "machdep.cpu.brand_string", "kern.boottime", "vm.loadavg"]
SW_VERS = ["sw_vers"]
VM_STAT = ["vm_stat"]
HOSTNAME = ["scutil", "--get", "LocalHostName"]
DF = ["df", "-k", "-P"]
IFCONFIG = ["ifconfig", "-a"]
ROUTE_DEFAULT = ["route", "-n", "get", "default"]
SCUTIL_DNS = ["scutil", "--dns"]
HARDWARE_PORTS = ["networksetup", "-listallhardwareports"]
AIRPORT = ["system_profiler", "SPAirPortDataType", "-json"]
APPLICATIONS = ["system_profiler", "SPApplicationsDataType", "-json"]
VPN_LIST = ["scutil", "--nc", "list"]
SOFTWAREUPDATE = ["softwareupdate", "-l"]
PS_NAMES = ["ps", "-Aco", "comm"]

# --- system ----------------------------------------------------------------------------------


def parse_boottime(text: str) -> int:
    """``kern.boottime``: ``{ sec = 1713165017, usec = 512345 } Mon Apr 15 09:10:17 2024``."""
    found = re.search(r"sec = (\d+)", text)
    if not found:
        raise ToolFailed(f"cannot read the boot time from {text.strip()!r}")
    return int(found.group(1))


def parse_sw_vers(text: str) -> dict[str, str]:
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def parse_vm_stat(text: str) -> dict[str, int]:
    """``vm_stat`` in bytes: ``Pages free: 12345.`` times the page size in the first line."""
    size = re.search(r"page size of (\d+) bytes", text)
    page = int(size.group(1)) if size else 4096
    values = {}
    for line in text.splitlines()[1:]:
        key, sep, value = line.partition(":")
        value = value.strip().rstrip(".")
        if sep and value.isdigit():
            values[key.strip().strip('"')] = int(value) * page
    return values


def system_info(args: NoArgs, context: ToolContext) -> JsonObject:
    lines = context.run(SYSCTL, 10).ok().splitlines()
    if len(lines) < 5:
        raise ToolFailed(f"sysctl returned {len(lines)} lines, expected 5")
    memsize, ncpu, brand, boottime, loadavg = lines[:5]
    version = parse_sw_vers(context.run(SW_VERS, 10).ok())
    vm = parse_vm_stat(context.run(VM_STAT, 10).ok())
    loads = [float(x) for x in loadavg.strip("{} ").split()[:3]]
    count = int(ncpu)
    available = sum(vm.get(k, 0) for k in ("Pages free", "Pages inactive", "Pages speculative", "Pages purgeable"))
    return {
        "hostname": context.run(HOSTNAME, 5).ok().strip() or socket.gethostname(),
        "os": {"name": version.get("ProductName", "macOS"), "version": version.get("ProductVersion", ""),
               "pretty_name": f"{version.get('ProductName', 'macOS')} {version.get('ProductVersion', '')} "
                              f"({version.get('BuildVersion', '')})"},
        "kernel": "Darwin",
        "cpu": {"model": brand.strip(), "count": count},
        "memory": {"total_bytes": int(memsize), "available_bytes": available,
                   "swap_total_bytes": 0, "swap_free_bytes": 0},
        "uptime_s": max(0, round(time.time() - parse_boottime(boottime))),
        "load_average": {"1m": loads[0], "5m": loads[1], "15m": loads[2]},
        "cpu_load_percent": round(min(100.0, 100.0 * loads[0] / count), 1),
        "cpu_overloaded": loads[0] >= 2 * count,
        "users": [],
    }


def uptime(args: NoArgs, context: ToolContext) -> JsonObject:
    booted = parse_boottime(context.run(["sysctl", "-n", "kern.boottime"], 5).ok())
    seconds = max(0.0, time.time() - booted)
    return {"uptime_s": round(seconds), "boot_time": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(booted)),
            "days": round(seconds / 86400, 2)}


_HIDDEN_VOLUMES = ("/System/Volumes/VM", "/System/Volumes/Preboot", "/System/Volumes/Update",
                   "/System/Volumes/xarts", "/System/Volumes/iSCPreboot", "/System/Volumes/Hardware")


def parse_df(text: str) -> list[JsonObject]:
    """``df -k -P``: 1024-byte blocks; local ``/dev/disk`` volumes, without APFS's hidden system ones."""
    filesystems = []
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 6 or not parts[0].startswith("/dev/"):
            continue
        mount = " ".join(parts[5:])
        if mount.startswith(_HIDDEN_VOLUMES):
            continue
        total, used, free = (int(p) * 1024 for p in parts[1:4])
        filesystems.append({"path": mount, "mount_point": mount, "device": parts[0], "fstype": "apfs",
                            "total_bytes": total, "used_bytes": used, "free_bytes": free,
                            "percent_used": round(100.0 * used / (used + free), 1) if used + free else 0.0})
    return filesystems


def disk_usage(args: DiskUsageArgs, context: ToolContext) -> JsonObject:
    filesystems = parse_df(context.run(DF, 15).ok())
    if args.paths:
        filesystems = [f for f in filesystems if f["mount_point"] in args.paths]
    return {"filesystems": filesystems, "errors": []}


def parse_ps(text: str, mem_total: int | None = None) -> list[JsonObject]:
    """``ps -Aco pid,pcpu,rss,user,comm``: the name is the last column and may hold spaces.

    No ``-e``: on macOS it would add each process's environment, which may hold secrets.
    """
    processes = []
    for line in text.splitlines()[1:]:
        parts = line.split(None, 4)
        if len(parts) < 5 or not parts[0].isdigit():
            continue
        rss = int(parts[2]) * 1024
        processes.append({"pid": int(parts[0]), "name": parts[4].strip(), "user": parts[3],
                          "cpu_percent": float(parts[1]), "rss_bytes": rss,
                          "memory_percent": round(100.0 * rss / mem_total, 2) if mem_total else None})
    return processes


def top_processes(args: TopProcessesArgs, context: ToolContext) -> JsonObject:
    order = "-r" if args.sort_by == "cpu" else "-m"
    processes = parse_ps(context.run(["ps", "-Aco", "pid,pcpu,rss,user,comm", order], 10).ok())
    return {"sort_by": args.sort_by, "total_processes": len(processes), "processes": processes[: args.limit]}


# --- network -----------------------------------------------------------------------------------


def parse_ifconfig(text: str) -> list[JsonObject]:
    interfaces: list[JsonObject] = []
    for line in text.splitlines():
        head = re.match(r"^(\S+): flags=\w+<([^>]*)> mtu (\d+)", line)
        if head:
            interfaces.append({"name": head.group(1), "state": "up" if "UP" in head.group(2).split(",") else "down",
                               "mac": None, "mtu": int(head.group(3)), "ipv4": [], "ipv6": []})
            continue
        if not interfaces:
            continue
        parts = line.split()
        current = interfaces[-1]
        if parts[:1] == ["ether"]:
            current["mac"] = parts[1]
        elif parts[:1] == ["inet"] and len(parts) >= 4:
            prefix = bin(int(parts[3], 16)).count("1") if parts[3].startswith("0x") else 32
            current["ipv4"].append(f"{parts[1]}/{prefix}")
        elif parts[:1] == ["inet6"] and len(parts) >= 4:
            current["ipv6"].append(f"{parts[1].split('%')[0]}/{parts[3]}")
        elif parts[:1] == ["status:"]:
            current["state"] = "up" if parts[1] == "active" else "down"
    return interfaces


def parse_route(text: str) -> JsonObject | None:
    fields = {k.strip(): v.strip() for k, sep, v in (line.partition(":") for line in text.splitlines()) if sep}
    if "gateway" not in fields and "interface" not in fields:
        return None
    return {"gateway": fields.get("gateway"), "interface": fields.get("interface")}


def parse_scutil_dns(text: str) -> JsonObject:
    """``scutil --dns``: the name servers and search domains of the default resolver.

    That is the first resolver of the unscoped section that serves every domain: no ``domain``
    line and no ``Supplemental`` flag. A real capture (macOS with a WireGuard tunnel) lists a
    supplemental resolver of the tunnel as ``resolver #1`` and the system's default second.
    """
    unscoped = text.split("DNS configuration (for scoped queries)")[0]
    resolvers: list[dict[str, list[str]]] = []
    for block in unscoped.split("\nresolver #")[1:]:
        fields: dict[str, list[str]] = {"servers": [], "search": [], "domain": [], "flags": []}
        for line in block.splitlines():
            key, sep, value = line.partition(" : ")
            key = key.strip()
            if not sep:
                continue
            if key.startswith("nameserver["):
                fields["servers"].append(value.strip())
            elif key.startswith("search domain["):
                fields["search"].append(value.strip())
            elif key in ("domain", "flags"):
                fields[key].append(value.strip())
        resolvers.append(fields)
    default = next((r for r in resolvers if r["servers"] and not r["domain"]
                    and "Supplemental" not in " ".join(r["flags"])), resolvers[0] if resolvers else None)
    return {"servers": default["servers"] if default else [], "search": default["search"] if default else []}


def network_status(args: NoArgs, context: ToolContext) -> JsonObject:
    route_done = context.run(ROUTE_DEFAULT, 5)
    return {
        "source": "ifconfig",
        "interfaces": parse_ifconfig(context.run(IFCONFIG, 5).ok()),
        "default_route": parse_route(route_done.stdout) if route_done.returncode == 0 else None,
        "dns": parse_scutil_dns(context.run(SCUTIL_DNS, 5).ok()),
    }


def parse_hardware_ports(text: str) -> list[JsonObject]:
    ports: list[JsonObject] = []
    for line in text.splitlines():
        key, _, value = line.partition(": ")
        if key == "Hardware Port":
            ports.append({"port": value.strip(), "device": None, "mac": None})
        elif ports and key == "Device":
            ports[-1]["device"] = value.strip()
        elif ports and key == "Ethernet Address":
            ports[-1]["mac"] = value.strip()
    return ports


def _wifi_device(context: ToolContext) -> str | None:
    return next((p["device"] for p in parse_hardware_ports(context.run(HARDWARE_PORTS, 10).ok())
                 if p["port"] in ("Wi-Fi", "AirPort")), None)


def parse_airport(text: str) -> JsonObject:
    """``system_profiler SPAirPortDataType -json``: the Wi-Fi interface's status and current network."""
    data = json.loads(text)
    for item in data.get("SPAirPortDataType", []):
        for iface in item.get("spairport_airport_interfaces", []):
            if iface.get("_name", "").startswith("awdl") or "spairport_status_information" not in iface:
                continue
            current = iface.get("spairport_current_network_information") or {}
            signal = re.match(r"(-?\d+) dBm", current.get("spairport_signal_noise", ""))
            channel = re.match(r"(\d+)", str(current.get("spairport_network_channel", "")))
            return {"interface": iface["_name"],
                    "status": str(iface["spairport_status_information"]).removeprefix("spairport_status_"),
                    "ssid": current.get("_name"), "signal_dbm": int(signal.group(1)) if signal else None,
                    "channel": int(channel.group(1)) if channel else None,
                    "security": str(current.get("spairport_security_mode", "")).removeprefix(
                        "spairport_security_mode_") or None}
    return {"interface": None, "status": "absent", "ssid": None, "signal_dbm": None, "channel": None,
            "security": None}


def _dbm_to_percent(dbm: int | None) -> int | None:
    return None if dbm is None else max(0, min(100, 2 * (dbm + 100)))


def wifi_status(args: NoArgs, context: ToolContext) -> JsonObject:
    device = _wifi_device(context)
    if device is None:
        return {"interface": None, "present": False, "powered": False, "connected": False, "ssid": None,
                "signal_percent": None, "channel": None, "security": None}
    power = context.run(["networksetup", "-getairportpower", device], 10).ok()
    air = parse_airport(context.run(AIRPORT, 30).ok())
    return {"interface": device, "present": True, "powered": power.strip().endswith("On"),
            "connected": air["status"] == "connected", "ssid": air["ssid"],
            "signal_percent": _dbm_to_percent(air["signal_dbm"]), "signal_dbm": air["signal_dbm"],
            "channel": air["channel"], "security": air["security"]}


def parse_preferred(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()[1:] if line.startswith("\t") and line.strip()]


def wifi_networks(args: InterfaceArgs, context: ToolContext) -> JsonObject:
    device = args.interface or _wifi_device(context)
    if device is None:
        raise ToolFailed("wifi_networks: this Mac has no Wi-Fi interface")
    preferred = parse_preferred(context.run(["networksetup", "-listpreferredwirelessnetworks", device], 10).ok())
    return {"interface": device, "preferred": preferred}


def renew_dhcp(args: RenewDhcpArgs, context: ToolContext) -> JsonObject:
    device = args.interface or (parse_route(context.run(ROUTE_DEFAULT, 5).stdout) or {}).get("interface")
    if not device:
        raise ToolFailed("renew_dhcp: there is no default route; name the interface")
    context.run(["ipconfig", "set", device, "DHCP"], 25).ok()
    return {"interface": device, "renewed": True}


def flush_dns(args: NoArgs, context: ToolContext) -> JsonObject:
    context.run(["dscacheutil", "-flushcache"], 10).ok()
    context.run(["killall", "-HUP", "mDNSResponder"], 10).ok()
    return {"flushed": True, "cache": "mDNSResponder", "reason": None}


_NC_LINE = re.compile(r"^\*?\s*\((?P<state>[^)]+)\)\s+(?P<id>[0-9A-F-]{36})\s+(?P<kind>.+?)\s+"
                      r"\"(?P<name>[^\"]+)\"\s+\[(?P<type>[^\]]+)\]")


def parse_nc_list(text: str) -> list[JsonObject]:
    """``scutil --nc list``: ``* (Connected) UUID IPSec "Office VPN" [IPSec]`` per VPN service."""
    return [{"name": m["name"], "type": m["type"], "connected": m["state"] == "Connected", "state": m["state"],
             "enabled": line.startswith("*")}
            for line in text.splitlines() if (m := _NC_LINE.match(line))]


def vpn_status(args: NoArgs, context: ToolContext) -> JsonObject:
    connections = parse_nc_list(context.run(VPN_LIST, 10).ok())
    return {"connections": connections, "connected": [c["name"] for c in connections if c["connected"]]}


def restart_vpn(args: VpnArgs, context: ToolContext) -> JsonObject:
    names = [c["name"] for c in parse_nc_list(context.run(VPN_LIST, 10).ok())]
    if args.name not in names:
        raise ToolFailed(f"no VPN connection named {args.name!r}; configured: {', '.join(names) or 'none'}")
    context.run(["scutil", "--nc", "stop", args.name], 20).ok()
    context.run(["scutil", "--nc", "start", args.name], 40).ok()
    return {"name": args.name, "restarted": True}


# --- printers, software, updates ---------------------------------------------------------------


def printer_queues(args: NoArgs, context: ToolContext) -> JsonObject:
    return cups.printer_queues(context.run)


def clear_print_queue(args: PrinterArgs, context: ToolContext) -> JsonObject:
    return cups.clear_print_queue(context.run, args.printer)


def resume_printer(args: PrinterArgs, context: ToolContext) -> JsonObject:
    return cups.resume_printer(context.run, args.printer)


def restart_print_spooler(args: NoArgs, context: ToolContext) -> JsonObject:
    """Start or restart CUPS through launchd."""
    return cups.start_print_service(context.run, ["launchctl", "kickstart", "-k", "system/org.cups.cupsd"])


def parse_applications(text: str) -> list[JsonObject]:
    data = json.loads(text)
    return [{"name": app.get("_name", "?"), "version": app.get("version"), "path": app.get("path"),
             "source": app.get("obtained_from")} for app in data.get("SPApplicationsDataType", [])]


def installed_software(args: InstalledSoftwareArgs, context: ToolContext) -> JsonObject:
    apps = parse_applications(context.run(APPLICATIONS, 55).ok())
    needle = args.name_contains.lower()
    matched = sorted((a for a in apps if needle in str(a["name"]).lower()), key=lambda a: str(a["name"]).lower())
    return {"manager": "system_profiler", "count": len(matched), "software": matched[: args.limit]}


def install_package(args: InstallPackageArgs, context: ToolContext) -> JsonObject:
    context.run(["brew", "install", args.package], 850).ok()
    listed = context.run(["brew", "list", "--versions", args.package], 30)
    version = listed.stdout.split()[1] if listed.returncode == 0 and len(listed.stdout.split()) > 1 else None
    return {"package": args.package, "installed": version is not None, "version": version, "manager": "brew"}


def parse_softwareupdate(text: str) -> list[JsonObject]:
    """``softwareupdate -l``: a ``* Label:`` line and a ``Title: ..., Version: ...`` line per update."""
    updates: list[JsonObject] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("* Label:"):
            updates.append({"label": stripped.removeprefix("* Label:").strip(), "title": None, "version": None,
                            "recommended": False, "restart": False})
        elif stripped.startswith("Title:") and updates:
            fields = dict(part.strip().partition(": ")[::2] for part in stripped.split(",") if ": " in part)
            updates[-1].update(title=fields.get("Title"), version=fields.get("Version"),
                               recommended=fields.get("Recommended") == "YES",
                               restart=fields.get("Action") == "restart")
    return updates


def pending_updates(args: NoArgs, context: ToolContext) -> JsonObject:
    done = context.run(SOFTWAREUPDATE, 110)
    if done.returncode != 0 and "No new software available" not in done.stderr:
        done.ok()
    updates = parse_softwareupdate(done.stdout)
    return {"count": len(updates), "security": sum(1 for u in updates if "Security" in str(u["title"])),
            "updates": updates, "restart_required": any(u["restart"] for u in updates)}


# --- browser, mail, apps, crashes, reboot -------------------------------------------------------


def clear_browser_cache(args: BrowserCacheArgs, context: ToolContext) -> JsonObject:
    return _clear_browser_cache(args, context.home_dir(), "macos")


def large_files(args: LargeFilesArgs, context: ToolContext) -> JsonObject:
    return _large_files(args, context.home_dir())


def _running_names(context: ToolContext) -> set[str]:
    return {line.strip() for line in context.run(PS_NAMES, 10).ok().splitlines()[1:] if line.strip()}


MAIL_APPS = {"Mail": "/System/Applications/Mail.app", "Microsoft Outlook": "/Applications/Microsoft Outlook.app"}


def mail_client_status(args: NoArgs, context: ToolContext) -> JsonObject:
    running = _running_names(context)
    clients = []
    for name, bundle in MAIL_APPS.items():
        done = context.run(["defaults", "read", f"{bundle}/Contents/Info.plist", "CFBundleShortVersionString"], 10)
        version = done.stdout.strip() if done.returncode == 0 else None
        clients.append({"name": name, "installed": version is not None, "version": version,
                        "running": name in running})
    running_names = [c["name"] for c in clients if c["running"]]
    return {"clients": clients, "installed": [c["name"] for c in clients if c["installed"]],
            "running": running_names, "restart_names": running_names}


def end_process(args: EndProcessArgs, context: ToolContext) -> JsonObject:
    done = context.run(["ps", "-p", str(args.pid), "-co", "comm="], 5)
    current = done.stdout.strip()
    if done.returncode != 0 or not current:
        return {"pid": args.pid, "name": args.name, "ended": True, "already_gone": True}
    if current != args.name:
        raise ToolFailed(f"end_process: pid {args.pid} now runs {current!r}, not {args.name!r}; nothing was ended")
    context.run(["kill", "-TERM", str(args.pid)], 5).ok()
    return {"pid": args.pid, "name": args.name, "ended": True, "already_gone": False}


def restart_app(args: AppArgs, context: ToolContext) -> JsonObject:
    was_running = args.name in _running_names(context)
    if was_running:
        context.run(["osascript", "-e", f'tell application "{args.name}" to quit'], 30).ok()
    context.run(["open", "-a", args.name], 20).ok()
    return {"name": args.name, "ended": int(was_running), "restarted": True}


def parse_ips(text: str) -> JsonObject:
    """A ``.ips`` diagnostic report: a one-line JSON header, then the JSON body (macOS 12 and later)."""
    head, _, body = text.partition("\n")
    header: dict[str, Any] = json.loads(head)
    what = None
    try:
        exception = json.loads(body).get("exception", {})
        what = " ".join(str(x) for x in (exception.get("type"), exception.get("signal")) if x) or None
    except (json.JSONDecodeError, AttributeError):
        pass
    return {"app": header.get("app_name") or header.get("name", "?"), "version": header.get("app_version"),
            "time": header.get("timestamp"), "what": what, "source": "DiagnosticReports"}


def crash_reports(args: CrashReportsArgs, context: ToolContext) -> JsonObject:
    folder = context.home_dir() / "Library" / "Logs" / "DiagnosticReports"
    cutoff = time.time() - args.days * 86400
    reports: list[JsonObject] = []
    paths = sorted(folder.glob("*.ips"), key=lambda p: p.stat().st_mtime, reverse=True) if folder.is_dir() else []
    for path in paths:
        if path.stat().st_mtime < cutoff:
            continue
        try:
            report = parse_ips(Path(path).read_text(errors="replace"))
        except (OSError, json.JSONDecodeError):
            continue
        if args.app.lower() in str(report["app"]).lower():
            reports.append(report)
    return {"days": args.days, "count": len(reports), "reports": reports[: args.limit]}


def reboot(args: RebootArgs, context: ToolContext) -> JsonObject:
    when = f"+{args.delay_minutes}" if args.delay_minutes else "now"
    context.run(["shutdown", "-r", when], 15).ok()
    return {"scheduled": True, "delay_minutes": args.delay_minutes}


def clear_temp_files(args: ClearTempFilesArgs, context: ToolContext) -> JsonObject:
    from mspclaw.agent.tools.linux import clear_temp_files as posix_sweep  # the same POSIX sweep, fwalk-based

    return posix_sweep(args, context)


MACOS_TOOLS: dict[str, ToolFn] = tool_table(
    system_info, uptime, disk_usage, top_processes, network_status, check_connectivity, clear_temp_files,
    large_files, end_process, wifi_status, wifi_networks, renew_dhcp, flush_dns, vpn_status, restart_vpn,
    printer_queues, clear_print_queue, resume_printer, restart_print_spooler, installed_software, install_package,
    pending_updates,
    clear_browser_cache, mail_client_status, restart_app, crash_reports, reboot,
)
"""Every device tool of the catalogue, on macOS (restart_print_spooler starts CUPS through launchd)."""
