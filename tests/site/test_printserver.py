"""The print-server adapter against a real private cupsd on loopback (``cups_server.py``)."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.site.cups_server import CUPSD, MISSING, CupsServer, cups_server

from mspclaw.agent.site.config import CupsConfig
from mspclaw.agent.site.printserver import PrintServer, parse_queues
from mspclaw.agent.site.services import service_tools
from mspclaw.agent.tools import ToolContext
from mspclaw.errors import IntegrationAuthFailed, IntegrationError, IntegrationUnreachable
from mspclaw.tools.site_services import SITE_SERVICE_TOOLS

pytestmark = pytest.mark.skipif(CUPSD is None or bool(MISSING), reason=f"CUPS is not installed (cupsd, {MISSING}): "
                                "apt-get install cups cups-client cups-bsd")
SPECS = {spec.name: spec for spec in SITE_SERVICE_TOOLS}


@pytest.fixture(scope="module")
def cups(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CupsServer]:
    yield from cups_server(tmp_path_factory.mktemp("cups"))


def call(server: PrintServer, tool: str, args: dict[str, object] | None = None) -> dict[str, Any]:
    out = service_tools(None, server, None)[tool](SPECS[tool].validate(args or {}), ToolContext(temp_roots=()))
    assert isinstance(out, dict)
    return out


def test_a_paused_queue_with_waiting_jobs_is_reported_stuck_and_clearing_it_leaves_it_empty_and_enabled(
        cups: CupsServer) -> None:
    cups.add_queue("Office-2F")
    cups.add_queue("lab")
    cups.run("cupsdisable", "-r", "Paper jam reported", "Office-2F")
    cups.submit("Office-2F", 3)
    server = PrintServer(CupsConfig(server=cups.server, timeout_s=10))
    assert server.check()["ok"] is True

    before = call(server, "print_server_queues")
    queues = {q["name"]: q for q in before["queues"]}
    office = queues["Office-2F"]
    assert (office["state"], office["enabled"], office["reason"]) == ("stopped", False, "Paper jam reported")
    assert office["pending_jobs"] == 3 and office["stuck_jobs"] == 3
    assert all(job["stuck"] and job["age_minutes"] == 0 for job in office["jobs"])
    assert queues["lab"]["state"] == "idle" and queues["lab"]["pending_jobs"] == 0
    assert before["attention"] == ["Office-2F"] and before["stuck_jobs"] == 3

    out = call(server, "print_server_clear_queue", {"queue": "Office-2F"})
    assert out == {"queue": "Office-2F", "cancelled_jobs": 3, "jobs_left": 0, "state": "idle", "enabled": True,
                   "accepting": True, "cleared": True}
    assert cups.run("lpstat", "-o", "Office-2F") == ""
    assert "Office-2F is idle.  enabled" in cups.run("lpstat", "-p", "Office-2F")
    after = call(server, "print_server_queues")
    assert after["attention"] == [] and after["stuck_jobs"] == 0


def test_a_rejecting_queue_is_made_to_accept_again(cups: CupsServer) -> None:
    cups.add_queue("reception")
    cups.run("cupsreject", "-r", "maintenance", "reception")
    server = PrintServer(CupsConfig(server=cups.server, timeout_s=10))
    (queue,) = [q for q in server.queues() if q.name == "reception"]
    assert queue.accepting is False and queue.needs_attention
    assert server.clear_queue("reception")["accepting"] is True


def test_unknown_queue_and_unreachable_server_say_what_to_do(cups: CupsServer) -> None:
    server = PrintServer(CupsConfig(server=cups.server, timeout_s=10))
    with pytest.raises(IntegrationError, match=r"has no queue named 'nosuch'; its queues: .*lab"):
        server.clear_queue("nosuch")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{sock.getsockname()[1]}"
    with pytest.raises(IntegrationUnreachable, match="does not answer"):
        PrintServer(CupsConfig(server=closed, timeout_s=5)).check()


def test_a_refused_cancel_reports_what_was_and_was_not_changed() -> None:
    listing = ("printer q1 disabled since Sun Dec  6 08:35:46 2026 -\n\tPaused\n")

    def runner(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        if argv[0] == "lpstat":
            return subprocess.CompletedProcess(argv, 0, listing if "-p" in argv else "", "")
        return subprocess.CompletedProcess(argv, 1, "", f"{argv[0]}: Forbidden")

    with pytest.raises(IntegrationAuthFailed, match=r"refused .*changed: nothing; not changed: cancelled 0 job"):
        PrintServer(CupsConfig(server="print01:631"), run=runner).clear_queue("q1")


def test_old_jobs_on_an_enabled_queue_count_as_stuck() -> None:
    now = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
    (queue,) = parse_queues("printer q is idle.  enabled since Sun Dec  6 08:00:00 2026\n",
                            "q-7   bob   2048   Sun Dec  6 08:30:00 2026\nq-8   ann   10   Sun Dec  6 08:59:00 2026\n",
                            "q accepting requests since Sun Dec  6 08:00:00 2026\n", now=now,
                            stuck_after=timedelta(minutes=10))
    assert [job.job_id for job in queue.stuck_jobs] == ["q-7"] and queue.needs_attention
    jobs = queue.as_json(now)["jobs"]
    assert isinstance(jobs, list) and jobs[0]["age_minutes"] == 30


def test_the_catalogue_refuses_a_queue_name_that_could_be_an_option() -> None:
    from mspclaw.errors import InvalidArguments

    with pytest.raises(InvalidArguments):
        SPECS["print_server_clear_queue"].validate({"queue": "-a"})
