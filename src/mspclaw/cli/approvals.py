"""``mspclaw approvals list|approve|deny``: destructive steps waiting for a technician."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer

from mspclaw.cli.client import api
from mspclaw.cli.groups import runs_bare
from mspclaw.cli.output import JsonOpt, print_json, table

approvals_app = typer.Typer(help="Destructive steps waiting for a technician.")


@approvals_app.command("list")
def approvals_list(as_json: JsonOpt = False) -> None:
    """List approvals waiting for a decision."""
    rows = api().get("/api/approvals")
    if as_json:
        return print_json(rows)
    now = datetime.now(UTC)
    table("Pending approvals", ["id", "tool", "device", "reason", "args", "auto-deny in"],
          [[a["id"], a["tool"], a["target"], a["reason"], json.dumps(a["args"]),
            f"{max(0, int((datetime.fromisoformat(a['deadline']) - now).total_seconds()))} s"] for a in rows])


@approvals_app.command("approve")
def approvals_approve(approval_id: str,
                      approver: Annotated[str, typer.Option("--as", help="Your name, recorded in the audit.")],
                      reason: Annotated[str, typer.Option(help="Optional note.")] = "") -> None:
    """Approve a pending destructive step."""
    row = api().post(f"/api/approvals/{approval_id}/approve", {"approver": approver, "reason": reason})
    if row["status"] == "pending":  # a two-person tool (MSPCLAW_TWO_PERSON_TOOLS): one of two approvals
        print(f"{row['id']}: first approval of {row['tool']} recorded; a second, different technician must approve")
    else:
        print(f"{row['id']}: {row['status']} by {row['approver']}")


@approvals_app.command("deny")
def approvals_deny(approval_id: str,
                   approver: Annotated[str, typer.Option("--as", help="Your name, recorded in the audit.")],
                   reason: Annotated[str, typer.Option(help="Why; goes into the ticket's escalation.")] = "") -> None:
    """Deny a pending destructive step; the ticket is escalated."""
    row = api().post(f"/api/approvals/{approval_id}/deny", {"approver": approver, "reason": reason})
    print(f"{row['id']}: {row['status']} by {row['approver']}")


runs_bare(approvals_app, approvals_list)
