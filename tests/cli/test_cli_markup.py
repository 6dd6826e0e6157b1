"""User-controlled text in the CLI's tables shows as written: square brackets are never Rich markup.

A client named ``[red]Acme[/red]`` or an audit value ``[redacted]`` used to be interpreted by the
tables (``[redacted]`` vanished from ``mspclaw audit``, so a reader could not see that something was
redacted). Each command runs as a real process against a live server or the data directory.
"""

from __future__ import annotations

import asyncio
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from tests.cli.test_cli import mspclaw
from tests.conftest import live_server

from mspclaw.store.tables import utcnow

CLIENT = "[red]Acme[/red] [redacted]"
SUBJECT = "[bold]Printer[/bold] [redacted]"
REASON = "[blink]PREVIEW ONLY[/blink] [redacted]"
AUDITED = "pw=[redacted] [link=https://evil.example]x[/link]"


@pytest.mark.anyio
async def test_markup_in_client_names_tickets_approvals_and_audit_is_shown_literally(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live:
        env = {"MSPCLAW_SERVER_URL": live.url, "MSPCLAW_API_KEY": live.api_key, "COLUMNS": "250"}

        async def run(*args: str) -> subprocess.CompletedProcess[str]:
            result = await asyncio.to_thread(mspclaw, *args, env=env)
            assert result.returncode == 0, result.stderr
            return result

        client_id = await live.client(CLIENT)
        ticket = (await live.http.post("/api/tickets", json={"client": client_id, "subject": SUBJECT,
                                                             "requester": "[i]maria[/i]@acme.example"})).json()
        await live.wait_ticket(ticket["ticket_id"])
        live.services.store.request_approval(session_id=ticket["session_id"], client_id=client_id,
                                             tool="clear_temp_files", args={"older_than_days": 7}, target="[u]pc",
                                             reason=REASON, deadline=utcnow() + timedelta(minutes=5))
        await live.services.audit.record("note_added", actor="[bold]mallory[/bold]", client_id=client_id,
                                         data={"text": AUDITED})
        clients = (await run("clients", "list")).stdout
        assert CLIENT in clients, clients
        shown = (await run("tickets", "show", ticket["ticket_id"])).stdout
        assert SUBJECT in shown, shown
        approvals = (await run("approvals", "list")).stdout
        assert REASON in approvals and "[u]pc" in approvals, approvals
    audit = mspclaw("--data-dir", str(tmp_path / "data"), "audit", env={"COLUMNS": "400"}).stdout
    for literal in ("[bold]mallory[/bold]", "pw=[redacted]", "[link=https://evil.example]"):
        assert literal in audit, (literal, audit)
    assert CLIENT.replace('"', '\\"') in audit  # the client_created event's data, as JSON
