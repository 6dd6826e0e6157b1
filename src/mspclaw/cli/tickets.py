"""``mspclaw tickets list|submit|show|feedback``: open tickets by hand, look at what happened, record
the end user's answer to "did it work?"."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.markup import escape

from mspclaw.cli.client import ApiClient, CLIError, WaitTimedOut, api
from mspclaw.cli.exits import ExitCode
from mspclaw.cli.groups import runs_bare
from mspclaw.cli.output import JsonOpt, err, out, print_json, table

tickets_app = typer.Typer(help="Open tickets by hand and look at what happened.")

FINISHED = ("resolved", "escalated")
"""A ticket in one of these states is done with (until the user's feedback reopens it)."""
POLL_S = 0.5
TimeoutOpt = Annotated[float, typer.Option("--timeout", min=1, help="With --wait: give up after this many "
                                           "seconds and exit 4 (the work goes on on the server).")]


@tickets_app.command("list")
def tickets_list(
    status: Annotated[str | None, typer.Option(help="Only this status: in_progress, resolved, escalated, "
                                                    "reopened.")] = None,
    client: Annotated[str | None, typer.Option(help="Only this client (id or name).")] = None,
    since: Annotated[str | None, typer.Option(help="Opened since: ISO time or age (30m, 12h, 7d).")] = None,
    playbook: Annotated[str | None, typer.Option(help="Only tickets worked by this playbook.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="At most this many, newest first.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """List tickets, newest first: status, client, playbook, subject."""
    rows = api().get("/api/tickets", status=status, client=client, since=since, playbook=playbook, limit=limit)
    if as_json:
        print_json(rows)
        return
    table("Tickets", ["id", "status", "client", "playbook", "subject", "requester", "opened"],
          [[t["id"], t["status"], t["client_id"], t["playbook"], t["subject"][:80], t["requester"],
            t["created_at"][:19].replace("T", " ")] for t in rows])


@tickets_app.command("feedback")
def tickets_feedback(
    ticket_id: str,
    answer: Annotated[str, typer.Argument(help="yes, no or partial.")],
    comment: Annotated[str, typer.Option(help="What the user said.")] = "",
    by: Annotated[str, typer.Option(help="Who answered (recorded).")] = "end user",
) -> None:
    """Record the end user's answer to "did it work?"; "no" reopens the ticket for a technician."""
    if answer not in ("yes", "no", "partial"):
        raise CLIError(f"answer must be yes, no or partial, not {answer!r}")
    row = api().post(f"/api/tickets/{ticket_id}/feedback", {"answer": answer, "comment": comment, "answered_by": by})
    print(f"{row['ticket_id']}: {row['status']}")


@tickets_app.command("submit")
def tickets_submit(
    client: Annotated[str, typer.Option(help="Client id or name.")],
    subject: Annotated[str, typer.Option(help="What the user wrote as the subject.")],
    body: Annotated[str, typer.Option(help="The ticket text.")] = "",
    requester: Annotated[str, typer.Option(help="The end user's e-mail.")] = "",
    device: Annotated[str | None, typer.Option(help="Device id or host name (default: routed).")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the outcome and show it; exit 5 when the "
                                                      "ticket is escalated.")] = False,
    timeout: TimeoutOpt = 300.0,
    as_json: JsonOpt = False,
) -> None:
    """Open a ticket and start working on it; prints its id (with --wait, the outcome)."""
    client_api = api()
    created = client_api.post("/api/tickets", {"client": client, "subject": subject, "body": body,
                                               "requester": requester, "device": device})
    if not wait:
        if as_json:
            print_json(created)
        else:
            print(created["ticket_id"])
        return
    if not as_json:
        print(created["ticket_id"])
    ticket = wait_for_ticket(client_api, created["ticket_id"], timeout)
    if as_json:
        print_json(ticket)
    else:
        show_ticket(ticket)
    if ticket["status"] != "resolved":
        raise typer.Exit(ExitCode.NOT_RESOLVED)


@tickets_app.command("show")
def tickets_show(ticket_id: str, as_json: JsonOpt = False) -> None:
    """Show a ticket: status, playbook, steps, approvals, note and reply."""
    ticket = api().get(f"/api/tickets/{ticket_id}")
    if as_json:
        return print_json(ticket)
    show_ticket(ticket)


def wait_for_ticket(client_api: ApiClient, ticket_id: str, timeout: float) -> dict[str, Any]:
    """Poll the ticket until it is resolved or escalated, printing each new step and approval on standard
    error as it happens; :class:`WaitTimedOut` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    seen_steps = 0
    seen_approvals: dict[str, str] = {}
    while True:
        ticket: dict[str, Any] = client_api.get(f"/api/tickets/{ticket_id}")
        for step in ticket["steps"][seen_steps:]:
            err.print(f"{ticket_id}: step {step['index']}: {step['title']}"
                      + (f" ({step['tool']}): {step['summary']}" if step["tool"] else ""),
                      markup=False, highlight=False)
        seen_steps = max(seen_steps, len(ticket["steps"]))
        for a in ticket["approvals"]:
            if seen_approvals.get(a["id"]) == a["status"]:
                continue
            seen_approvals[a["id"]] = a["status"]
            if a["status"] == "pending":
                err.print(f"{ticket_id}: waiting for approval {a['id']} ({a['tool']}): "
                          f"mspclaw approvals approve {a['id']} --as NAME", markup=False, highlight=False)
            else:
                err.print(f"{ticket_id}: approval {a['id']} {a['status']}"
                          + (f" by {a['approver']}" if a["approver"] else ""), markup=False, highlight=False)
        if ticket["status"] in FINISHED:
            return ticket
        if time.monotonic() >= deadline:
            raise WaitTimedOut(f"{ticket_id} is still {ticket['status']} after {timeout:g} s; it goes on on the "
                               f"server: mspclaw tickets show {ticket_id}")
        time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))


def show_ticket(t: dict[str, Any]) -> None:
    """Print a ticket as ``GET /api/tickets/{id}`` answers it: status, steps, approvals, note and reply."""
    out.print(f"[bold]{escape(t['id'])}[/bold]  {escape(t['subject'])}  -> {escape(t['status'])}"
              + (f"  (playbook {escape(t['playbook'])})" if t["playbook"] else ""))
    if t["steps"]:
        table("Steps", ["#", "step", "tool", "result"],
              [[s["index"], s["title"], s["tool"], s["summary"]] for s in t["steps"]])
    for a in t["approvals"]:
        out.print(f"approval {a['id']}: {a['tool']} {a['status']}" + (f" by {a['approver']}" if a["approver"] else ""),
                  markup=False, highlight=False)
    for title, key in (("Internal note", "note"), ("Reply to the user", "reply")):
        if t[key]:
            out.print(f"\n[bold]{title}[/bold]")
            out.print(t[key], markup=False, highlight=False)


runs_bare(tickets_app, tickets_list)
