"""``mspclaw agent``: enroll once, then stay connected to the MSPclaw server and run its tool calls.

Configuration is the command line and nothing else (no environment variables), so what a
service unit runs is exactly what it says. Exit codes: 0 stopped cleanly (Ctrl-C, SIGTERM),
1 enrollment or start-up failed, 2 usage error or not enrolled, 3 the server refused this
agent's credential or protocol version (retrying would not help).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import ssl
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import mspclaw
from mspclaw.agent.daemon import EXIT_FATAL, EXIT_OK, AgentDaemon, desktop_answer
from mspclaw.agent.enroll import EnrollRequest, enroll, server_base
from mspclaw.agent.executor import Executor, offered_tools
from mspclaw.agent.journal import Journal
from mspclaw.agent.secret_dialog import desktop_secret
from mspclaw.agent.state import (
    JOURNAL_FILE,
    AgentState,
    NotEnrolled,
    default_state_dir,
    ensure_state_dir,
    load_state,
    save_state,
)
from mspclaw.agent.tls import client_context, pin_ca, pinned_ca
from mspclaw.agent.tools import ToolContext, ToolFn, current_os, hostname, os_version, temp_roots, tool_registry
from mspclaw.errors import MSPClawError

if TYPE_CHECKING:
    from mspclaw.agent.site.registry import SiteIntegrations

log = logging.getLogger("mspclaw.agent")

EXIT_FAILED = 1
EXIT_USAGE = 2

_DESCRIPTION = """\
Run the MSPclaw agent on this machine: it keeps one WebSocket open to the MSPclaw server
and runs the diagnostic and repair tools the server asks for, after checking each call's
signature, arguments and (for changes) technician approval.

First run, with a code printed by `mspclaw enroll CLIENT` on the server:
  mspclaw agent --server https://mspclaw.example.com --enroll 7Q2K-9XPD

Every later run (for example from a systemd unit):
  mspclaw agent --server https://mspclaw.example.com
"""

_EPILOG = """\
exit codes: 0 stopped (Ctrl-C or SIGTERM); 1 enrollment or start-up failed; 2 usage error or
not enrolled; 3 the server refused this agent's credential or protocol version (enroll again
or upgrade).
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mspclaw agent",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--server",
        required=True,
        metavar="URL",
        help="http(s) URL of the MSPclaw server, e.g. http://127.0.0.1:8700 (the agent then connects "
        "to the agent channel the server names at enrollment)",
    )
    parser.add_argument(
        "--enroll",
        metavar="CODE",
        help="enroll with this single-use code from `mspclaw enroll CLIENT`, store the credential, then connect",
    )
    parser.add_argument(
        "--ca-file",
        type=Path,
        metavar="PEM",
        help="CA certificate that signed the server's certificate (self-signed or private CA): pinned in the "
        "state directory and trusted instead of the system's store from then on (default: the pinned CA, "
        "else the system's trust store)",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help="where the credential (agent.json) and the call journal live "
        f"(default: {default_state_dir()})",
    )
    parser.add_argument(
        "--temp-root",
        action="append",
        metavar="DIR",
        help="a folder clear_temp_files may clean; repeat for several. Default: the system temp folder, "
        "/var/tmp and ~/.cache/thumbnails. Tool calls cannot add folders.",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="how much to log to stderr (default: info)",
    )
    parser.add_argument("--version", action="version", version=f"mspclaw agent {mspclaw.__version__}")
    return parser


@contextmanager
def logging_to_stderr(level: str) -> Iterator[None]:
    """Log with timestamps to stderr for the life of the command, then put logging back as it was."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def main(argv: list[str]) -> int:
    """Entry point of ``mspclaw agent``; returns the process exit code."""
    args = build_parser().parse_args(argv)
    with logging_to_stderr(args.log_level):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    state_dir: Path = args.state_dir or default_state_dir()
    try:
        server = server_base(args.server)
        tls = client_context(args.ca_file or pinned_ca(state_dir))
        context = ToolContext(temp_roots=temp_roots(args.temp_root))
        registry = tool_registry()
    except MSPClawError as exc:
        log.error("%s", exc.message)
        return EXIT_USAGE
    try:
        if args.enroll:
            state = _enroll(server, args.enroll, state_dir, offered=offered_tools(registry), tls=tls)
        else:
            state = load_state(state_dir)
        if args.ca_file is not None:
            pin_ca(ensure_state_dir(state_dir), args.ca_file)
    except NotEnrolled as exc:
        log.error(
            "not enrolled (%s): run `mspclaw agent --server URL --enroll CODE` with a code from "
            "`mspclaw enroll CLIENT`",
            exc.message,
        )
        return EXIT_USAGE
    except MSPClawError as exc:
        log.error("%s", exc.message)
        return EXIT_FAILED
    if state.server and state.server != server:
        log.warning("this agent enrolled with %s but is now pointed at %s", state.server, server)
    site = None
    if state.role == "site":
        try:
            registry, site = _site_tools(state_dir)
        except MSPClawError as exc:
            log.error("%s", exc.message)
            return EXIT_FAILED
    try:
        journal = Journal(ensure_state_dir(state_dir) / JOURNAL_FILE)
    except MSPClawError as exc:
        log.error("%s", exc.message)
        return EXIT_FAILED
    if journal.pruned:
        log.info("journal: forgot %d calls older than 7 days", journal.pruned)
    executor = Executor(key=state.key, registry=registry, journal=journal, context=context,
                        approval_key=state.approval_public_key, agent_id=state.agent_id)
    log.info("temp roots for clear_temp_files: %s", ", ".join(map(str, context.temp_roots)) or "none")
    try:
        return asyncio.run(_serve(AgentDaemon(server=server, state=state, executor=executor, answers=desktop_answer,
                                                 secrets=desktop_secret, ssl_context=tls)))
    except KeyboardInterrupt:  # a second Ctrl-C, or a platform without signal handlers
        return EXIT_OK
    finally:
        journal.close()
        if site is not None:
            site.close()


def _site_tools(state_dir: Path) -> tuple[dict[str, ToolFn], SiteIntegrations]:
    """A site agent offers exactly what the integrations in ``site.json`` can do (``mspclaw site add``)."""
    from mspclaw.agent.site.config import load_site
    from mspclaw.agent.site.registry import site_registry

    config = load_site(state_dir)
    registry, site = site_registry(config)
    if not registry:
        log.warning("site agent with no integrations: it offers no tools until you run `mspclaw site add "
                    "ad|entra|jamf|cups|openvpn --state-dir %s` and restart it", state_dir)
    else:
        log.info("site integrations: %s; offering %d tools", ", ".join(config.integrations), len(registry))
    return registry, site


def _enroll(server: str, code: str, state_dir: Path, offered: list[str], tls: ssl.SSLContext) -> AgentState:
    request = EnrollRequest(
        code=code,
        hostname=hostname(),
        os=current_os(),
        os_version=os_version(),
        agent_version=mspclaw.__version__,
        tools=offered,
    )
    log.info("enrolling with %s as %s", server, request.hostname)
    state = enroll(server, request, ssl_context=tls)
    path = save_state(state_dir, state)
    log.info("enrolled as agent %s of client %s (role %s); identity saved in %s",
             state.agent_id, state.client_id, state.role, path)
    return state


async def _serve(daemon: AgentDaemon) -> int:
    """Run the daemon with SIGINT and SIGTERM turned into a clean :meth:`AgentDaemon.stop`."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, daemon.stop)
        except (NotImplementedError, RuntimeError):  # Windows: Ctrl-C arrives as KeyboardInterrupt
            pass
    code = await daemon.run()
    if code == EXIT_FATAL:
        log.error("stopping: the server will not accept this agent until the problem above is fixed")
    return code
