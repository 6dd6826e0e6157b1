"""The registry of tools this machine implements, and what a tool receives besides its arguments.

The catalogue (:mod:`mspclaw.tools`) says what tools exist; this registry says which of them
this agent can really run on its operating system: ``linux.py``, ``macos.py`` and ``windows.py``
each implement the device tools with that OS's own commands. Site tools (directory, accounts)
belong to the site agent's integrations and are not in these registries.

A tool is a plain blocking function ``(parsed_args, context) -> JSON object``. The executor runs
it in a worker thread with a timeout, so a tool may call subprocesses and read files freely.
"""

from __future__ import annotations

import os
import platform
import socket
import sys
import tempfile
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from mspclaw.agent.tools.commands import CommandRunner, Completed, run_command
from mspclaw.errors import ConfigError
from mspclaw.protocol.frames import OSName, Secret

JsonObject = dict[str, Any]
"""What a tool returns: a JSON-serialisable object (checked when the result frame is built)."""


@dataclass(frozen=True)
class WithSecret:
    """What a tool that sets a temporary password returns: its ``output`` (what everyone may read)
    and the ``secret`` for the user alone, which the executor sends beside the result and never journals."""

    output: JsonObject
    secret: Secret = field(repr=False)


@dataclass(frozen=True)
class ToolContext:
    """What the agent's configuration gives every tool, beyond the call's own arguments.

    ``temp_roots`` are the only directories ``clear_temp_files`` may touch. They come from the
    agent's ``--temp-root`` flags and never from a call, so a call cannot widen them.
    """

    temp_roots: tuple[Path, ...]
    run: CommandRunner = field(default=run_command)
    """How tools run OS commands; tests replay fixture output through it (``tests/recorded.py``)."""
    home: Path | None = None
    """The end user's home folder (large files, browser caches, crash reports); default: this user's."""

    def home_dir(self) -> Path:
        return self.home or Path.home()


ToolFn = Callable[[BaseModel, ToolContext], "JsonObject | WithSecret"]
"""A registered tool: parsed arguments and the context in, a JSON object out."""

A = TypeVar("A", bound=BaseModel)


def tool_table(*fns: Callable[[Any, ToolContext], JsonObject | WithSecret]) -> dict[str, ToolFn]:
    """An OS's tools, each under its function's name (the catalogue name) and bound to the arguments
    model its ``args`` parameter is annotated with (which the catalogue's must be: a test checks)."""
    table: dict[str, ToolFn] = {}
    for fn in fns:
        args_type = typing.get_type_hints(fn).get("args")
        if not (isinstance(args_type, type) and issubclass(args_type, BaseModel)):
            raise TypeError(f"tool {fn.__name__}: its 'args' parameter must be annotated with a pydantic model")
        table[fn.__name__] = bind(args_type, fn)
    return table


def bind(args_type: type[A], fn: Callable[[A, ToolContext], JsonObject | WithSecret]) -> ToolFn:
    """Register ``fn`` for arguments of ``args_type``: keeps each tool typed on its own model."""

    def run(args: BaseModel, context: ToolContext) -> JsonObject | WithSecret:
        if not isinstance(args, args_type):
            raise TypeError(f"expected {args_type.__name__} arguments, got {type(args).__name__}")
        return fn(args, context)

    run.__name__ = getattr(fn, "__name__", "tool")
    run.__doc__ = fn.__doc__
    run.__wrapped__ = fn  # type: ignore[attr-defined]
    return run


def current_os() -> OSName:
    """The catalogue's name for the operating system this process runs on."""
    if sys.platform.startswith("linux"):
        return "linux"
    if sys.platform == "darwin":
        return "macos"
    if sys.platform in ("win32", "cygwin"):
        return "windows"
    raise ConfigError(f"the MSPclaw agent does not support this platform ({sys.platform})")


def read_os_release() -> dict[str, str]:
    """``/etc/os-release`` as a dict (empty when absent); the standard place a distribution names itself."""
    for candidate in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            text = Path(candidate).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        fields: dict[str, str] = {}
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip() and not key.startswith("#"):
                fields[key.strip()] = value.strip().strip("\"'")
        return fields
    return {}


def os_version() -> str:
    """A human-readable OS version for ``hello``: the distribution on Linux, the release elsewhere."""
    match current_os():
        case "linux":
            release = read_os_release()
            pretty = release.get("PRETTY_NAME") or " ".join(
                part for part in (release.get("NAME"), release.get("VERSION_ID")) if part
            )
            return pretty or f"Linux {platform.release()}"
        case "macos":
            return f"macOS {platform.mac_ver()[0]}".strip()
        case "windows":
            return f"Windows {platform.release()} ({platform.version()})"


def hostname() -> str:
    return socket.gethostname()


def tool_registry(os_name: OSName | None = None) -> dict[str, ToolFn]:
    """The tools implemented for ``os_name`` (default: this machine's OS), by catalogue name."""
    match os_name or current_os():
        case "linux":
            from mspclaw.agent.tools.linux import LINUX_TOOLS

            return dict(LINUX_TOOLS)
        case "macos":
            from mspclaw.agent.tools.macos import MACOS_TOOLS

            return dict(MACOS_TOOLS)
        case "windows":
            from mspclaw.agent.tools.windows import WINDOWS_TOOLS

            return dict(WINDOWS_TOOLS)


_FORBIDDEN_ROOTS = frozenset(
    {"/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/opt", "/proc", "/root", "/run",
     "/sbin", "/srv", "/sys", "/usr", "/var", "/Users", "/Library", "/System", "/Applications"}
)
"""Directories that hold far more than temporary files: refused as temp roots, whatever the flags say."""


def default_temp_roots() -> list[Path]:
    """The system temp directory, ``/var/tmp``, and the thumbnail cache when it exists."""
    roots = [Path(tempfile.gettempdir()), Path("/var/tmp")]
    thumbnails = Path.home() / ".cache" / "thumbnails"
    if thumbnails.is_dir():
        roots.append(thumbnails)
    return [root for root in roots if root.is_dir()]


def temp_roots(configured: Iterable[str | Path] | None) -> tuple[Path, ...]:
    """Validate the ``--temp-root`` flags (or the defaults when none): absolute, real, not a system directory."""
    chosen = list(configured) if configured else default_temp_roots()
    roots: list[Path] = []
    for item in chosen:
        path = Path(item)
        if not path.is_absolute():
            raise ConfigError(f"temp root {str(path)!r} must be an absolute path")
        real = Path(os.path.realpath(path))
        if str(real) in _FORBIDDEN_ROOTS or real.anchor == str(real):
            raise ConfigError(f"refusing {str(path)!r} as a temp root: it is a system directory, not a temp folder")
        if real not in roots:
            roots.append(real)
    return tuple(roots)


__all__ = [
    "CommandRunner",
    "Completed",
    "JsonObject",
    "ToolContext",
    "ToolFn",
    "WithSecret",
    "bind",
    "current_os",
    "default_temp_roots",
    "hostname",
    "os_version",
    "read_os_release",
    "run_command",
    "temp_roots",
    "tool_registry",
]
