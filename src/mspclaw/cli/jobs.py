"""``mspclaw run-ticket`` and ``mspclaw jobs list|retry|cancel``: the durable intake queue of PSA tickets."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from mspclaw.cli.client import CLIError, api
from mspclaw.cli.output import JsonOpt, err, print_json, table
from mspclaw.cli.tickets import show_ticket

jobs_app = typer.Typer(help="The durable intake queue: PSA tickets waiting, running, failed.", no_args_is_help=True)


def run_ticket(
    psa: Annotated[str, typer.Option(help="PSA account name, e.g. superops.")],
    ticket: Annotated[str, typer.Option(help="The ticket's id in that PSA.")],
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for the outcome.")] = True,
) -> None:
    """Process one PSA ticket by hand, through the running server's queue."""
    client_api = api()
    job = client_api.post(f"/api/psa/{psa}/tickets/{ticket}/run")
    print(job["id"])
    if not wait:
        return
    with err.status(f"job {job['id']}: waiting for {psa} ticket {ticket}..."):
        while job["status"] in ("queued", "running"):
            time.sleep(0.5)
            job = client_api.get(f"/api/jobs/{job['id']}")
    if job["status"] != "done":
        raise CLIError(f"job {job['id']} is {job['status']}: {job['last_error']}")
    tickets = client_api.get("/api/tickets", limit=500)
    mine = next((t for t in tickets if t.get("external_id") == ticket and t.get("psa") == psa), None)
    if mine is None:
        print(f"{psa} ticket {ticket}: escalated in the PSA (see its internal note)")
    else:
        show_ticket(mine)


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
