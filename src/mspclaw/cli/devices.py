"""``mspclaw devices list|show|forget``: what MSPclaw remembers about each device (device memory),
through the server's API."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from mspclaw.cli.client import api
from mspclaw.cli.groups import runs_bare
from mspclaw.cli.output import JsonOpt, out, print_json, table

devices_app = typer.Typer(help="What MSPclaw remembers about each device (device memory).")


@devices_app.command("list")
def devices_list(client: Annotated[str | None, typer.Option(help="Only this client (id or name).")] = None,
                 as_json: JsonOpt = False) -> None:
    """List devices with their primary user and how many facts are known."""
    rows = api().get("/api/devices", client=client)
    if as_json:
        print_json(rows)
        return
    table("Devices", ["id", "client", "host", "os", "primary user", "facts"],
          [[d["id"], d["client_id"], d["hostname"], d["os"], d["primary_user"], d["facts"]] for d in rows])


@devices_app.command("show")
def devices_show(device_id: str, as_json: JsonOpt = False) -> None:
    """Show every fact known about a device, with where it came from and when."""
    d = api().get(f"/api/devices/{device_id}")
    if as_json:
        print_json(d)
        return
    out.print(f"[bold]{escape(d['id'])}[/bold]  {escape(d['hostname'])} ({escape(d['os'])})  client "
              f"{escape(d['client_id'])}  primary user: {escape(d['primary_user'] or '-')}")
    table("Facts", ["fact", "value", "source", "updated"],
          [[f["key"], f["value"], f["source"], f["updated_at"]] for f in d["known"]])


@devices_app.command("forget")
def devices_forget(device_id: str,
                   yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False) -> None:
    """Remove every fact MSPclaw learned about a device (audited)."""
    if not yes and not typer.confirm(f"Forget everything known about {device_id}?"):
        raise typer.Exit(1)
    result = api().post(f"/api/devices/{device_id}/forget")
    print(f"{result['device_id']}: forgot {len(result['forgotten'])} facts"
          + (f" ({', '.join(result['forgotten'])})" if result["forgotten"] else ""))


runs_bare(devices_app, devices_list)
