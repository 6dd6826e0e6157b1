"""What a technician meets every day with ``mspclaw``, against a live server with a real agent:
``tickets list`` and its filters, ``--wait`` with its timeout and exit codes, groups run bare, and
every list and show printing tables or JSON, never a Python repr."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tests.cli.test_cli import mspclaw
from tests.conftest import Live, live_server, make_old_files

pytestmark = pytest.mark.anyio

REPRS = ("{'", "[{", "['", "None", "True", "False")
"""What a Python repr of a dict, a list, a missing value or a flag looks like in output."""


class Cli:
    def __init__(self, live: Live, **env: str) -> None:
        self.env = {"MSPCLAW_SERVER_URL": live.url, "MSPCLAW_API_KEY": live.api_key,
                    "MSPCLAW_DATA_DIR": str(live.tmp / "data"), **env}

    async def __call__(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(mspclaw, *args, env={**self.env, **env})

    async def json(self, *args: str) -> Any:
        done = await self(*args, "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


async def _escalated_and_resolved(live: Live, cli: Cli) -> tuple[str, str, str]:
    """Acme (an agent, a full disk: resolved after an approval) and Bravo (no agent: escalated);
    returns (acme ticket, bravo ticket, approval id)."""
    acme = (await cli("clients", "add", "Acme Dental", "--psa", "superops=4521")).stdout.strip()
    await cli("clients", "add", "Bravo Law")
    make_old_files(live.tmp / "temp", 2)
    await live.start_agent(acme, temp_root=live.tmp / "temp")
    bravo = await cli("tickets", "submit", "--client", "Bravo Law", "--subject", "printer jammed", "--wait",
                      "--timeout", "60")
    assert bravo.returncode == 5, bravo.stderr  # escalated: not resolved
    bravo_id = bravo.stdout.splitlines()[0]
    assert "escalated" in bravo.stdout
    # nobody approves within the timeout: exit 4, with the progress that says what it waits for
    waited = await cli("tickets", "submit", "--client", "Acme Dental", "--subject", "disk full",
                       "--body", "no space left on device", "--wait", "--timeout", "3")
    assert waited.returncode == 4, waited.stderr
    acme_id = waited.stdout.strip()
    approval = (await live.wait_approval())["id"]
    assert f"{acme_id}: waiting for approval {approval} (clear_temp_files): mspclaw approvals approve {approval}" \
        in waited.stderr
    assert f"error: {acme_id} is still in_progress after 3 s" in waited.stderr
    assert f"mspclaw tickets show {acme_id}" in waited.stderr
    return acme_id, bravo_id, approval


@pytest.mark.timeout(300)
async def test_tickets_list_filters_and_wait_until_resolved(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live:
        cli = Cli(live)
        acme_id, bravo_id, approval = await _escalated_and_resolved(live, cli)
        # a wait that sees the approval and the outcome: exit 0, every step on standard error
        await cli("approvals", "approve", approval, "--as", "Dana")
        await live.wait_ticket(acme_id)
        make_old_files(live.tmp / "temp", 2)
        follow = asyncio.ensure_future(cli("tickets", "submit", "--client", "Acme Dental", "--subject",
                                           "disk full again", "--wait", "--timeout", "120"))
        second = await live.wait_approval()
        assert (await cli("approvals", "approve", second["id"], "--as", "Dana")).returncode == 0
        done = await follow
        assert done.returncode == 0, done.stderr
        second_id = done.stdout.splitlines()[0]
        assert "-> resolved" in done.stdout and "Internal note" in done.stdout
        assert f"{second_id}: step 1:" in done.stderr and f"approval {second['id']} approved by Dana" in done.stderr

        async def ids(*filters: str) -> list[str]:
            return [t["id"] for t in await cli.json("tickets", "list", *filters)]

        assert await ids() == [second_id, acme_id, bravo_id]  # newest first
        assert await ids("--status", "escalated") == [bravo_id]
        assert await ids("--status", "resolved") == [second_id, acme_id]
        assert await ids("--client", "Acme Dental") == [second_id, acme_id]
        assert await ids("--playbook", "disk_full") == [second_id, acme_id]
        assert await ids("--playbook", "disk_full", "--status", "escalated") == []
        assert await ids("--since", "1h") == [second_id, acme_id, bravo_id]
        assert await ids("--since", "2999-01-01T00:00") == []
        assert await ids("--limit", "1") == [second_id]
        table = await cli("tickets", "list", "--status", "escalated")
        assert table.returncode == 0 and bravo_id in table.stdout and acme_id not in table.stdout
        assert "printer jammed" in table.stdout
        bad_since = await cli("tickets", "list", "--since", "last week")
        assert bad_since.returncode == 1 and "use an ISO time" in bad_since.stderr
        too_many = await cli("tickets", "list", "--limit", "501")
        assert too_many.returncode == 2 and "less than or equal to 500" in too_many.stderr
        missing = await cli("tickets", "list", "--client", "Nobody Inc")
        assert missing.returncode == 1 and "no client 'Nobody Inc'" in missing.stderr

        # a key scoped to Bravo sees Bravo's tickets only, and Acme is "not found" to it
        bravo_key = (await cli("keys", "create", "bravo-viewer", "--client", "Bravo Law")).stdout.strip()
        scoped = Cli(live, MSPCLAW_API_KEY=bravo_key)
        assert [t["id"] for t in await scoped.json("tickets", "list")] == [bravo_id]
        hidden = await scoped("tickets", "list", "--client", "Acme Dental")
        assert hidden.returncode == 1 and "no client 'Acme Dental'" in hidden.stderr


def _assert_no_repr(command: tuple[str, ...], done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, (command, done.stderr)
    assert done.stdout.strip(), command
    for text in REPRS:
        assert text not in done.stdout, (command, text, done.stdout)
    assert "Usage:" not in done.stdout + done.stderr, command


@pytest.mark.timeout(300)
async def test_every_list_and_show_prints_a_table_or_json_and_groups_run_bare_list(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live:
        cli = Cli(live)
        acme_id, bravo_id, approval = await _escalated_and_resolved(live, cli)
        await cli("keys", "create", "psa-bridge", "--role", "tech", "--all-clients")
        await cli("tech", "add", "Dana Scully", "--email", "dana@msp.example", "--client", "*")
        await cli("psa", "add", "superops", "--subdomain", "acme-msp", MSPCLAW_PSA_TOKEN="tok")
        [device] = await cli.json("devices", "list")
        [escalation] = await cli.json("escalations", "list")
        [playbook, *_] = await cli.json("playbooks", "list")

        # while the approval waits: the approvals table, bare and as `list`
        listed = await cli("approvals", "list")
        bare = await cli("approvals")
        for done in (listed, bare):
            _assert_no_repr(("approvals",), done)
            assert approval in done.stdout and "Pending approvals" in done.stdout
        approved = await cli("approvals", "approve", approval, "--as", "Dana Scully")
        assert approved.returncode == 0, approved.stderr
        await live.wait_ticket(acme_id)

        shows = [("tickets", "show", acme_id), ("tickets", "show", bravo_id), ("devices", "show", device["id"]),
                 ("escalations", "show", escalation["id"]), ("playbooks", "show", playbook["id"])]
        lists = [("clients", "list"), ("agents", "list"), ("tickets", "list"), ("approvals", "list"),
                 ("jobs", "list"), ("devices", "list"), ("keys", "list"), ("escalations", "list"),
                 ("playbooks", "list"), ("tech", "list"), ("psa", "list"), ("stats",), ("audit",)]
        commands = [*shows, *lists]
        tables = await asyncio.gather(*(cli(*command) for command in commands))
        as_json = await asyncio.gather(*(cli(*command, "--json") for command in commands))
        for command, shown, data in zip(commands, tables, as_json, strict=True):
            _assert_no_repr(command, shown)
            assert data.returncode == 0, (command, data.stderr)
            if command[0] == "audit":  # one JSON object per line
                assert [json.loads(line)["kind"] for line in data.stdout.splitlines()]
            else:
                json.loads(data.stdout)
        clients = await cli("clients", "list")
        assert "superops=4521" in clients.stdout  # a mapping in a table cell reads as key=value

        # every group run bare runs its list; the first lines (title, header) are the list's own
        groups = ("clients", "agents", "tickets", "jobs", "devices", "keys", "escalations", "playbooks", "tech", "psa")
        bares = await asyncio.gather(*(cli(group) for group in groups))
        lists_again = await asyncio.gather(*(cli(group, "list") for group in groups))
        for group, bare, listed in zip(groups, bares, lists_again, strict=True):
            _assert_no_repr((group,), bare)
            assert bare.stdout.splitlines()[:3] == listed.stdout.splitlines()[:3], group
        audit = await cli("audit")
        _assert_no_repr(("audit",), audit)
        assert audit.stdout.splitlines()[0].strip() == "Audit"
        helped = await cli("devices", "--help")
        assert helped.returncode == 0 and "forget" in helped.stdout and "Devices" not in helped.stdout
