"""``mspclaw run-ticket`` and ``mspclaw jobs list|retry|cancel``: the durable intake queue of PSA tickets."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from mspclaw.cli.client import CLIError, WaitTimedOut, api
from mspclaw.cli.exits import ExitCode
from mspclaw.cli.groups import runs_bare
from mspclaw.cli.output import JsonOpt, err, print_json, table
from mspclaw.cli.tickets import FINISHED, POLL_S, TimeoutOpt, show_ticket, wait_for_ticket

jobs_app = typer.Typer(help="The durable intake queue: PSA tickets waiting, running, failed.")


def run_ticket(
    psa: Annotated[str, typer.Option(help="PSA account name, e.g. superops.")],
    ticket: Annotated[str, typer.Option(help="The ticket's id in that PSA.")],
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for the outcome; exit 5 when the ticket "
                                                                "is escalated.")] = True,
    timeout: TimeoutOpt = 300.0,
) -> None:
    """Process one PSA ticket by hand, through the running server's queue."""
    client_api = api()
    job = client_api.post(f"/api/psa/{psa}/tickets/{ticket}/run")
    print(job["id"])
    if not wait:
        return
    deadline = time.monotonic() + timeout
    err.print(f"job {job['id']}: {job['status']}, {psa} ticket {ticket}", markup=False, highlight=False)
    while job["status"] in ("queued", "running"):
        if time.monotonic() >= deadline:
            raise WaitTimedOut(f"job {job['id']} is still {job['status']} after {timeout:g} s; it goes on on "
                               "the server: mspclaw jobs list")
        time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))
        status, job = job["status"], client_api.get(f"/api/jobs/{job['id']}")
        if job["status"] != status:
            err.print(f"job {job['id']}: {job['status']}", markup=False, highlight=False)
    if job["status"] != "done":
        raise CLIError(f"job {job['id']} is {job['status']}: {job['last_error']}")
    tickets = client_api.get("/api/tickets", limit=500)
    mine = next((t for t in tickets if t.get("external_id") == ticket and t.get("psa") == psa), None)
    if mine is None:
        print(f"{psa} ticket {ticket}: escalated in the PSA (see its internal note)")
        raise typer.Exit(ExitCode.NOT_RESOLVED)
    remaining = max(1.0, deadline - time.monotonic())
    if mine["status"] not in FINISHED:
        mine = wait_for_ticket(client_api, mine["id"], remaining)
    show_ticket(mine)
    if mine["status"] != "resolved":
        raise typer.Exit(ExitCode.NOT_RESOLVED)


@jobs_app.command("list")
def jobs_list(status: Annotated[str | None, typer.Option(help="queued, running, done, dead or cancelled.")] = None,
              as_json: JsonOpt = False) -> None:
    """List intake jobs, newest first."""
    rows = api().get("/api/jobs", status=status)
    if as_json:
        return print_json(rows)
    table("Jobs", ["id", "status", "psa", "ticket", "attempts", "next try", "last error"],
          [[j["id"], j["status"], j["payload"].get("psa"), j["payload"].get("ticket_id"),
            f"{j['attempts']}/{j['max_attempts']}", j["run_after"] if j["status"] == "queued" else "",
            j["last_error"]] for j in rows])


@jobs_app.command("retry")
def jobs_retry(job_id: str) -> None:
    """Queue a failed, dead or cancelled job again now."""
    job = api().post(f"/api/jobs/{job_id}/retry")
    print(f"{job['id']}: {job['status']}")


@jobs_app.command("cancel")
def jobs_cancel(job_id: str) -> None:
    """Cancel a queued or running job."""
    job = api().post(f"/api/jobs/{job_id}/cancel")
    print(f"{job['id']}: {job['status']}")


runs_bare(jobs_app, jobs_list)
