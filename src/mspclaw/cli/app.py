"""``mspclaw``: thin Typer commands over :mod:`mspclaw.wiring` and the REST API."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mspclaw.cli import operator as operator_cli
from mspclaw.cli.client import ApiClient, CLIError
from mspclaw.cli.playbooks import playbooks_app
from mspclaw.errors import AuditIntegrityError, MSPClawError
from mspclaw.settings import Settings

app = typer.Typer(
    help="MSPclaw resolves level-1 helpdesk tickets on its own.\n\n"
    "Start with `mspclaw demo`, or run `mspclaw server` and enroll agents with `mspclaw enroll CLIENT`.",
    no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_enable=False,
)
clients_app = typer.Typer(help="Client companies of the MSP.", no_args_is_help=True)
agents_app = typer.Typer(help="Enrolled agents and whether they are online.", no_args_is_help=True)
tickets_app = typer.Typer(help="Open tickets by hand and look at what happened.", no_args_is_help=True)
approvals_app = typer.Typer(help="Destructive steps waiting for a technician.", no_args_is_help=True)
audit_app = typer.Typer(help="Read the audit trail (offline, from the data directory) or verify it.",
                        invoke_without_command=True)
app.add_typer(clients_app, name="clients")
app.add_typer(agents_app, name="agents")
app.add_typer(tickets_app, name="tickets")
app.add_typer(approvals_app, name="approvals")
app.add_typer(audit_app, name="audit")
jobs_app = typer.Typer(help="The durable intake queue: PSA tickets waiting, running, failed.", no_args_is_help=True)
psa_app = typer.Typer(help="PSA accounts MSPclaw takes tickets from (stored in the data directory's database).",
                      no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
app.add_typer(psa_app, name="psa")
app.add_typer(playbooks_app, name="playbooks")
# operator features (mspclaw/cli/operator.py)
app.add_typer(operator_cli.devices_app, name="devices")
app.add_typer(operator_cli.tech_app, name="tech")
app.add_typer(operator_cli.keys_app, name="keys")
app.add_typer(operator_cli.escalations_app, name="escalations")
app.command("stats")(operator_cli.stats)
tickets_app.command("feedback")(operator_cli.tickets_feedback)

out = Console()
err = Console(stderr=True)
_overrides: dict[str, Any] = {}

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def settings(**extra: Any) -> Settings:
    return Settings(**{**_overrides, **{k: v for k, v in extra.items() if v is not None}})


def api() -> ApiClient:
    return ApiClient(settings())


@app.callback()
def _main(
    url: Annotated[
        str | None, typer.Option(help="Server URL for commands that talk to it [env MSPCLAW_SERVER_URL].")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Data directory [env MSPCLAW_DATA_DIR; default ./.mspclaw].")
    ] = None,
) -> None:
    if url:
        _overrides["server_url"] = url
    if data_dir:
        _overrides["data_dir"] = data_dir


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    """Print a table of data. Every cell and the title are text, never Rich markup: a client named
    ``[red]x`` or an audit value ``[redacted]`` shows as written (``rich.markup.escape``)."""
    table = Table(title=escape(title), title_justify="left")
    for col in columns:
        table.add_column(escape(col), overflow="fold")
    for row in rows:
        table.add_row(*[escape("" if v is None else str(v)) for v in row])
    out.print(table)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


# -- server and agent -----------------------------------------------------------------------------
@app.command()
def server(
    host: Annotated[str | None, typer.Option(help="Address to listen on [default 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [default 8700].")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Data directory (SQLite, audit files, API key).")] = None,
    database_url: Annotated[
        str | None, typer.Option(help="SQLAlchemy URL, e.g. postgresql+psycopg://u@h/db.")
    ] = None,
    playbooks: Annotated[
        list[Path] | None, typer.Option("--playbooks", help="A directory of your own playbooks, loaded with the "
                                        "shipped library (repeat for more) [env MSPCLAW_PLAYBOOK_DIRS].")
    ] = None,
) -> None:
    """Run the MSPclaw server: REST API, agent and session WebSockets, the ticket pipeline."""
    from mspclaw.api.server import run as run_server
    from mspclaw.playbooks.loader import PlaybookError
    from mspclaw.wiring import build

    cfg = settings(host=host, port=port, data_dir=data_dir, database_url=database_url, playbook_dirs=playbooks)
    try:
        services = build(cfg)
    except PlaybookError as exc:
        for problem in exc.problems:
            err.print(problem, markup=False, highlight=False, soft_wrap=True)
        err.print(f"{len(exc.problems)} playbook problem(s); the server did not start.", markup=False)
        raise typer.Exit(1) from exc
    key_hint = "from MSPCLAW_API_KEY" if cfg.api_key else f"in {cfg.data_dir / 'api_key'}"
    err.print(f"MSPclaw server on http://{cfg.host}:{cfg.port}, agents on port {cfg.agent_port}  "
              f"(docs at /docs; API key {key_hint})")
    try:
        run_server(services, host=cfg.host, port=cfg.port, log_level=cfg.log_level)
    finally:
        services.close()


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True}, add_help_option=False)
def agent(ctx: typer.Context) -> None:
    """Run the agent daemon (`mspclaw agent --help` for its options)."""
    from mspclaw.agent.main import main as agent_main

    raise typer.Exit(agent_main(list(ctx.args)))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True}, add_help_option=False)
def site(ctx: typer.Context) -> None:
    """Configure a site agent's integrations: add ad|entra|jamf|cups|openvpn, test, list, remove, policy
    (`mspclaw site --help`)."""
    from mspclaw.agent.site.cli import main as site_main

    raise typer.Exit(site_main(list(ctx.args)))


@app.command()
def demo(
    once: Annotated[
        bool, typer.Option("--once", help="Process the sample tickets, print the outcome and exit.")
    ] = False,
    auto_approve: Annotated[
        bool, typer.Option("--auto-approve", help="Let the demo technician approve every step.")
    ] = False,
    keep: Annotated[bool, typer.Option("--keep", help="Keep the temporary data directory afterwards.")] = False,
) -> None:
    """Run the whole loop on this machine: server, a real agent, the PSA simulator, sample tickets."""
    from mspclaw.cli.demo import run_demo

    raise typer.Exit(asyncio.run(run_demo(once=once, auto_approve=auto_approve or once, keep=keep)))


# -- enrollment, clients, agents -------------------------------------------------------------------
@app.command()
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
        return _print_json(rows)
    _table("Clients", ["id", "name", "psa ids"], [[c["id"], c["name"], c["psa_refs"] or ""] for c in rows])


@agents_app.command("list")
def agents_list(client: Annotated[str | None, typer.Option(help="Only this client.")] = None,
                as_json: JsonOpt = False) -> None:
    """List agents with their online state."""
    rows = api().get("/api/agents", client=client)
    if as_json:
        return _print_json(rows)
    _table("Agents", ["id", "client", "host", "os", "role", "state", "last seen"],
           [[a["id"], a["client_id"], a["hostname"], a["os"], a["role"],
             "revoked" if a["revoked"] else ("online" if a["online"] else "offline"), a["last_seen_at"]]
            for a in rows])


# -- tickets --------------------------------------------------------------------------------------
@tickets_app.command("submit")
def tickets_submit(
    client: Annotated[str, typer.Option(help="Client id or name.")],
    subject: Annotated[str, typer.Option(help="What the user wrote as the subject.")],
    body: Annotated[str, typer.Option(help="The ticket text.")] = "",
    requester: Annotated[str, typer.Option(help="The end user's e-mail.")] = "",
    device: Annotated[str | None, typer.Option(help="Device id or host name (default: routed).")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the outcome and show it.")] = False,
) -> None:
    """Open a ticket and start working on it."""
    client_api = api()
    created = client_api.post("/api/tickets", {"client": client, "subject": subject, "body": body,
                                               "requester": requester, "device": device})
    print(created["ticket_id"])
    if wait:
        with err.status("working on the ticket...") as status:
            while True:
                ticket = client_api.get(f"/api/tickets/{created['ticket_id']}")
                if ticket["status"] in ("resolved", "escalated"):
                    break
                pending = [a for a in ticket["approvals"] if a["status"] == "pending"]
                if pending:
                    status.update(f"waiting for approval {pending[0]['id']} ({pending[0]['tool']}): "
                                  f"mspclaw approvals approve {pending[0]['id']} --as NAME")
                time.sleep(0.5)
        _show_ticket(ticket)


def _show_ticket(t: dict[str, Any]) -> None:
    out.print(f"[bold]{escape(t['id'])}[/bold]  {escape(t['subject'])}  -> {escape(t['status'])}"
              + (f"  (playbook {escape(t['playbook'])})" if t["playbook"] else ""))
    if t["steps"]:
        _table("Steps", ["#", "step", "tool", "result"],
               [[s["index"], s["title"], s["tool"], s["summary"]] for s in t["steps"]])
    for a in t["approvals"]:
        out.print(f"approval {a['id']}: {a['tool']} {a['status']}" + (f" by {a['approver']}" if a["approver"] else ""),
                  markup=False, highlight=False)
    for title, key in (("Internal note", "note"), ("Reply to the user", "reply")):
        if t[key]:
            out.print(f"\n[bold]{title}[/bold]")
            out.print(t[key], markup=False, highlight=False)


@tickets_app.command("show")
def tickets_show(ticket_id: str, as_json: JsonOpt = False) -> None:
    """Show a ticket: status, playbook, steps, approvals, note and reply."""
    ticket = api().get(f"/api/tickets/{ticket_id}")
    if as_json:
        return _print_json(ticket)
    _show_ticket(ticket)


# -- approvals ------------------------------------------------------------------------------------
@approvals_app.command("list")
def approvals_list(as_json: JsonOpt = False) -> None:
    """List approvals waiting for a decision."""
    rows = api().get("/api/approvals")
    if as_json:
        return _print_json(rows)
    now = datetime.now(UTC)
    _table("Pending approvals", ["id", "tool", "device", "reason", "args", "auto-deny in"],
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


# -- audit ----------------------------------------------------------------------------------------
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

    engine, log = open_store(settings())
    try:
        events = log.query(client_ids=[client] if client else None, session_id=session, kind=kind,
                           since=_since(since), limit=limit)
    finally:
        engine.dispose()
    if as_json:
        for e in events:
            print(json.dumps({"seq": e.seq, "ts": e.ts.isoformat(), "kind": e.kind, "actor": e.actor,
                              "client_id": e.client_id, "session_id": e.session_id, "data": e.data,
                              "hash": e.hash}, default=str))
        return
    _table("Audit", ["seq", "time", "kind", "actor", "client", "session", "data"],
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

    engine, log = open_store(settings())
    try:
        report = log.verify(checkpoint=checkpoint, require_checkpoint=True)
    except AuditIntegrityError as exc:
        err.print(f"audit verify: FAILED at {exc.location}: {exc.message}", markup=False)
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    sealed = (f", sealed up to seq {report.sealed.seq} at {report.sealed.sealed_at.isoformat()}"
              if report.sealed else "")
    print(f"audit verify: ok, {report.events} events in {report.files} files, chain intact{sealed}")


# -- PSA intake -----------------------------------------------------------------------------------
@app.command("run-ticket")
def run_ticket(
    psa: Annotated[str, typer.Option(help="PSA account name, e.g. superops.")],
    ticket: Annotated[str, typer.Option(help="The ticket's id in that PSA.")],
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for the outcome.")] = True,
) -> None:
    """Process one PSA ticket by hand, through the running server's queue."""
    client_api = api()
    job = client_api.post(f"/api/psa/{psa}/tickets/{ticket}/run")
    print(job["id"])
    if not wait:
        return
    with err.status(f"job {job['id']}: waiting for {psa} ticket {ticket}..."):
        while job["status"] in ("queued", "running"):
            time.sleep(0.5)
            job = client_api.get(f"/api/jobs/{job['id']}")
    if job["status"] != "done":
        raise CLIError(f"job {job['id']} is {job['status']}: {job['last_error']}")
    tickets = client_api.get("/api/tickets", limit=500)
    mine = next((t for t in tickets if t.get("external_id") == ticket and t.get("psa") == psa), None)
    if mine is None:
        print(f"{psa} ticket {ticket}: escalated in the PSA (see its internal note)")
    else:
        _show_ticket(mine)


@jobs_app.command("list")
def jobs_list(status: Annotated[str | None, typer.Option(help="queued, running, done, dead or cancelled.")] = None,
              as_json: JsonOpt = False) -> None:
    """List intake jobs, newest first."""
    rows = api().get("/api/jobs", status=status)
    if as_json:
        return _print_json(rows)
    _table("Jobs", ["id", "status", "psa", "ticket", "attempts", "next try", "last error"],
           [[j["id"], j["status"], j["payload"].get("psa"), j["payload"].get("ticket_id"),
             f"{j['attempts']}/{j['max_attempts']}", j["run_after"] if j["status"] == "queued" else "",
             j["last_error"]] for j in rows])


@jobs_app.command("retry")
def jobs_retry(job_id: str) -> None:
    """Queue a failed, dead or cancelled job again now."""
    job = api().post(f"/api/jobs/{job_id}/retry")
    print(f"{job['id']}: {job['status']}")


@jobs_app.command("cancel")
def jobs_cancel(job_id: str) -> None:
    """Cancel a queued or running job."""
    job = api().post(f"/api/jobs/{job_id}/cancel")
    print(f"{job['id']}: {job['status']}")


@psa_app.command("add")
def psa_add(
    kind: Annotated[str, typer.Argument(help="superops, connectwise, halo, autotask, freshdesk or local.")],
    name: Annotated[str | None, typer.Option(help="Account name used in /webhooks/NAME and --psa NAME=ID "
                                                  "[default: the kind].")] = None,
    subdomain: Annotated[str | None, typer.Option(help="SuperOps: your CustomerSubDomain.")] = None,
    region: Annotated[str, typer.Option(help="SuperOps: us or eu.")] = "us",
    base_url: Annotated[str | None, typer.Option(help="local: the simulator's URL.")] = None,
    poll_interval: Annotated[float, typer.Option(help="Seconds between polls; 0 turns polling off.")] = 60.0,
    webhook_secret: Annotated[str | None, typer.Option(help="Secret the PSA's webhooks prove themselves with "
                                                            "(Halo, Autotask: generated when omitted).")] = None,
    webhook_auth: Annotated[str, typer.Option(help="SuperOps: 'hmac' (signed) or 'shared_secret' (header).")] = "hmac",
    asset_field: Annotated[str | None, typer.Option(help="SuperOps, ConnectWise, Freshdesk: custom field holding "
                                                         "the device name.")] = None,
    site: Annotated[str | None, typer.Option(help="ConnectWise: host, e.g. api-na.myconnectwise.net.")] = None,
    company: Annotated[str | None, typer.Option(help="ConnectWise: company id you log in with.")] = None,
    public_key: Annotated[str | None, typer.Option(help="ConnectWise: API member's public key.")] = None,
    private_key: Annotated[str | None, typer.Option(help="ConnectWise: private key [asked when omitted].")] = None,
    client_id: Annotated[str | None, typer.Option(help="ConnectWise: clientId GUID; Halo: API application's "
                                                       "client id.")] = None,
    codebase: Annotated[str | None, typer.Option(help="ConnectWise: codebase, e.g. v2025_1/ [discovered].")] = None,
    conditions: Annotated[str | None, typer.Option(help="ConnectWise: extra ticket conditions for polling, e.g. "
                                                        "'board/name=\"Help Desk\"'.")] = None,
    host: Annotated[str | None, typer.Option(help="Halo: instance host, e.g. acme.halopsa.com.")] = None,
    tenant: Annotated[str | None, typer.Option(help="Halo: tenant on hosted multi-tenant cloud.")] = None,
    client_secret: Annotated[str | None, typer.Option(help="Halo: client secret [asked when omitted].")] = None,
    username: Annotated[str | None, typer.Option(help="Autotask: API-only user's user name.")] = None,
    integration_code: Annotated[str | None, typer.Option(help="Autotask: API tracking identifier.")] = None,
    secret: Annotated[str | None, typer.Option(help="Autotask: API user's secret [asked when omitted].")] = None,
    zone_url: Annotated[str | None, typer.Option(help="Autotask: zone URL [discovered].")] = None,
    domain: Annotated[str | None, typer.Option(help="Freshdesk: sub-domain, e.g. acme for acme.freshdesk.com.")] = None,
    api_key: Annotated[str | None, typer.Option(help="Freshdesk: API key [asked when omitted].")] = None,
) -> None:
    """Add a PSA account. Its main secret comes from its option, MSPCLAW_PSA_TOKEN, or a hidden prompt."""
    from mspclaw.cli.psa_accounts import PSAOptions, account_fields
    from mspclaw.store.jobs import PSAAccounts
    from mspclaw.wiring import open_store

    cfg = settings()

    def ask(label: str, given: str | None) -> str:
        if given:
            return given
        return cfg.psa_token.get_secret_value() if cfg.psa_token else str(typer.prompt(label, hide_input=True))

    options = PSAOptions(subdomain=subdomain, region=region, base_url=base_url, webhook_secret=webhook_secret,
                         webhook_auth=webhook_auth, asset_field=asset_field, site=site, company=company,
                         public_key=public_key, private_key=private_key, client_id=client_id, codebase=codebase,
                         conditions=conditions, host=host, tenant=tenant, client_secret=client_secret,
                         username=username, integration_code=integration_code, secret=secret,
                         zone_url=zone_url, domain=domain, api_key=api_key)
    config, secrets = account_fields(kind, options, ask)
    config = {"poll_interval_s": poll_interval, **config}
    engine, log = open_store(cfg)
    try:
        account = PSAAccounts(engine).add(name or kind, kind, config, secrets)
        log.append("psa_account_added", actor="cli", data={"name": account.name, "kind": kind, "config": config})
    finally:
        engine.dispose()
    print(f"{account.name}: added; restart the server to start its poller and accept /webhooks/{account.name}")


@psa_app.command("list")
def psa_list(as_json: JsonOpt = False) -> None:
    """List PSA accounts (secrets are never shown)."""
    from mspclaw.store.jobs import PSAAccounts
    from mspclaw.wiring import open_store

    engine, _ = open_store(settings())
    try:
        rows = [{"name": a.name, "kind": a.kind, "enabled": a.enabled, "config": a.config}
                for a in PSAAccounts(engine).list()]
    finally:
        engine.dispose()
    if as_json:
        return _print_json(rows)
    _table("PSA accounts", ["name", "kind", "enabled", "config"],
           [[r["name"], r["kind"], r["enabled"], json.dumps(r["config"])] for r in rows])


@psa_app.command("remove")
def psa_remove(name: str) -> None:
    """Remove a PSA account."""
    from mspclaw.store.jobs import PSAAccounts
    from mspclaw.wiring import open_store

    engine, log = open_store(settings())
    try:
        PSAAccounts(engine).remove(name)
        log.append("psa_account_removed", actor="cli", data={"name": name})
    finally:
        engine.dispose()
    print(f"{name}: removed")


@psa_app.command("register-webhook")
def psa_register_webhook(
    name: Annotated[str, typer.Argument(help="PSA account name (see `mspclaw psa list`).")],
    url: Annotated[str, typer.Option(help="Public URL of this server's /webhooks/NAME, as the PSA will call it, "
                                          "e.g. https://msp.example:8700/webhooks/connectwise.")],
) -> None:
    """Subscribe MSPclaw to the PSA's ticket events through the PSA's API (ConnectWise, Halo, Autotask)."""
    from mspclaw.connectors.base import RegistersWebhooks
    from mspclaw.store.jobs import PSAAccounts
    from mspclaw.wiring import connector_for, open_store

    if not url.startswith(("https://", "http://")) or not url.rstrip("/").endswith(f"/webhooks/{name}"):
        raise CLIError(f"--url must be this server's public URL ending in /webhooks/{name}")
    engine, log = open_store(settings())
    try:
        account = PSAAccounts(engine).get(name)
        connector = connector_for(account)
        if not isinstance(connector, RegistersWebhooks):
            raise CLIError(f"{account.kind} has no API to register webhooks; set it up in the PSA as "
                           f"docs/psa/{account.kind}.md says")

        async def register() -> str:
            try:
                return await connector.register_webhook(url)
            finally:
                close = getattr(connector, "aclose", None)
                if close is not None:
                    await close()

        said = asyncio.run(register())
        log.append("psa_webhook_registered", actor="cli", data={"name": name, "url": url, "result": said})
    finally:
        engine.dispose()
    print(said)


def run() -> None:
    try:
        app()
    except MSPClawError as exc:
        err.print(f"error: {exc.message}", markup=False, highlight=False)
        sys.exit(1)
