"""CUPS printers and queues, as ``lpstat``, ``cancel`` and ``cupsenable`` show and change them.

macOS and Linux both print through CUPS, so both use these argument lists and parsers. The
parsers are pure functions of the commands' text output, tested against fixtures written to
the ``printf`` formats of CUPS's ``systemv/lpstat.c`` (``tests/fixtures/{linux,macos}/lpstat_*.txt``,
``tests/agent/test_cups_formats.py``); none is a capture yet.
"""

from __future__ import annotations

import re
from typing import Any

from mspclaw.agent.tools.commands import CommandRunner, Completed
from mspclaw.errors import ToolFailed

JsonObject = dict[str, Any]

LPSTAT_PRINTERS = ["lpstat", "-p"]
LPSTAT_JOBS = ["lpstat", "-o"]
LPSTAT_ACCEPTING = ["lpstat", "-a"]

# The three lines CUPS's systemv/lpstat.c prints per printer (apple/cups, show_printers()):
# "printer %s is idle.  enabled since %s", "printer %s is holding new jobs.  enabled since %s",
# "printer %s now printing %s-%d.  enabled since %s" and "printer %s disabled since %s -".
_PRINTER = re.compile(r"^printer (?P<name>\S+) (?:is (?P<idle>idle)|is (?P<held>holding new jobs)|"
                      r"now printing (?P<job>\S+?)|(?P<disabled>disabled))\.?\s")
_JOB = re.compile(r"^(?P<id>\S+)-(?P<num>\d+)\s+(?P<user>\S+)\s+(?P<size>\d+)\s+(?P<when>.+?)\s*$")
_ACCEPT = re.compile(r"^(?P<name>\S+) (?P<not>not )?accepting requests")


SCHEDULER_STOPPED = "the print service is not running"
SCHEDULER_FIX = ("start the CUPS scheduler with a technician's approval (`systemctl start cups` on Linux, "
                 "`launchctl kickstart -k system/org.cups.cupsd` on macOS), then read the queues again")


def _no_printers(done: Completed) -> bool:
    return done.returncode != 0 and "No destinations added" in (done.stderr + done.stdout)


def _scheduler_stopped(done: Completed) -> bool:
    """CUPS is installed but ``cupsd`` does not answer: lpstat says "Scheduler is not running."."""
    return done.returncode != 0 and "scheduler is not running" in (done.stderr + done.stdout).lower()


def parse_printers(text: str) -> list[JsonObject]:
    """``lpstat -p``: one ``printer NAME is idle.`` line per printer, a reason line under a paused one."""
    printers: list[JsonObject] = []
    for line in text.splitlines():
        found = _PRINTER.match(line)
        if found:
            state = ("idle" if found["idle"] else "holding" if found["held"] else "printing" if found["job"]
                     else "paused")
            printers.append({"name": found["name"], "state": state, "enabled": state != "paused",
                             "reason": None})
        elif line.startswith(("\t", " ")) and printers and line.strip():
            printers[-1]["reason"] = line.strip()
    return printers


def parse_jobs(text: str) -> list[JsonObject]:
    """``lpstat -o``: ``QUEUE-ID USER SIZE DATE`` per waiting job."""
    jobs: list[JsonObject] = []
    for line in text.splitlines():
        found = _JOB.match(line)
        if found:
            jobs.append({"id": f"{found['id']}-{found['num']}", "printer": found["id"], "user": found["user"],
                         "size_bytes": int(found["size"]), "submitted": found["when"]})
    return jobs


def parse_accepting(text: str) -> dict[str, bool]:
    """``lpstat -a``: whether each queue accepts new jobs."""
    return {m["name"]: not m["not"] for line in text.splitlines() if (m := _ACCEPT.match(line))}


def printer_queues(run: CommandRunner) -> JsonObject:
    """Every CUPS printer with its state, whether it accepts jobs, and its waiting jobs.

    When CUPS is installed but its scheduler is stopped, that is the finding (``scheduler_running``
    false, ``finding`` and ``fix``), not an error: no queue can be read until it is started.

    ``attention`` lists printers a user would call "stuck": paused, refusing jobs, holding new
    jobs (``cupsdisable --hold``: nothing new prints until ``cupsenable --release``), or holding
    jobs while not printing.
    """
    printers_done = run(LPSTAT_PRINTERS, 10)
    if _scheduler_stopped(printers_done):
        return {"scheduler_running": False, "finding": SCHEDULER_STOPPED, "fix": SCHEDULER_FIX,
                "printers": [], "jobs": 0, "attention": [], "paused": []}
    if _no_printers(printers_done):
        return {"scheduler_running": True, "printers": [], "jobs": 0, "attention": [], "paused": []}
    printers = parse_printers(printers_done.ok())
    jobs = parse_jobs(run(LPSTAT_JOBS, 10).ok())
    accepting = parse_accepting(run(LPSTAT_ACCEPTING, 10).ok())
    for printer in printers:
        printer["accepting"] = accepting.get(printer["name"], True)
        printer["jobs"] = [j for j in jobs if j["printer"] == printer["name"]]
    attention = [p["name"] for p in printers
                 if not p["enabled"] or not p["accepting"] or p["state"] == "holding"
                 or (p["jobs"] and p["state"] != "printing")]
    return {
        "scheduler_running": True,
        "printers": printers,
        "jobs": len(jobs),
        "attention": attention,
        "paused": [p["name"] for p in printers if not p["enabled"] or not p["accepting"]],
    }


def clear_print_queue(run: CommandRunner, printer: str) -> JsonObject:
    """Cancel every job of one queue (``cancel -a``), then count what is left."""
    _known(run, printer)
    run(["cancel", "-a", printer], 20).ok()
    left = [j for j in parse_jobs(run(LPSTAT_JOBS, 10).ok()) if j["printer"] == printer]
    return {"printer": printer, "cleared": True, "jobs_left": len(left)}


def resume_printer(run: CommandRunner, printer: str) -> JsonObject:
    """Enable a paused printer and make its queue accept jobs again."""
    _known(run, printer)
    run(["cupsenable", printer], 20).ok()
    run(["cupsaccept", printer], 20).ok()
    after = {p["name"]: p for p in parse_printers(run(LPSTAT_PRINTERS, 10).ok())}
    state = after.get(printer, {}).get("state", "unknown")
    return {"printer": printer, "resumed": state != "paused", "state": state}


def _known(run: CommandRunner, printer: str) -> None:
    done = run(LPSTAT_PRINTERS, 10)
    if _scheduler_stopped(done):
        raise ToolFailed(f"{SCHEDULER_STOPPED}; {SCHEDULER_FIX}")
    names = [] if _no_printers(done) else [p["name"] for p in parse_printers(done.ok())]
    if printer not in names:
        raise ToolFailed(f"no printer named {printer!r}; printers here: {', '.join(names) or 'none'}")


LPSTAT_SCHEDULER = ["lpstat", "-r"]


def start_print_service(run: CommandRunner, start: list[str]) -> JsonObject:
    """Start (or restart) the CUPS scheduler with ``start`` (the OS's service manager), then ask it."""
    run(start, 45).ok()
    done = run(LPSTAT_SCHEDULER, 10)
    running = done.returncode == 0 and "scheduler is running" in done.stdout.lower()
    if not running:
        raise ToolFailed(f"`{' '.join(start)}` ran but the print service is still not running; check its log "
                         "(journalctl -u cups on Linux, /var/log/cups/error_log)")
    return {"service": "cups", "started": True, "scheduler_running": True}
