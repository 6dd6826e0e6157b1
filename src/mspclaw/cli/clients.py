"""``mspclaw clients add|list``: the MSP's client companies, through the server's API."""

from __future__ import annotations

from typing import Annotated

import typer

from mspclaw.cli.client import CLIError, api
from mspclaw.cli.groups import runs_bare
from mspclaw.cli.output import JsonOpt, print_json, table

clients_app = typer.Typer(help="Client companies of the MSP.")


@clients_app.command("add")
def clients_add(
    name: Annotated[str, typer.Argument(help="Company name, e.g. 'Acme Dental'.")],
    psa: Annotated[
        list[str] | None, typer.Option(help="PSA id mapping, e.g. --psa superops=4521 (repeatable).")
    ] = None,
) -> None:
    """Add a client company."""
    refs: dict[str, str] = {}
    for item in psa or []:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise CLIError(f"--psa {item!r}: expected PSA=ID, e.g. --psa superops=4521")
        refs[key] = value
    client = api().post("/api/clients", {"name": name, "psa_refs": refs})
    print(client["id"])


@clients_app.command("list")
def clients_list(as_json: JsonOpt = False) -> None:
    """List client companies."""
    rows = api().get("/api/clients")
    if as_json:
        return print_json(rows)
    table("Clients", ["id", "name", "psa ids"], [[c["id"], c["name"], c["psa_refs"] or ""] for c in rows])


runs_bare(clients_app, clients_list)
