"""``mspclaw tech add|list|remove|passwd|link|reset-2fa``: the technician registry and their logins.

``tech`` edits ``techs.yaml`` in the data directory and keeps passwords in its database, so it
works without a running server.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mspclaw.cli.client import CLIError
from mspclaw.cli.config import settings
from mspclaw.cli.groups import runs_bare
from mspclaw.cli.output import JsonOpt, print_json, table

if TYPE_CHECKING:
    from mspclaw.pipeline.techs import TechRegistry
    from mspclaw.store.audit import AuditLog
    from mspclaw.store.database import Database

tech_app = typer.Typer(help="The technician registry (techs.yaml in the data directory) and their logins.")


def _registry() -> TechRegistry:
    from mspclaw.pipeline.techs import TechRegistry

    return TechRegistry(settings().techs_file())


@tech_app.command("add")
def tech_add(
    name: Annotated[str, typer.Argument(help="Full name, e.g. 'Dana Scully'.")],
    email: Annotated[str, typer.Option(help="Login and identity; unique.")],
    client: Annotated[list[str], typer.Option(help="Client name or id served (repeatable); '*' for every client.")],
    role: Annotated[str, typer.Option(help="admin, tech or viewer.")] = "tech",
    slack_id: Annotated[str | None, typer.Option(help="Slack member id to @mention, e.g. U012AB3CD.")] = None,
    teams_id: Annotated[str | None, typer.Option(help="Teams user (UPN or AAD object id) to @mention.")] = None,
    on_duty: Annotated[list[str] | None, typer.Option(help="Shift like 'mon-fri 08:00-18:00' (repeatable); "
                                                           "none: always on duty.")] = None,
    timezone: Annotated[str, typer.Option(help="IANA time zone of the shifts.")] = "UTC",
) -> None:
    """Add a technician to techs.yaml (locked, atomic: safe while others edit it)."""
    from mspclaw.pipeline.techs import tech_from

    tech = tech_from({"name": name, "email": email, "role": role, "slack_id": slack_id, "teams_id": teams_id,
                      "clients": client, "on_duty": on_duty or [], "timezone": timezone})
    registry = _registry()
    registry.add(tech)
    _audit("tech_added", {"email": tech.email, "role": tech.role, "clients": tech.clients})
    print(f"{tech.email}: added to {registry.path}")


@tech_app.command("list")
def tech_list(as_json: JsonOpt = False) -> None:
    """List technicians and whether each is on duty now."""
    now = datetime.now(UTC)
    techs = _registry().techs()
    if as_json:
        print_json([t.model_dump() | {"on_duty_now": t.on_duty_at(now)} for t in techs])
        return
    table("Technicians", ["name", "email", "role", "clients", "slack", "teams", "on duty", "now"],
          [[t.name, t.email, t.role, ", ".join(t.clients), t.slack_id, t.teams_id,
            "; ".join(t.on_duty) or "always", "on duty" if t.on_duty_at(now) else "off"] for t in techs])


@tech_app.command("remove")
def tech_remove(ref: Annotated[str, typer.Argument(help="E-mail or name.")]) -> None:
    """Remove a technician; their password and every login token go too."""
    tech = _registry().remove(ref)
    db, log = _store()
    try:
        from mspclaw.store.logins import Logins

        Logins(db).remove(tech.email)
        log.append("tech_removed", actor="cli", data={"email": tech.email})
    finally:
        db.dispose()
    print(f"{tech.email}: removed")


@tech_app.command("passwd")
def tech_passwd(
    ref: Annotated[str, typer.Argument(help="E-mail or name.")],
    stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from standard input.")] = False,
) -> None:
    """Set a technician's password (Argon2id hash in the data directory's database)."""
    tech = _registry().find(ref)
    if tech is None:
        raise CLIError(f"no technician {ref!r} in techs.yaml; add one with `mspclaw tech add`")
    if stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    db, log = _store()
    try:
        from mspclaw.store.logins import Logins

        Logins(db).set_password(tech.email, password)
        log.append("tech_password_set", actor="cli", data={"email": tech.email})
    finally:
        db.dispose()
    print(f"{tech.email}: password set")


@tech_app.command("link")
def tech_link(ref: Annotated[str, typer.Argument(help="E-mail or name.")]) -> None:
    """Print a one-time login link for a technician (valid 15 minutes by default)."""
    from mspclaw.wiring import build_login_link

    print(build_login_link(settings(), ref))


@tech_app.command("reset-2fa")
def tech_reset_2fa(ref: Annotated[str, typer.Argument(help="E-mail or name.")]) -> None:
    """Forget a technician's console second factor (a lost phone and no recovery code left): they enrol a new
    one at their next sign-in, after their password."""
    tech = _registry().find(ref)
    if tech is None:
        raise CLIError(f"no technician {ref!r} in techs.yaml; see `mspclaw tech list`")
    from mspclaw.store.console_logins import SecondFactors
    from mspclaw.wiring import secret_box

    db, log = _store()
    try:
        had = SecondFactors(db, secret_box(settings())).reset(tech.email)
        log.append("tech_second_factor_reset", actor="cli", data={"email": tech.email, "had_one": had})
    finally:
        log.close()
        db.dispose()
    print(f"{tech.email}: second factor reset, a new one is enrolled at the next sign-in" if had
          else f"{tech.email}: had no second factor")


def _store() -> tuple[Database, AuditLog]:
    """The data directory's database and audit log (opened per command: the server may be down)."""
    from mspclaw.wiring import open_store

    return open_store(settings())


def _audit(kind: str, data: dict[str, Any]) -> None:
    db, log = _store()
    try:
        log.append(kind, actor="cli", data=data)
    finally:
        db.dispose()


runs_bare(tech_app, tech_list)
