"""A simulated device: the real OS tool implementations over replayed command output.

``SimulatedDevice(os)`` is an engine :class:`~mspclaw.engine.ports.ToolPort`. A device tool runs
the agent's own implementation for that OS (``agent/tools/macos.py``, ``windows.py``,
``linux.py``) with a :class:`~tests.recorded.Recorded` runner, so argument lists and parsers are
the shipped ones; files a tool reads or deletes (temp folders, browser caches, crash reports)
live in a temporary home folder. What cannot come from a command is replayed from JSON:
Linux's ``/proc``-based tools (recorded from a real run, ``tests/fixtures/linux/tools/``),
``check_connectivity`` (no live network in tests). Site tools run the site agent's real
implementations (``site_tools``: a real directory behind them, see ``tests/site/``); a temporary
password one returns is kept in ``secrets``, as the server's handover would take it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.recorded import FIXTURES, Recorded, load_json_fixture, sidecar_source

from mspclaw.agent.tools import ToolContext, ToolFn, WithSecret, tool_registry
from mspclaw.errors import ToolFailed, UnknownTool
from mspclaw.protocol.frames import Approval, Secret

WINDOWS_TEMP = (Path("C:\\Users\\tom.becker\\AppData\\Local\\Temp"), Path("C:\\Windows\\Temp"))
LINUX_RECORDED = {"system_info", "disk_usage", "top_processes", "network_status", "uptime"}


def _old(path: Path, size: int, days: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    then = time.time() - days * 86400
    os.utime(path, (then, then))


def seed_home(os_name: str, home: Path, temp: Path) -> None:
    """What a real user's machine has lying around: old temp files, browser caches, a crash report."""
    for i in range(3):
        _old(temp / f"installer-{i}.tmp", 4096, 30)
    caches = {"macos": "Library/Caches/Google/Chrome/Default/Cache/Cache_Data",
              "windows": "AppData/Local/Google/Chrome/User Data/Default/Cache/Cache_Data",
              "linux": ".cache/google-chrome/Default/Cache/Cache_Data"}
    for i in range(4):
        _old(home / caches[os_name] / f"f_{i:06d}", 65536, 2)
    if os_name == "macos":
        reports = home / "Library/Logs/DiagnosticReports"
        reports.mkdir(parents=True)
        for ips in (FIXTURES / "macos/DiagnosticReports").glob("*.ips"):
            sidecar_source(ips)
            shutil.copy(ips, reports / ips.name)


class SimulatedDevice:
    def __init__(self, os_name: str, home: Path, site_tools: Mapping[str, ToolFn] | None = None) -> None:
        self.os_name = os_name
        self.home = home
        temp = home / "tmp"
        temp.mkdir(parents=True, exist_ok=True)
        seed_home(os_name, home, temp)
        self.runner = Recorded(os_name)
        self.context = ToolContext(temp_roots=WINDOWS_TEMP if os_name == "windows" else (temp,),
                                   run=self.runner, home=home)
        # os_name is one of the catalogue's OS names; the playbook matrix passes them as plain strings
        self.registry = tool_registry(os_name)  # type: ignore[arg-type]
        self.site = dict(site_tools or {})
        self.secrets: list[Secret] = []
        self.calls: list[tuple[str, dict[str, Any], Approval | None]] = []

    def _replay(self, tool: str, args: dict[str, Any]) -> dict[str, Any]:
        if tool == "check_connectivity":
            out = load_json_fixture(FIXTURES / "network/check_connectivity.json")["output"]
            return {**out, "host": args["host"], "port": args.get("port", 443)}
        name = tool + (f"_{args.get('sort_by', 'cpu')}" if tool == "top_processes" else "")
        return dict(load_json_fixture(FIXTURES / "linux/tools" / f"{name}.json")["output"])

    async def __call__(self, tool: str, args: dict[str, Any], *, reason: str,
                       approval: Approval | None = None) -> dict[str, Any]:
        from mspclaw.tools import get_tool

        spec = get_tool(tool)
        parsed = spec.validate(args)
        if spec.needs_approval(parsed) and approval is None:
            raise AssertionError(f"{tool} reached the device without an approval")
        self.calls.append((tool, parsed.model_dump(mode="json"), approval))
        if spec.runs_on == "site":
            if tool not in self.site:
                raise UnknownTool(f"no site agent offers {tool}")
            result = await asyncio.to_thread(self.site[tool], parsed, self.context)
            if isinstance(result, WithSecret):
                self.secrets.append(result.secret)
                return {**result.output, "handed_over": {"to": "device", "device": "simulated"}}
            return result
        if tool == "check_connectivity" or (self.os_name == "linux" and tool in LINUX_RECORDED):
            return self._replay(tool, parsed.model_dump(mode="json"))
        implementation = self.registry.get(tool)
        if implementation is None:
            raise UnknownTool(f"{tool} is not implemented on {self.os_name}")
        try:
            output = implementation(parsed, self.context)
        except ToolFailed:
            raise
        assert not isinstance(output, WithSecret), f"{tool} is a device tool: it hands over no secret"
        return output
