"""Tools written in plain Python that work the same on macOS, Windows and Linux.

``check_connectivity`` uses sockets, ``large_files`` and ``clear_browser_cache`` walk the user's
home folder with the standard library. Walks never follow symbolic links (or Windows junctions),
and deletions stay inside the cache folders they were asked about.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import threading
import time
from pathlib import Path
from typing import Any

from mspclaw.agent.tools import ToolContext
from mspclaw.agent.tools.commands import Completed
from mspclaw.errors import ToolFailed
from mspclaw.protocol.frames import OSName
from mspclaw.tools.catalogue import CheckConnectivityArgs
from mspclaw.tools.device import BrowserCacheArgs, LargeFilesArgs

JsonObject = dict[str, Any]
MAX_WALK_ENTRIES = 500_000
"""A walk stops after this many entries, so a huge home folder cannot hold a tool for minutes."""

__all__ = ["Completed", "browser_cache_dirs", "check_connectivity", "clear_browser_cache", "large_files"]


# --- check_connectivity ------------------------------------------------------------------------


def _resolve(host: str, port: int, timeout: float) -> tuple[list[tuple[int, Any]], str | None]:
    """``getaddrinfo`` bounded by ``timeout``: it can block far longer when the network is down.

    The lookup runs in a daemon thread that is simply abandoned on timeout (the C resolver
    cannot be interrupted), so a dead resolver never holds up the tool or the agent's exit.
    """
    outcome: dict[str, Any] = {}

    def lookup() -> None:
        try:
            outcome["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=lookup, name=f"resolve {host}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        return [], f"DNS lookup timed out after {timeout:g} s"
    if "error" in outcome:
        exc = outcome["error"]
        return [], getattr(exc, "strerror", None) or str(exc)
    return [(family, sockaddr) for family, _, _, _, sockaddr in outcome["infos"]], None


def check_connectivity(args: CheckConnectivityArgs, context: ToolContext) -> JsonObject:
    """Resolve ``host`` then open a TCP connection to its first address; both steps timed.

    Failures are findings, not errors: an unresolvable name or a refused port come back as
    ``reachable: false`` with the reason. ``timeout_s`` bounds the two steps together.
    """
    started = time.monotonic()
    infos, dns_error = _resolve(args.host, args.port, args.timeout_s)
    dns_ms = round((time.monotonic() - started) * 1000, 1)
    if dns_error is None and not infos:
        dns_error = "the name resolved to no address"
    addresses = list(dict.fromkeys(str(sockaddr[0]) for _, sockaddr in infos))
    dns: JsonObject = {"ok": dns_error is None, "addresses": addresses, "ms": dns_ms, "error": dns_error}
    tcp: JsonObject = {"ok": False, "address": None, "ms": None, "error": "not attempted: DNS lookup failed"}
    if dns["ok"]:
        family, sockaddr = infos[0]
        remaining = max(args.timeout_s - (time.monotonic() - started), 0.5)
        tcp["address"] = str(sockaddr[0])
        t0 = time.monotonic()
        try:
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.settimeout(remaining)
                sock.connect(sockaddr)
            tcp.update(ok=True, error=None)
        except TimeoutError:
            tcp["error"] = f"connection timed out after {remaining:.1f} s"
        except OSError as exc:
            tcp["error"] = (exc.strerror or str(exc)).lower()
        tcp["ms"] = round((time.monotonic() - t0) * 1000, 1)
    return {"host": args.host, "port": args.port, "dns": dns, "tcp": tcp, "reachable": bool(tcp["ok"])}



# --- large_files -------------------------------------------------------------------------------


def _is_link_or_junction(entry: os.DirEntry[str]) -> bool:
    if entry.is_symlink():
        return True
    is_junction = getattr(entry, "is_junction", None)  # Python 3.12+, Windows directory junctions
    return bool(is_junction and is_junction())


SKIPPED_DIRS = frozenset({"node_modules", "__pycache__", "site-packages", "Library", "AppData"})
"""Application data (macOS ~/Library, Windows AppData) and package folders: not the user's own files."""


def _walk_files(root: Path, *, skip_hidden: bool = False) -> Any:
    """Yield ``(path, stat)`` of regular files under ``root``, never following links; bounded.

    With ``skip_hidden``, folders whose name starts with a dot (caches, settings, version control)
    and package folders are not entered: they hold the machine's files, not the user's.
    """
    stack = [str(root)]
    seen = 0
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as entries:
                for entry in entries:
                    seen += 1
                    if seen > MAX_WALK_ENTRIES:
                        return
                    if _is_link_or_junction(entry):
                        continue
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            if not (skip_hidden and (entry.name.startswith(".") or entry.name in SKIPPED_DIRS)):
                                stack.append(entry.path)
                        elif entry.is_file(follow_symlinks=False):
                            yield entry.path, entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
        except OSError:
            continue


def large_files(args: LargeFilesArgs, home: Path) -> JsonObject:
    """The largest regular files under the user's home folder, largest first (nothing is changed).

    Hidden folders (``.cache``, ``.git``...) are skipped: they are the machine's, not the user's files.
    """
    if not home.is_dir():
        raise ToolFailed(f"large_files: home folder {str(home)!r} does not exist")
    floor = args.min_size_mb * 1024 * 1024
    found: list[tuple[int, str, float]] = []
    for path, st in _walk_files(home, skip_hidden=True):
        if st.st_size >= floor:
            found.append((st.st_size, path, st.st_mtime))
    found.sort(reverse=True)
    return {
        "root": str(home),
        "min_size_mb": args.min_size_mb,
        "count": len(found),
        "total_bytes": sum(size for size, _, _ in found),
        "files": [{"path": path, "size_bytes": size, "modified": time.strftime("%Y-%m-%dT%H:%M:%S",
                                                                              time.localtime(mtime))}
                  for size, path, mtime in found[: args.limit]],
    }


# --- clear_browser_cache -----------------------------------------------------------------------

_CACHE_GLOBS: dict[OSName, dict[str, tuple[str, ...]]] = {
    "linux": {
        "chrome": (".cache/google-chrome/*/Cache", ".cache/google-chrome/*/Code Cache", ".cache/chromium/*/Cache"),
        "edge": (".cache/microsoft-edge/*/Cache",),
        "firefox": (".cache/mozilla/firefox/*/cache2",),
        "safari": (),
    },
    "macos": {
        "chrome": ("Library/Caches/Google/Chrome/*/Cache", "Library/Caches/Google/Chrome/*/Code Cache"),
        "edge": ("Library/Caches/Microsoft Edge/*/Cache",),
        "firefox": ("Library/Caches/Firefox/Profiles/*/cache2",),
        "safari": ("Library/Caches/com.apple.Safari/WebKitCache",),
    },
    "windows": {
        "chrome": ("AppData/Local/Google/Chrome/User Data/*/Cache",
                   "AppData/Local/Google/Chrome/User Data/*/Code Cache"),
        "edge": ("AppData/Local/Microsoft/Edge/User Data/*/Cache",
                 "AppData/Local/Microsoft/Edge/User Data/*/Code Cache"),
        "firefox": ("AppData/Local/Mozilla/Firefox/Profiles/*/cache2",),
        "safari": (),
    },
}
"""Where each browser keeps its disposable cache, per OS, relative to the home folder. Only these
folders are ever emptied: history, cookies, saved passwords and bookmarks live elsewhere."""


def browser_cache_dirs(os_name: OSName, home: Path, browser: str) -> list[tuple[str, Path]]:
    """``(browser, folder)`` for each cache folder that exists, and is a real folder, under ``home``."""
    names = [b for b in _CACHE_GLOBS[os_name] if browser in ("all", b)]
    found: list[tuple[str, Path]] = []
    for name in names:
        for pattern in _CACHE_GLOBS[os_name][name]:
            for path in sorted(home.glob(pattern)):
                if path.is_dir() and not path.is_symlink():
                    found.append((name, path))
    return found


def _empty_folder(folder: Path) -> tuple[int, int, list[str]]:
    """Delete what is inside ``folder`` (not the folder itself): files, bytes and errors."""
    files = freed = 0
    errors: list[str] = []
    for path, st in list(_walk_files(folder)):
        try:
            if os.name == "nt":  # read-only files cannot be unlinked on Windows
                os.chmod(path, stat.S_IWRITE)
            os.unlink(path)
        except OSError as exc:
            if len(errors) < 20:
                errors.append(f"{path}: {exc.strerror or exc}")
            continue
        files += 1
        freed += st.st_size
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
    return files, freed, errors


def clear_browser_cache(args: BrowserCacheArgs, home: Path, os_name: OSName) -> JsonObject:
    """Measure, and unless ``dry_run`` empty, the browsers' cache folders under ``home``."""
    report: list[JsonObject] = []
    errors: list[str] = []
    for browser, folder in browser_cache_dirs(os_name, home, args.browser):
        sizes = [st.st_size for _, st in _walk_files(folder)]
        item: JsonObject = {"browser": browser, "path": str(folder), "files": len(sizes), "bytes": sum(sizes)}
        if not args.dry_run:
            deleted, freed, problems = _empty_folder(folder)
            item.update(deleted=deleted, freed_bytes=freed)
            errors.extend(problems)
        report.append(item)
    result: JsonObject = {
        "dry_run": args.dry_run,
        "browser": args.browser,
        "caches": report,
        "bytes": sum(int(i["bytes"]) for i in report),
        "errors": errors,
    }
    if not args.dry_run:
        result["freed_bytes"] = sum(int(i.get("freed_bytes", 0)) for i in report)
    return result
