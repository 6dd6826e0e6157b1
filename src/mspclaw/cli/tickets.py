"""``mspclaw tickets feedback|submit|show``: open tickets by hand, look at what happened, record the
end user's answer to "did it work?"."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.markup import escape

from mspclaw.cli.client import CLIError, api
from mspclaw.cli.output import JsonOpt, err, out, print_json, table

tickets_app = typer.Typer(help="Open tickets by hand and look at what happened.", no_args_is_help=True)


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
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the outcome and show it.")] = False,
) -> None:
    """Open a ticket and start working on it."""
    client_api = api()
    created = client_api.post("/api/tickets", {"client": client, "subject": subject, "body": body,
                                               "requester": requester, "device": device})
    print(created["ticket_id"])
    if wait:
        with err.status("working on the ticket...") as status:
            while True:
                ticket = client_api.get(f"/api/tickets/{created['ticket_id']}")
                if ticket["status"] in ("resolved", "escalated"):
                    break
                pending = [a for a in ticket["approvals"] if a["status"] == "pending"]
                if pending:
                    status.update(f"waiting for approval {pending[0]['id']} ({pending[0]['tool']}): "
                                  f"mspclaw approvals approve {pending[0]['id']} --as NAME")
                time.sleep(0.5)
        show_ticket(ticket)


@tickets_app.command("show")
def tickets_show(ticket_id: str, as_json: JsonOpt = False) -> None:
    """Show a ticket: status, playbook, steps, approvals, note and reply."""
    ticket = api().get(f"/api/tickets/{ticket_id}")
    if as_json:
        return print_json(ticket)
    show_ticket(ticket)


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
