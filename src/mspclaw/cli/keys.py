"""``mspclaw keys create|list|revoke``: named API keys, through the server's API."""

from __future__ import annotations

from typing import Annotated

import typer

from mspclaw.cli.client import api
from mspclaw.cli.groups import runs_bare
from mspclaw.cli.output import JsonOpt, err, print_json, table

keys_app = typer.Typer(help="Named API keys: scoped to a role and clients, stored hashed, revocable.")


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="What the key is for, e.g. 'psa-bridge'.")],
    role: Annotated[str, typer.Option(help="admin, tech or viewer.")] = "viewer",
    client: Annotated[list[str] | None, typer.Option(help="A client it may see (repeatable).")] = None,
    all_clients: Annotated[bool, typer.Option("--all-clients", help="Every client, present and future.")] = False,
) -> None:
    """Create a named API key. The key is printed once; store it now."""
    row = api().post("/api/keys", {"name": name, "role": role, "clients": client or [],
                              "all_clients": all_clients})
    print(row["key"])
    scope = "every client" if row["all_clients"] else ", ".join(row["clients"])
    err.print(f"key {row['id']} ({row['name']}): {row['role']} on {scope}. Shown once: only its digest is kept.",
              markup=False, highlight=False)


@keys_app.command("list")
def keys_list(as_json: JsonOpt = False) -> None:
    """List API keys (never their secrets)."""
    rows = api().get("/api/keys")
    if as_json:
        print_json(rows)
        return
    table("API keys", ["id", "name", "role", "clients", "created by", "last used", "state"],
          [[k["id"], k["name"], k["role"], "*" if k["all_clients"] else ", ".join(k["clients"]),
            k["created_by"], k["last_used_at"], "revoked" if k["revoked_at"] else "active"] for k in rows])


@keys_app.command("revoke")
def keys_revoke(ref: Annotated[str, typer.Argument(help="Key id or name.")]) -> None:
    """Revoke an API key at once."""
    row = api().post(f"/api/keys/{ref}/revoke")
    print(f"{row['id']} ({row['name']}): revoked")


runs_bare(keys_app, keys_list)
