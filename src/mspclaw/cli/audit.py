"""``mspclaw audit [verify]``: read the audit trail offline, from the data directory, or verify its chain."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from mspclaw.cli.client import CLIError
from mspclaw.cli.config import settings
from mspclaw.cli.output import JsonOpt, err, table
from mspclaw.errors import AuditIntegrityError

audit_app = typer.Typer(help="Read the audit trail (offline, from the data directory) or verify it.",
                        invoke_without_command=True)


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    units = {"m": 60, "h": 3600, "d": 86400}
    if value[:-1].isdigit() and value[-1] in units:
        return datetime.now(UTC) - timedelta(seconds=int(value[:-1]) * units[value[-1]])
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise CLIError(f"--since {value!r}: use an ISO time (2026-11-23T10:00) or an age like 30m, 12h, 7d") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@audit_app.callback()
def audit(
    ctx: typer.Context,
    client: Annotated[str | None, typer.Option(help="Only this client (id).")] = None,
    session: Annotated[str | None, typer.Option(help="Only this session.")] = None,
    kind: Annotated[str | None, typer.Option(help="Only this kind, e.g. tool_call, approval_decided.")] = None,
    since: Annotated[str | None, typer.Option(help="ISO time or age (30m, 12h, 7d).")] = None,
    limit: Annotated[int, typer.Option(help="At most this many events.")] = 200,
    as_json: JsonOpt = False,
) -> None:
    """List audit events from the database of the data directory."""
    if ctx.invoked_subcommand is not None:
        return
    from mspclaw.wiring import open_store

    db, log = open_store(settings())
    try:
        events = log.query(client_ids=[client] if client else None, session_id=session, kind=kind,
                           since=_since(since), limit=limit)
    finally:
        db.dispose()
    if as_json:
        for e in events:
            print(json.dumps({"seq": e.seq, "ts": e.ts.isoformat(), "kind": e.kind, "actor": e.actor,
                              "client_id": e.client_id, "session_id": e.session_id, "data": e.data,
                              "hash": e.hash}, default=str))
        return
    table("Audit", ["seq", "time", "kind", "actor", "client", "session", "data"],
          [[e.seq, e.ts.strftime("%Y-%m-%d %H:%M:%S"), e.kind, e.actor, e.client_id, e.session_id,
            json.dumps(e.data, default=str)[:120]] for e in events])


@audit_app.command("verify")
def audit_verify(
    checkpoint: Annotated[str | None, typer.Option(
        help="A checkpoint line kept off this host (from the log): the chain must reach it too.")] = None,
) -> None:
    """Check the hash chain of every audit file against the database, and that it reaches its newest
    signed checkpoint (a cut tail); exit 1 at the first fault."""
    from mspclaw.wiring import open_store

    db, log = open_store(settings())
    try:
        report = log.verify(checkpoint=checkpoint, require_checkpoint=True)
    except AuditIntegrityError as exc:
        err.print(f"audit verify: FAILED at {exc.location}: {exc.message}", markup=False)
        raise typer.Exit(1) from None
    finally:
        db.dispose()
    sealed = (f", sealed up to seq {report.sealed.seq} at {report.sealed.sealed_at.isoformat()}"
              if report.sealed else "")
    print(f"audit verify: ok, {report.events} events in {report.files} files, chain intact{sealed}")
