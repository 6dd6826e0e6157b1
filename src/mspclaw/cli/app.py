"""``mspclaw``: thin Typer commands over :mod:`mspclaw.wiring` and the REST API.

This module is the root: the global options, the commands that run something (server, agent,
site, demo), and the command groups of the other modules, registered in the order ``--help``
lists them.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import typer

from mspclaw.cli import config
from mspclaw.cli.agents import agents_app, enroll
from mspclaw.cli.approvals import approvals_app
from mspclaw.cli.audit import audit_app
from mspclaw.cli.backup import register as register_data_commands
from mspclaw.cli.client import CLIError
from mspclaw.cli.clients import clients_app
from mspclaw.cli.devices import devices_app
from mspclaw.cli.escalations import escalations_app
from mspclaw.cli.exits import ExitCode
from mspclaw.cli.jobs import jobs_app, run_ticket
from mspclaw.cli.keys import keys_app
from mspclaw.cli.output import err
from mspclaw.cli.playbooks import playbooks_app
from mspclaw.cli.psa import psa_app
from mspclaw.cli.sso import sso_app
from mspclaw.cli.stats import stats
from mspclaw.cli.techs import tech_app
from mspclaw.cli.tickets import tickets_app
from mspclaw.errors import ConfigError, MSPClawError

app = typer.Typer(
    help="MSPclaw resolves level-1 helpdesk tickets on its own.\n\n"
    "Start with `mspclaw demo`, or run `mspclaw server` and enroll agents with `mspclaw enroll CLIENT`.",
    no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from mspclaw import __version__

        print(f"mspclaw {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    url: Annotated[
        str | None, typer.Option(help="Server URL for commands that talk to it [env MSPCLAW_SERVER_URL].")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Data directory [env MSPCLAW_DATA_DIR; default ./.mspclaw].")
    ] = None,
    _version: Annotated[bool, typer.Option("--version", help="Print the version and exit.", is_eager=True,
                                           callback=_print_version)] = False,
) -> None:
    config.use_options(server_url=url or None, data_dir=data_dir or None)


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
    import functools

    from mspclaw.api.server import Build, check_can_listen, database_unreachable
    from mspclaw.api.server import run as run_server
    from mspclaw.api.tls import ListenOptions
    from mspclaw.playbooks.loader import PlaybookError
    from mspclaw.wiring import Services, build

    cfg = config.settings(host=host, port=port, data_dir=data_dir, database_url=database_url,
                          playbook_dirs=playbooks)
    listen = ListenOptions.from_settings(cfg)  # a missing or unreadable certificate stops here, named
    try:
        check_can_listen(cfg.host, (cfg.port, cfg.agent_port))  # a port in use: one line, before any banner
    except ConfigError as exc:
        err.print(f"error: {exc.message}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(ExitCode.CANNOT_LISTEN) from exc
    services: Services | Build
    try:
        try:
            services = build(cfg)
        except MSPClawError as exc:  # the database down at start: serve /readyz and keep trying
            if not database_unreachable(exc):
                raise
            err.print(f"{exc.message}\nServing /healthz and /readyz meanwhile; trying the database again.",
                      markup=False, highlight=False)
            services = functools.partial(build, cfg)
        key_hint = "from MSPCLAW_API_KEY" if cfg.api_key else f"in {cfg.data_dir / 'api_key'}"
        err.print(f"MSPclaw server on {listen.scheme}://{cfg.host}:{cfg.port}, agents on port {cfg.agent_port}  "
                  f"(docs at /docs; API key {key_hint})")
        try:
            run_server(services, host=cfg.host, port=cfg.port, log_level=cfg.log_level, log_format=cfg.log_format,
                       retry_max_s=cfg.database_retry_s, listen=listen)
        finally:
            if isinstance(services, Services):
                services.close()
    except PlaybookError as exc:  # at start, or once the database answered
        for problem in exc.problems:
            err.print(problem, markup=False, highlight=False, soft_wrap=True)
        err.print(f"{len(exc.problems)} playbook problem(s); the server did not start.", markup=False)
        raise typer.Exit(1) from exc


def agent(ctx: typer.Context) -> None:
    """Run the agent daemon (`mspclaw agent --help` for its options)."""
    from mspclaw.agent.main import main as agent_main

    raise typer.Exit(agent_main(list(ctx.args)))


def site(ctx: typer.Context) -> None:
    """Configure a site agent's integrations: add ad|entra|jamf|cups|openvpn, test, list, remove, policy
    (`mspclaw site --help`)."""
    from mspclaw.agent.site.cli import main as site_main

    raise typer.Exit(site_main(list(ctx.args)))


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


_PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}
"""``agent`` and ``site`` hand every argument, ``--help`` included, to the agent's own parser."""

app.command("stats")(stats)
app.command()(server)
app.command(context_settings=dict(_PASS_THROUGH), add_help_option=False)(agent)
app.command(context_settings=dict(_PASS_THROUGH), add_help_option=False)(site)
app.command()(demo)
app.command()(enroll)
app.command("run-ticket")(run_ticket)
app.add_typer(clients_app, name="clients")
app.add_typer(agents_app, name="agents")
app.add_typer(tickets_app, name="tickets")
app.add_typer(approvals_app, name="approvals")
app.add_typer(audit_app, name="audit")
app.add_typer(jobs_app, name="jobs")
app.add_typer(psa_app, name="psa")
app.add_typer(playbooks_app, name="playbooks")
app.add_typer(devices_app, name="devices")
app.add_typer(tech_app, name="tech")
app.add_typer(sso_app, name="sso")
app.add_typer(keys_app, name="keys")
app.add_typer(escalations_app, name="escalations")
register_data_commands(app)  # backup, restore, prune, secrets


def run() -> None:
    try:
        app()
    except MSPClawError as exc:
        err.print(f"error: {exc.message}", markup=False, highlight=False)
        sys.exit(exc.exit_code if isinstance(exc, CLIError) else ExitCode.ERROR)
