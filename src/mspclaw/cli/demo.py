"""``mspclaw demo``: the whole loop on this machine, with nothing configured.

A server on SQLite in a temporary directory, a real agent process enrolled over HTTP and
connected over a WebSocket, and the built-in PSA simulator holding sample tickets. Each
ticket goes through intake, routing, matching, tool calls on the agent, approvals, the note
back to the PSA and the reply to the user. Approvals are asked on the terminal, or given by
a named demo technician with ``--auto-approve`` (and always under ``--once``).
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import secrets
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

import uvicorn
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mspclaw.api.server import uvicorn_config
from mspclaw.connectors.base import PSATicket
from mspclaw.connectors.local import LocalPSA
from mspclaw.protocol.frames import Event
from mspclaw.settings import Settings
from mspclaw.wiring import Services, build

DEMO_TECH = "Dana Whitfield (demo technician)"
DEMO_CLIENT = "Acme Dental (demo)"
console = Console()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _make_old_temp_files(root: Path) -> None:
    """Junk for the disk playbook to find: old browser caches and installer leftovers."""
    old = time.time() - 30 * 86400
    for i in range(24):
        path = root / f"setup-cache-{i:02d}.tmp"
        path.write_bytes(os.urandom(256 * 1024))
        os.utime(path, (old, old))
    (root / "report-in-progress.docx.tmp").write_bytes(b"fresh work, must be kept")


async def _wait_online(services: Services, proc: asyncio.subprocess.Process, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    with console.status("waiting for the agent to enroll and connect..."):
        while time.monotonic() < deadline:
            agents = services.registry.agents()
            online = [a for a in agents if services.hub.is_online(a.id)]
            if online:
                return online[0].hostname
            if proc.returncode is not None:
                raise RuntimeError(f"the agent exited with code {proc.returncode}")
            await asyncio.sleep(0.2)
    raise RuntimeError(f"the agent did not connect within {seconds:g} s")


async def _ask(question: str) -> bool:
    answer = await asyncio.to_thread(input, question)
    return answer.strip().lower() in ("y", "yes")


async def _work(services: Services, psa: LocalPSA, ticket: PSATicket, client_id: str, auto: bool) -> str:
    sub = services.tickets.submit(client=client_id, subject=ticket.subject, body=ticket.body,
                                  requester=ticket.requester, device=ticket.asset, psa="local",
                                  external_id=ticket.id, actor="psa:local")
    queue = services.events.subscribe(sub.session.id)
    try:
        for past in services.events.history(sub.session.id):
            queue.put_nowait(past)
        while True:
            event: Event = await queue.get()
            if event.event == "approval_request":
                data = event.data
                console.print(f"  [yellow]approval needed[/yellow]: {data['tool']} on {data['target']}: "
                              f"{data['reason']}")
                if auto:
                    ok, who = True, DEMO_TECH
                else:
                    ok, who = await _ask("  approve? [y/N] "), getpass.getuser()
                services.approvals.decide(str(data["approval_id"]), approve=ok, approver=who,
                                          reason="" if ok else "declined at the demo prompt", scope=None)
            elif event.event in ("final_answer", "escalation"):
                return str(event.data["outcome"])
    finally:
        services.events.unsubscribe(sub.session.id, queue)
        await services.tickets.wait(sub.session.id)


def _report(services: Services, psa_ticket: PSATicket) -> None:
    ticket = next(t for t in services.store.tickets() if t.external_id == psa_ticket.id)
    session = services.store.session_for(ticket.id)
    calls = services.store.calls(session.id)
    approvals = [a for a in services.store.approvals(None, status=None) if a.session_id == session.id]
    table = Table(title=f"PSA #{psa_ticket.id}: {psa_ticket.subject}", title_justify="left", show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    table.add_row("playbook", session.playbook or "none")
    table.add_row("tools run", ", ".join(f"{c.tool}{'' if c.status == 'ok' else ' (' + c.status + ')'}"
                                         for c in calls) or "none")
    table.add_row("approval", "; ".join(f"{a.tool}: {a.status} by {a.approver}" for a in approvals) or "none needed")
    colour = "green" if session.outcome == "resolved" else "yellow"
    table.add_row("outcome", Text.assemble((str(session.outcome), colour), f": {session.reason}"))
    note = next((n.text for n in psa_ticket.notes if not n.public), "(no note)")
    table.add_row("note (internal)", Text(note))
    table.add_row("reply to user", Text(next((n.text for n in psa_ticket.notes if n.public), "(no reply)")))
    console.print(table)


async def run_demo(*, once: bool, auto_approve: bool, keep: bool) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="mspclaw-demo-"))
    temp_root = tmp / "agent-temp"
    temp_root.mkdir()
    _make_old_temp_files(temp_root)
    port = _free_port()
    settings = Settings(data_dir=tmp / "data", api_key="demo_" + secrets.token_urlsafe(16), host="127.0.0.1",
                        port=port, server_url=f"http://127.0.0.1:{port}", heartbeat_interval_s=5)
    psa = LocalPSA()
    services = build(settings, connectors={"local": psa})
    server = uvicorn.Server(uvicorn_config(services, host="127.0.0.1", port=port, log_level="warning"))
    server_task = asyncio.create_task(server.serve())
    proc: asyncio.subprocess.Process | None = None
    interactive = not auto_approve and sys.stdin.isatty()
    if not auto_approve and not interactive:
        console.print("stdin is not a terminal: the demo technician will answer approvals")
    try:
        while not server.started:
            if server_task.done():
                server_task.result()
                return 1
            await asyncio.sleep(0.05)
        client = services.registry.add_client(DEMO_CLIENT, {"local": "acme-dental"})
        code = services.fleet.issue_code(client.id, ttl_hours=1, actor="demo")
        console.print(f"server on {settings.server_url}, data in {settings.data_dir}; client {client.name}")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mspclaw", "agent", "--server", settings.server_url, "--enroll", code.code,
            "--state-dir", str(tmp / "agent-state"), "--temp-root", str(temp_root), "--log-level", "warning")
        hostname = await _wait_online(services, proc, 30)
        console.print(f"agent on [bold]{hostname}[/bold] enrolled and online\n")
        for item in LocalPSA.with_samples("acme-dental", hostname)._tickets.values():
            psa.add(item)
        tickets = await psa.list_tickets()
        counts = {"resolved": 0, "escalated": 0}
        for ticket in tickets:
            client_row = next(c for c in services.registry.clients() if c.psa_refs.get("local") == ticket.company)
            console.print(f"[bold]ticket #{ticket.id}[/bold] from {ticket.requester}: {ticket.subject}")
            outcome = await _work(services, psa, ticket, client_row.id, not interactive)
            counts[outcome] = counts.get(outcome, 0) + 1
            _report(services, ticket)
        print(f"demo: {len(tickets)} tickets, {counts['resolved']} resolved, {counts['escalated']} escalated")
        if not once:
            console.print(
                f"\nThe server keeps running on {settings.server_url} (API docs at /docs). In another terminal:\n"
                f"  export MSPCLAW_SERVER_URL={settings.server_url} MSPCLAW_API_KEY={services.api_key}\n"
                f"  mspclaw tickets submit --client '{DEMO_CLIENT}' --subject 'disk full' --wait\n"
                "Ctrl-C to stop.", markup=False)
            await server_task
        return 0
    finally:
        if proc is not None and proc.returncode is None:
            proc.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 10)
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(server_task, 10)
        services.close()
        if keep:
            console.print(f"data kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
