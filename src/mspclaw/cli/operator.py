"""CLI for the operator features: ``devices``, ``stats``, ``tech``, ``keys``, ``escalations``,
``tickets feedback``; :mod:`mspclaw.cli.app` registers them.

``tech`` edits ``techs.yaml`` in the data directory and keeps passwords in its database, so it
works without a running server; the rest talk to the server's API with the caller's key, so the
server's role and client checks apply.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from mspclaw.cli.client import CLIError

if TYPE_CHECKING:
    from mspclaw.pipeline.techs import TechRegistry

devices_app = typer.Typer(help="What MSPclaw remembers about each device (device memory).", no_args_is_help=True)
tech_app = typer.Typer(help="The technician registry (techs.yaml in the data directory) and their logins.",
                       no_args_is_help=True)
keys_app = typer.Typer(help="Named API keys: scoped to a role and clients, stored hashed, revocable.",
                       no_args_is_help=True)
escalations_app = typer.Typer(help="Structured hand-offs to technicians and their notifications.",
                              no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


class _Main:
    """The main CLI module's helpers (api client, tables, settings), reached late: it imports this one."""

    def __getattr__(self, name: str) -> Any:
        from mspclaw.cli import app

        return getattr(app, name)


main = _Main()


# -- devices ---------------------------------------------------------------------------------------
@devices_app.command("list")
def devices_list(client: Annotated[str | None, typer.Option(help="Only this client (id or name).")] = None,
                 as_json: JsonOpt = False) -> None:
    """List devices with their primary user and how many facts are known."""
    rows = main.api().get("/api/devices", client=client)
    if as_json:
        main._print_json(rows)
        return
    main._table("Devices", ["id", "client", "host", "os", "primary user", "facts"],
                [[d["id"], d["client_id"], d["hostname"], d["os"], d["primary_user"], d["facts"]] for d in rows])


@devices_app.command("show")
def devices_show(device_id: str, as_json: JsonOpt = False) -> None:
    """Show every fact known about a device, with where it came from and when."""
    d = main.api().get(f"/api/devices/{device_id}")
    if as_json:
        main._print_json(d)
        return
    main.out.print(f"[bold]{escape(d['id'])}[/bold]  {escape(d['hostname'])} ({escape(d['os'])})  client "
                   f"{escape(d['client_id'])}  primary user: {escape(d['primary_user'] or '-')}")
    main._table("Facts", ["fact", "value", "source", "updated"],
                [[f["key"], f["value"], f["source"], f["updated_at"]] for f in d["known"]])


@devices_app.command("forget")
def devices_forget(device_id: str,
                   yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False) -> None:
    """Remove every fact MSPclaw learned about a device (audited)."""
    if not yes and not typer.confirm(f"Forget everything known about {device_id}?"):
        raise typer.Exit(1)
    result = main.api().post(f"/api/devices/{device_id}/forget")
    print(f"{result['device_id']}: forgot {len(result['forgotten'])} facts"
          + (f" ({', '.join(result['forgotten'])})" if result["forgotten"] else ""))


# -- stats -----------------------------------------------------------------------------------------
def _ttr(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _rate(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"


def render_chart(daily: list[dict[str, Any]], path: Path, title: str) -> None:
    """A PNG of the resolution rate per day (resolved and confirmed) over the ticket count."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise CLIError("--chart needs matplotlib: pip install 'mspclaw[charts]'") from exc
    if not daily:
        raise CLIError("no tickets in this period: nothing to chart")
    from matplotlib.dates import AutoDateLocator, DateFormatter, date2num

    days = date2num([datetime.fromisoformat(d["day"]) for d in daily])  # type: ignore[no-untyped-call]
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=100)
    try:
        counts = ax.twinx()
        counts.bar(days, [d["tickets"] for d in daily], color="#d0d7de", width=0.8, label="tickets", zorder=0)
        counts.set_ylabel("tickets per day")
        ax.set_zorder(counts.get_zorder() + 1)
        ax.patch.set_visible(False)
        ax.plot(days, [100 * d["resolved_rate"] for d in daily], marker="o", color="#1f6feb",
                label="resolved (any answer but 'no')")
        ax.plot(days, [100 * d["confirmed_rate"] for d in daily], marker="s", color="#2da44e",
                label="confirmed by the user")
        ax.xaxis.set_major_locator(AutoDateLocator(maxticks=12))  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_formatter(DateFormatter("%Y-%m-%d"))  # type: ignore[no-untyped-call]
        ax.set_ylim(0, 105)
        ax.set_ylabel("% of tickets")
        ax.set_title(title)
        ax.legend(loc="lower left")
        fig.autofmt_xdate()
        fig.tight_layout()
        try:
            fig.savefig(path, format="png")
        except OSError as exc:
            raise CLIError(f"cannot write the chart to {path}: {exc.strerror}") from exc
    finally:
        plt.close(fig)


def stats(
    by: Annotated[str, typer.Option(help="Group by playbook, client or model.")] = "playbook",
    since: Annotated[str | None, typer.Option(help="ISO time or age (7d, 12h); default: everything.")] = None,
    chart: Annotated[Path | None, typer.Option("--chart", help="Also write a PNG of the resolution rate "
                                                               "over time to this file.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Outcomes per playbook, client or model: confirmed, partial, failed, unconfirmed, escalated,
    median time to resolution, tokens and cost."""
    if by not in ("playbook", "client", "model"):
        raise CLIError(f"--by {by!r}: use playbook, client or model")
    data = main.api().get("/api/stats", by=by, since=since)
    if as_json:
        main._print_json(data)
    else:
        cols = [by, "tickets", "confirmed", "partial", "failed", "unconfirmed", "escalated", "resolution rate",
                "median TTR", "tokens", "cost"]
        rows = []
        for r in [*data["rows"], data["total"]]:
            rows.append([r["key"], r["tickets"], r["confirmed"], r["partial"], r["failed"], r["unconfirmed"],
                         r["escalated"], _rate(r["confirmed"], r["tickets"]), _ttr(r["median_ttr_s"]),
                         r["tokens"], f"${r['cost_usd']:.2f}"])
        main._table(f"Outcomes by {by}" + (f" since {since}" if since else ""), cols, rows)
        main.err.print("resolution rate = confirmed by the user / tickets; 'unconfirmed' is never counted as success")
    if chart is not None:
        render_chart(data["daily"], chart, "MSPclaw resolution rate" + (f" since {since}" if since else ""))
        main.err.print(f"chart written to {chart}", markup=False)


# -- escalations and feedback ------------------------------------------------------------------------
@escalations_app.command("list")
def escalations_list(ticket: Annotated[str | None, typer.Option(help="Only this ticket.")] = None,
                     as_json: JsonOpt = False) -> None:
    """List escalations, newest first, with who they were assigned to."""
    rows = main.api().get("/api/escalations", ticket=ticket)
    if as_json:
        main._print_json(rows)
        return
    main._table("Escalations", ["id", "ticket", "client", "kind", "assigned to", "reason", "at"],
                [[e["id"], e["ticket_id"], e["client_id"], e["kind"], e["assigned_to"], e["reason"][:80],
                  e["created_at"]] for e in rows])


@escalations_app.command("show")
def escalations_show(escalation_id: str, as_json: JsonOpt = False) -> None:
    """Show one escalation: what was tried, why it failed, next steps, evidence, device facts."""
    e = main.api().get(f"/api/escalations/{escalation_id}")
    if as_json:
        main._print_json(e)
        return
    body = e["body"]
    main.out.print(f"[bold]{escape(e['id'])}[/bold]  ticket {escape(e['ticket_id'])}  {escape(e['kind'])}  -> "
                   f"{escape(e['assigned_to'] or '-')}")
    main.out.print(f"Why: {e['reason']}", markup=False)
    main._table("Tried", ["#", "step", "tool", "result"],
                [[s["index"], s["title"], s["tool"], s["result"]] for s in body.get("tried", [])])
    for step in body.get("next_steps", []):
        main.out.print(f"next: {step}", markup=False)
    for ev in body.get("evidence", []):
        main.out.print(f"evidence {ev['tool']}: {ev['excerpt'][:300]}", markup=False)
    notes = main.api().get("/api/notifications", ref=e["id"])
    for n in notes:
        main.out.print(f"notified {n['channel']} ({n['channel_kind']}): {n['status']} after {n['attempts']} "
                       f"attempt(s)" + (f": {n['last_error']}" if n["last_error"] else ""), markup=False)


def tickets_feedback(
    ticket_id: str,
    answer: Annotated[str, typer.Argument(help="yes, no or partial.")],
    comment: Annotated[str, typer.Option(help="What the user said.")] = "",
    by: Annotated[str, typer.Option(help="Who answered (recorded).")] = "end user",
) -> None:
    """Record the end user's answer to "did it work?"; "no" reopens the ticket for a technician."""
    if answer not in ("yes", "no", "partial"):
        raise CLIError(f"answer must be yes, no or partial, not {answer!r}")
    row = main.api().post(f"/api/tickets/{ticket_id}/feedback",
                          {"answer": answer, "comment": comment, "answered_by": by})
    print(f"{row['ticket_id']}: {row['status']}")


# -- API keys --------------------------------------------------------------------------------------
@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="What the key is for, e.g. 'psa-bridge'.")],
    role: Annotated[str, typer.Option(help="admin, tech or viewer.")] = "viewer",
    client: Annotated[list[str] | None, typer.Option(help="A client it may see (repeatable).")] = None,
    all_clients: Annotated[bool, typer.Option("--all-clients", help="Every client, present and future.")] = False,
) -> None:
    """Create a named API key. The key is printed once; store it now."""
    row = main.api().post("/api/keys", {"name": name, "role": role, "clients": client or [],
                                        "all_clients": all_clients})
    print(row["key"])
    scope = "every client" if row["all_clients"] else ", ".join(row["clients"])
    main.err.print(f"key {row['id']} ({row['name']}): {row['role']} on {scope}. Shown once: only its digest is kept.",
                   markup=False, highlight=False)


@keys_app.command("list")
def keys_list(as_json: JsonOpt = False) -> None:
    """List API keys (never their secrets)."""
    rows = main.api().get("/api/keys")
    if as_json:
        main._print_json(rows)
        return
    main._table("API keys", ["id", "name", "role", "clients", "created by", "last used", "state"],
                [[k["id"], k["name"], k["role"], "*" if k["all_clients"] else ", ".join(k["clients"]),
                  k["created_by"], k["last_used_at"], "revoked" if k["revoked_at"] else "active"] for k in rows])


@keys_app.command("revoke")
def keys_revoke(ref: Annotated[str, typer.Argument(help="Key id or name.")]) -> None:
    """Revoke an API key at once."""
    row = main.api().post(f"/api/keys/{ref}/revoke")
    print(f"{row['id']} ({row['name']}): revoked")


# -- technicians -----------------------------------------------------------------------------------
def _registry() -> TechRegistry:
    from mspclaw.pipeline.techs import TechRegistry

    return TechRegistry(main.settings().techs_file())


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
        main._print_json([t.model_dump() | {"on_duty_now": t.on_duty_at(now)} for t in techs])
        return
    main._table("Technicians", ["name", "email", "role", "clients", "slack", "teams", "on duty", "now"],
                [[t.name, t.email, t.role, ", ".join(t.clients), t.slack_id, t.teams_id,
                  "; ".join(t.on_duty) or "always", "on duty" if t.on_duty_at(now) else "off"] for t in techs])


@tech_app.command("remove")
def tech_remove(ref: Annotated[str, typer.Argument(help="E-mail or name.")]) -> None:
    """Remove a technician; their password and every login token go too."""
    tech = _registry().remove(ref)
    engine, log = _store()
    try:
        from mspclaw.store.db import session_factory
        from mspclaw.store.logins import Logins

        Logins(session_factory(engine)).remove(tech.email)
        log.append("tech_removed", actor="cli", data={"email": tech.email})
    finally:
        engine.dispose()
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
    engine, log = _store()
    try:
        from mspclaw.store.db import session_factory
        from mspclaw.store.logins import Logins

        Logins(session_factory(engine)).set_password(tech.email, password)
        log.append("tech_password_set", actor="cli", data={"email": tech.email})
    finally:
        engine.dispose()
    print(f"{tech.email}: password set")


@tech_app.command("link")
def tech_link(ref: Annotated[str, typer.Argument(help="E-mail or name.")]) -> None:
    """Print a one-time login link for a technician (valid 15 minutes by default)."""
    from mspclaw.wiring import build_login_link

    print(build_login_link(main.settings(), ref))


def _store() -> Any:
    from mspclaw.wiring import open_store

    return open_store(main.settings())


def _audit(kind: str, data: dict[str, Any]) -> None:
    engine, log = _store()
    try:
        log.append(kind, actor="cli", data=data)
    finally:
        engine.dispose()
