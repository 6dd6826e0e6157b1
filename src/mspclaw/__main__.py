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
    from mspclaw.cli.app import run

    run()


if __name__ == "__main__":
    main()
