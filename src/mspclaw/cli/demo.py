"""``mspclaw demo``: the whole loop on this machine, with nothing configured.

A server on SQLite in a temporary directory, a real agent process enrolled over HTTP and
connected over a WebSocket, and the built-in PSA simulator (its own REST API) where the sample
tickets are opened. Each ticket goes through the whole loop: the PSA's signed webhook, the
durable job queue, routing, matching, tool calls on the agent, approvals, the note and the
reply written back to the PSA. Approvals are asked on the terminal, or given by
a named demo technician with ``--auto-approve`` (and always under ``--once``).

When this machine can run a throwaway Samba AD domain controller (``demo_directory.py``), a site
agent configured with ``mspclaw site add ad`` resolves two account tickets against it, a lockout and
a password reset, and the demo proves both the way the users would: by signing in. Otherwise it
says in one line why it skipped them.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import html
import os
import re
import secrets
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

import httpx
import uvicorn
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from mspclaw.api.server import start_agent_listener, uvicorn_config
from mspclaw.cli.demo_directory import DemoDirectory, RunningDirectory
from mspclaw.connectors.base import PSATicket
from mspclaw.settings import Settings
from mspclaw.simulators.local_psa import RunningPSA, run_local_psa
from mspclaw.wiring import Services, build

DEMO_TECH = "Dana Whitfield (demo technician)"
DEMO_CLIENT = "Acme Dental (demo)"
_LINK = re.compile(r"https?://\S+/s/[A-Za-z0-9_-]+")
"""A view-once link to a temporary password in a PSA reply (``pipeline/handover.py``)."""
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
            agents = await asyncio.to_thread(services.registry.agents)
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


async def _approver(services: Services, auto: bool) -> None:
    """Answer approval requests as they arrive: on the terminal, or as the demo technician."""
    seen: set[str] = set()
    while True:
        for row in await asyncio.to_thread(services.approvals.pending, None):
            if row.id in seen:
                continue
            seen.add(row.id)
            console.print(Text(f"  approval needed: {row.tool} on {row.target}: {row.reason}", style="yellow"))
            if auto:
                ok, who = True, DEMO_TECH
            else:
                ok, who = await _ask("  approve? [y/N] "), getpass.getuser()
            await services.approvals.decide_async(row.id, approve=ok, approver=who,
                                                  reason="" if ok else "declined at the demo prompt", scope=None)
        await asyncio.sleep(0.1)


async def _wait_closed(psa: RunningPSA, tickets: list[PSATicket], seconds: float) -> list[PSATicket]:
    """Wait until the PSA shows every ticket resolved or escalated, with its note and reply."""
    deadline = time.monotonic() + seconds
    while True:
        current = [await psa.connector.get_ticket(t.id) for t in tickets]
        done = [t for t in current if t.status in ("resolved", "escalated")
                and sum(not _LINK.search(n.text) for n in t.notes) >= 2]
        if len(done) == len(current):
            return current
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(done)} of {len(current)} tickets finished within {seconds:g} s")
        await asyncio.sleep(0.2)


def _report(services: Services, psa_ticket: PSATicket) -> None:
    ticket_id = services.tickets.find_external("local", psa_ticket.id)
    table = Table(title=escape(f"PSA #{psa_ticket.id}: {psa_ticket.subject}"), title_justify="left", show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    if ticket_id is not None:
        session = services.store.session_for(ticket_id)
        calls = services.store.calls(session.id)
        approvals = [a for a in services.store.approvals(None, status=None) if a.session_id == session.id]
        table.add_row("playbook", session.playbook or "none")
        table.add_row("tools run", ", ".join(f"{c.tool}{'' if c.status == 'ok' else ' (' + c.status + ')'}"
                                             for c in calls) or "none")
        table.add_row("approval", Text("; ".join(f"{a.tool}: {a.status} by {a.approver}" for a in approvals)
                                       or "none needed"))
    colour = "green" if psa_ticket.status == "resolved" else "yellow"
    table.add_row("outcome", Text(psa_ticket.status, colour))
    note = next((n.text for n in psa_ticket.notes if not n.public), "(no note)")
    table.add_row("note (internal)", Text(note))
    public = [n.text for n in psa_ticket.notes if n.public]
    if any(_LINK.search(text) for text in public):
        table.add_row("temporary password", "sent to the requester as a view-once link in a public reply "
                                            "(the link is not shown here)")
    replies = [text for text in public if not _LINK.search(text)]
    table.add_row("reply to user", Text(replies[0] if replies else "(no reply)"))
    console.print(table)


async def _site_cli(*argv: str) -> None:
    """``mspclaw site ...`` as the docs tell an administrator to run it."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "mspclaw", "site", *argv,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"mspclaw site {' '.join(argv[:2])} failed: {(out + err).decode(errors='replace').strip()}")


async def _start_site_agent(services: Services, client_id: str, dc: RunningDirectory, tmp: Path,
                            url: str) -> tuple[asyncio.subprocess.Process, str]:
    """Configure a site agent for the demo DC with ``mspclaw site add ad``, enroll it with a site code and
    start it as its own process; returns it and its hostname once it is online."""
    state = tmp / "site-state"
    password_file = tmp / "ad.pw"
    fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(dc.service_password + "\n")
    await _site_cli("add", "ad", "--state-dir", str(state), "--url", dc.url, "--base-dn", dc.base_dn,
                    "--bind-user", dc.service_user, "--password-file", str(password_file),
                    "--ca-file", str(dc.ca_file), "--tls-name", dc.tls_name)
    code = await services.fleet.issue_code_async(client_id, role="site", ttl_hours=1, actor="demo")
    before = {a.id for a in await asyncio.to_thread(services.registry.agents)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mspclaw", "agent", "--server", url, "--enroll", code.code,
        "--state-dir", str(state), "--log-level", "warning")
    deadline = time.monotonic() + 30
    with console.status("waiting for the site agent to enroll and connect..."):
        while time.monotonic() < deadline:
            new = [a for a in await asyncio.to_thread(services.registry.agents)
                   if a.id not in before and services.hub.is_online(a.id)]
            if new:
                return proc, new[0].hostname
            if proc.returncode is not None:
                raise RuntimeError(f"the site agent exited with code {proc.returncode}")
            await asyncio.sleep(0.2)
    proc.terminate()
    raise RuntimeError("the site agent did not connect within 30 s")


async def _prove_accounts(directory: DemoDirectory, dc: RunningDirectory, reset: PSATicket) -> None:
    """Sign in as the two users, as they would after reading their replies. No password is printed."""
    locked = dc.locked_out
    code = await asyncio.to_thread(directory.bind, locked.sam, locked.password)
    print(f"proof: {locked.mail} signs in again with their own password" if code == "" else
          f"proof FAILED: {locked.mail} still cannot sign in with their own password (AD data code {code})")
    forgot = dc.forgot_password
    link = next((m.group(0) for n in reset.notes if n.public and (m := _LINK.search(n.text))), None)
    if link is None:
        print(f"proof FAILED: no view-once link reached {forgot.mail} on the PSA ticket")
        return
    async with httpx.AsyncClient(timeout=10, trust_env=False) as http:  # the user's browser: GET, then the button
        page = await http.get(link)
        revealed = await http.post(link)
        again = await http.post(link)
    offered = page.status_code == 200 and "Show my temporary password" in page.text
    found = re.search(r'<p class="secret">(.*?)</p>', revealed.text, re.S) if revealed.status_code == 200 else None
    if not offered or found is None:
        print(f"proof FAILED: the view-once link answered GET {page.status_code}, POST {revealed.status_code}")
        return
    temporary = await asyncio.to_thread(directory.bind, forgot.sam, html.unescape(found.group(1)))
    old = await asyncio.to_thread(directory.bind, forgot.sam, forgot.password)
    print(f"proof: {forgot.mail} opens the view-once link from the reply: the page only shows a button "
          f"(opening it used nothing up), the button shows the password once (pressed again: HTTP {again.status_code})")
    if temporary == "773":
        print("temporary password: delivered by view-once link, works, must be changed at first sign-in "
              f"(AD data code 773); the old password {'no longer works' if old == '52e' else 'says ' + repr(old)}")
    else:
        print(f"proof FAILED: signing in with the temporary password gave AD data code {temporary or 'none (ok)'}, "
              "not 773 (must change password)")


async def run_demo(*, once: bool, auto_approve: bool, keep: bool) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="mspclaw-demo-"))
    temp_root = tmp / "agent-temp"
    temp_root.mkdir()
    _make_old_temp_files(temp_root)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    secret = "whsec_" + secrets.token_urlsafe(16)
    settings = Settings(data_dir=tmp / "data", api_key="demo_" + secrets.token_urlsafe(16), host="127.0.0.1",
                        port=port, server_url=url, heartbeat_interval_s=5, workers=1)
    interactive = not auto_approve and sys.stdin.isatty()
    if not auto_approve and not interactive:
        console.print("stdin is not a terminal: the demo technician will answer approvals")
    proc: asyncio.subprocess.Process | None = None
    site_proc: asyncio.subprocess.Process | None = None
    services: Services | None = None
    directory = DemoDirectory(tmp / "directory", say=lambda line: console.print(line, markup=False))
    dc_task = asyncio.create_task(asyncio.to_thread(directory.start))  # provisions while the rest starts
    try:
        async with run_local_psa(webhook_url=f"{url}/webhooks/local", webhook_secret=secret) as psa:
            services = await asyncio.to_thread(build, settings, connectors={"local": psa.connector})  # migrates
            listener = await start_agent_listener(services, host="127.0.0.1", port=0)  # told at enrollment
            server = uvicorn.Server(uvicorn_config(services, host="127.0.0.1", port=port, log_level="warning",
                                                   agent_port=listener.port))
            server_task = asyncio.create_task(server.serve())
            approver: asyncio.Task[None] | None = None
            try:
                while not server.started:
                    if server_task.done():
                        server_task.result()
                        return 1
                    await asyncio.sleep(0.05)
                company = await psa.connector.create_company(DEMO_CLIENT)
                client = await asyncio.to_thread(services.registry.add_client, DEMO_CLIENT, {"local": company})
                code = await services.fleet.issue_code_async(client.id, ttl_hours=1, actor="demo")
                console.print(f"MSPclaw server on {url}, data in {settings.data_dir}\n"
                              f"local PSA simulator on {psa.base_url}, sending signed webhooks to /webhooks/local")
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "mspclaw", "agent", "--server", url, "--enroll", code.code,
                    "--state-dir", str(tmp / "agent-state"), "--temp-root", str(temp_root), "--log-level", "warning")
                hostname = await _wait_online(services, proc, 30)
                console.print(f"agent on [bold]{hostname}[/bold] enrolled for {client.name} and online\n")
                approver = asyncio.create_task(_approver(services, not interactive))
                tickets = await psa.open_samples(DEMO_CLIENT, hostname)
                for t in tickets:
                    console.print(f"PSA ticket #{t.id} from {t.requester}: {t.subject}")
                account: list[PSATicket] = []
                with console.status("starting a throwaway Samba AD domain controller..."):
                    dc = await dc_task
                if dc is None:
                    hint = f"; {directory.hint}" if directory.hint else ""
                    print(f"skipped the lockout and password-reset tickets: {directory.reason}{hint}")
                else:
                    console.print(f"\nSamba AD domain controller for ACME.LOCAL on {dc.url} (throwaway, in {tmp}); "
                                  f"{dc.locked_out.mail} has locked themselves out with 3 wrong passwords",
                                  markup=False)
                    site_proc, site_host = await _start_site_agent(services, client.id, dc, tmp, url)
                    console.print(f"site agent on [bold]{site_host}[/bold] configured with `mspclaw site add ad` "
                                  f"(as {dc.service_user}, helpdesk rights only), enrolled for {client.name} "
                                  "and online\n")
                    account = [
                        await psa.connector.create_ticket(
                            company, requester=dc.locked_out.mail, requester_name=dc.locked_out.name or None,
                            subject="Locked out of my account",
                            body="It says my account is locked after I typed my password wrong a few times."),
                        await psa.connector.create_ticket(
                            company, requester=dc.forgot_password.mail,
                            requester_name=dc.forgot_password.name or None,
                            subject="Forgot my password / password expired",
                            body="After the holidays I can't remember my password and it says it has expired."),
                    ]
                    for t in account:
                        console.print(f"PSA ticket #{t.id} from {t.requester}: {t.subject}")
                    tickets = tickets + account
                with console.status("MSPclaw is working on the tickets..."):
                    closed = await _wait_closed(psa, tickets, 600)
                for ticket in closed:
                    await asyncio.to_thread(_report, services, ticket)  # reads the store
                if dc is not None:
                    await _prove_accounts(directory, dc, closed[-1])
                resolved = sum(t.status == "resolved" for t in closed)
                print(f"demo: {len(closed)} tickets, {resolved} resolved, {len(closed) - resolved} escalated")
                if not once:
                    console.print(
                        f"\nThe server keeps running on {url} (API docs at /docs). In another terminal:\n"
                        f"  export MSPCLAW_SERVER_URL={url} MSPCLAW_API_KEY={services.api_key}\n"
                        f"  mspclaw tickets submit --client '{DEMO_CLIENT}' --subject 'disk full' --wait\n"
                        "Ctrl-C to stop.", markup=False)
                    await server_task
                return 0
            finally:
                if approver is not None:
                    approver.cancel()
                for agent in (proc, site_proc):
                    if agent is not None and agent.returncode is None:
                        agent.terminate()
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(agent.wait(), 10)
                server.should_exit = True
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(server_task, 10)
                await listener.close()
    finally:
        directory.cancel()
        with contextlib.suppress(Exception):
            await dc_task
        await asyncio.to_thread(directory.stop)
        if services is not None:
            services.close()
        if keep:
            console.print(f"data kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
