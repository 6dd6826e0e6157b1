"""Running OS commands for tools: an argument list (never a shell string), a timeout, a clean locale.

Tools receive a :data:`CommandRunner` in their context instead of calling :mod:`subprocess`
themselves. The default runs the real command; tests inject a runner that replays fixed output
(``tests/fixtures/<os>/``: real captures where we have them, otherwise text written to the
command's documented format, as each file's ``# source:`` line says), so the argument lists a
tool builds and the parsing of what comes back are checked for every OS from Linux CI.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mspclaw.errors import ToolFailed

DEFAULT_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Completed:
    """What a command left behind: its exit code, standard output and standard error."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str = ""

    def ok(self) -> str:
        """Standard output, or :class:`ToolFailed` naming the command and its last error line."""
        if self.returncode != 0:
            detail = (self.stderr.strip() or self.stdout.strip()).splitlines()[-1:] or [f"exit code {self.returncode}"]
            raise ToolFailed(f"`{display(self.argv)}` failed: {detail[0][:300]}")
        return self.stdout


class NotInstalled(ToolFailed):
    """The command does not exist on this machine (a normal situation: no NetworkManager, no CUPS)."""


CommandRunner = Callable[[list[str], float], Completed]
"""``(argv, timeout_s) -> Completed``; raises :class:`ToolFailed` when the command cannot run at all."""


def display(argv: tuple[str, ...] | list[str]) -> str:
    """A command for messages: PowerShell scripts are cut to their first line."""
    shown = [a.splitlines()[0][:80] + (" ..." if len(a) > 80 or "\n" in a else "") if a else a for a in argv]
    return " ".join(shown)


def run_command(argv: list[str], timeout: float = DEFAULT_TIMEOUT_S) -> Completed:
    """Run ``argv`` (no shell) with ``LC_ALL=C`` and a timeout; never raises on a non-zero exit."""
    if not argv or not all(isinstance(a, str) for a in argv):
        raise ToolFailed("a command must be a non-empty list of strings")
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, check=False,
                              stdin=subprocess.DEVNULL, errors="replace")
    except subprocess.TimeoutExpired as exc:
        raise ToolFailed(f"`{display(argv)}` did not finish within {timeout:g} s") from exc
    except FileNotFoundError as exc:
        raise NotInstalled(f"`{argv[0]}` is not installed on this machine") from exc
    except OSError as exc:
        raise ToolFailed(f"`{display(argv)}` could not start: {exc.strerror or exc}") from exc
    return Completed(tuple(argv), done.returncode, done.stdout, done.stderr)


POWERSHELL = ("powershell.exe", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-Command")


def powershell(script: str) -> list[str]:
    """The argument list that runs ``script`` in Windows PowerShell without profile or prompts.

    Scripts end in ``ConvertTo-Json`` so the output is parsed as JSON, not scraped as text.
    Values from a call are never pasted into a script; they are validated by the catalogue's
    patterns and passed as single-quoted literals by :func:`ps_quote`.
    """
    return [*POWERSHELL, script]


def ps_quote(value: str) -> str:
    """A PowerShell single-quoted string literal (a quote inside is doubled)."""
    return "'" + value.replace("'", "''") + "'"


def ps_json(stdout: str) -> list[dict[str, Any]]:
    """``ConvertTo-Json`` output as a list: one object comes back bare, none as empty output."""
    text = stdout.strip().lstrip("\ufeff")
    if not text:
        return []
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ToolFailed(f"PowerShell did not return JSON: {exc.msg} at line {exc.lineno}") from exc
    if isinstance(data, dict):
        return [data]
    if isinstance(data, list):
        return [item for item in data if isinstance(item, dict)]
    raise ToolFailed(f"PowerShell returned {type(data).__name__}, not objects")
