"""The catalogue's tools on Linux, read from ``/proc``, ``/sys`` and a few standard commands.

Each tool returns a JSON object a technician (or a model) can read without knowing Linux
internals. Commands run with their arguments as a list (never through a shell), with ``LC_ALL=C``
so their output parses the same everywhere, and always with a timeout. A command that is simply
missing (``who`` in a minimal container, ``ip`` on an old box) is a normal situation: the tool
falls back to the kernel's files or reports an empty list.

Nothing here returns a full command line or environment of a process: those routinely hold
passwords, and tool output ends up in tickets and the audit trail.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import pwd
import shutil
import socket
import stat
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mspclaw.agent.tools import JsonObject, ToolContext, ToolFn, hostname, read_os_release, tool_table
from mspclaw.agent.tools import linux_desktop as desktop
from mspclaw.agent.tools.portable import check_connectivity
from mspclaw.errors import ToolFailed
from mspclaw.tools.catalogue import (
    ClearTempFilesArgs,
    DiskUsageArgs,
    NoArgs,
    TopProcessesArgs,
)

COMMAND_TIMEOUT_S = 5.0
CPU_SAMPLE_S = 0.5
MAX_ERRORS = 50
SAMPLE_PATHS = 20

# --- shared readers ----------------------------------------------------------------------------


def _run(argv: list[str], timeout: float = COMMAND_TIMEOUT_S) -> str:
    """Run a command and return its stdout; a failure becomes :class:`ToolFailed` naming the command."""
    env = {"LC_ALL": "C", "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ToolFailed(f"`{' '.join(argv)}` did not finish within {timeout:g} s") from exc
    except OSError as exc:
        raise ToolFailed(f"`{' '.join(argv)}` could not start: {exc.strerror or exc}") from exc
    if done.returncode != 0:
        detail = done.stderr.strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
        raise ToolFailed(f"`{' '.join(argv)}` failed: {detail[0]}")
    return done.stdout


def _meminfo() -> dict[str, int]:
    """``/proc/meminfo`` in bytes (the file says kB, meaning KiB)."""
    values: dict[str, int] = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[key] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    return values


# --- system_info -------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return platform.processor() or platform.machine()
    for key in ("model name", "Model", "Hardware", "cpu model", "cpu"):
        for line in text.splitlines():
            name, sep, value = line.partition(":")
            if sep and name.strip() == key and value.strip():
                return value.strip()
    return platform.processor() or platform.machine()


def _logged_in_users() -> list[JsonObject]:
    """Sessions from ``who`` (``[]`` when the command is missing or fails: no users is not an error)."""
    if shutil.which("who") is None:
        return []
    try:
        out = _run(["who"])
    except ToolFailed:
        return []
    users: list[JsonObject] = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        origin = None
        if parts[-1].startswith("(") and parts[-1].endswith(")"):
            origin = parts.pop()[1:-1]
        users.append({"user": parts[0], "terminal": parts[1], "since": " ".join(parts[2:]), "from": origin})
    return users


def system_info(args: NoArgs, context: ToolContext) -> JsonObject:
    """Who and what this machine is, and how loaded it is right now."""
    release = read_os_release()
    mem = _meminfo()
    load1, load5, load15 = os.getloadavg()
    uptime_s = float(Path("/proc/uptime").read_text().split()[0])
    return {
        "hostname": hostname(),
        "os": {
            "name": release.get("NAME", "Linux"),
            "version": release.get("VERSION_ID", ""),
            "pretty_name": release.get("PRETTY_NAME", ""),
        },
        "kernel": platform.release(),
        "arch": platform.machine(),
        "cpu": {"model": _cpu_model(), "count": os.cpu_count() or 1},
        "memory": {
            "total_bytes": mem.get("MemTotal", 0),
            "available_bytes": mem.get("MemAvailable", mem.get("MemFree", 0)),
            "swap_total_bytes": mem.get("SwapTotal", 0),
            "swap_free_bytes": mem.get("SwapFree", 0),
        },
        "uptime_s": round(uptime_s, 1),
        "load_average": {"1m": load1, "5m": load5, "15m": load15},
        # the same measure on every OS: how busy the CPUs are, 0-100 (here the 1-minute load per core)
        "cpu_load_percent": round(min(100.0, 100.0 * load1 / (os.cpu_count() or 1)), 1),
        # overloaded: twice as many runnable tasks as cores, over the last minute
        "cpu_overloaded": load1 >= 2 * (os.cpu_count() or 1),
        "users": _logged_in_users(),
    }


# --- disk_usage --------------------------------------------------------------------------------

PSEUDO_FILESYSTEMS = frozenset(
    {
        "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts", "devtmpfs",
        "efivarfs", "fusectl", "hugetlbfs", "mqueue", "nsfs", "proc", "pstore", "ramfs", "rpc_pipefs",
        "securityfs", "selinuxfs", "squashfs", "sysfs", "tmpfs", "tracefs", "fuse.gvfsd-fuse", "fuse.portal",
        "fuse.lxcfs", "iso9660",
    }
)
"""Kernel and memory filesystems that hold no user data. ``tmpfs`` and ``devtmpfs`` live in RAM
(their "fullness" is memory pressure, reported by ``system_info``); ``squashfs`` images (snaps) are
read-only and always 100 % full, which would only be noise. ``overlay`` is kept: it is the root
filesystem of a container."""

NETWORK_FILESYSTEMS = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "glusterfs", "9p", "fuse.sshfs", "afs", "lustre"}
)
"""Skipped from the automatic list because ``statvfs`` on a mount whose server is gone blocks for
minutes; pass the path explicitly to measure one."""


def _unescape_mount(field: str) -> str:
    """``/proc/mounts`` writes space, tab, newline and backslash as octal escapes (``\\040``)."""
    for escaped, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(escaped, char)
    return field


def _mounts() -> list[tuple[str, str, str]]:
    """``(device, mount point, fstype)`` for every mount, later mounts shadowing earlier ones."""
    by_point: dict[str, tuple[str, str, str]] = {}
    for line in Path("/proc/self/mounts").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3:
            point = _unescape_mount(parts[1])
            by_point.pop(point, None)
            by_point[point] = (_unescape_mount(parts[0]), point, parts[2])
    return list(by_point.values())


def _usage(path: str, device: str, fstype: str, mount_point: str) -> JsonObject:
    st = os.statvfs(path)
    total = st.f_blocks * st.f_frsize
    free = st.f_bavail * st.f_frsize  # what an ordinary user may still write
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    inodes_used = st.f_files - st.f_ffree
    return {
        "path": path,
        "mount_point": mount_point,
        "device": device,
        "fstype": fstype,
        "total_bytes": total,
        "used_bytes": used,
        "free_bytes": free,
        # as df computes it: reserved blocks count neither as used nor as available
        "percent_used": round(100.0 * used / (used + free), 1) if used + free else 0.0,
        "inodes_total": st.f_files,
        "inodes_free": st.f_ffree,
        "inodes_percent_used": round(100.0 * inodes_used / st.f_files, 1) if st.f_files else 0.0,
    }


def _mount_of(path: str, mounts: list[tuple[str, str, str]]) -> tuple[str, str, str]:
    """The mount holding ``path``: the longest mount point that is a prefix of its real path."""
    real = os.path.realpath(path)
    best = ("", "/", "")
    for device, point, fstype in mounts:
        if (real == point or real.startswith(point.rstrip("/") + "/")) and len(point) >= len(best[1]):
            best = (device, point, fstype)
    return best


def disk_usage(args: DiskUsageArgs, context: ToolContext) -> JsonObject:
    """Total, used and free space (and inodes) of each local filesystem or of the given paths."""
    mounts = _mounts()
    filesystems: list[JsonObject] = []
    errors: list[JsonObject] = []
    if args.paths:
        for path in args.paths:
            if not os.path.isabs(path):
                raise ToolFailed(f"disk_usage: path {path!r} must be absolute")
            if not os.path.exists(path):
                raise ToolFailed(f"disk_usage: path {path!r} does not exist")
            device, point, fstype = _mount_of(path, mounts)
            filesystems.append(_usage(path, device, fstype, point))
    else:
        for device, point, fstype in mounts:
            if fstype in PSEUDO_FILESYSTEMS or fstype in NETWORK_FILESYSTEMS:
                continue
            try:
                filesystems.append(_usage(point, device, fstype, point))
            except OSError as exc:
                errors.append({"path": point, "error": exc.strerror or str(exc)})
    return {"filesystems": filesystems, "errors": errors}


# --- top_processes -----------------------------------------------------------------------------


def _cpu_ticks() -> dict[int, int]:
    """utime + stime in clock ticks for every process still readable."""
    ticks: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        # comm (field 2) may contain spaces and parentheses: split after the last ')'
        fields = raw[raw.rfind(")") + 2 :].split()
        ticks[int(entry.name)] = int(fields[11]) + int(fields[12])
    return ticks


def _status(pid: int) -> dict[str, str] | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text(errors="replace")
    except OSError:
        return None
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def _user(uid: int, cache: dict[int, str]) -> str:
    if uid not in cache:
        try:
            cache[uid] = pwd.getpwuid(uid).pw_name
        except KeyError:
            cache[uid] = str(uid)
    return cache[uid]


def top_processes(args: TopProcessesArgs, context: ToolContext) -> JsonObject:
    """The processes using the most CPU (measured over a short sample) or memory (resident set)."""
    hz = os.sysconf("SC_CLK_TCK")
    mem_total = _meminfo().get("MemTotal", 0)
    start, t0 = _cpu_ticks(), time.monotonic()
    time.sleep(CPU_SAMPLE_S)
    end, elapsed = _cpu_ticks(), time.monotonic() - t0
    users: dict[int, str] = {}
    processes: list[JsonObject] = []
    for pid, ticks in end.items():
        status = _status(pid)
        if status is None:
            continue
        rss = int(status.get("VmRSS", "0 kB").split()[0]) * 1024
        cpu = 100.0 * (ticks - start.get(pid, ticks)) / hz / elapsed
        processes.append(
            {
                "pid": pid,
                "name": status.get("Name", "?"),
                "user": _user(int(status.get("Uid", "0").split()[0]), users),
                "state": status.get("State", "?").split()[0],
                "cpu_percent": round(cpu, 1),
                "rss_bytes": rss,
                "memory_percent": round(100.0 * rss / mem_total, 2) if mem_total else 0.0,
            }
        )
    key = "cpu_percent" if args.sort_by == "cpu" else "rss_bytes"
    processes.sort(key=lambda p: (p[key], p["rss_bytes"]), reverse=True)
    return {
        "sort_by": args.sort_by,
        "sample_s": round(elapsed, 3),
        "cpu_count": os.cpu_count() or 1,
        "memory_total_bytes": mem_total,
        "total_processes": len(processes),
        # cpu_percent is of one core, as in top: a busy multi-threaded process can exceed 100
        "processes": processes[: args.limit],
    }


# --- network_status ----------------------------------------------------------------------------


def _interfaces_from_ip() -> list[JsonObject]:
    interfaces: list[JsonObject] = []
    for link in json.loads(_run(["ip", "-j", "addr", "show"]) or "[]"):
        addrs = link.get("addr_info", [])
        interfaces.append(
            {
                "name": link.get("ifname", "?"),
                "state": str(link.get("operstate", "unknown")).lower(),
                "mac": link.get("address"),
                "mtu": link.get("mtu"),
                "ipv4": [f"{a['local']}/{a['prefixlen']}" for a in addrs if a.get("family") == "inet"],
                "ipv6": [f"{a['local']}/{a['prefixlen']}" for a in addrs if a.get("family") == "inet6"],
            }
        )
    return interfaces


def _default_route_from_ip() -> JsonObject | None:
    for argv in (["ip", "-j", "-4", "route", "show", "default"], ["ip", "-j", "-6", "route", "show", "default"]):
        routes: list[dict[str, Any]] = json.loads(_run(argv) or "[]")
        for route in routes:
            if route.get("dst") == "default":
                return {"gateway": route.get("gateway"), "interface": route.get("dev")}
    return None


def _read_sys(name: str, attr: str) -> str | None:
    try:
        return Path("/sys/class/net", name, attr).read_text().strip()
    except OSError:
        return None


def _ipv4_of(name: str) -> list[str]:
    """The primary IPv4 address/prefix of an interface via ioctl (what is left without ``ip``)."""
    siocgifaddr, siocgifnetmask = 0x8915, 0x891B
    request = name.encode()[:15].ljust(256, b"\0")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            address = fcntl.ioctl(sock.fileno(), siocgifaddr, request)[20:24]
            netmask = fcntl.ioctl(sock.fileno(), siocgifnetmask, request)[20:24]
        except OSError:
            return []  # no IPv4 address on this interface
    prefix = bin(int.from_bytes(netmask, "big")).count("1")
    return [f"{socket.inet_ntoa(address)}/{prefix}"]


def _ipv6_by_interface() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    try:
        lines = Path("/proc/net/if_inet6").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        parts = line.split()
        if len(parts) == 6:
            raw = bytes.fromhex(parts[0])
            address = socket.inet_ntop(socket.AF_INET6, raw)
            found.setdefault(parts[5], []).append(f"{address}/{int(parts[2], 16)}")
    return found


def _interfaces_from_sys() -> list[JsonObject]:
    """Interfaces without ``ip``: ``/sys/class/net`` for state and MAC, ioctl and ``/proc`` for addresses."""
    ipv6 = _ipv6_by_interface()
    interfaces: list[JsonObject] = []
    for name in sorted(os.listdir("/sys/class/net")):
        mtu = _read_sys(name, "mtu")
        interfaces.append(
            {
                "name": name,
                "state": _read_sys(name, "operstate") or "unknown",
                "mac": _read_sys(name, "address"),
                "mtu": int(mtu) if mtu and mtu.isdigit() else None,
                "ipv4": _ipv4_of(name),
                "ipv6": ipv6.get(name, []),
            }
        )
    return interfaces


def _default_route_from_proc() -> JsonObject | None:
    """The IPv4 default route from ``/proc/net/route`` (addresses are little-endian hex)."""
    for line in Path("/proc/net/route").read_text().splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 3 and parts[1] == "00000000":
            gateway = socket.inet_ntoa(int(parts[2], 16).to_bytes(4, "little"))
            return {"gateway": gateway, "interface": parts[0]}
    return None


def _resolv_conf(path: str) -> tuple[list[str], list[str]]:
    servers: list[str] = []
    search: list[str] = []
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return servers, search
    for line in lines:
        parts = line.split("#", 1)[0].split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            servers.append(parts[1])
        elif parts and parts[0] in ("search", "domain"):
            search.extend(parts[1:])
    return servers, search


def network_status(args: NoArgs, context: ToolContext) -> JsonObject:
    """Interfaces with state, MAC and addresses, the default route, and the DNS servers in use."""
    if shutil.which("ip") is not None:
        source, interfaces, route = "ip", _interfaces_from_ip(), _default_route_from_ip()
    else:
        source, interfaces, route = "proc", _interfaces_from_sys(), _default_route_from_proc()
    servers, search = _resolv_conf("/etc/resolv.conf")
    dns: JsonObject = {"servers": servers, "search": search}
    if any(s.startswith("127.0.0.53") for s in servers):
        # systemd-resolved stub: the real upstream servers are listed in its own file
        dns["upstream_servers"] = _resolv_conf("/run/systemd/resolve/resolv.conf")[0]
    return {"source": source, "interfaces": interfaces, "default_route": route, "dns": dns}


# --- clear_temp_files --------------------------------------------------------------------------


def _inside(path: str, root: str) -> bool:
    real = os.path.realpath(path)
    return real == root or real.startswith(root.rstrip("/") + "/")


@dataclass
class _Sweep:
    """What one ``clear_temp_files`` run found (and removed) across its roots."""

    cutoff: float
    delete: bool
    files: int = 0
    bytes: int = 0
    deleted: int = 0
    freed_bytes: int = 0
    sample: list[str] = field(default_factory=list)
    errors: list[JsonObject] = field(default_factory=list)

    def error(self, path: str, message: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append({"path": path, "error": message})

    def scan(self, root: str) -> None:
        """Find (and with ``delete`` remove) old regular files under ``root``.

        ``os.fwalk`` works on directory file descriptors and never follows symbolic links, so
        a link planted in a temp folder (to ``/etc``, say) cannot lead the walk or a deletion
        out of the root even if it is swapped in while we run; each directory is re-checked
        with ``realpath`` as well. Directories on another filesystem (a mount inside /tmp) are
        not entered.
        """
        root_dev = os.lstat(root).st_dev
        for dirpath, dirnames, filenames, dirfd in os.fwalk(root, follow_symlinks=False):
            if not _inside(dirpath, root):
                self.error(dirpath, "resolves outside the temp root; skipped")
                dirnames.clear()
                continue
            for name in list(dirnames):
                try:
                    other_fs = os.stat(name, dir_fd=dirfd, follow_symlinks=False).st_dev != root_dev
                except OSError:
                    other_fs = True
                if other_fs:
                    dirnames.remove(name)
            for name in filenames:
                self._consider(os.path.join(dirpath, name), name, dirfd)

    def _consider(self, path: str, name: str, dirfd: int) -> None:
        try:
            st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        except OSError as exc:
            self.error(path, exc.strerror or str(exc))
            return
        # only regular files: symlinks, sockets, fifos and devices are never touched
        if not stat.S_ISREG(st.st_mode) or st.st_mtime > self.cutoff:
            return
        if self.delete:
            try:
                os.unlink(name, dir_fd=dirfd)  # removes the entry itself, never a link's target
            except OSError as exc:
                self.error(path, exc.strerror or str(exc))
                return
            self.deleted += 1
            self.freed_bytes += st.st_size
        self.files += 1
        self.bytes += st.st_size
        if len(self.sample) < SAMPLE_PATHS:
            self.sample.append(path)


def clear_temp_files(args: ClearTempFilesArgs, context: ToolContext) -> JsonObject:
    """Report, and unless ``dry_run`` delete, regular files older than N days in the agent's temp roots.

    The roots come from the agent's configuration (``--temp-root``), never from the call.
    ``files`` and ``bytes`` count what matched; ``deleted`` and ``freed_bytes`` what was removed.
    """
    sweep = _Sweep(cutoff=time.time() - args.older_than_days * 86400, delete=not args.dry_run)
    roots: list[str] = []
    for configured in context.temp_roots:
        root = os.path.realpath(configured)
        if not os.path.isdir(root):
            sweep.error(str(configured), "temp root does not exist")
            continue
        roots.append(root)
        sweep.scan(root)
    report: JsonObject = {
        "dry_run": args.dry_run,
        "older_than_days": args.older_than_days,
        "roots": roots,
        "files": sweep.files,
        "bytes": sweep.bytes,
        "sample": sweep.sample,
        "errors": sweep.errors,
    }
    if sweep.delete:
        report.update(deleted=sweep.deleted, freed_bytes=sweep.freed_bytes)
    return report


LINUX_TOOLS: dict[str, ToolFn] = tool_table(
    system_info, disk_usage, top_processes, network_status, check_connectivity, clear_temp_files, desktop.uptime,
    desktop.large_files, desktop.end_process, desktop.wifi_status, desktop.wifi_networks, desktop.renew_dhcp,
    desktop.flush_dns, desktop.vpn_status, desktop.restart_vpn, desktop.printer_queues, desktop.clear_print_queue,
    desktop.resume_printer, desktop.restart_print_spooler, desktop.installed_software, desktop.install_package,
    desktop.pending_updates,
    desktop.clear_browser_cache, desktop.mail_client_status, desktop.restart_app, desktop.crash_reports,
    desktop.reboot,
)
"""Every device tool of the catalogue, on Linux (restart_print_spooler starts CUPS through systemd)."""
