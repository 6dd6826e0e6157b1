"""Command output fixtures (captured, public captures, or written to format), replayed through a tool's runner.

Each file under ``tests/fixtures/<os>/`` is one run of one command, with a header that says
truthfully where its text comes from::

    # command: ["lpstat", "-p"]
    # source: public capture: https://github.com/owner/repo/blob/<commit>/path/lpstat-p.out
    # os: macOS 13.4 (22F66)
    # exit: 0
    --- stdout ---
    printer Office_Color is idle.  enabled since ...

``# source:`` is mandatory and starts with one of :data:`SOURCE_KINDS`:

- ``captured: <who/where>``: run on a real machine by one of us;
- ``public capture: <URL and path>``: real output published by someone else, kept verbatim
  (personal names and addresses may be replaced by obvious placeholders; the line says so);
- ``written to format: <documentation>``: written by hand to follow the command's documented
  format; its ``# os:`` line then says ``format of <OS> (not a capture)``.

A replay of hand-written text only shows that a parser reads what its author believed the
command prints; docs/playbooks.md counts how many fixtures of each kind there are.

Optional headers: ``# stderr: ...`` (one line) and ``# missing: true`` (the program is not
installed there). Several files may record the same command: they are replayed in file-name
order, the last one again and again, which is how a device's state changes between two calls
(a queue with a stuck job, then the same queue after ``cancel -a``).

:class:`Recorded` is a :data:`~mspclaw.agent.tools.commands.CommandRunner`: a tool that builds
an argument list nobody recorded fails the test, so the exact argv is checked on every call.
JSON fixtures (``tests/fixtures/network/check_connectivity.json``, the portable
``check_connectivity``; ``tests/fixtures/linux/tools/*.json``, the Linux agent's own output on
this machine) carry the same statement in a top-level ``"source"`` key; any other file (a macOS
crash report) has it in a ``<name>.source`` file next to it. :func:`check_source` refuses a
fixture without one.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from mspclaw.agent.tools.commands import Completed, NotInstalled
from mspclaw.devtools.capture import split_fixture

FIXTURES = Path(__file__).parent / "fixtures"


SOURCE_KINDS = ("captured: ", "public capture: ", "written to format: ")


class NotRecorded(AssertionError):
    """A tool ran a command with arguments no fixture recorded."""


def check_source(path: Path, source: object) -> str:
    """The fixture's ``source`` statement, or a clear error naming the file."""
    if not isinstance(source, str) or not source.strip():
        raise ValueError(f"{path}: no '# source:' line (or \"source\" key): say where this output comes from, "
                         f"one of {', '.join(k.strip() for k in SOURCE_KINDS)} (see tests/recorded.py)")
    if not source.startswith(SOURCE_KINDS) or len(source.split(": ", 1)[1].strip()) < 3:
        raise ValueError(f"{path}: source {source!r} must start with one of "
                         f"{', '.join(repr(k.strip()) for k in SOURCE_KINDS)} and name where it comes from")
    return source


def load_json_fixture(path: Path) -> Any:
    """A JSON fixture, refused without a top-level ``"source"``."""
    data = json.loads(path.read_text(encoding="utf-8"))
    check_source(path, data.get("source") if isinstance(data, dict) else None)
    return data


def sidecar_source(path: Path) -> str:
    """The ``# source:`` line of a non-text fixture's ``<name>.source`` file."""
    side = path.with_name(path.name + ".source")
    text = side.read_text(encoding="utf-8") if side.exists() else ""
    line = next((x.removeprefix("# source: ") for x in text.splitlines() if x.startswith("# source: ")), None)
    return check_source(path, line)


def read_fixture(path: Path) -> tuple[list[str], dict[str, str], Completed]:
    split = split_fixture(path.read_text(encoding="utf-8"))
    if split is None:
        raise ValueError(f"{path}: no '--- stdout ---' line")
    headers, stdout = split
    for required in ("command", "source", "os", "exit"):
        if required not in headers:
            if required == "source":
                check_source(path, None)
            raise ValueError(f"{path}: header '# {required}:' is missing")
    check_source(path, headers["source"])
    if headers["source"].startswith("written to format: ") and "(not a capture)" not in headers["os"]:
        raise ValueError(f"{path}: a hand-written fixture's '# os:' line must say 'format of <OS> (not a capture)'")
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
