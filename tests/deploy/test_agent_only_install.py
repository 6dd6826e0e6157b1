"""On an install with only the agent's dependencies, server commands say so instead of a traceback.

The server packages are made unimportable in a child interpreter (``sys.modules[name] = None`` makes
``import name`` fail as if it were not installed); the single-file agent test checks the same in a
real virtual environment with only the ``agent`` extra.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

SERVER_ONLY = ["typer", "fastapi", "sqlalchemy", "uvicorn", "alembic", "pydantic_settings", "yaml", "rich",
               "httpx", "psycopg"]


def run_without_server_packages(*argv: str) -> subprocess.CompletedProcess[str]:
    program = (
        "import sys\n"
        f"for name in {SERVER_ONLY!r}:\n"
        "    sys.modules[name] = None\n"
        f"sys.argv = ['mspclaw', *{list(argv)!r}]\n"
        "from mspclaw.__main__ import main\n"
        "main()\n"
    )
    return subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("argv", [["clients", "list"], ["server"], ["tickets", "submit", "--client", "x"]])
def test_a_server_command_names_the_missing_extra(argv: list[str]) -> None:
    done = run_without_server_packages(*argv)
    assert done.returncode == 2, done.stderr
    assert f"mspclaw {argv[0]}: this command needs MSPclaw's server components" in done.stderr
    assert "it is an agent-only install" in done.stderr
    assert "pip install 'mspclaw[server]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_agent_commands_work_without_the_server_packages() -> None:
    agent = run_without_server_packages("agent", "--help")
    assert agent.returncode == 0, agent.stderr
    assert "--enroll CODE" in agent.stdout
    site = run_without_server_packages("site", "--help")
    assert site.returncode == 0, site.stderr
