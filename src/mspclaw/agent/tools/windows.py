"""The catalogue's device tools on Windows, through PowerShell (and ``netsh``, ``ipconfig``, ``winget``).

Every PowerShell call is ``powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass
-Command SCRIPT`` with a script that ends in ``ConvertTo-Json``, so output is parsed as JSON,
never scraped; dates are formatted as ISO 8601 inside the script (Windows PowerShell 5.1 would
otherwise write ``/Date(...)/``). Values from a call enter a script only as single-quoted
literals after the catalogue's pattern has checked them. Parsers are pure functions tested
against fixtures written to the cmdlets' documented output (``tests/fixtures/windows/``; no
Windows machine was available, and only ``winget install`` is a published real output: see each
file's ``# source:`` line).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from mspclaw.agent.tools import JsonObject, ToolContext, ToolFn, tool_table
from mspclaw.agent.tools.commands import powershell, ps_json, ps_quote
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

SYSTEM_INFO = (
    "$os = Get-CimInstance Win32_OperatingSystem; $cs = Get-CimInstance Win32_ComputerSystem; "
    "$cpu = Get-CimInstance Win32_Processor | Select-Object -First 1; "
    "[pscustomobject]@{ Hostname = $env:COMPUTERNAME; Caption = $os.Caption; Version = $os.Version; "
    "BuildNumber = $os.BuildNumber; Architecture = $os.OSArchitecture; Cpu = $cpu.Name; "
    "LogicalProcessors = $cs.NumberOfLogicalProcessors; CpuLoadPercent = $cpu.LoadPercentage; "
    "TotalVisibleMemoryKB = $os.TotalVisibleMemorySize; FreePhysicalMemoryKB = $os.FreePhysicalMemory; "
    "LastBootUpTime = $os.LastBootUpTime.ToString('o'); Now = (Get-Date).ToString('o'); "
    "UserName = $cs.UserName } | ConvertTo-Json -Compress"
)
UPTIME = (
    "$os = Get-CimInstance Win32_OperatingSystem; [pscustomobject]@{ LastBootUpTime = "
    "$os.LastBootUpTime.ToString('o'); Now = (Get-Date).ToString('o') } | ConvertTo-Json -Compress"
)
DISKS = (
    "Get-CimInstance Win32_LogicalDisk -Filter 'DriveType=3' | "
    "Select-Object DeviceID, VolumeName, FileSystem, Size, FreeSpace | ConvertTo-Json -Compress"
)
NETWORK = (
    "[pscustomobject]@{ "
    "Adapters = @(Get-NetAdapter | Select-Object Name, InterfaceDescription, ifIndex, "
    "@{n='Status';e={[string]$_.Status}}, MacAddress, LinkSpeed); "
    "Addresses = @(Get-NetIPAddress -ErrorAction SilentlyContinue | Select-Object InterfaceAlias, IPAddress, "
    "PrefixLength, @{n='AddressFamily';e={[string]$_.AddressFamily}}); "
    "Routes = @(Get-NetRoute -DestinationPrefix '0.0.0.0/0' -ErrorAction SilentlyContinue | "
    "Select-Object InterfaceAlias, NextHop, RouteMetric); "
    "Dns = @(Get-DnsClientServerAddress -AddressFamily IPv4 | Where-Object { $_.ServerAddresses } | "
    "Select-Object InterfaceAlias, ServerAddresses) } | ConvertTo-Json -Depth 4 -Compress"
)
FLUSH_DNS = "Clear-DnsClientCache; [pscustomobject]@{ Flushed = $true } | ConvertTo-Json -Compress"
VPN = (
    "Get-VpnConnection | Select-Object Name, ServerAddress, TunnelType, "
    "@{n='ConnectionStatus';e={[string]$_.ConnectionStatus}} | ConvertTo-Json -Compress"
)
PRINTERS = (
    "Get-Printer | ForEach-Object { [pscustomobject]@{ Name = $_.Name; DriverName = $_.DriverName; "
    "PortName = $_.PortName; PrinterStatus = [string]$_.PrinterStatus; JobCount = $_.JobCount; "
    "Jobs = @(Get-PrintJob -PrinterName $_.Name | Select-Object Id, DocumentName, UserName, "
    "@{n='JobStatus';e={[string]$_.JobStatus}}, @{n='Submitted';e={$_.SubmittedTime.ToString('o')}}) } } | "
    "ConvertTo-Json -Depth 4 -Compress"
)
SPOOLER = (
    "Restart-Service -Name Spooler -Force -ErrorAction Stop; Get-Service -Name Spooler | "
    "Select-Object Name, @{n='Status';e={[string]$_.Status}} | ConvertTo-Json -Compress"
)
SOFTWARE = (
    "Get-ItemProperty 'HKLM:\\Software\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\*', "
    "'HKLM:\\Software\\WOW6432Node\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\*', "
    "'HKCU:\\Software\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\*' -ErrorAction SilentlyContinue | "
    "Where-Object { $_.DisplayName } | Select-Object DisplayName, DisplayVersion, Publisher, InstallDate | "
    "ConvertTo-Json -Compress"
)
UPDATES = (
    "$searcher = (New-Object -ComObject Microsoft.Update.Session).CreateUpdateSearcher(); "
    "$searcher.Search('IsInstalled=0 and IsHidden=0').Updates | Select-Object Title, "
    "@{n='KB';e={$_.KBArticleIDs -join ','}}, @{n='Categories';e={($_.Categories | "
    "ForEach-Object { $_.Name }) -join ', '}}, RebootRequired, IsMandatory | ConvertTo-Json -Compress"
)
MAIL = (
    "$c2r = Get-ItemProperty 'HKLM:\\SOFTWARE\\Microsoft\\Office\\ClickToRun\\Configuration' "
    "-ErrorAction SilentlyContinue; $tb = Get-ItemProperty 'HKLM:\\SOFTWARE\\Mozilla\\Mozilla Thunderbird' "
    "-ErrorAction SilentlyContinue; [pscustomobject]@{ OutlookVersion = $c2r.VersionToReport; "
    "OutlookRunning = [bool](Get-Process -Name OUTLOOK -ErrorAction SilentlyContinue); "
    "ThunderbirdVersion = $tb.CurrentVersion; "
    "ThunderbirdRunning = [bool](Get-Process -Name thunderbird -ErrorAction SilentlyContinue) } | "
    "ConvertTo-Json -Compress"
)


def _ps(context: ToolContext, script: str, timeout: float = 30) -> list[dict[str, Any]]:
    return ps_json(context.run(powershell(script), timeout).ok())


def _one(context: ToolContext, script: str, timeout: float = 30) -> dict[str, Any]:
    items = _ps(context, script, timeout)
    if not items:
        raise ToolFailed("PowerShell returned nothing")
    return items[0]


def _seconds_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(_iso(end)) - datetime.fromisoformat(_iso(start))).total_seconds()


def _iso(value: str) -> str:
    """``.ToString('o')`` gives 7 fractional digits; Python before 3.11 parsed at most 6."""
    return re.sub(r"(\.\d{6})\d+", r"\1", value)


# --- system ----------------------------------------------------------------------------------


def parse_system_info(obj: dict[str, Any]) -> JsonObject:
    count = int(obj.get("LogicalProcessors") or 1)
    return {
        "hostname": obj.get("Hostname"),
        "os": {"name": obj.get("Caption", "Windows"), "version": obj.get("Version", ""),
               "pretty_name": f"{obj.get('Caption', 'Windows')} (build {obj.get('BuildNumber', '?')})"},
        "kernel": obj.get("Version", ""),
        "arch": obj.get("Architecture"),
        "cpu": {"model": str(obj.get("Cpu", "")).strip(), "count": count},
        "memory": {"total_bytes": int(obj.get("TotalVisibleMemoryKB") or 0) * 1024,
                   "available_bytes": int(obj.get("FreePhysicalMemoryKB") or 0) * 1024,
                   "swap_total_bytes": 0, "swap_free_bytes": 0},
        "uptime_s": round(_seconds_between(obj["LastBootUpTime"], obj["Now"])),
        "cpu_load_percent": float(obj.get("CpuLoadPercent") or 0),
        # Windows has no load average: the processor's busy percentage right now
        "cpu_overloaded": float(obj.get("CpuLoadPercent") or 0) >= 95,
        "users": [{"user": obj["UserName"]}] if obj.get("UserName") else [],
    }


def system_info(args: NoArgs, context: ToolContext) -> JsonObject:
    return parse_system_info(_one(context, SYSTEM_INFO))


def uptime(args: NoArgs, context: ToolContext) -> JsonObject:
    obj = _one(context, UPTIME)
    seconds = _seconds_between(obj["LastBootUpTime"], obj["Now"])
    return {"uptime_s": round(seconds), "boot_time": obj["LastBootUpTime"], "days": round(seconds / 86400, 2)}


def parse_disks(items: list[dict[str, Any]]) -> list[JsonObject]:
    filesystems = []
    for disk in items:
        total, free = int(disk.get("Size") or 0), int(disk.get("FreeSpace") or 0)
        used = total - free
        drive = f"{disk['DeviceID']}\\"
        filesystems.append({"path": drive, "mount_point": drive, "device": disk["DeviceID"],
                            "fstype": disk.get("FileSystem"), "label": disk.get("VolumeName"),
                            "total_bytes": total, "used_bytes": used, "free_bytes": free,
                            "percent_used": round(100.0 * used / total, 1) if total else 0.0})
    return filesystems


def disk_usage(args: DiskUsageArgs, context: ToolContext) -> JsonObject:
    filesystems = parse_disks(_ps(context, DISKS))
    if args.paths:
        wanted = {p[:2].upper() for p in args.paths}
        filesystems = [f for f in filesystems if str(f["device"]).upper() in wanted]
    return {"filesystems": filesystems, "errors": []}


def top_processes_script(sort_by: str, limit: int) -> str:
    key = "CPU" if sort_by == "cpu" else "WorkingSet64"
    return (f"Get-Process | Sort-Object -Property {key} -Descending | Select-Object -First {int(limit)} "
            "Id, ProcessName, CPU, WorkingSet64, SessionId | ConvertTo-Json -Compress")


def parse_processes(items: list[dict[str, Any]]) -> list[JsonObject]:
    return [{"pid": p["Id"], "name": p["ProcessName"], "cpu_seconds": round(float(p.get("CPU") or 0), 1),
             "rss_bytes": int(p.get("WorkingSet64") or 0), "session": p.get("SessionId")} for p in items]


def top_processes(args: TopProcessesArgs, context: ToolContext) -> JsonObject:
    processes = parse_processes(_ps(context, top_processes_script(args.sort_by, args.limit)))
    return {"sort_by": args.sort_by, "processes": processes}


def parse_network(obj: dict[str, Any]) -> JsonObject:
    addresses: dict[str, dict[str, list[str]]] = {}
    for addr in obj.get("Addresses") or []:
        family = "ipv4" if addr.get("AddressFamily") == "IPv4" else "ipv6"
        addresses.setdefault(addr["InterfaceAlias"], {"ipv4": [], "ipv6": []})[family].append(
            f"{addr['IPAddress']}/{addr['PrefixLength']}")
    interfaces = [{"name": a["Name"], "description": a.get("InterfaceDescription"),
                   "state": "up" if a.get("Status") == "Up" else str(a.get("Status", "")).lower(),
                   "mac": str(a.get("MacAddress") or "").replace("-", ":").lower() or None,
                   "speed": a.get("LinkSpeed"), **addresses.get(a["Name"], {"ipv4": [], "ipv6": []})}
                  for a in obj.get("Adapters") or []]
    routes = sorted(obj.get("Routes") or [], key=lambda r: int(r.get("RouteMetric") or 0))
    servers: list[str] = []
    for entry in obj.get("Dns") or []:
        for server in entry.get("ServerAddresses") or []:
            if server not in servers:
                servers.append(server)
    return {"source": "powershell", "interfaces": interfaces,
            "default_route": {"gateway": routes[0]["NextHop"], "interface": routes[0]["InterfaceAlias"]}
            if routes else None, "dns": {"servers": servers, "search": []}}


def network_status(args: NoArgs, context: ToolContext) -> JsonObject:
    return parse_network(_one(context, NETWORK))


# --- Wi-Fi, DHCP, DNS, VPN ---------------------------------------------------------------------


def parse_netsh_interfaces(text: str) -> JsonObject:
    """``netsh wlan show interfaces``: ``    Name : value`` lines for the first wireless interface."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(" : ")
        if sep and key.strip() and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    if "Name" not in fields:
        return {"interface": None, "present": False, "powered": False, "connected": False, "ssid": None,
                "signal_percent": None, "channel": None, "security": None}
    signal = fields.get("Signal", "").rstrip("%")
    channel = fields.get("Channel", "")
    return {"interface": fields["Name"], "present": True,
            "powered": ("off" not in fields.get("Radio status", "").lower() and fields.get("State") != "disconnected")
            or fields.get("State") == "disconnected",
            "connected": fields.get("State") == "connected", "ssid": fields.get("SSID"),
            "signal_percent": int(signal) if signal.isdigit() else None,
            "channel": int(channel) if channel.isdigit() else None, "security": fields.get("Authentication")}


def wifi_status(args: NoArgs, context: ToolContext) -> JsonObject:
    done = context.run(["netsh", "wlan", "show", "interfaces"], 10)
    if done.returncode != 0 and "wlansvc" in (done.stdout + done.stderr).lower():
        return parse_netsh_interfaces("")
    return parse_netsh_interfaces(done.ok())


def parse_netsh_profiles(text: str) -> list[str]:
    return [line.partition(" : ")[2].strip() for line in text.splitlines()
            if line.strip().startswith("All User Profile") and " : " in line]


def wifi_networks(args: InterfaceArgs, context: ToolContext) -> JsonObject:
    argv = ["netsh", "wlan", "show", "profiles"]
    if args.interface:
        argv.append(f"interface={args.interface}")
    return {"interface": args.interface, "preferred": parse_netsh_profiles(context.run(argv, 10).ok())}


def renew_dhcp(args: RenewDhcpArgs, context: ToolContext) -> JsonObject:
    argv = ["ipconfig", "/renew"] + ([args.interface] if args.interface else [])
    context.run(argv, 28).ok()
    return {"interface": args.interface or "all", "renewed": True}


def flush_dns(args: NoArgs, context: ToolContext) -> JsonObject:
    _one(context, FLUSH_DNS)
    return {"flushed": True, "cache": "DNS Client", "reason": None}


def parse_vpn(items: list[dict[str, Any]]) -> list[JsonObject]:
    return [{"name": v["Name"], "type": v.get("TunnelType"), "server": v.get("ServerAddress"),
             "connected": v.get("ConnectionStatus") == "Connected", "state": v.get("ConnectionStatus")}
            for v in items]


def vpn_status(args: NoArgs, context: ToolContext) -> JsonObject:
    connections = parse_vpn(_ps(context, VPN))
    return {"connections": connections, "connected": [c["name"] for c in connections if c["connected"]]}


def restart_vpn(args: VpnArgs, context: ToolContext) -> JsonObject:
    names = [c["name"] for c in parse_vpn(_ps(context, VPN))]
    if args.name not in names:
        raise ToolFailed(f"no VPN connection named {args.name!r}; configured: {', '.join(names) or 'none'}")
    context.run(["rasdial", args.name, "/disconnect"], 20)  # not connected is fine
    context.run(["rasdial", args.name], 40).ok()
    return {"name": args.name, "restarted": True}


# --- printers ----------------------------------------------------------------------------------

_STUCK_STATES = ("Error", "Paused", "Blocked", "Offline", "Deleting")


def parse_printers(items: list[dict[str, Any]]) -> JsonObject:
    printers = []
    for p in items:
        status = str(p.get("PrinterStatus") or "Normal")
        jobs = [{"id": j["Id"], "document": j.get("DocumentName"), "user": j.get("UserName"),
                 "status": j.get("JobStatus") or "", "submitted": j.get("Submitted")} for j in p.get("Jobs") or []]
        printers.append({"name": p["Name"], "driver": p.get("DriverName"), "port": p.get("PortName"),
                         "state": "paused" if status == "Paused" else "printing" if status == "Printing" else
                         "idle" if status == "Normal" else status.lower(), "enabled": status != "Paused",
                         "accepting": True, "jobs": jobs})
    attention = [p["name"] for p in printers
                 if not p["enabled"] or any(s in str(j["status"]) for j in p["jobs"] for s in _STUCK_STATES)
                 or (p["jobs"] and p["state"] != "printing")]
    return {"printers": printers, "jobs": sum(len(p["jobs"]) for p in printers), "attention": attention,
            "paused": [p["name"] for p in printers if not p["enabled"]]}


def printer_queues(args: NoArgs, context: ToolContext) -> JsonObject:
    return parse_printers(_ps(context, PRINTERS))


def _known_printer(context: ToolContext, name: str) -> None:
    names = [p["Name"] for p in _ps(context, PRINTERS)]
    if name not in names:
        raise ToolFailed(f"no printer named {name!r}; printers here: {', '.join(names) or 'none'}")


def clear_queue_script(printer: str) -> str:
    return (f"Get-PrintJob -PrinterName {ps_quote(printer)} | Remove-PrintJob; [pscustomobject]@{{ JobsLeft = "
            f"@(Get-PrintJob -PrinterName {ps_quote(printer)}).Count }} | ConvertTo-Json -Compress")


def clear_print_queue(args: PrinterArgs, context: ToolContext) -> JsonObject:
    _known_printer(context, args.printer)
    left = _one(context, clear_queue_script(args.printer))
    return {"printer": args.printer, "cleared": True, "jobs_left": int(left.get("JobsLeft") or 0)}


def resume_script(printer: str) -> str:
    return (f"$p = Get-CimInstance Win32_Printer -Filter \"Name={ps_quote(printer)}\"; "
            "$r = Invoke-CimMethod -InputObject $p -MethodName Resume; "
            "[pscustomobject]@{ ReturnValue = $r.ReturnValue } | ConvertTo-Json -Compress")


def resume_printer(args: PrinterArgs, context: ToolContext) -> JsonObject:
    _known_printer(context, args.printer)
    code = int(_one(context, resume_script(args.printer)).get("ReturnValue") or 0)
    if code != 0:
        raise ToolFailed(f"resume_printer: Win32_Printer.Resume returned {code}")
    return {"printer": args.printer, "resumed": True, "state": "idle"}


def restart_print_spooler(args: NoArgs, context: ToolContext) -> JsonObject:
    status = _one(context, SPOOLER, 55)
    return {"service": "Spooler", "restarted": status.get("Status") == "Running", "status": status.get("Status")}


# --- software, updates -------------------------------------------------------------------------


def parse_software(items: list[dict[str, Any]]) -> list[JsonObject]:
    seen: dict[str, JsonObject] = {}
    for item in items:
        name = str(item["DisplayName"]).strip()
        seen.setdefault(name.lower(), {"name": name, "version": item.get("DisplayVersion"),
                                       "publisher": item.get("Publisher"), "installed": item.get("InstallDate")})
    return sorted(seen.values(), key=lambda s: str(s["name"]).lower())


def installed_software(args: InstalledSoftwareArgs, context: ToolContext) -> JsonObject:
    needle = args.name_contains.lower()
    matched = [s for s in parse_software(_ps(context, SOFTWARE, 55)) if needle in str(s["name"]).lower()]
    return {"manager": "registry", "count": len(matched), "software": matched[: args.limit]}


def winget_install_argv(package: str) -> list[str]:
    return ["winget", "install", "--id", package, "--exact", "--silent", "--scope", "machine",
            "--accept-package-agreements", "--accept-source-agreements", "--disable-interactivity"]


def install_package(args: InstallPackageArgs, context: ToolContext) -> JsonObject:
    done = context.run(winget_install_argv(args.package), 850)
    text = done.stdout
    already = "already installed" in text.lower()
    if done.returncode != 0 and not already:
        done.ok()
    version = re.search(r"Found .+ \[.+\] Version ([\w.\-]+)", text)
    return {"package": args.package, "installed": "Successfully installed" in text or already,
            "already_installed": already, "version": version.group(1) if version else None, "manager": "winget"}


def parse_updates(items: list[dict[str, Any]]) -> list[JsonObject]:
    return [{"title": u["Title"], "kb": u.get("KB") or None, "categories": u.get("Categories"),
             "restart": bool(u.get("RebootRequired")), "mandatory": bool(u.get("IsMandatory"))} for u in items]


def pending_updates(args: NoArgs, context: ToolContext) -> JsonObject:
    updates = parse_updates(_ps(context, UPDATES, 110))
    return {"count": len(updates), "security": sum(1 for u in updates if "Security" in str(u["categories"])),
            "updates": updates, "restart_required": any(u["restart"] for u in updates)}


# --- browser, mail, apps, crashes, reboot -------------------------------------------------------


def clear_browser_cache(args: BrowserCacheArgs, context: ToolContext) -> JsonObject:
    return _clear_browser_cache(args, context.home_dir(), "windows")


def large_files(args: LargeFilesArgs, context: ToolContext) -> JsonObject:
    return _large_files(args, context.home_dir())


def parse_mail(obj: dict[str, Any]) -> JsonObject:
    clients = [
        {"name": "Microsoft Outlook", "installed": bool(obj.get("OutlookVersion")),
         "version": obj.get("OutlookVersion"), "running": bool(obj.get("OutlookRunning"))},
        {"name": "Thunderbird", "installed": bool(obj.get("ThunderbirdVersion")),
         "version": obj.get("ThunderbirdVersion"), "running": bool(obj.get("ThunderbirdRunning"))},
    ]
    processes = {"Microsoft Outlook": "OUTLOOK", "Thunderbird": "thunderbird"}
    return {"clients": clients, "installed": [c["name"] for c in clients if c["installed"]],
            "running": [c["name"] for c in clients if c["running"]],
            "restart_names": [processes[str(c["name"])] for c in clients if c["running"]]}


def mail_client_status(args: NoArgs, context: ToolContext) -> JsonObject:
    return parse_mail(_one(context, MAIL))


def process_script(pid: int) -> str:
    return (f"Get-Process -Id {int(pid)} -ErrorAction SilentlyContinue | Select-Object Id, ProcessName | "
            "ConvertTo-Json -Compress")


def end_process(args: EndProcessArgs, context: ToolContext) -> JsonObject:
    found = _ps(context, process_script(args.pid))
    if not found:
        return {"pid": args.pid, "name": args.name, "ended": True, "already_gone": True}
    current = str(found[0]["ProcessName"])
    if current.lower() != args.name.lower().removesuffix(".exe"):
        raise ToolFailed(f"end_process: pid {args.pid} now runs {current!r}, not {args.name!r}; nothing was ended")
    context.run(powershell(f"Stop-Process -Id {int(args.pid)} -Force -ErrorAction Stop"), 10).ok()
    return {"pid": args.pid, "name": args.name, "ended": True, "already_gone": False}


def restart_app_script(name: str) -> str:
    return (f"$p = @(Get-Process -Name {ps_quote(name)} -ErrorAction SilentlyContinue); "
            "$path = ($p | Where-Object { $_.Path } | Select-Object -First 1).Path; "
            "$p | Stop-Process -Force; if ($path) { Start-Process -FilePath $path }; "
            "[pscustomobject]@{ Ended = $p.Count; Path = $path; Restarted = [bool]$path } | ConvertTo-Json -Compress")


def restart_app(args: AppArgs, context: ToolContext) -> JsonObject:
    name = re.sub(r"(?i)\.exe$", "", args.name)  # crash reports name the program file, Get-Process does not
    obj = _one(context, restart_app_script(name), 55)
    return {"name": args.name, "ended": int(obj.get("Ended") or 0), "restarted": bool(obj.get("Restarted")),
            "path": obj.get("Path")}


def crash_script(days: int, limit: int) -> str:
    return ("Get-WinEvent -FilterHashtable @{ LogName = 'Application'; ProviderName = 'Application Error'; "
            f"Id = 1000; StartTime = (Get-Date).AddDays(-{int(days)}) }} -MaxEvents {int(limit)} "
            "-ErrorAction SilentlyContinue | Select-Object @{n='Time';e={$_.TimeCreated.ToString('o')}}, "
            "@{n='App';e={$_.Properties[0].Value}}, @{n='Version';e={$_.Properties[1].Value}}, "
            "@{n='Module';e={$_.Properties[3].Value}}, @{n='Exception';e={$_.Properties[6].Value}} | "
            "ConvertTo-Json -Compress")


def parse_crashes(items: list[dict[str, Any]]) -> list[JsonObject]:
    return [{"app": c.get("App"), "version": c.get("Version"), "time": c.get("Time"),
             "what": f"{c.get('Module')} exception {c.get('Exception')}", "source": "Application Error 1000"}
            for c in items]


def crash_reports(args: CrashReportsArgs, context: ToolContext) -> JsonObject:
    reports = [r for r in parse_crashes(_ps(context, crash_script(args.days, args.limit), 55))
               if args.app.lower() in str(r["app"]).lower()]
    return {"days": args.days, "count": len(reports), "reports": reports}


def reboot(args: RebootArgs, context: ToolContext) -> JsonObject:
    context.run(["shutdown.exe", "/r", "/t", str(args.delay_minutes * 60), "/c",
                 "MSPclaw: your IT support is restarting this computer"], 15).ok()
    return {"scheduled": True, "delay_minutes": args.delay_minutes}


def temp_script(roots: list[str], days: int, delete: bool) -> str:
    quoted = ", ".join(ps_quote(r) for r in roots)
    action = ("$done = 0; $freed = 0; foreach ($f in $files) { try { Remove-Item -LiteralPath $f.FullName "
              "-Force -ErrorAction Stop; $done++; $freed += $f.Length } catch { } }; "
              if delete else "$done = 0; $freed = 0; ")
    return (f"$cut = (Get-Date).AddDays(-{int(days)}); $files = @(Get-ChildItem -LiteralPath {quoted} -Recurse "
            "-File -Force -Attributes !ReparsePoint -ErrorAction SilentlyContinue | "
            "Where-Object { $_.LastWriteTime -lt $cut }); " + action +
            "[pscustomobject]@{ Files = $files.Count; Bytes = [long]($files | Measure-Object Length -Sum).Sum; "
            "Deleted = $done; Freed = [long]$freed; Sample = @($files | Select-Object -First 20 | "
            "ForEach-Object { $_.FullName }) } | ConvertTo-Json -Compress")


def clear_temp_files(args: ClearTempFilesArgs, context: ToolContext) -> JsonObject:
    roots = [str(r) for r in context.temp_roots]
    if not roots:
        raise ToolFailed("clear_temp_files: the agent has no temp folders configured")
    obj = _one(context, temp_script(roots, args.older_than_days, not args.dry_run), 115)
    report: JsonObject = {"dry_run": args.dry_run, "older_than_days": args.older_than_days, "roots": roots,
                          "files": int(obj.get("Files") or 0), "bytes": int(obj.get("Bytes") or 0),
                          "sample": obj.get("Sample") or [], "errors": []}
    if not args.dry_run:
        report.update(deleted=int(obj.get("Deleted") or 0), freed_bytes=int(obj.get("Freed") or 0))
    return report


WINDOWS_TOOLS: dict[str, ToolFn] = tool_table(
    system_info, uptime, disk_usage, top_processes, network_status, check_connectivity, clear_temp_files,
    large_files, end_process, wifi_status, wifi_networks, renew_dhcp, flush_dns, vpn_status, restart_vpn,
    printer_queues, clear_print_queue, resume_printer, restart_print_spooler, installed_software, install_package,
    pending_updates, clear_browser_cache, mail_client_status, restart_app, crash_reports, reboot,
)
"""Every device tool of the catalogue, implemented for Windows."""
