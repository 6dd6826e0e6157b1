"""A playbook draft as the MSP will keep it: written as YAML (an existing file's comments kept), checked
with the loader behind ``mspclaw playbooks validate``, and dry-run against a recorded snapshot.

The draft is the playbook's YAML data (a plain mapping in the schema's key order). It is checked by writing
the exact text that would be saved into a scratch file and reading it back with
:func:`mspclaw.playbooks.loader.load_file`: the same ``FILE:LINE: FIELD: MESSAGE`` lines, with the lines of
the YAML that would be saved.

Writing goes through ruamel.yaml's round-trip mode: an existing file is read with its comments, key order
and quoting; only the values that changed are replaced, and what the editor does not manage
(``tested_against``, keys it does not know) stays as it was. Every value is emitted by the YAML writer,
never pasted into text, so a field cannot add keys (``printer\\n- evil: 1`` stays one string).
"""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import LiteralScalarString

from mspclaw.engine.approval import ApprovalGate
from mspclaw.engine.models.playbook import run_plan
from mspclaw.engine.plan import PlanQuestion, StepRecord
from mspclaw.errors import ToolError
from mspclaw.pipeline.tool_summaries import summarise
from mspclaw.playbooks.canonical import MAX_FILE_BYTES
from mspclaw.playbooks.contribution import Replay, Snapshot
from mspclaw.playbooks.loader import PlaybookError, load_file
from mspclaw.playbooks.schema import Playbook
from mspclaw.protocol.frames import Approval

MANAGED = ("id", "name", "version", "category", "description", "os", "os_notes", "triggers", "tools",
           "requires_approval", "questions", "steps", "success_check", "reply", "escalation", "max_steps")
"""The keys the editor writes; any other key of an existing file is kept as it is."""


# -- YAML out, comments kept ---------------------------------------------------------------------------
UNWRAPPED = 1 << 20
"""A line width no playbook reaches (files are at most ``MAX_FILE_BYTES``): ruamel then wraps nothing."""


def _yaml() -> YAML:
    y = YAML(typ="rt")
    y.width = 110
    y.preserve_quotes = True
    y.indent(mapping=2, sequence=4, offset=2)
    return y


def _fresh(value: Any, depth: int = 0) -> Any:
    """A plain value as ruamel nodes: short lists of words in flow style, text with line breaks as a block."""
    if isinstance(value, dict):
        node = CommentedMap()
        for key, item in value.items():
            node[key] = _fresh(item, depth + 1)
        if depth > 0 and all(not isinstance(v, (dict, list)) for v in value.values()) and value and \
                all(not isinstance(v, str) or len(v) < 60 for v in value.values()) and \
                not {"resolved", "escalated", "id"} & set(value):
            node.fa.set_flow_style()
        return node
    if isinstance(value, list):
        seq = CommentedSeq(_fresh(v, depth + 1) for v in value)
        if all(isinstance(v, (str, int, float, bool)) for v in value) and len(str(value)) <= 100:
            seq.fa.set_flow_style()
        return seq
    if isinstance(value, str) and "\n" in value.strip():
        return LiteralScalarString(value if value.endswith("\n") else value + "\n")
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value).strip()
    return value


def _same(old: Any, new: Any) -> bool:
    """Equal as data, blanks around text aside (a folded block ends with a line break a form field has not)."""
    return bool(_plain(old) == _plain(new))


ORDERLESS = frozenset({"os", "requires_approval", "tools"})
"""Lists the form shows as check boxes or derives from the steps (in its own order): the same members in another
order are no change."""


def _merge(old: Any, new: Any, depth: int = 0, key: str = "") -> Any:
    """``new`` written into the existing node ``old`` where it differs, keeping ``old``'s comments and styles."""
    if _same(old, new):
        return old
    if key in ORDERLESS and isinstance(old, list) and isinstance(new, list) and \
            sorted(map(str, old)) == sorted(map(str, new)):
        return old
    if isinstance(old, CommentedMap) and isinstance(new, dict):
        for name in [k for k in old if k not in new]:
            del old[name]
        for name, value in new.items():
            old[name] = _merge(old[name], value, depth + 1, name) if name in old else _fresh(value, depth + 1)
        return old
    if isinstance(old, CommentedSeq) and isinstance(new, list):
        if all(isinstance(v, dict) and "id" in v for v in new):
            by_id = {item.get("id"): item for item in old if isinstance(item, CommentedMap)}
            items = [_merge(by_id[v["id"]], v, depth + 1) if v["id"] in by_id else _fresh(v, depth + 1)
                     for v in new]
        else:
            items = [_fresh(v, depth + 1) for v in new]
        old.clear()
        old.extend(items)
        return old
    return _fresh(new, depth)


def render_yaml(data: dict[str, Any], existing: str | None = None) -> str:
    """The YAML text of ``data``; with ``existing`` (a file's text) only what changed is rewritten."""
    y = _yaml()
    try:
        doc = y.load(existing) if existing is not None else None
    except YAMLError:
        doc = None
    if existing is not None and isinstance(doc, CommentedMap):
        # an empty list or text the file did not have is what it already meant: not added
        data = {k: v for k, v in data.items() if k in doc or v not in ([], {}, "")}
        before = _yaml().load(existing)
        for key in [k for k in doc if k in MANAGED and k not in data]:
            del doc[key]
        for key, value in data.items():
            doc[key] = _merge(doc[key], value, 1, key) if key in doc else _fresh(value, 1)
        if _same(doc, before):
            return existing  # nothing changed: the file as it is, byte for byte
        return _dump(y, doc)
    return _dump(y, _fresh({k: data[k] for k in MANAGED if k in data}
                           | {k: v for k, v in data.items() if k not in MANAGED}))


def _dump(y: YAML, doc: Any) -> str:
    """``doc`` as text, wrapped at ``y.width``; unwrapped where wrapping would change what it says. ruamel wraps a
    flow mapping between the words of a key ("{pc friert: 1.5, ...}" broken after "pc"), and a key on two lines
    is no YAML: the text is written again without wrapping rather than saved unreadable."""
    out = io.StringIO()
    y.dump(doc, out)
    text = _tidy(out.getvalue())
    try:
        if _same(_yaml().load(text), doc):
            return text
    except YAMLError:
        pass
    y.width = UNWRAPPED
    out = io.StringIO()
    y.dump(doc, out)
    return _tidy(out.getvalue())


def _tidy(text: str) -> str:
    """The blank ruamel leaves at the end of a line where it wraps a long value, taken off."""
    return "".join(line.rstrip(" \n") + "\n" if line.endswith(" \n") else line
                   for line in text.splitlines(keepends=True))


# -- checks -------------------------------------------------------------------------------------------
def check(text: str, filename: str) -> tuple[Playbook | None, list[str]]:
    """The playbook ``text`` describes and the problems ``mspclaw playbooks validate`` prints for a file named
    ``filename`` with this text (the same function reads it)."""
    if len(text.encode()) > MAX_FILE_BYTES:
        return None, [f"{filename}: {len(text.encode())} bytes is over the {MAX_FILE_BYTES}-byte limit for a "
                      "playbook"]
    with tempfile.TemporaryDirectory(prefix="mspclaw-builder-") as scratch:
        path = Path(scratch) / filename
        path.write_text(text, encoding="utf-8")
        try:
            return load_file(path), []
        except PlaybookError as exc:
            return None, [p.replace(str(path), filename) for p in exc.problems]


# -- the dry-run ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DryStep:
    title: str
    tool: str
    args: dict[str, Any]
    result: str
    """``ok``, ``failed`` or ``skipped``."""
    summary: str
    error: str | None
    approval: bool
    """A technician's approval was asked before it ran."""


@dataclass
class DryRun:
    os: str
    identity: str
    outcome: str = ""
    reason: str = ""
    reply: str = ""
    steps: list[DryStep] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class _Approver:
    """Approves every call the playbook gates, and notes which (the dry-run changes nothing: a recording
    answers every call)."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def request(self, tool: str, args: dict[str, Any], *, reason: str) -> Approval:
        self.asked.append(tool)
        return Approval(approval_id=f"ap_dry_run_{len(self.asked)}", approver="dry-run", decided_at=0.0)


async def dry_run(book: Playbook, device: Snapshot, site: Snapshot | None) -> DryRun:
    """Run ``book`` with the deterministic runner against a recorded device (and site) snapshot."""
    result = DryRun(device.name, site.name if site else "-")
    if device.name not in book.os:
        result.problems.append(f"this playbook does not cover {device.name}; choose one of {', '.join(book.os)}")
        return result
    plan = book.plan_for(device.name)
    replay, approver = Replay(device, site), _Approver()
    records: list[tuple[StepRecord, int]] = []

    async def sink(record: StepRecord) -> None:
        records.append((record, len(approver.asked)))

    answers = {**device.answers, **(site.answers if site else {})}

    async def ask(question: PlanQuestion) -> str | None:
        answer = answers.get(question.fact)
        result.questions.append(f"{question.text} -> {answer if answer is not None else '(no answer recorded)'}")
        return answer

    facts = {**device.facts, **(site.facts if site else {}), "os": device.name}
    try:
        run = await run_plan(plan, ApprovalGate(replay, approver, plan.requires_approval), sink, facts=facts, ask=ask)
    except ToolError as exc:
        result.problems.append(f"the run stopped: {exc.code}: {exc.message}")
        run = None
    before = 0
    for record, asked in records:
        result.steps.append(DryStep(record.title, record.tool or "", dict(record.args),
                                    "skipped" if record.skipped else "ok" if record.ok else "failed",
                                    summarise(record), record.error, asked > before))
        before = asked
    if run is not None:
        result.outcome, result.reason, result.reply = run.outcome, run.reason, run.reply
    if replay.unapproved:
        result.problems.append(f"destructive call without approval: {', '.join(replay.unapproved)}")
    return result
