"""A CUPS print server at the site, read and repaired with the CUPS command-line clients.

``lpstat -h SERVER -p/-o/-a`` read the queues, their reasons and waiting jobs; ``cancel -a``,
``cupsenable`` and ``cupsaccept`` clear and resume one queue. The clients speak IPP to the server
themselves (encryption with ``-E``, the user with ``-U``), so this file holds no IPP encoder, and the
commands are exactly what an administrator would type to check the work. Each runs from an argument
list (never a shell) with ``LC_ALL=C`` and ``TZ=UTC`` (dates in a known format) and a timeout; output
is bounded. Queue names come validated by the catalogue's pattern, which never starts with ``-``, so
no name can be read as an option.

The CUPS clients ask for a password on a terminal only; the site agent has none, so the server's
policy must let this host (or ``user`` with local or Kerberos credentials) manage its queues.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mspclaw.agent.site.config import CupsConfig
from mspclaw.errors import IntegrationAuthFailed, IntegrationError, IntegrationUnreachable

MAX_OUTPUT = 2 * 1024 * 1024
STUCK_AFTER = timedelta(minutes=10)

Runner = Callable[[list[str], float], "subprocess.CompletedProcess[str]"]
"""``(argv, timeout_s) -> CompletedProcess``; the default runs the real CUPS client."""

_PRINTER = re.compile(r"^printer (?P<name>\S+) (?:is (?P<idle>idle)|is (?P<held>holding new jobs)|"
                      r"now printing (?P<job>\S+?)|(?P<disabled>disabled))[.\s]")
_JOB = re.compile(r"^(?P<queue>\S+)-(?P<num>\d+)\s+(?P<user>\S+)\s+(?P<size>\d+)\s+(?P<when>.+?)\s*$")
_ACCEPT = re.compile(r"^(?P<name>\S+) (?P<not>not )?accepting requests")


@dataclass(frozen=True)
class PrintJob:
    job_id: str
    queue: str
    user: str
    size_bytes: int
    submitted: datetime | None


@dataclass(frozen=True)
class PrintQueue:
    name: str
    state: str
    """idle, printing, holding (new jobs held) or stopped (disabled/paused)."""
    reason: str | None
    accepting: bool
    jobs: tuple[PrintJob, ...]
    stuck_jobs: tuple[PrintJob, ...]

    @property
    def needs_attention(self) -> bool:
        return self.state in ("stopped", "holding") or not self.accepting or bool(self.stuck_jobs)

    def as_json(self, now: datetime | None = None) -> dict[str, object]:
        now = now or datetime.now(UTC)
        stuck = {job.job_id for job in self.stuck_jobs}
        return {"name": self.name, "state": self.state, "enabled": self.state != "stopped",
                "accepting": self.accepting, "reason": self.reason, "pending_jobs": len(self.jobs),
                "stuck_jobs": len(self.stuck_jobs),
                "jobs": [{"id": job.job_id, "user": job.user, "size_bytes": job.size_bytes,
                          "submitted": job.submitted.isoformat() if job.submitted else None,
                          "age_minutes": int((now - job.submitted).total_seconds() // 60) if job.submitted else None,
                          "stuck": job.job_id in stuck} for job in self.jobs[:200]]}


def _when(text: str) -> datetime | None:
    """lpstat's C-locale date ("Sun Dec  6 08:35:46 2026"), printed in UTC because TZ=UTC."""
    try:
        return datetime.strptime(" ".join(text.split()), "%a %b %d %H:%M:%S %Y").replace(tzinfo=UTC)
    except ValueError:
        return None


def parse_queues(printers: str, jobs: str, accepting: str, *, now: datetime,
                 stuck_after: timedelta = STUCK_AFTER) -> list[PrintQueue]:
    """``lpstat -p``, ``-o`` and ``-a`` output as queues. A job is stuck when its queue is stopped or it
    has waited longer than ``stuck_after``."""
    accepts = {m["name"]: not m["not"] for line in accepting.splitlines() if (m := _ACCEPT.match(line))}
    waiting: dict[str, list[PrintJob]] = {}
    for line in jobs.splitlines():
        if found := _JOB.match(line):
            job = PrintJob(f"{found['queue']}-{found['num']}", found["queue"], found["user"], int(found["size"]),
                           _when(found["when"]))
            waiting.setdefault(job.queue, []).append(job)
    rows: list[tuple[str, str, str | None]] = []
    for line in printers.splitlines():
        if found := _PRINTER.match(line):
            state = ("idle" if found["idle"] else "holding" if found["held"] else "printing" if found["job"]
                     else "stopped")
            rows.append((found["name"], state, None))
        elif line.startswith(("\t", " ")) and rows and line.strip():
            name, state, _ = rows[-1]
            rows[-1] = (name, state, line.strip()[:300])
    queues = []
    for name, state, reason in rows:
        pending = tuple(waiting.get(name, ()))
        stuck = tuple(job for job in pending if state == "stopped"
                      or (job.submitted is not None and now - job.submitted > stuck_after))
        queues.append(PrintQueue(name, state, reason, accepts.get(name, True), pending, stuck))
    return queues


def _program(name: str) -> str:
    return shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else name)


def run_cups(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "TZ": "UTC"}
    return subprocess.run([_program(argv[0]), *argv[1:]], capture_output=True, text=True, timeout=timeout,
                          env=env, check=False, stdin=subprocess.DEVNULL, errors="replace")


class PrintServer:
    """The site's CUPS server, through ``lpstat``/``cancel``/``cupsenable``/``cupsaccept`` with ``-h``."""

    def __init__(self, config: CupsConfig, *, run: Runner = run_cups, stuck_after: timedelta = STUCK_AFTER,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.config = config
        self._run = run
        self._stuck_after = stuck_after
        self._clock = clock

    def _cmd(self, program: str, *args: str) -> str:
        argv = [program, "-h", self.config.server]
        if self.config.encrypt:
            argv.append("-E")
        if self.config.user:
            argv += ["-U", self.config.user]
        argv += list(args)
        shown = " ".join(argv)
        try:
            done = self._run(argv, self.config.timeout_s)
        except FileNotFoundError as exc:
            raise IntegrationError(f"`{program}` is not installed on the site agent's machine; install the CUPS "
                                   "clients (Debian/Ubuntu: cups-client cups-bsd)") from exc
        except subprocess.TimeoutExpired as exc:
            raise IntegrationUnreachable(f"`{shown}` got no answer from the print server {self.config.server} "
                                         f"within {self.config.timeout_s:g} s") from exc
        text = (done.stdout or "")[:MAX_OUTPUT]
        if done.returncode == 0:
            return text
        error = ((done.stderr or "").strip() or text.strip()).splitlines()[-1:] or [f"exit code {done.returncode}"]
        detail = error[0][:300]
        lowered = detail.lower()
        if "no destinations added" in lowered:
            return ""
        if "scheduler is not running" in lowered or "unable to connect" in lowered or "connection refused" in lowered:
            raise IntegrationUnreachable(f"the print server {self.config.server} does not answer ({detail}); check "
                                         "cupsd runs there and listens on that address and port")
        if "forbidden" in lowered or "not authorized" in lowered or "unauthorized" in lowered:
            raise IntegrationAuthFailed(f"the print server {self.config.server} refused `{shown}` ({detail}); allow "
                                        "this host or the configured user to administer queues in its cupsd.conf")
        raise IntegrationError(f"`{shown}` failed on the print server {self.config.server}: {detail}")

    def queues(self) -> list[PrintQueue]:
        printers = self._cmd("lpstat", "-p")
        jobs = self._cmd("lpstat", "-o") if printers else ""
        accepting = self._cmd("lpstat", "-a") if printers else ""
        return parse_queues(printers, jobs, accepting, now=self._clock(), stuck_after=self._stuck_after)

    def check(self) -> dict[str, object]:
        """Read the queues: proves the server answers and this host may list them."""
        queues = self.queues()
        return {"ok": True, "server": self.config.server, "queues": len(queues),
                "can": ["list queues and stuck jobs", "cancel a queue's jobs and resume it"]}

    def _queue(self, name: str) -> PrintQueue:
        queues = self.queues()
        for queue in queues:
            if queue.name == name:
                return queue
        for queue in queues:
            if queue.name.lower() == name.lower():
                return queue
        raise IntegrationError(f"the print server {self.config.server} has no queue named {name!r}; its queues: "
                               f"{', '.join(q.name for q in queues[:50]) or 'none'}")

    def clear_queue(self, name: str) -> dict[str, object]:
        """Cancel every job of one queue, then enable it and make it accept jobs; report what is left."""
        queue = self._queue(name)
        changed: list[str] = []
        steps = (("cancel", "-a", f"cancelled {len(queue.jobs)} job(s)"),
                 ("cupsenable", "", "enabled the queue"),
                 ("cupsaccept", "", "made it accept jobs"))
        for program, flag, what in steps:
            try:
                self._cmd(program, *(a for a in (flag, queue.name) if a))
            except IntegrationError as exc:
                left = [w for _, _, w in steps if w not in changed and w != what]
                raise type(exc)(f"{exc.message} while clearing {queue.name}", changed=tuple(changed),
                                unchanged=(what, *left)) from exc
            changed.append(what)
        after = self._queue(queue.name)
        return {"queue": after.name, "cancelled_jobs": len(queue.jobs), "jobs_left": len(after.jobs),
                "state": after.state, "enabled": after.state != "stopped", "accepting": after.accepting,
                "cleared": not after.jobs and after.state != "stopped" and after.accepting}
