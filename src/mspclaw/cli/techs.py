"""``mspclaw tech add|list|remove|passwd|link|reset-2fa|import|export``: the technician roster and their logins.

``tech`` edits the roster and the passwords in the database (``MSPCLAW_DATABASE_URL``, else the data
directory's), so it works without a running server; every server sees the change at its next read.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mspclaw.cli.client import CLIError
from mspclaw.cli.config import settings
from mspclaw.cli.groups import runs_bare
from mspclaw.cli.output import JsonOpt, err, print_json, table

if TYPE_CHECKING:
    from mspclaw.pipeline.techs import TechRegistry
    from mspclaw.store.audit import AuditLog
    from mspclaw.store.database import Database

tech_app = typer.Typer(help="The technician roster (in the database, shared by every server) and their logins.")


@contextmanager
def _roster() -> Iterator[tuple[TechRegistry, Database, AuditLog]]:
    """The roster, the database and the audit log (opened per command: the server may be down); a data
    directory's techs.yaml of an earlier release is imported first, as the server does at its start."""
    from mspclaw.wiring import open_roster

    db, log = _store()
    try:
        yield open_roster(settings(), db, log), db, log
    finally:
        log.close()
        db.dispose()


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
    """Add a technician to the roster (one locked transaction: safe while others edit it)."""
    from mspclaw.pipeline.techs import tech_from

    tech = tech_from({"name": name, "email": email, "role": role, "slack_id": slack_id, "teams_id": teams_id,
                      "clients": client, "on_duty": on_duty or [], "timezone": timezone})
    with _roster() as (registry, _db, log):
        registry.add(tech)
        log.append("tech_added", actor="cli", data={"email": tech.email, "role": tech.role, "clients": tech.clients})
    print(f"{tech.email}: added to the roster")


@tech_app.command("list")
def tech_list(as_json: JsonOpt = False) -> None:
    """List technicians and whether each is on duty now."""
    now = datetime.now(UTC)
    with _roster() as (registry, _db, _log):
        techs = registry.techs()
    if as_json:
        print_json([t.model_dump() | {"on_duty_now": t.on_duty_at(now)} for t in techs])
        return
    table("Technicians", ["name", "email", "role", "clients", "slack", "teams", "on duty", "now"],
          [[t.name, t.email, t.role, ", ".join(t.clients), t.slack_id, t.teams_id,
            "; ".join(t.on_duty) or "always", "on duty" if t.on_duty_at(now) else "off"] for t in techs])


@tech_app.command("remove")
def tech_remove(ref: Annotated[str, typer.Argument(help="E-mail or name.")]) -> None:
    """Remove a technician; their password and every login token go too."""
    from mspclaw.store.logins import Logins

    with _roster() as (registry, db, log):
        tech = registry.remove(ref)
        Logins(db).remove(tech.email)
        log.append("tech_removed", actor="cli", data={"email": tech.email})
    print(f"{tech.email}: removed")


@tech_app.command("passwd")
def tech_passwd(
    ref: Annotated[str, typer.Argument(help="E-mail or name.")],
    stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from standard input.")] = False,
) -> None:
    """Set a technician's password (Argon2id hash in the data directory's database)."""
    from mspclaw.store.logins import Logins

    with _roster() as (registry, db, log):
        tech = registry.find(ref)
        if tech is None:
            raise CLIError(f"no technician {ref!r} in the roster; add one with `mspclaw tech add`")
        if stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
        Logins(db).set_password(tech.email, password)
        log.append("tech_password_set", actor="cli", data={"email": tech.email})
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
    from mspclaw.store.console_logins import SecondFactors
    from mspclaw.wiring import secret_box

    with _roster() as (registry, db, log):
        tech = registry.find(ref)
        if tech is None:
            raise CLIError(f"no technician {ref!r} in the roster; see `mspclaw tech list`")
        had = SecondFactors(db, secret_box(settings())).reset(tech.email)
        log.append("tech_second_factor_reset", actor="cli", data={"email": tech.email, "had_one": had})
    print(f"{tech.email}: second factor reset, a new one is enrolled at the next sign-in" if had
          else f"{tech.email}: had no second factor")


def _store() -> tuple[Database, AuditLog]:
    """The data directory's database and audit log (opened per command: the server may be down)."""
    from mspclaw.wiring import open_store

    return open_store(settings())


@tech_app.command("import")
def tech_import(
    file: Annotated[Path, typer.Argument(help="A techs.yaml (as `mspclaw tech export` writes it).",
                                         dir_okay=False)],
) -> None:
    """Replace the roster (technicians and channels) with a techs.yaml file, checked first: every error names
    its line, and nothing changes unless the whole file is valid. Passwords and second factors stay."""
    from mspclaw.pipeline.techs import parse, read_bounded

    try:
        text = read_bounded(file)
    except OSError as exc:
        raise CLIError(f"cannot read {file}: {exc.strerror}") from None
    doc = parse(text, str(file))
    with _roster() as (registry, _db, log):
        done = registry.replace_all(doc)
        log.append("tech_roster_imported", actor="cli",
                   data={"file": str(file), "added": done.added, "changed": done.changed, "removed": done.removed,
                         "channels": done.channels})
    print(f"{file}: {len(doc.techs)} technician(s) and {done.channels} channel(s) in the roster now "
          f"({len(done.added)} added, {len(done.changed)} changed, {len(done.removed)} removed"
          + (f": {', '.join(done.removed)}" if done.removed else "") + ")")


@tech_app.command("export")
def tech_export(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file (mode 0600) instead "
                                                "of standard output.", dir_okay=False)] = None,
) -> None:
    """Print the roster as techs.yaml, to edit and load again with `mspclaw tech import`. It holds the channels'
    webhook URLs, which are secrets."""
    from mspclaw.store.private_files import write_private

    with _roster() as (registry, _db, _log):
        text = registry.export()
    if output is None:
        sys.stdout.write(text)
        return
    try:
        write_private(output, text.encode("utf-8"))
    except OSError as exc:
        raise CLIError(f"cannot write {output}: {exc.strerror}") from None
    err.print(f"{output}: written (0600); it holds the channels' webhook URLs, keep it private", markup=False)


runs_bare(tech_app, tech_list)
