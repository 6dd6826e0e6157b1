"""A stopped print service is a finding with its fix, and the fix (start it, with approval) works on
Linux and macOS: the exact service-manager commands, then the scheduler asked whether it runs.
The commands enter through the tools' injected runner (what systemd and launchd print is scripted:
neither runs in this container)."""

from __future__ import annotations

import pytest

from mspclaw.agent.tools import ToolContext, tool_registry
from mspclaw.agent.tools.commands import Completed
from mspclaw.errors import ToolFailed
from mspclaw.protocol.frames import OSName
from mspclaw.tools import get_tool


class Machine:
    """CUPS stopped until the service manager starts it (or, with ``broken``, never)."""

    def __init__(self, broken: bool = False) -> None:
        self.running, self.broken = False, broken
        self.ran: list[list[str]] = []

    def __call__(self, argv: list[str], timeout: float) -> Completed:
        self.ran.append(argv)
        if argv[0] in ("systemctl", "launchctl"):
            self.running = not self.broken
            return Completed(tuple(argv), 0, "")
        if argv == ["lpstat", "-r"]:
            return Completed(tuple(argv), 0 if self.running else 1,
                             "scheduler is running\n" if self.running else "scheduler is not running\n")
        if not self.running:
            return Completed(tuple(argv), 1, "", "lpstat: Scheduler is not running.\n")
        return Completed(tuple(argv), 0, "")


@pytest.mark.parametrize(("os_name", "start"), [("linux", ["systemctl", "restart", "cups.service"]),
                                                ("macos", ["launchctl", "kickstart", "-k", "system/org.cups.cupsd"])])
def test_the_stopped_service_is_found_then_started(os_name: OSName, start: list[str]) -> None:
    machine = Machine()
    context = ToolContext(temp_roots=(), run=machine)
    tools = tool_registry(os_name)
    found = tools["printer_queues"](get_tool("printer_queues").validate({}), context)
    assert isinstance(found, dict) and found["scheduler_running"] is False
    assert "not running" in found["finding"] and "approval" in found["fix"]
    assert get_tool("restart_print_spooler").destructive
    started = tools["restart_print_spooler"](get_tool("restart_print_spooler").validate({}), context)
    assert started == {"service": "cups", "started": True, "scheduler_running": True}
    assert start in machine.ran
    again = tools["printer_queues"](get_tool("printer_queues").validate({}), context)
    assert isinstance(again, dict) and again["scheduler_running"] is True


def test_a_service_that_will_not_start_is_a_failure_that_says_where_to_look() -> None:
    context = ToolContext(temp_roots=(), run=Machine(broken=True))
    with pytest.raises(ToolFailed, match=r"still not running.*journalctl"):
        tool_registry("linux")["restart_print_spooler"](get_tool("restart_print_spooler").validate({}), context)
