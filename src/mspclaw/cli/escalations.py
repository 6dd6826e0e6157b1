"""``mspclaw escalations list|show``: structured hand-offs to technicians and their notifications."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from mspclaw.cli.client import api
from mspclaw.cli.groups import runs_bare
from mspclaw.cli.output import JsonOpt, out, print_json, table

escalations_app = typer.Typer(help="Structured hand-offs to technicians and their notifications.")


@escalations_app.command("list")
def escalations_list(ticket: Annotated[str | None, typer.Option(help="Only this ticket.")] = None,
                     as_json: JsonOpt = False) -> None:
    """List escalations, newest first, with who they were assigned to."""
    rows = api().get("/api/escalations", ticket=ticket)
    if as_json:
        print_json(rows)
        return
    table("Escalations", ["id", "ticket", "client", "kind", "assigned to", "reason", "at"],
          [[e["id"], e["ticket_id"], e["client_id"], e["kind"], e["assigned_to"], e["reason"][:80],
            e["created_at"]] for e in rows])


@escalations_app.command("show")
def escalations_show(escalation_id: str, as_json: JsonOpt = False) -> None:
    """Show one escalation: what was tried, why it failed, next steps, evidence, device facts."""
    e = api().get(f"/api/escalations/{escalation_id}")
    if as_json:
        print_json(e)
        return
    body = e["body"]
    out.print(f"[bold]{escape(e['id'])}[/bold]  ticket {escape(e['ticket_id'])}  {escape(e['kind'])}  -> "
              f"{escape(e['assigned_to'] or '-')}")
    out.print(f"Why: {e['reason']}", markup=False)
    table("Tried", ["#", "step", "tool", "result"],
          [[s["index"], s["title"], s["tool"], s["result"]] for s in body.get("tried", [])])
    for step in body.get("next_steps", []):
        out.print(f"next: {step}", markup=False)
    for ev in body.get("evidence", []):
        out.print(f"evidence {ev['tool']}: {ev['excerpt'][:300]}", markup=False)
    notes = api().get("/api/notifications", ref=e["id"])
    for n in notes:
        out.print(f"notified {n['channel']} ({n['channel_kind']}): {n['status']} after {n['attempts']} "
                  f"attempt(s)" + (f": {n['last_error']}" if n["last_error"] else ""), markup=False)


runs_bare(escalations_app, escalations_list)
