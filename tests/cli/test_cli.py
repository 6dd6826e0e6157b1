"""The ``mspclaw`` command as a user runs it: a real process, its output and its exit code."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import live_server, make_old_files

ROOT = Path(__file__).parents[2]


def mspclaw(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run([sys.executable, "-m", "mspclaw", *args], capture_output=True, text=True, env=full_env,
                          timeout=timeout, cwd=ROOT, stdin=subprocess.DEVNULL)


def test_help_lists_every_command() -> None:
    result = mspclaw("--help")
    assert result.returncode == 0
    for command in ("server", "agent", "demo", "enroll", "clients", "agents", "tickets", "approvals", "audit"):
        assert re.search(rf"\b{command}\b", result.stdout), command
    agent_help = mspclaw("agent", "--help")
    assert agent_help.returncode == 0 and "--enroll" in agent_help.stdout


def test_demo_once_runs_every_sample_ticket_through_the_loop() -> None:
    """The sample tickets only: the demo's own directory (lockout, password reset) is tested on its own,
    in tests/cli/test_demo_directory.py, since its Samba DC needs ports another test may hold."""
    result = mspclaw("demo", "--once", env={"MSPCLAW_DEMO_SAMBA": "/nonexistent/samba"}, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    last = result.stdout.strip().splitlines()[-1]
    match = re.fullmatch(r"demo: (\d+) tickets, (\d+) resolved, (\d+) escalated", last)
    assert match, last
    total, resolved, escalated = map(int, match.groups())
    assert total >= 5 and resolved + escalated == total
    # the user's full disk resolves; the forwarded monitoring alert, the jammed printer and the phishing
    # report never get a playbook (whether the network and slowness tickets resolve depends on this machine)
    assert resolved >= 1 and escalated >= 3
    assert "approved by Dana Whitfield (demo technician)" in result.stdout
    assert "deleted 24 old temp files" in result.stdout


@pytest.mark.anyio
async def test_cli_talks_to_a_running_server(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live:
        env = {"MSPCLAW_SERVER_URL": live.url, "MSPCLAW_API_KEY": live.api_key}

        async def run(*args: str, **kw: str) -> subprocess.CompletedProcess[str]:
            return await asyncio.to_thread(mspclaw, *args, env={**env, **kw})

        added = await run("clients", "add", "Acme Dental", "--psa", "superops=4521")
        assert added.returncode == 0 and added.stdout.strip().startswith("cl_")
        listed = json.loads((await run("clients", "list", "--json")).stdout)
        assert listed[0]["psa_refs"] == {"superops": "4521"}
        code = await run("enroll", "Acme Dental")
        assert code.returncode == 0 and code.stdout.strip().startswith("enr_")
        assert "mspclaw agent --server" in code.stderr
        bad_psa = await run("clients", "add", "X", "--psa", "superops")
        assert bad_psa.returncode == 1 and "expected PSA=ID" in bad_psa.stderr
        wrong = await run("clients", "list", MSPCLAW_API_KEY="nope")
        assert wrong.returncode == 1 and "401" in wrong.stderr and "wrong API key" in wrong.stderr
        missing = await run("tickets", "show", "tk_missing")
        assert missing.returncode == 1 and "no ticket" in missing.stderr
        empty = await run("approvals", "list", "--json")
        assert json.loads(empty.stdout) == []

        make_old_files(tmp_path / "temp", 2)
        await live.start_agent(listed[0]["id"], temp_root=tmp_path / "temp")
        agents = await run("agents", "list")
        assert "online" in agents.stdout
        submitted = await run("tickets", "submit", "--client", "Acme Dental", "--subject", "disk full",
                              "--body", "no space left")
        ticket_id = submitted.stdout.strip()
        pending = json.loads((await live.http.get("/api/approvals")).text)
        while not pending:
            await asyncio.sleep(0.1)
            pending = json.loads((await live.http.get("/api/approvals")).text)
        table = await run("approvals", "list")
        assert pending[0]["id"] in table.stdout and "clear_temp_files" in table.stdout
        approved = await run("approvals", "approve", pending[0]["id"], "--as", "Dana")
        assert approved.returncode == 0 and "approved by Dana" in approved.stdout
        twice = await run("approvals", "deny", pending[0]["id"], "--as", "Sam")
        assert twice.returncode == 1 and "already approved by Dana" in twice.stderr
        await live.wait_ticket(ticket_id)
        shown = await run("tickets", "show", ticket_id)
        assert "resolved" in shown.stdout and "Internal note" in shown.stdout and "[bold]" not in shown.stdout


def test_cli_without_a_server_says_what_to_do(tmp_path: Path) -> None:
    result = mspclaw("clients", "list", env={"MSPCLAW_SERVER_URL": "http://127.0.0.1:9", "MSPCLAW_API_KEY": "k"})
    assert result.returncode == 1 and "mspclaw server" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.anyio
async def test_audit_lists_and_verify_catches_tampering(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live:
        await live.client("Acme")
        await live.client("Bravo")
    data = str(tmp_path / "data")
    listed = mspclaw("--data-dir", data, "audit", "--json", "--kind", "client_created")
    assert listed.returncode == 0
    names = [json.loads(line)["data"]["name"] for line in listed.stdout.splitlines()]
    assert names == ["Acme", "Bravo"]
    ok = mspclaw("--data-dir", data, "audit", "verify")
    assert ok.returncode == 0 and "chain intact" in ok.stdout
    (day,) = sorted((tmp_path / "data" / "audit").glob("*.jsonl"))
    lines = day.read_text().splitlines()
    lines[1] = lines[1].replace("Bravo", "Evil")
    day.write_text("\n".join(lines) + "\n")
    bad = mspclaw("--data-dir", data, "audit", "verify")
    assert bad.returncode == 1 and f"{day.name}:2" in bad.stderr


def test_psa_accounts_are_added_listed_without_secrets_and_built_into_connectors(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    env = {"MSPCLAW_PSA_TOKEN": "tok_super_secret_123", "MSPCLAW_API_KEY": "k"}
    added = mspclaw("--data-dir", data, "psa", "add", "superops", "--subdomain", "acme-msp", "--region", "eu",
                    "--webhook-secret", "whsec_hidden_456", env=env)
    assert added.returncode == 0, added.stderr
    bad = mspclaw("--data-dir", data, "psa", "add", "superops", env=env)
    assert bad.returncode == 1 and "--subdomain" in bad.stderr
    listed = mspclaw("--data-dir", data, "psa", "list", "--json")
    (account,) = json.loads(listed.stdout)
    assert account["name"] == "superops" and account["config"]["region"] == "eu"
    everything = listed.stdout + "".join(p.read_text() for p in (tmp_path / "data" / "audit").glob("*.jsonl"))
    assert "tok_super_secret_123" not in everything and "whsec_hidden_456" not in everything

    from mspclaw.connectors.superops import SuperOpsConnector
    from mspclaw.settings import Settings
    from mspclaw.wiring import build

    services = build(Settings(data_dir=tmp_path / "data", api_key="k"))
    try:
        assert isinstance(services.intake.connector("superops"), SuperOpsConnector)
    finally:
        services.close()
    assert mspclaw("--data-dir", data, "psa", "remove", "superops").returncode == 0
    assert json.loads(mspclaw("--data-dir", data, "psa", "list", "--json").stdout) == []
