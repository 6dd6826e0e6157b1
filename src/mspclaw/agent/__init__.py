"""The MSPclaw agent daemon: enrolls once, then keeps one WebSocket to the server and runs tools.

It imports only :mod:`mspclaw.protocol`, :mod:`mspclaw.tools`, :mod:`mspclaw.errors`, the
standard library, pydantic and websockets, so a machine installs it with the ``agent`` extra
alone. Configuration comes from command-line flags (:mod:`mspclaw.agent.main`), never from
environment variables.

The pieces, each in its own module:

* :mod:`~mspclaw.agent.state`: the enrolled identity in ``agent.json`` (credential, pinned key).
* :mod:`~mspclaw.agent.enroll`: trades a one-time code for that identity over HTTP.
* :mod:`~mspclaw.agent.journal`: call_id -> recorded result, so no call runs twice.
* :mod:`~mspclaw.agent.executor`: the checks every call passes before its tool runs.
* :mod:`~mspclaw.agent.tools`: the tools this operating system implements.
* :mod:`~mspclaw.agent.daemon`: the asyncio pump over the sans-I/O protocol connection.
"""

from mspclaw.agent.daemon import AgentDaemon
from mspclaw.agent.executor import Executor
from mspclaw.agent.journal import Journal
from mspclaw.agent.state import AgentState
from mspclaw.agent.tools import ToolContext

__all__ = ["AgentDaemon", "AgentState", "Executor", "Journal", "ToolContext"]
