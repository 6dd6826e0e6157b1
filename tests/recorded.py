"""Recorded real command output, replayed through a tool's command runner.

Each file under ``tests/fixtures/<os>/`` is one run of one real command on a real machine::

    # command: ["lpstat", "-p"]
    # os: macOS 14.4.1 (23E224)
    # exit: 0
    --- stdout ---
    printer Office_Color is idle.  enabled since ...

Optional headers: ``# stderr: ...`` (one line) and ``# missing: true`` (the program is not
installed there). Several files may record the same command: they are replayed in file-name
order, the last one again and again, which is how a device's state changes between two calls
(a queue with a stuck job, then the same queue after ``cancel -a``).

:class:`Recorded` is a :data:`~mspclaw.agent.tools.commands.CommandRunner`: a tool that builds
an argument list nobody recorded fails the test, so the exact argv is checked on every call.
``tests/fixtures/site/*.json`` are recorded outputs of site tools (directory lookups) and of
the portable ``check_connectivity``, used by the playbook matrix.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from mspclaw.agent.tools.commands import Completed, NotInstalled

FIXTURES = Path(__file__).parent / "fixtures"


class NotRecorded(AssertionError):
    """A tool ran a command with arguments no fixture recorded."""


def read_fixture(path: Path) -> tuple[list[str], dict[str, str], Completed]:
    text = path.read_text(encoding="utf-8")
    head, sep, stdout = text.partition("--- stdout ---\n")
    if not sep:
        raise ValueError(f"{path}: no '--- stdout ---' line")
    headers: dict[str, str] = {}
    for line in head.splitlines():
        key, _, value = line.removeprefix("# ").partition(": ")
        headers[key.strip()] = value.strip()
    for required in ("command", "os", "exit"):
        if required not in headers:
            raise ValueError(f"{path}: header '# {required}:' is missing")
    argv = json.loads(headers["command"])
    done = Completed(tuple(argv), int(headers["exit"]), stdout, headers.get("stderr", ""))
    return argv, headers, done


class Recorded:
    """Replays ``tests/fixtures/<os>/*.txt`` (plus ``extra`` directories, which take precedence)."""

    def __init__(self, os_name: str, *extra: Path) -> None:
        self.os_name = os_name
        self.calls: list[list[str]] = []
        self._queues: dict[tuple[str, ...], list[tuple[Completed, bool]]] = defaultdict(list)
        overridden: set[tuple[str, ...]] = set()
        for directory in (*extra, FIXTURES / os_name):
            found: dict[tuple[str, ...], list[tuple[Completed, bool]]] = defaultdict(list)
            for path in sorted(directory.glob("*.txt")):
                argv, headers, done = read_fixture(path)
                found[tuple(argv)].append((done, headers.get("missing") == "true"))
            for key, runs in found.items():
                if key not in overridden:
                    self._queues[key].extend(runs)
            overridden |= set(found)

    def __call__(self, argv: list[str], timeout: float) -> Completed:
        assert timeout > 0, "every command needs a timeout"
        assert all(isinstance(a, str) for a in argv), "arguments are strings, never a shell line"
        self.calls.append(list(argv))
        queue = self._queues.get(tuple(argv))
        if not queue:
            raise NotRecorded(f"no {self.os_name} recording of {argv!r}")
        done, missing = queue.pop(0) if len(queue) > 1 else queue[0]
        if missing:
            raise NotInstalled(f"`{argv[0]}` is not installed on this machine")
        return done

    def commands(self) -> list[str]:
        return [a[0] if a[0] != "powershell.exe" else "powershell:" + a[-1].split()[0] for a in self.calls]


def site_output(tool: str) -> list[dict[str, Any]]:
    """Recorded outputs of a site tool (a list: one per call, the last repeated)."""
    data = json.loads((FIXTURES / "site" / f"{tool}.json").read_text(encoding="utf-8"))
    return data["outputs"] if isinstance(data, dict) else data
