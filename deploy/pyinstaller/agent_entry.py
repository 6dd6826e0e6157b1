"""Entry point of the single-file agent ``mspclaw-agent`` (PyInstaller; ``mspclaw-agent.spec``).

``mspclaw-agent agent ...`` and ``mspclaw-agent site ...`` are ``mspclaw agent ...`` and ``mspclaw site
...``; on Windows ``mspclaw-agent service`` is what the Service Control Manager starts
(:mod:`mspclaw.agent.winservice`). Anything else gets the same clear "agent-only" message as an
agent-only pip install.
"""

import sys

from mspclaw.__main__ import main

if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "service":
        from mspclaw.agent.winservice import main as service_main

        sys.exit(service_main(sys.argv[2:]))
    main()
