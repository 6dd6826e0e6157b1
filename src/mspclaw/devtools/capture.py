"""mspclaw-capture: refresh the device tools' command fixtures with this machine's real output.

Most macOS and Windows fixtures under ``tests/fixtures/<os>/`` were written by hand to each
command's documented format (see ``tests/recorded.py`` and docs/playbooks.md). Whoever has a Mac
or a Windows PC turns them into real captures with one command, from the repository root::

    python -m mspclaw.devtools.capture --redact          # or: python3 src/mspclaw/devtools/capture.py --redact

For each fixture file it takes the argument list from the ``# command:`` header, runs it the way
the agent's :func:`mspclaw.agent.tools.commands.run_command` does (no shell, ``LC_ALL=C``, stdin
closed, a timeout) and writes the file back in the format ``tests/recorded.py`` reads, with a
``# source: captured: ...`` line that names no host and the real ``# os:`` version.

Only commands on the explicit read-only list (:data:`READ_ONLY`) run by default. Everything
else (a reboot, ending a process, cancelling print jobs, installing software, flushing caches,
connecting a VPN, and any command nobody has classified) is listed and skipped; with
``--include-changes`` each one is run only after a y/N answer on the terminal. PowerShell
scripts are read-only when every cmdlet and method they call is on :data:`PS_READ_ONLY_CMDLETS`
and :data:`PS_READ_ONLY_METHODS` and nothing else could start a program.

The module uses nothing but the standard library and imports nothing from mspclaw, so it also
runs as a plain script on a Python 3.11 that has only the repository checked out.
"""

from __future__ import annotations

import argparse
import datetime
import getpass
import ipaddress
import json
import os
import platform
import re
import socket
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import EllipsisType
from typing import Literal, TextIO

OSName = Literal["macos", "windows", "linux"]
OS_NAMES: tuple[OSName, ...] = ("macos", "windows", "linux")
OS_TITLE: dict[OSName, str] = {"macos": "macOS", "windows": "Windows", "linux": "Linux"}
MACHINE: dict[OSName, str] = {"macos": "Mac", "windows": "Windows PC", "linux": "Linux machine"}

POWERSHELL = ("powershell.exe", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-Command")
DEFAULT_TIMEOUT_S = 120.0


class CaptureError(Exception):
    """A reason to stop before running anything (wrong OS, no fixtures, a malformed file)."""


# --- which commands may run --------------------------------------------------------------------

Element = str | re.Pattern[str] | EllipsisType
"""A literal argument, a pattern the argument must match in full, or ``...``: the previous one, repeated."""

PID = re.compile(r"\d{1,7}")
INTERFACE = re.compile(r"[A-Za-z][A-Za-z0-9]{0,15}")
PACKAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9@+._-]{0,100}")
ABSOLUTE_PATH = re.compile(r"/[^\x00\n]*")
PLIST_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
SYSCTL_NAME = re.compile(r"[a-z][a-z0-9_]*(?:\.[A-Za-z0-9_]+)+")  # no "=": `sysctl name=value` sets it
SCUTIL_PREF = re.compile(r"ComputerName|LocalHostName|HostName")
PROFILER_TYPE = re.compile(r"SP[A-Za-z0-9]+DataType")
FORMAT_TEXT = re.compile(r"[^\x00]*")
NMCLI_FIELDS = re.compile(r"[A-Z][A-Z0-9_-]*(?:,[A-Z][A-Z0-9_-]*)*")
PS_SCRIPT = re.compile(r"(?s).+")  # and then checked by powershell_changes()

READ_ONLY: dict[OSName, tuple[tuple[Element, ...], ...]] = {
    "macos": (
        ("sw_vers",), ("vm_stat",), ("df", "-k", "-P"), ("ifconfig", "-a"), ("route", "-n", "get", "default"),
        ("sysctl", "-n", SYSCTL_NAME, ...),
        ("ps", "-Aco", "pid,pcpu,rss,user,comm", "-r"), ("ps", "-Aco", "pid,pcpu,rss,user,comm", "-m"),
        ("ps", "-Aco", "comm"), ("ps", "-p", PID, "-co", "comm="),
        ("scutil", "--dns"), ("scutil", "--get", SCUTIL_PREF), ("scutil", "--nc", "list"),
        ("networksetup", "-listallhardwareports"), ("networksetup", "-getairportpower", INTERFACE),
        ("networksetup", "-listpreferredwirelessnetworks", INTERFACE),
        ("system_profiler", PROFILER_TYPE, "-json"), ("softwareupdate", "-l"),
        ("lpstat", "-a"), ("lpstat", "-o"), ("lpstat", "-p"),
        ("brew", "list", "--versions", PACKAGE), ("defaults", "read", ABSOLUTE_PATH, PLIST_KEY),
    ),
    "windows": (
        (*POWERSHELL, PS_SCRIPT),
        ("netsh", "wlan", "show", "interfaces"), ("netsh", "wlan", "show", "profiles"),
    ),
    "linux": (
        ("hostname",), ("id", "-un"), ("apt", "list", "--upgradable"),
        ("dpkg-query", "-W", "-f", FORMAT_TEXT), ("dpkg-query", "-W", "-f", FORMAT_TEXT, PACKAGE),
        ("journalctl", "-q", "--no-pager", "-o", "json", "-t", "systemd-coredump", "--since", "-7d", "-n", "20"),
        ("lpstat", "-a"), ("lpstat", "-o"), ("lpstat", "-p"),
        ("nmcli", "-t", "-f", NMCLI_FIELDS, "connection", "show"),
        ("nmcli", "-t", "-f", NMCLI_FIELDS, "device", "status"),
        ("nmcli", "-t", "-f", NMCLI_FIELDS, "device", "wifi", "list", "--rescan", "no"),
        ("thunderbird", "--version"), ("evolution", "--version"), ("geary", "--version"),
    ),
}
"""The only commands that run without a question. Anything not matched here changes the machine."""

CHANGES: dict[OSName, tuple[tuple[tuple[str, ...], str], ...]] = {
    "macos": (
        (("shutdown",), "restarts the Mac"), (("kill",), "ends a process"), (("killall",), "signals processes"),
        (("cancel",), "cancels print jobs"), (("cupsenable",), "resumes a printer"),
        (("cupsaccept",), "makes a printer accept jobs"), (("brew", "install"), "installs software"),
        (("dscacheutil", "-flushcache"), "flushes the DNS cache"), (("ipconfig", "set"), "renews a DHCP lease"),
        (("networksetup", "-setairportpower"), "turns Wi-Fi on or off"),
        (("scutil", "--nc", "start"), "connects a VPN"), (("scutil", "--nc", "stop"), "disconnects a VPN"),
        (("osascript",), "runs AppleScript (quits an app)"), (("open",), "opens an app"),
    ),
    "windows": (
        (("shutdown.exe",), "restarts the PC"), (("ipconfig", "/renew"), "renews a DHCP lease"),
        (("ipconfig", "/release"), "releases a DHCP lease"), (("ipconfig", "/flushdns"), "flushes the DNS cache"),
        (("rasdial",), "connects or disconnects a VPN"), (("winget", "install"), "installs software"),
        (("winget", "upgrade"), "upgrades software"), (("winget", "uninstall"), "removes software"),
    ),
    "linux": (
        (("shutdown",), "restarts the machine"), (("cancel",), "cancels print jobs"),
        (("env", "DEBIAN_FRONTEND=noninteractive", "apt-get"), "installs software"),
        (("nmcli", "connection", "up"), "connects a network"),
        (("nmcli", "connection", "down"), "disconnects a network"),
        (("nmcli", "device", "reapply"), "reapplies a network configuration"),
        (("resolvectl", "flush-caches"), "flushes the DNS cache"),
    ),
}
"""Commands known to change the machine, with what they do (shown when they are skipped)."""

PS_READ_ONLY_CMDLETS = frozenset(name.lower() for name in (
    "Get-CimInstance", "Get-ChildItem", "Get-Date", "Get-DnsClientServerAddress", "Get-ItemProperty",
    "Get-NetAdapter", "Get-NetIPAddress", "Get-NetRoute", "Get-Printer", "Get-PrintJob", "Get-Process",
    "Get-Service", "Get-VpnConnection", "Get-WinEvent", "New-Object",
    "ConvertTo-Json", "ForEach-Object", "Measure-Object", "Select-Object", "Sort-Object", "Where-Object",
))
PS_READ_ONLY_METHODS = frozenset(("tostring", "adddays", "createupdatesearcher", "search"))
PS_KEYWORDS = frozenset(("if", "elseif", "else", "foreach", "for", "while", "try", "catch", "finally", "in"))


@dataclass(frozen=True)
class Verdict:
    """Whether a command may run unasked: ``read-only``, ``changes`` (known) or ``unknown``."""

    kind: Literal["read-only", "changes", "unknown"]
    reason: str

    @property
    def read_only(self) -> bool:
        return self.kind == "read-only"


def _matches(pattern: tuple[Element, ...], argv: Sequence[str]) -> bool:
    i = 0
    for n, element in enumerate(pattern):
        if element is ...:
            previous = pattern[n - 1]
            while i < len(argv) and _element_matches(previous, argv[i]):
                i += 1
            continue
        if i >= len(argv) or not _element_matches(element, argv[i]):
            return False
        i += 1
    return i == len(argv)


def _element_matches(element: Element, arg: str) -> bool:
    if isinstance(element, str):
        return element == arg
    if isinstance(element, re.Pattern):
        return element.fullmatch(arg) is not None
    return False


def classify(os_name: OSName, argv: Sequence[str]) -> Verdict:
    """Read-only only if :data:`READ_ONLY` lists it (a PowerShell script: only if every call in it is listed)."""
    if os_name == "windows" and tuple(argv[:-1]) == POWERSHELL:
        reason = powershell_changes(argv[-1])
        return Verdict("changes", reason) if reason else Verdict("read-only", "reads only (listed cmdlets)")
    if any(_matches(pattern, argv) for pattern in READ_ONLY[os_name]):
        return Verdict("read-only", "on the read-only list")
    for prefix, what in CHANGES[os_name]:
        if tuple(argv[: len(prefix)]) == prefix:
            return Verdict("changes", what)
    return Verdict("unknown", "not on the read-only list")


def _strip_strings(script: str) -> str:
    """The script with every string literal emptied; a string that substitutes anything is refused."""
    out: list[str] = []
    i = 0
    while i < len(script):
        char = script[i]
        if char in "'\"":
            end = i + 1
            while end < len(script):
                if script[end] == char and script[end + 1: end + 2] == char:
                    end += 2
                elif script[end] == char:
                    break
                else:
                    end += 1
            if end >= len(script):
                raise ValueError("an unterminated string")
            if char == '"' and ("$" in script[i:end] or "`" in script[i:end]):
                raise ValueError("a double-quoted string that substitutes a value")
            out.append(char * 2)
            i = end + 1
        else:
            out.append(char)
            i += 1
    return "".join(out)


def powershell_changes(script: str) -> str | None:
    """Why a PowerShell script may change the machine, or ``None`` when it only calls listed read-only things."""
    if re.search(r"@['\"]", script):
        return "a here-string (cannot be checked)"
    try:
        code = _strip_strings(script)
    except ValueError as exc:
        return str(exc)
    for char, what in (("&", "the call operator &"), ("`", "a backtick escape"), ("#", "a comment")):
        if char in code:
            return f"{what} (cannot be checked)"
    for match in re.finditer(r"(?:\.|::)\s*([A-Za-z_]\w*)\s*\(", code):
        if match.group(1).lower() not in PS_READ_ONLY_METHODS:
            return f"calls the method {match.group(1)}()"
    for match in re.finditer(r"(?<![\w$-])([A-Za-z]+-[A-Za-z]+)(?![\w-])", code):
        if match.group(1).lower() not in PS_READ_ONLY_CMDLETS:
            return f"runs {match.group(1)}"
    # Whatever starts a statement, a pipeline element or a (sub)expression is a command unless it is
    # a value, a keyword or a hashtable key (`Name = ...`).
    for match in re.finditer(r"(?:^|[;|{(=\n])[ \t]*", code):
        rest = code[match.end():]
        if not rest or rest[0] in "$[@('\"0123456789-!+{}),;|\n":
            continue
        word = re.match(r"[\w.\\/:%?-]+|.", rest)
        name = word.group(0) if word else rest[0]
        after = rest[len(name):].lstrip(" \t")
        if re.fullmatch(r"[A-Za-z_]\w*", name) and after.startswith("=") and not after.startswith("=="):
            continue
        if name.lower() in PS_KEYWORDS or name.lower() in PS_READ_ONLY_CMDLETS:
            continue
        return f"runs {name!r}, which is not a listed read-only cmdlet"
    return None


# --- running a command -------------------------------------------------------------------------


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str


class NotInstalled(Exception):
    """The program does not exist on this machine."""


def run(argv: Sequence[str], timeout: float) -> Ran:
    """Run ``argv`` exactly as the agent's ``run_command`` does: no shell, ``LC_ALL=C``, stdin closed."""
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, env=env, check=False,
                              stdin=subprocess.DEVNULL, errors="replace")
    except FileNotFoundError as exc:
        raise NotInstalled(argv[0]) from exc
    return Ran(done.returncode, done.stdout, done.stderr)


def shown(argv: Sequence[str], width: int = 70) -> str:
    """A command for the progress lines: a PowerShell script by its first characters."""
    if tuple(argv[:-1]) == POWERSHELL:
        script = " ".join(argv[-1].split())
        return "powershell: " + (script[:width] + "[..]" if len(script) > width else script)
    text = " ".join(a if a and not re.search(r"\s", a) else json.dumps(a) for a in argv)
    return text[:width] + "[..]" if len(text) > width else text


PLATFORMS: dict[str, OSName] = {"darwin": "macos", "win32": "windows", "linux": "linux"}


def running_os() -> OSName | None:
    return PLATFORMS.get(sys.platform)


def os_version(os_name: OSName, timeout: float = 30.0) -> str:
    """The ``# os:`` line: the real product name, version and build of this machine (never its name)."""
    if os_name == "macos":
        try:
            parts = [run(["sw_vers", flag], timeout).stdout.strip()
                     for flag in ("-productName", "-productVersion", "-buildVersion")]
        except (NotInstalled, OSError, subprocess.TimeoutExpired):
            parts = []
        if len(parts) == 3 and all(parts):
            chip = "Apple silicon" if platform.machine() == "arm64" else "Intel"
            return f"{parts[0]} {parts[1]} ({parts[2]}), {chip}"
        return f"macOS {platform.mac_ver()[0]} ({platform.machine()})"
    if os_name == "windows":
        script = ("$o = Get-CimInstance Win32_OperatingSystem; "
                  "'{0}|{1}|{2}|{3}' -f $o.Caption, $o.Version, $o.BuildNumber, $PSVersionTable.PSVersion")
        try:
            fields = run([*POWERSHELL, script], timeout).stdout.strip().split("|")
        except (NotInstalled, OSError, subprocess.TimeoutExpired):
            fields = []
        if len(fields) == 4 and all(fields):
            caption = fields[0].strip().removeprefix("Microsoft ")
            return f"{caption} {fields[1]} (build {fields[2]}), Windows PowerShell {fields[3]}"
        return f"Windows {platform.release()} {platform.version()}"
    try:
        release = Path("/etc/os-release").read_text(encoding="utf-8")
        pretty = re.search(r'^PRETTY_NAME="?([^"\n]+)"?$', release, re.M)
    except OSError:
        pretty = None
    return pretty.group(1) if pretty else platform.platform(terse=True)


# --- personal data -----------------------------------------------------------------------------

PLACEHOLDERS = ("redacted-host, redacted-user, MAC 00:00:5e:00:53:xx, REDACTED-SERIAL, "
                "IP 192.0.2.x/198.51.100.x/203.0.113.x and 2001:db8::x")
MAC = re.compile(r"(?<![\w:-])[0-9A-Fa-f]{1,2}([:-])(?:[0-9A-Fa-f]{1,2}\1){4}[0-9A-Fa-f]{1,2}(?![\w:-])")
IPV4 = re.compile(r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w+~-]|\.\d)")  # not 1.2.5.1-2, 17.0.21.1+2
IPV6 = re.compile(r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])")
SERIAL = re.compile(r"(?i)(serial[ _-]?(?:number)?(?:\s*\([^)\n]{0,20}\))?[\"']?\s*[:=]\s*[\"']?)"
                    r"([A-Za-z0-9][A-Za-z0-9._/-]{3,})")
IPV4_PLACEHOLDER_NETS = ("192.0.2.", "198.51.100.", "203.0.113.")


class Redactor:
    """Replaces host names, user names, MAC addresses, serial numbers and public IP addresses.

    The same value gets the same placeholder in every file. Private, loopback and link-local
    addresses stay: they say nothing about who ran the command. A dotted number that follows
    the word "version" on its line, or is glued to a letter, ``+``, ``~`` or ``-`` (``1.2.5.1-2``),
    is a version number, not an address. A name shorter than three
    characters (a host called ``vm``) is not replaced: it would hit ``vm.loadavg``; it is listed in
    :attr:`too_short` and the run says so.
    """

    def __init__(self, hosts: Iterable[str], users: Iterable[str], serials: Iterable[str] = ()) -> None:
        hosts, users, serials = list(hosts), list(users), list(serials)
        self.too_short: list[str] = []

        def words(values: Iterable[str]) -> list[str]:
            kept = {v.strip() for v in values if len(v.strip()) >= 3}
            self.too_short += sorted({v.strip() for v in values if 0 < len(v.strip()) < 3} - set(self.too_short))
            return sorted(kept, key=len, reverse=True)

        self.hosts, self.users, self.serials = words(hosts), words(users), words(serials)
        self._macs: dict[str, str] = {}
        self._ips: dict[str, str] = {}

    def __call__(self, text: str) -> str:
        text = SERIAL.sub(lambda m: m.group(1) + "REDACTED-SERIAL", text)
        for value, placeholder in ((s, "REDACTED-SERIAL") for s in self.serials):
            text = self._replace_word(text, value, placeholder)
        text = MAC.sub(self._mac, text)
        text = IPV6.sub(self._ipv6, text)
        text = IPV4.sub(self._ipv4, text)
        for value in self.hosts:
            text = self._replace_word(text, value, "redacted-host")
        for value in self.users:
            text = self._replace_word(text, value, "redacted-user")
        return text

    @staticmethod
    def _replace_word(text: str, value: str, placeholder: str) -> str:
        return re.sub(rf"(?<![A-Za-z0-9]){re.escape(value)}(?![A-Za-z0-9])", placeholder, text, flags=re.I)

    def _mac(self, match: re.Match[str]) -> str:
        found, sep = match.group(0), match.group(1)
        if set(found.lower()) <= {"0", sep} or set(found.lower()) <= {"f", sep}:
            return found
        key = found.lower().replace("-", ":")
        if key not in self._macs:
            self._macs[key] = f"00:00:5e:00:53:{len(self._macs) + 1:02x}"
        out = self._macs[key].replace(":", sep)
        return out.upper() if found.isupper() else out

    def _ipv4(self, match: re.Match[str]) -> str:
        found = match.group(0)
        try:
            address = ipaddress.IPv4Address(found)
        except ValueError:
            return found
        before = match.string[max(0, match.start() - 40):match.start()].rpartition("\n")[2]
        if not address.is_global or "version" in before.lower():
            return found
        if found not in self._ips:
            n = sum(1 for v in self._ips.values() if "." in v)
            self._ips[found] = f"{IPV4_PLACEHOLDER_NETS[n // 254 % 3]}{n % 254 + 1}"
        return self._ips[found]

    def _ipv6(self, match: re.Match[str]) -> str:
        found = match.group(0)
        try:
            address = ipaddress.IPv6Address(found)
        except ValueError:
            return found
        if not address.is_global:
            return found
        if found.lower() not in self._ips:
            n = sum(1 for v in self._ips.values() if ":" in v)
            self._ips[found.lower()] = f"2001:db8::{n + 1:x}"
        return self._ips[found.lower()]


def machine_identity(os_name: OSName, timeout: float = 30.0) -> Redactor:
    """A :class:`Redactor` for this machine: its names, its user's login and full name, its serial number."""
    hosts = {socket.gethostname(), socket.gethostname().split(".")[0], platform.node(),
             os.environ.get("COMPUTERNAME", "")}
    users = {getpass.getuser(), Path.home().name, os.environ.get("USERNAME", "")}
    serials: set[str] = set()
    if sys.platform != "win32":
        import pwd

        try:
            users.add(pwd.getpwnam(getpass.getuser()).pw_gecos.split(",")[0])
        except KeyError:
            pass
    queries: list[tuple[list[str], str]] = []
    if os_name == "macos":
        queries = [(["scutil", "--get", name], "host") for name in ("ComputerName", "LocalHostName", "HostName")]
        queries.append((["ioreg", "-rd1", "-c", "IOPlatformExpertDevice"], "ioreg"))
    elif os_name == "windows":
        queries = [([*POWERSHELL, "(Get-CimInstance Win32_BIOS).SerialNumber"], "serial")]
    else:
        try:
            serials.add(Path("/sys/class/dmi/id/product_serial").read_text(encoding="utf-8").strip())
        except OSError:
            pass
    for argv, kind in queries:
        try:
            done = run(argv, timeout)
        except (NotInstalled, OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode != 0:
            continue
        if kind == "host":
            hosts.add(done.stdout.strip())
        elif kind == "serial":
            serials.add(done.stdout.strip())
        else:
            found = re.search(r'"IOPlatformSerialNumber" = "([^"]+)"', done.stdout)
            serials.update([found.group(1)] if found else [])
    serials -= {"", "0", "None", "To be filled by O.E.M.", "Default string", "System Serial Number"}
    return Redactor(hosts, users, serials)


# --- fixture files -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Fixture:
    path: Path
    command_line: str
    """The ``# command:`` value exactly as written (kept byte for byte)."""
    argv: tuple[str, ...]
    exit_code: int | None

    @property
    def name(self) -> str:
        return self.path.stem


def split_fixture(text: str) -> tuple[dict[str, str], str] | None:
    """A fixture file's ``# key: value`` headers and its stdout, or None without a ``--- stdout ---`` line."""
    head, sep, stdout = text.partition("--- stdout ---\n")
    if not sep:
        return None
    headers: dict[str, str] = {}
    for line in head.splitlines():
        key, _, value = line.removeprefix("# ").partition(": ")
        headers[key.strip()] = value.strip()
    return headers, stdout


def read_fixture(path: Path) -> Fixture:
    split = split_fixture(path.read_text(encoding="utf-8"))
    if split is None:
        raise CaptureError(f"{path}: no '--- stdout ---' line (see tests/recorded.py for the format)")
    headers = split[0]
    if "command" not in headers:
        raise CaptureError(f"{path}: no '# command:' header")
    try:
        argv = json.loads(headers["command"])
    except json.JSONDecodeError as exc:
        raise CaptureError(f"{path}: '# command:' is not a JSON list: {exc.msg}") from exc
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise CaptureError(f"{path}: '# command:' must be a JSON list of strings")
    code = headers.get("exit", "")
    return Fixture(path, headers["command"], tuple(argv), int(code) if re.fullmatch(r"-?\d+", code) else None)


def render(fixture: Fixture, source: str, os_line: str, ran: Ran) -> str:
    """The fixture file in ``tests/recorded.py``'s format (its stderr on one ``# stderr:`` line)."""
    lines = [f"# command: {fixture.command_line}", f"# source: {source}", f"# os: {os_line}",
             f"# exit: {ran.returncode}"]
    stderr = " ".join(part.strip() for part in ran.stderr.splitlines() if part.strip())
    if stderr:
        lines.append(f"# stderr: {stderr}")
    return "\n".join(lines) + "\n--- stdout ---\n" + ran.stdout


def source_line(os_name: OSName, redacted: bool, today: datetime.date) -> str:
    line = (f"captured: mspclaw-capture on a technician's {MACHINE[os_name]} on {today.isoformat()}, "
            f"through the same argv the agent uses (LC_ALL=C); verbatim")
    if redacted:
        line += (" except that the host name, user name, MAC addresses, serial numbers and public IP addresses "
                 f"were replaced by placeholders ({PLACEHOLDERS})")
    return line


def default_fixtures(os_name: OSName) -> Path:
    here = Path(__file__).resolve()
    for root in (here.parents[3], Path.cwd()):
        candidate = root / "tests" / "fixtures" / os_name
        if candidate.is_dir():
            return candidate
    raise CaptureError(f"no tests/fixtures/{os_name} directory next to this checkout or in {Path.cwd()}: "
                       f"run from the repository root or pass --fixtures")


def select(fixtures: list[Fixture], only: Sequence[str]) -> list[Fixture]:
    """``--only NAME...``: file names without ``.txt``; a series' base name (``lpstat_p``) picks all its states."""
    if not only:
        return fixtures
    wanted = {n.removesuffix(".txt") for n in only}
    chosen = [f for f in fixtures if f.name in wanted or re.sub(r"\.\d+$", "", f.name) in wanted]
    known = {f.name for f in fixtures} | {re.sub(r"\.\d+$", "", f.name) for f in fixtures}
    unknown = sorted(wanted - known)
    if unknown:
        raise CaptureError(f"no fixture named {', '.join(unknown)}; there are: {', '.join(sorted(known))}")
    return chosen


# --- the command line --------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="mspclaw-capture",
        description="Run every fixture's command on this machine and write its real output back as a capture.")
    parser.add_argument("--fixtures", type=Path, help="fixture directory, named macos, windows or linux "
                        "(default: tests/fixtures/<this OS>)")
    parser.add_argument("--only", nargs="+", default=[], metavar="NAME", help="only these fixtures (file names "
                        "without .txt; lpstat_p picks lpstat_p.1, .2, ...)")
    parser.add_argument("--include-changes", action="store_true",
                        help="also offer the commands that change the machine, each after a y/N question")
    parser.add_argument("--redact", action="store_true", help="replace host name, user name, MAC addresses, "
                        "serial numbers and public IP addresses with placeholders")
    parser.add_argument("--dry-run", action="store_true", help="print what would run and be written; run nothing")
    parser.add_argument("--write-mismatches", action="store_true", help="also write a capture whose exit code "
                        "differs from the fixture's (by default kept: the machine is not in the recorded state)")
    parser.add_argument("--out", type=Path, help="write the captures to this directory instead of in place")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds per command "
                        f"(default {DEFAULT_TIMEOUT_S:g})")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, *, ask: Callable[[str], str] = input, out: TextIO | None = None) -> int:
    """Exit code 0 when every selected command ran or was skipped by choice, 1 on failures, 2 on misuse."""
    stream = out or sys.stdout
    args = parse_args(argv)
    try:
        return _capture(args, ask, stream)
    except CaptureError as exc:
        print(f"mspclaw-capture: {exc}", file=sys.stderr)
        return 2


def _capture(args: argparse.Namespace, ask: Callable[[str], str], out: TextIO) -> int:
    def say(text: str) -> None:
        print(text, file=out, flush=True)

    here = running_os()
    if here is None:
        raise CaptureError(f"this machine runs {sys.platform!r}; captures are made on macOS, Windows or Linux")
    directory: Path = args.fixtures or default_fixtures(here)
    if not directory.is_dir():
        raise CaptureError(f"fixture directory {directory} does not exist")
    target = next((name for name in OS_NAMES if name == directory.resolve().name), None)
    if target is None:
        raise CaptureError(f"cannot tell which OS the fixtures in {directory} are for: the directory must be "
                           f"named {', '.join(OS_NAMES)}")
    if target != here:
        raise CaptureError(f"{directory} holds {OS_TITLE[target]} commands, but this machine runs "
                           f"{OS_TITLE[here]}: run mspclaw-capture on a {MACHINE[target]}")
    os_name: OSName = here
    fixtures = select([read_fixture(p) for p in sorted(directory.glob("*.txt"))], args.only)
    if not fixtures:
        raise CaptureError(f"no *.txt fixtures in {directory}")
    out_dir: Path = args.out or directory
    verdicts = {f.path: classify(os_name, f.argv) for f in fixtures}
    changing = [f for f in fixtures if not verdicts[f.path].read_only]
    if changing:
        say(f"{len(changing)} of {len(fixtures)} commands change this machine and are "
            + ("asked about one by one:" if args.include_changes else "skipped (--include-changes asks about each):"))
        for f in changing:
            say(f"  {f.name}: {shown(f.argv)} ({verdicts[f.path].reason})")
    if not args.redact and not args.dry_run:
        say("Without --redact the files keep this machine's names, addresses and serial numbers: "
            "review `git diff` before committing.")

    source = source_line(os_name, args.redact, datetime.date.today())
    os_line = "" if args.dry_run else os_version(os_name)
    redact = machine_identity(os_name) if args.redact and not args.dry_run else None
    if redact and redact.too_short:
        say(f"--redact leaves {', '.join(map(repr, redact.too_short))} as it is (shorter than 3 characters, "
            "it would replace parts of other words): check the files for it")
    if not args.dry_run:
        say(f"# os: {os_line}")
        out_dir.mkdir(parents=True, exist_ok=True)

    tally: dict[str, list[str]] = {k: [] for k in ("written", "skipped", "missing", "mismatch", "failed")}
    width = len(str(len(fixtures)))
    for n, fixture in enumerate(fixtures, 1):
        verdict = verdicts[fixture.path]
        dest = out_dir / fixture.path.name
        prefix = f"[{n:>{width}}/{len(fixtures)}] {shown(fixture.argv)} ..."
        if args.dry_run:
            if verdict.read_only:
                say(f"{prefix} would run and write {dest}")
            elif args.include_changes:
                say(f"{prefix} would ask first ({verdict.reason}), then write {dest}")
            else:
                say(f"{prefix} would skip: changes the machine ({verdict.reason})")
            continue
        if not verdict.read_only:
            if not args.include_changes:
                say(f"{prefix} skipped: changes the machine ({verdict.reason})")
                tally["skipped"].append(fixture.name)
                continue
            try:
                answer = ask(f"Run `{shown(fixture.argv, 200)}` on this machine? It {verdict.reason}. [y/N] ")
            except EOFError:
                answer = ""
            if answer.strip().lower() not in ("y", "yes"):
                say(f"{prefix} skipped: not confirmed")
                tally["skipped"].append(fixture.name)
                continue
        try:
            ran = run(fixture.argv, args.timeout)
        except NotInstalled:
            say(f"{prefix} not installed here: {fixture.path.name} kept")
            tally["missing"].append(fixture.name)
            continue
        except subprocess.TimeoutExpired:
            say(f"{prefix} FAILED: no answer within {args.timeout:g} s: {fixture.path.name} kept")
            tally["failed"].append(fixture.name)
            continue
        except OSError as exc:
            say(f"{prefix} FAILED: could not start: {exc.strerror or exc}: {fixture.path.name} kept")
            tally["failed"].append(fixture.name)
            continue
        if redact:
            ran = Ran(ran.returncode, redact(ran.stdout), redact(ran.stderr))
        size = f"exit {ran.returncode}, {len(ran.stdout.encode('utf-8')) / 1024:.1f} KiB"
        if fixture.exit_code is not None and ran.returncode != fixture.exit_code and not args.write_mismatches:
            say(f"{prefix} kept ({size}; the fixture records exit {fixture.exit_code}: this machine is not "
                "in that state; --write-mismatches writes it anyway)")
            tally["mismatch"].append(fixture.name)
            continue
        with dest.open("w", encoding="utf-8", newline="\n") as file:
            file.write(render(fixture, source, os_line, ran))
        say(f"{prefix} ok ({size})")
        tally["written"].append(fixture.name)

    if args.dry_run:
        runs = sum(1 for f in fixtures if verdicts[f.path].read_only or args.include_changes)
        say(f"dry run: {runs} of {len(fixtures)} commands would run; nothing was run or written")
        return 0
    say(f"\n{len(tally['written'])} written to {out_dir}, {len(tally['skipped'])} skipped (change the machine), "
        f"{len(tally['missing'])} not installed, {len(tally['mismatch'])} kept (other exit code), "
        f"{len(tally['failed'])} failed")
    for key, label in (("mismatch", "kept, other exit code"), ("missing", "not installed"), ("failed", "failed")):
        if tally[key]:
            say(f"  {label}: {', '.join(tally[key])}")
    series = sorted({re.sub(r"\.\d+$", "", n) for n in tally["written"] if re.search(r"\.\d+$", n)})
    if series:
        say(f"  series now holding this machine's current state in every step: {', '.join(series)} "
            "(set a state up and re-run with --only NAME.N to record a change)")
    if tally["written"]:
        say("Next: git diff tests/fixtures, make test, then commit (docs/playbooks.md, 'Fixture provenance').")
    return 1 if tally["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
