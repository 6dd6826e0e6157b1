"""Record the contribution check's snapshots (``src/mspclaw/playbooks/snapshots/*.json``).

Not collected by default (the name is not ``test_*``); run it explicitly, which ``make
playbook-snapshots`` does::

    .venv/bin/pytest -q tests/playbooks/record_playbook_snapshots.py

Every shipped playbook runs as in ``test_matrix.py``: on each OS the agent's real tool implementations
over the recorded command output (``tests/simulated.py``), and for the account playbooks the site
agent's real account tools against a real Samba AD domain controller on loopback (Active Directory
only) and against the local Graph tenant (Entra ID only, cloud-only users; spec-checked against
Graph v1.0's metadata, not live), bound to the requester as the server binds them. Each tool call is
written down with its arguments, the destructive tools that ran before it and its output or error.
Temporary passwords travel beside the output (``secrets``) and so are never recorded; the test
below checks that no secret the run handed over appears in a snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.simulated import SimulatedDevice
from tests.site.graph_server import GraphTenant
from tests.site.samba import SambaDC, add_group, add_ou, add_user, user_bind

from mspclaw.agent.site.ad import ActiveDirectory
from mspclaw.agent.site.config import ADConfig
from mspclaw.agent.site.identity import Identity
from mspclaw.agent.tools import ToolFn
from mspclaw.engine.approval import ApprovalGate
from mspclaw.engine.models.playbook import run_plan
from mspclaw.engine.plan import StepRecord
from mspclaw.errors import ToolError
from mspclaw.pipeline.requester import ActForRequester
from mspclaw.playbooks.contribution import SNAPSHOTS
from mspclaw.playbooks.loader import load_dir
from mspclaw.protocol.frames import Approval
from mspclaw.tools import get_tool
from mspclaw.tools.site import ACCOUNT_TOOLS

BOOKS = load_dir()
DEVICE_FACTS: dict[str, dict[str, Any]] = {
    "linux": {"software": "vlc", "package": "vlc"},
    "macos": {"software": "Slack", "package": "slack"},
    "windows": {"software": "Zoom", "package": "Zoom.Zoom"},
}
SHARE = "\\\\fs01\\Finance"
DEVICE_SOURCE = ("recorded by tests/playbooks/record_playbook_snapshots.py: the agent's own {os} tools over the "
                 "command output in tests/fixtures/{os} (captured, public captures and fixtures written to the "
                 "documented format; see tests/recorded.py), running every shipped playbook")
SITE_SOURCE = {
    "active_directory": "recorded by tests/playbooks/record_playbook_snapshots.py: the site agent's account tools "
                        "against a real Samba AD domain controller on loopback (Active Directory only)",
    "entra_id": "recorded by tests/playbooks/record_playbook_snapshots.py: the site agent's account tools against "
                "the local Microsoft Graph tenant (tests/site/graph_server.py, checked against Graph v1.0's "
                "metadata, not live), cloud-only users (Entra ID only)",
}


class Recorder:
    """Wraps the device: writes down each call as the snapshot format wants it."""

    def __init__(self, inner: SimulatedDevice) -> None:
        self.inner = inner
        self.done: list[str] = []
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, tool: str, args: dict[str, Any], *, reason: str,
                       approval: Approval | None = None) -> dict[str, Any]:
        spec = get_tool(tool)
        parsed = spec.validate(args)
        row: dict[str, Any] = {"tool": tool, "args": parsed.model_dump(mode="json", exclude_none=True),
                               "after": sorted(set(self.done))}
        try:
            output = await self.inner(tool, args, reason=reason, approval=approval)
        except ToolError as exc:
            row["error"] = exc.message
            self.calls.append(row)
            raise
        finally:
            if spec.destructive and not spec.is_preview(parsed):
                self.done.append(tool)
        row["output"] = output
        self.calls.append(row)
        return output


class Technician:
    async def request(self, tool: str, args: dict[str, Any], *, reason: str) -> Approval:
        return Approval(approval_id="ap_rec", approver="Dana", decided_at=1.0)


async def record_run(book_id: str, os_name: str, home: Path, site_tools: dict[str, ToolFn] | None, requester: str,
                     facts: dict[str, Any]) -> tuple[Recorder, SimulatedDevice]:
    book = next(b for b in BOOKS if b.id == book_id)
    device = SimulatedDevice(os_name, home, site_tools=site_tools)
    recorder = Recorder(device)
    plan = book.plan_for(os_name)

    async def sink(record: StepRecord) -> None:
        return None

    port = ActForRequester(ApprovalGate(recorder, Technician(), plan.requires_approval), requester)
    await run_plan(plan, port, sink, facts={**facts, **DEVICE_FACTS[os_name], "os": os_name})
    return recorder, device


@contextlib.contextmanager
def site_for(book_id: str, system: str, dc: SambaDC, tenant: GraphTenant) -> Iterator[tuple[Identity, dict[str, str]]]:
    tag = secrets.token_hex(3)
    requester, colleague, leaver, group = f"tom{tag}", f"maria{tag}", f"john{tag}", f"Finance-{tag}"
    facts = {"requester": f"{requester}@example.com", "share": SHARE, "leaver": f"{leaver}@example.com",
             "first_name": "Sarah", "last_name": f"Jones{tag}", "like_user": f"{colleague}@example.com"}
    if system == "active_directory":
        add_group(dc, group)
        requester_dn = add_user(dc, requester, "Req-" + secrets.token_urlsafe(8) + "7x",
                                mail=f"{requester}@example.com")
        add_user(dc, colleague, "Col-" + secrets.token_urlsafe(8) + "7x", mail=f"{colleague}@example.com",
                 groups=(group,), manager=requester_dn)
        add_user(dc, leaver, "Lvr-" + secrets.token_urlsafe(8) + "7x", mail=f"{leaver}@example.com",
                 manager=requester_dn)
        if book_id == "account_locked":
            for _ in range(3):
                user_bind(dc, requester, "wrong-password")
        ad = ActiveDirectory(ADConfig(url=dc.url, base_dn=dc.base_dn, bind_user=dc.admin_user,
                                      password_file=Path("/nonexistent"), ca_file=dc.ca_file, tls_name=dc.tls_name,
                                      leavers_ou=add_ou(dc, "Leavers"), share_groups={SHARE: (group,)}),
                             password=dc.admin_password)
        identity = Identity(ad, None)
    else:
        for sam in (requester, colleague, leaver):  # cloud-only: Graph holds everything, there is no AD manager
            tenant.add_user(f"{sam}@test.local", mail=f"{sam}@example.com",
                            methods=("password", "microsoftAuthenticator"))
        identity = Identity(None, tenant.entra())
    try:
        yield identity, facts
    finally:
        identity.close()


def _merge(calls: list[dict[str, Any]], into: list[dict[str, Any]]) -> None:
    seen = {json.dumps(c, sort_keys=True) for c in into}
    for call in calls:
        key = json.dumps(call, sort_keys=True)
        if key not in seen:
            seen.add(key)
            into.append(call)


def _write(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def test_record_snapshots(samba_dc: SambaDC, graph_tenant: GraphTenant, tmp_path: Path) -> None:
    """Writes the snapshots; fails when a run hands over a secret that then appears in one."""
    device_calls: dict[str, list[dict[str, Any]]] = {os_name: [] for os_name in DEVICE_FACTS}
    site_calls: dict[str, list[dict[str, Any]]] = {"active_directory": [], "entra_id": []}
    site_facts: dict[str, dict[str, str]] = {}
    offers: dict[str, list[str]] = {}
    handed: list[str] = []
    n = 0
    for book in BOOKS:
        account = any(s.tool in ACCOUNT_TOOLS for s in book.steps)
        for os_name in book.os:
            if not account:
                n += 1
                rec, _ = asyncio.run(record_run(book.id, os_name, tmp_path / f"h{n}", None,
                                                "tom.becker@acme-dental.example", {}))
                _merge(rec.calls, device_calls[os_name])
                continue
            for system in site_calls:
                n += 1
                with site_for(book.id, system, samba_dc, graph_tenant) as (identity, facts):
                    tools = identity.tools()
                    offers[system] = sorted(t for t in tools if t in ACCOUNT_TOOLS)
                    rec, device = asyncio.run(record_run(book.id, os_name, tmp_path / f"h{n}", tools,
                                                         facts["requester"], facts))
                    handed.extend(s.value for s in device.secrets)
                site_facts.setdefault(system, facts)
                _merge([c for c in rec.calls if get_tool(c["tool"]).runs_on == "site"], site_calls[system])
                _merge([c for c in rec.calls if get_tool(c["tool"]).runs_on == "device"], device_calls[os_name])
    SNAPSHOTS.mkdir(exist_ok=True)
    for system_os, calls in device_calls.items():
        _write(SNAPSHOTS / f"device_{system_os}.json",
               {"kind": "device", "name": system_os, "source": DEVICE_SOURCE.format(os=system_os),
                "facts": DEVICE_FACTS[system_os], "answers": {}, "offers": [], "calls": calls})
    for system, calls in site_calls.items():
        _write(SNAPSHOTS / f"site_{system}.json",
               {"kind": "site", "name": system, "source": SITE_SOURCE[system], "facts": site_facts[system],
                "answers": {}, "offers": offers[system], "calls": calls})
    written = "".join(p.read_text() for p in SNAPSHOTS.glob("*.json"))
    assert handed, "the password and MFA playbooks hand over a temporary secret"
    for secret in handed:
        assert secret not in written, "a handed-over secret reached a snapshot"
