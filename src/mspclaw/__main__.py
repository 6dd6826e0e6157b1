"""``mspclaw`` entry point.

``mspclaw agent ...`` runs the agent daemon and ``mspclaw site ...`` configures a site agent,
both without importing any server dependency, so an agent installed with only the ``agent``
extra (pydantic, websockets, plus ``site`` for a site agent) works. Every other command goes to
the Typer CLI.
"""

from __future__ import annotations

import sys


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "agent":
        from mspclaw.agent.main import main as agent_main

        sys.exit(agent_main(sys.argv[2:]))
    if len(sys.argv) > 1 and sys.argv[1] == "site":
        from mspclaw.agent.site.cli import main as site_main

        sys.exit(site_main(sys.argv[2:]))
    try:
        from mspclaw.cli.app import run
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.startswith(_AGENT_MODULES):
            raise  # a broken agent install, not a missing server part
        sys.exit(_needs_server_extra(exc.name))
    run()


EXIT_NEEDS_SERVER_EXTRA = 2
# What an agent-only install (the `agent` extra, or the single-file agent, which leaves out mspclaw.cli
# and the server's packages) must have; any other missing module is a server part.
_AGENT_MODULES = ("mspclaw.agent", "mspclaw.protocol", "mspclaw.tools", "mspclaw.errors", "pydantic",
                  "websockets", "platformdirs")


def _needs_server_extra(missing: str) -> int:
    """Say, instead of an import traceback, that this command needs what an agent-only install lacks."""
    command = " ".join(["mspclaw", *sys.argv[1:2]])
    print(f"{command}: this command needs MSPclaw's server components, which this installation lacks "
          f"(no Python package {missing!r}): it is an agent-only install.\n"
          "  On this machine: `mspclaw agent ...` runs the agent, `mspclaw site ...` configures a site agent.\n"
          "  For the server and its commands: pip install 'mspclaw[server]'.", file=sys.stderr)
    return EXIT_NEEDS_SERVER_EXTRA


if __name__ == "__main__":
    main()
