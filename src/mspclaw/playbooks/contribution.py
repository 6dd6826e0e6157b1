"""The contribution check: every playbook of a directory, run by the deterministic runner against
recorded device snapshots of each OS and recorded site snapshots of each identity system.

A snapshot (``snapshots/*.json``, shipped with the package) is what a real device or a real site
answered, call by call: the agent's own macOS, Windows and Linux tools over the command output
recorded in ``tests/fixtures/<os>``, and the site agent's account tools against a Samba AD domain
controller and the local Microsoft Graph tenant (spec-checked against Graph v1.0's metadata).
``tests/playbooks/record_playbook_snapshots.py`` records them again (``make playbook-snapshots``).
A replayed call is answered by the recording of the same tool with the same arguments made after the
same changes (``after``: the destructive tools run before it), or the closest one.

Each run must (1) end resolved, or escalated by the playbook's own success check, never because a
step broke (a bad argument, a condition that cannot be read, a tool the site does not offer);
(2) give the user the playbook's reply for that outcome; (3) have every destructive call carry a
technician's approval, asked with a reason. The result is a matrix playbook x OS x identity system.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mspclaw.engine.approval import ApprovalGate
from mspclaw.engine.models.playbook import run_plan
from mspclaw.engine.plan import PlanQuestion, StepRecord
from mspclaw.errors import ToolError, ToolFailed, UnknownTool
from mspclaw.playbooks.loader import PlaybookError
from mspclaw.playbooks.registry import parse_dir
from mspclaw.playbooks.schema import Playbook
from mspclaw.protocol.frames import Approval
from mspclaw.tools import get_tool
from mspclaw.tools.site import ACCOUNT_TOOLS

SNAPSHOTS = Path(__file__).parent / "snapshots"
MAX_SNAPSHOT_BYTES = 8 * 1024 * 1024


class SnapshotError(ValueError):
    """A snapshot file that cannot be used; names the file and the problem."""


class RecordedCall(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tool: str
    args: dict[str, Any] = Field(default_factory=dict)
    after: list[str] = Field(default_factory=list, description="Destructive tools that had run before this call.")
    output: dict[str, Any] | None = None
    error: str | None = Field(None, description="The tool's failure, when it failed.")


class Snapshot(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["device", "site"]
    name: str = Field(pattern=r"^[a-z_]+$", description="The OS (device) or the identity system (site).")
    source: str = Field(min_length=10, description="Where the recording comes from, truthfully.")
    facts: dict[str, Any] = Field(default_factory=dict, description="What the pipeline knows before the run.")
    answers: dict[str, str] = Field(default_factory=dict, description="The user's answers to questions, by fact.")
    offers: list[str] = Field(default_factory=list, description="Site tools this site's agent offers.")
    calls: list[RecordedCall]


def load_snapshot(path: Path) -> Snapshot:
    try:
        if path.stat().st_size > MAX_SNAPSHOT_BYTES:
            raise SnapshotError(f"{path}: over the {MAX_SNAPSHOT_BYTES}-byte limit for a snapshot")
        return Snapshot.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise SnapshotError(f"{path}: cannot read: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise SnapshotError(f"{path}:{exc.lineno}: not JSON: {exc.msg}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        raise SnapshotError(f"{path}: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from exc


def load_snapshots(directory: Path = SNAPSHOTS) -> tuple[dict[str, Snapshot], dict[str, Snapshot]]:
    """Device snapshots by OS and site snapshots by identity system."""
    devices: dict[str, Snapshot] = {}
    sites: dict[str, Snapshot] = {}
    for path in sorted(directory.glob("*.json")):
        snap = load_snapshot(path)
        (devices if snap.kind == "device" else sites)[snap.name] = snap
    if not devices:
        raise SnapshotError(f"{directory}: no device snapshots (*.json)")
    return devices, sites


class Replay:
    """A tool port answering from snapshots, and checking every destructive call carries an approval."""

    def __init__(self, device: Snapshot, site: Snapshot | None) -> None:
        self.device, self.site = device, site
        self.done: list[str] = []
        self.unapproved: list[str] = []

    async def __call__(self, tool: str, args: dict[str, Any], *, reason: str,
                       approval: Approval | None = None) -> dict[str, Any]:
        spec = get_tool(tool)
        parsed = spec.validate(args)
        if spec.needs_approval(parsed) and approval is None:
            self.unapproved.append(tool)
        snap = self.device
        if spec.runs_on == "site":  # an account tool needs the identity system; a service (Jamf, CUPS) may be absent
            if self.site is None or tool not in self.site.offers:
                raise UnknownTool(f"no site agent offers {tool}")
            snap = self.site
        call = self._pick(snap, tool, parsed.model_dump(mode="json"))
        if spec.destructive and not spec.is_preview(parsed):
            self.done.append(tool)
        if call.error is not None:
            raise ToolFailed(call.error)
        return dict(call.output or {})

    def _pick(self, snap: Snapshot, tool: str, args: dict[str, Any]) -> RecordedCall:
        candidates = [c for c in snap.calls if c.tool == tool]
        if not candidates:
            raise ToolFailed(f"the recorded {snap.kind} ({snap.name}) has no answer for {tool}")
        done = set(self.done)

        def score(c: RecordedCall) -> tuple[int, int, int]:
            fits = set(c.after) <= done
            return (int(fits), len(c.after) if fits else -len(c.after), int(c.args == args))

        return max(candidates, key=score)


class _Technician:
    def __init__(self) -> None:
        self.asked: list[str] = []
        self.without_reason: list[str] = []

    async def request(self, tool: str, args: dict[str, Any], *, reason: str) -> Approval:
        self.asked.append(tool)
        if not reason.strip():
            self.without_reason.append(tool)
        return Approval(approval_id=f"ap_check_{len(self.asked)}", approver="contribution check", decided_at=0.0)


@dataclass
class Cell:
    playbook: str
    os: str
    identity: str
    outcome: str = ""
    approvals: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _identities(book: Playbook, sites: dict[str, Snapshot]) -> list[str | None]:
    site_tools = {s.tool for s in book.steps if s.tool in ACCOUNT_TOOLS}
    if not site_tools:
        return [None]
    declared = list(book.tested_against.identity)
    if declared:
        return list(declared)
    return [name for name, snap in sorted(sites.items()) if site_tools <= set(snap.offers)] or ["(none)"]


async def run_cell(book: Playbook, os_name: str, identity: str | None, devices: dict[str, Snapshot],
                   sites: dict[str, Snapshot]) -> Cell:
    cell = Cell(book.id, os_name, identity or "-")
    device = devices.get(os_name)
    if device is None:
        cell.problems.append(f"no recorded {os_name} device snapshot")
        return cell
    site = sites.get(identity) if identity else None
    if identity and site is None:
        cell.problems.append(f"no recorded site snapshot for identity system {identity!r}; known: "
                             f"{', '.join(sorted(sites)) or 'none'}")
        return cell
    plan = book.plan_for(os_name)
    replay, tech = Replay(device, site), _Technician()
    records: list[StepRecord] = []

    async def sink(record: StepRecord) -> None:
        records.append(record)

    answers = {**device.answers, **(site.answers if site else {})}

    async def ask(question: PlanQuestion) -> str | None:
        return answers.get(question.fact)

    facts = {**device.facts, **(site.facts if site else {}), "os": os_name}
    try:
        result = await run_plan(plan, ApprovalGate(replay, tech, plan.requires_approval), sink, facts=facts, ask=ask)
    except ToolError as exc:
        cell.problems.append(f"the run stopped: {exc.code}: {exc.message}")
        return cell
    cell.outcome, cell.approvals = result.outcome, list(tech.asked)
    own = {plan.escalation_hint, "the success check did not pass after the fix", "success check passed"}
    if result.reason not in own:
        cell.problems.append(f"{result.outcome} because {result.reason}")
    expected = book.reply.resolved if result.outcome == "resolved" else book.reply.escalated
    if result.reply != expected or not result.reply.strip():
        cell.problems.append(f"the reply is not the playbook's {result.outcome} reply")
    if replay.unapproved:
        cell.problems.append(f"destructive call without approval: {', '.join(replay.unapproved)}")
    if tech.without_reason:
        cell.problems.append(f"approval asked without a reason: {', '.join(tech.without_reason)}")
    return cell


async def check_directory(directory: Path, snapshots: Path = SNAPSHOTS) -> list[Cell]:
    """Every playbook x OS x identity system of ``directory``; an invalid playbook is one failed cell per problem."""
    devices, sites = load_snapshots(snapshots)
    try:
        parsed = parse_dir(directory)
    except PlaybookError as exc:
        return [Cell(Path(p.split(":", 1)[0]).name, "-", "-", problems=[p]) for p in exc.problems]
    cells: list[Cell] = []
    for item in parsed:
        for os_name in item.book.os:
            for identity in _identities(item.book, sites):
                cells.append(await run_cell(item.book, os_name, identity, devices, sites))
    return cells


def matrix(cells: Sequence[Cell]) -> list[list[str]]:
    """Rows for a table: playbook, OS, identity system, outcome, approvals asked, result."""
    return [[c.playbook, c.os, c.identity, c.outcome or "-", ", ".join(c.approvals) or "-",
             "ok" if c.ok else "FAIL: " + "; ".join(c.problems)] for c in cells]
