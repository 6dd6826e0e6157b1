"""The exit codes of ``mspclaw`` commands, documented per command in docs/cli.md.

Click itself exits 2 on a usage error (an unknown option, a missing argument), and ``python -m mspclaw``
exits 2 when a server command runs on an agent-only install.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    """The command did what it says."""
    ERROR = 1
    """It failed: the server refused or did not answer, something named was not found, bad input, a check failed."""
    USAGE = 2
    """The command line itself is wrong (Click), or the command needs the server extra."""
    CANNOT_LISTEN = 3
    """``mspclaw server`` could not listen on its address or port (in use, not permitted)."""
    TIMEOUT = 4
    """``--wait`` ran out of ``--timeout``; the work goes on on the server."""
    NOT_RESOLVED = 5
    """``--wait`` saw the ticket end without being resolved (escalated to a technician)."""
