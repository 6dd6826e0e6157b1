"""Exit codes: docs/cli.md documents every command that exists, and ``mspclaw server`` reports a port it
cannot listen on as one line and exit code 3, before any banner."""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Any

import typer
from tests.cli.test_cli import mspclaw

from mspclaw.cli.app import app
from mspclaw.cli.exits import ExitCode

DOC = Path(__file__).parents[2] / "docs" / "cli.md"
ROW = re.compile(r"^\| `(mspclaw[^`]*)` \| ([0-9, ]+) \|\s*(.*?)\s*\|$")
LEGEND = re.compile(r"^\| (\d+) \| (.+) \|$")


def commands() -> dict[str, Any]:
    """Every command a user can run, by its full name: the leaf commands, and the groups that run a
    default command when run bare (``mspclaw tickets``)."""
    found: dict[str, Any] = {}

    def walk(command: Any, path: str) -> None:
        if hasattr(command, "list_commands"):
            if getattr(command, "invoke_without_command", False):
                found[path] = command
            ctx = typer.Context(command)
            for name in command.list_commands(ctx):
                walk(command.get_command(ctx, name), f"{path} {name}")
        else:
            found[path] = command

    root: Any = typer.main.get_command(app)  # a group: walked like its subgroups
    ctx = typer.Context(root)
    for name in root.list_commands(ctx):
        walk(root.get_command(ctx, name), f"mspclaw {name}")
    return found


def documented() -> dict[str, tuple[set[int], str]]:
    rows: dict[str, tuple[set[int], str]] = {}
    for line in DOC.read_text().splitlines():
        match = ROW.match(line)
        if match:
            assert match[1] not in rows, f"{match[1]} is documented twice"
            rows[match[1]] = ({int(c) for c in match[2].split(",")}, match[3])
    return rows


def test_every_command_has_its_exit_codes_documented_and_no_other() -> None:
    existing, rows = commands(), documented()
    assert len(existing) > 40  # the walk found the command tree
    assert sorted(set(existing) - set(rows)) == [], "commands without a row in docs/cli.md's exit codes table"
    assert sorted(set(rows) - set(existing)) == [], "rows in docs/cli.md for commands that do not exist"


def test_the_codes_used_are_the_ones_the_code_defines_and_the_legend_explains() -> None:
    legend = {int(m[1]): m[2] for line in DOC.read_text().splitlines() if (m := LEGEND.match(line))}
    assert set(legend) == {int(code) for code in ExitCode}
    for name, (codes, specific) in documented().items():
        assert {0, 1, 2} <= codes <= set(legend), name
        for code in codes - {0, 1, 2}:
            assert f"{code}:" in specific, f"{name}: say what exit code {code} means for this command"


def test_commands_that_wait_document_the_timeout_and_the_unresolved_outcome() -> None:
    rows = documented()
    waiting = [name for name, command in commands().items()
               if any("--timeout" in getattr(p, "opts", []) for p in getattr(command, "params", []))]
    assert sorted(waiting) == ["mspclaw run-ticket", "mspclaw tickets submit"]
    for name in waiting:
        assert {ExitCode.TIMEOUT, ExitCode.NOT_RESOLVED} <= rows[name][0], name
    assert ExitCode.CANNOT_LISTEN in rows["mspclaw server"][0]


def _busy_port() -> socket.socket:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    return holder


def test_server_on_a_port_in_use_says_so_in_one_line_before_any_banner(tmp_path: Path) -> None:
    with _busy_port() as holder:
        port = holder.getsockname()[1]
        result = mspclaw("server", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(tmp_path / "data"),
                         env={"MSPCLAW_AGENT_PORT": "0"}, timeout=60)
    assert result.returncode == ExitCode.CANNOT_LISTEN and int(ExitCode.CANNOT_LISTEN) == 3, result.stderr
    assert result.stderr.splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: the port is in use by another program (another `mspclaw "
        "server`?); stop it or choose another with --port or MSPCLAW_PORT / MSPCLAW_AGENT_PORT"]
    assert result.stdout == ""
    assert not (tmp_path / "data").exists()  # nothing was built: no database, no key file


def test_server_whose_agent_port_is_taken_fails_the_same_way(tmp_path: Path) -> None:
    with socket.socket() as free, _busy_port() as holder:
        free.bind(("127.0.0.1", 0))
        api_port = free.getsockname()[1]
        free.close()
        agent_port = holder.getsockname()[1]
        result = mspclaw("server", "--host", "127.0.0.1", "--port", str(api_port),
                         "--data-dir", str(tmp_path / "data"), env={"MSPCLAW_AGENT_PORT": str(agent_port)}, timeout=60)
    assert result.returncode == 3, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: cannot listen on 127.0.0.1:{agent_port}: the port is in use")
    assert "MSPclaw server on" not in result.stderr + result.stdout


def test_server_on_an_address_this_machine_lacks_says_so(tmp_path: Path) -> None:
    result = mspclaw("server", "--host", "192.0.2.77", "--port", "8700", "--data-dir", str(tmp_path / "data"),
                     timeout=60)
    assert result.returncode == 3, result.stderr
    assert result.stderr.splitlines() == [
        "error: cannot listen on 192.0.2.77:8700: this machine has no such address; check --host or MSPCLAW_HOST"]
    assert "Traceback" not in result.stderr
