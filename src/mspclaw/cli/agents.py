"""``mspclaw enroll`` and ``mspclaw agents list``: enrollment codes for new agents, and the enrolled agents."""

from __future__ import annotations

from typing import Annotated

import typer

from mspclaw.cli.client import api
from mspclaw.cli.config import settings
from mspclaw.cli.groups import runs_bare
from mspclaw.cli.output import JsonOpt, err, print_json, table

agents_app = typer.Typer(help="Enrolled agents and whether they are online.")


def enroll(
    client: Annotated[str, typer.Argument(help="Client id or name.")],
    role: Annotated[str, typer.Option(help="'device' (an end user's machine) or 'site'.")] = "device",
    ttl_hours: Annotated[float, typer.Option(help="Hours the code stays valid.")] = 24.0,
) -> None:
    """Print a single-use enrollment code for a new agent of CLIENT."""
    issued = api().post("/api/enrollments", {"client": client, "role": role, "ttl_hours": ttl_hours})
    print(issued["code"])
    err.print(f"single-use, {role} agent, expires {issued['expires_at']}. On the machine run:\n"
              f"  mspclaw agent --server {settings().server_url} --enroll {issued['code']}")


@agents_app.command("list")
def agents_list(client: Annotated[str | None, typer.Option(help="Only this client.")] = None,
                as_json: JsonOpt = False) -> None:
    """List agents with their online state."""
    rows = api().get("/api/agents", client=client)
    if as_json:
        return print_json(rows)
    table("Agents", ["id", "client", "host", "os", "role", "state", "last seen"],
          [[a["id"], a["client_id"], a["hostname"], a["os"], a["role"],
            "revoked" if a["revoked"] else ("online" if a["online"] else "offline"), a["last_seen_at"]]
           for a in rows])


runs_bare(agents_app, agents_list)
