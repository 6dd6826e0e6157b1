"""A playbook being edited in the console's builder: read from the editor's form, written as YAML, checked,
matched against a ticket and dry-run against a recorded snapshot.

The draft is the playbook's YAML data (a plain mapping in the schema's key order). It is checked by
writing the exact text that would be saved into a scratch file and reading it back with
:func:`mspclaw.playbooks.loader.load_file`, the function behind ``mspclaw playbooks validate``: the builder
shows the same ``FILE:LINE: FIELD: MESSAGE`` lines, with the lines of the YAML it would save.

Saving goes through ruamel.yaml's round-trip mode: an existing file is read with its comments, key order
and quoting; only the values the editor changed are replaced, and what the editor does not manage
(``tested_against``, keys it does not know) stays as it was. Every value is emitted by the YAML writer,
never pasted into text, so a field cannot add keys (``printer\\n- evil: 1`` stays one string).
"""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

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
from mspclaw.playbooks.schema import Category, Playbook
from mspclaw.protocol.frames import Approval
from mspclaw.tools import CATALOGUE

OS_NAMES = ("linux", "macos", "windows")
CATEGORIES: tuple[str, ...] = get_args(Category)
MAX_STEPS = 30
MAX_QUESTIONS = 10
MAX_TRIGGERS = 300
"""Entries in one trigger list (keywords, phrases, negative, context, weights)."""
MAX_TRIGGER_CHARS = 80
MAX_LINE_CHARS = 200
"""A one-line field: a name, a title, a condition, an argument."""
MAX_TEXT_CHARS = 4000
"""A text field: the description, a reply, the escalation hints."""
MAX_ARG_CHARS = 2000
MANAGED = ("id", "name", "version", "category", "description", "os", "os_notes", "triggers", "tools",
           "requires_approval", "questions", "steps", "success_check", "reply", "escalation", "max_steps")
"""The keys the editor writes; any other key of an existing file is kept as it is."""


class FormProblems(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


# -- the editor's form -> the YAML data ------------------------------------------------------------------
class _Reader:
    def __init__(self, form: Mapping[str, Sequence[str]]) -> None:
        self.form = form
        self.problems: list[str] = []

    def raw(self, name: str) -> str:
        values = self.form.get(name) or [""]
        return values[0].replace("\r\n", "\n").replace("\r", "\n")

    def line(self, name: str, label: str, limit: int = MAX_LINE_CHARS) -> str:
        value = self.raw(name).strip()
        if "\n" in value:
            self.problems.append(f"{label}: must be one line")
            value = " ".join(value.split())
        if len(value) > limit:
            self.problems.append(f"{label}: {len(value)} characters is over the limit of {limit}")
            value = value[:limit]
        return value

    def text(self, name: str, label: str, limit: int = MAX_TEXT_CHARS) -> str:
        value = self.raw(name).strip()
        if len(value) > limit:
            self.problems.append(f"{label}: {len(value)} characters is over the limit of {limit}")
            value = value[:limit]
        return value

    def lines(self, name: str, label: str, *, commas: bool = False) -> list[str]:
        text = self.raw(name)
        parts = text.replace(",", "\n").split("\n") if commas else text.split("\n")
        items = [p.strip() for p in parts if p.strip()]
        if len(items) > MAX_TRIGGERS:
            self.problems.append(f"{label}: {len(items)} entries is over the limit of {MAX_TRIGGERS}")
            items = items[:MAX_TRIGGERS]
        for item in items:
            if len(item) > MAX_TRIGGER_CHARS:
                self.problems.append(f"{label}: {item[:30]!r}... is over {MAX_TRIGGER_CHARS} characters")
        return [i[:MAX_TRIGGER_CHARS] for i in items]

    def choices(self, name: str, allowed: Sequence[str], label: str) -> list[str]:
        chosen = [v for v in self.form.get(name, []) if v]
        for value in chosen:
            if value not in allowed:
                self.problems.append(f"{label}: {value[:40]!r} is not one of {', '.join(allowed)}")
        return [v for v in allowed if v in chosen]

    def flag(self, name: str) -> bool:
        return self.raw(name) in ("1", "on", "true", "yes")

    def count(self, name: str, limit: int) -> int:
        try:
            value = int(self.raw(name) or "0")
        except ValueError:
            value = 0
        return max(0, min(value, limit))


def _argument(spec: dict[str, Any], raw: str, label: str, problems: list[str]) -> object:
    """A tool argument typed from the form's text as its JSON Schema says; the text when it does not parse."""
    kinds = [spec.get("type")] + [s.get("type") for s in spec.get("anyOf", [])]
    if "boolean" in kinds:
        if raw in ("true", "false"):
            return raw == "true"
        problems.append(f"{label}: {raw[:40]!r}: choose true or false")
    elif "integer" in kinds:
        try:
            return int(raw)
        except ValueError:
            problems.append(f"{label}: {raw[:40]!r} is not a whole number")
    elif "number" in kinds:
        try:
            return float(raw)
        except ValueError:
            problems.append(f"{label}: {raw[:40]!r} is not a number")
    elif "array" in kinds:
        items = [p.strip() for p in raw.split("\n") if p.strip()]
        if (spec.get("items") or {}).get("type") != "integer":
            return items
        try:
            return [int(i) for i in items]
        except ValueError:
            problems.append(f"{label}: give one whole number a line")
    elif "object" in kinds:
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            problems.append(f"{label}: not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")
        else:
            if isinstance(value, dict):
                return value
            problems.append(f"{label}: give a JSON object, such as {{\"name\": \"value\"}}")
    return raw


def tool_fields(tool: str) -> dict[str, dict[str, Any]]:
    """The argument names of a catalogue tool with their JSON Schema (empty for an unknown tool)."""
    spec = CATALOGUE.get(tool)
    if spec is None:
        return {}
    properties: dict[str, dict[str, Any]] = spec.json_schema().get("properties", {})
    return properties


def _pairs(reader: _Reader, name: str, label: str) -> dict[str, str]:
    """``name: value`` lines (weights, args_from); a line without a colon is a problem."""
    pairs: dict[str, str] = {}
    for line in reader.lines(name, label):
        key, sep, value = line.rpartition(":")
        if not sep or not key.strip() or not value.strip():
            reader.problems.append(f"{label}: {line[:40]!r} is not 'name: value'")
            continue
        pairs[key.strip()] = value.strip()
    return pairs


def from_form(form: Mapping[str, Sequence[str]]) -> tuple[dict[str, Any], list[str]]:
    """The playbook data the editor's form describes, and the problems reading it (a number that is not one).

    Steps and questions marked ``remove`` are left out; ``do=add_step`` / ``do=add_question`` add an empty one.
    """
    r = _Reader(form)
    data: dict[str, Any] = {"id": r.line("id", "id", 64), "name": r.line("name", "name"),
                            "version": r.line("version", "version", 100) or "1.0.0",
                            "category": r.line("category", "category", 40),
                            "description": r.text("description", "description"),
                            "os": r.choices("os", OS_NAMES, "os")}
    os_notes = r.text("os_notes", "os_notes")
    if os_notes:
        data["os_notes"] = os_notes
    triggers: dict[str, Any] = {"keywords": r.lines("keywords", "triggers.keywords", commas=True),
                                "phrases": r.lines("phrases", "triggers.phrases"),
                                "negative": r.lines("negative", "triggers.negative")}
    weights: dict[str, float] = {}
    for key, value in _pairs(r, "weights", "triggers.weights").items():
        try:
            weights[key] = float(value)
        except ValueError:
            r.problems.append(f"triggers.weights: {key!r}: {value[:20]!r} is not a number")
    if weights:
        triggers["weights"] = weights
    context = r.lines("context", "triggers.context")
    if context:
        triggers["context"] = context
    data["triggers"] = {k: v for k, v in triggers.items() if v or k == "keywords"}
    steps: list[dict[str, Any]] = []
    for i in range(r.count("nsteps", MAX_STEPS)):
        p = f"s{i}."
        if r.flag(p + "remove"):
            continue
        label = f"steps.{len(steps)}"
        tool = r.line(p + "tool", f"{label}.tool", 64)
        step: dict[str, Any] = {"id": r.line(p + "id", f"{label}.id", 64), "title": r.line(p + "title",
                                                                                           f"{label}.title"),
                                "tool": tool}
        args: dict[str, object] = {}
        for name, spec in tool_fields(tool).items():
            raw = r.text(f"{p}arg.{name}", f"{label}.args.{name}", MAX_ARG_CHARS)
            if raw:
                args[name] = _argument(spec, raw, f"{label}.args.{name}", r.problems)
        if args:
            step["args"] = args
        computed = _pairs(r, p + "from", f"{label}.args_from")
        if computed:
            step["args_from"] = computed
        when = r.line(p + "when", f"{label}.when", 500)
        if when:
            step["when"] = when
        reason = r.line(p + "reason", f"{label}.reason", 500)
        if reason:
            step["reason"] = reason
        if r.flag(p + "optional"):
            step["required"] = False
        only = r.choices(p + "os", OS_NAMES, f"{label}.os")
        if only and set(only) != set(data["os"]):
            step["os"] = only
        steps.append(step)
    if r.raw("do") == "add_step" and len(steps) < MAX_STEPS:
        steps.append({"id": "", "title": "", "tool": ""})
    questions: list[dict[str, Any]] = []
    for i in range(r.count("nquestions", MAX_QUESTIONS)):
        p = f"q{i}."
        if r.flag(p + "remove"):
            continue
        label = f"questions.{len(questions)}"
        question: dict[str, Any] = {"id": r.line(p + "id", f"{label}.id", 64), "text": r.line(p + "text",
                                                                                              f"{label}.text", 500),
                                    "fact": r.line(p + "fact", f"{label}.fact", 64)}
        choices = r.lines(p + "choices", f"{label}.choices")
        if choices:
            question["choices"] = choices
        if r.flag(p + "once"):
            question["remember"] = False
        questions.append(question)
    if r.raw("do") == "add_question" and len(questions) < MAX_QUESTIONS:
        questions.append({"id": "", "text": "", "fact": ""})
    data["tools"] = list(dict.fromkeys(s["tool"] for s in steps if s["tool"]))
    data["requires_approval"] = [t for t in r.choices("approve", sorted(CATALOGUE), "requires_approval")]
    if questions:
        data["questions"] = questions
    data["steps"] = steps
    data["success_check"] = r.line("success_check", "success_check", 500)
    reply = {"resolved": r.text("reply_resolved", "reply.resolved"),
             "escalated": r.text("reply_escalated", "reply.escalated")}
    needs = r.text("reply_needs_action", "reply.needs_action")
    if needs:
        reply["needs_action"] = needs
    data["reply"] = reply
    escalation = r.text("escalation", "escalation")
    if escalation:
        data["escalation"] = escalation
    max_steps = r.line("max_steps", "max_steps", 4)
    if max_steps:
        try:
            data["max_steps"] = int(max_steps)
        except ValueError:
            r.problems.append(f"max_steps: {max_steps!r} is not a whole number")
    return data, r.problems


def blank() -> dict[str, Any]:
    """A new playbook: one step to fill in."""
    return {"id": "", "name": "", "version": "1.0.0", "category": "", "description": "", "os": list(OS_NAMES),
            "triggers": {"keywords": []}, "tools": [], "requires_approval": [],
            "steps": [{"id": "", "title": "", "tool": ""}], "success_check": "", "reply": {"resolved": "",
                                                                                         "escalated": ""}}


# -- YAML out, comments kept ---------------------------------------------------------------------------
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
        out = io.StringIO()
        y.dump(doc, out)
        return _tidy(out.getvalue())
    out = io.StringIO()
    y.dump(_fresh({k: data[k] for k in MANAGED if k in data} | {k: v for k, v in data.items() if k not in MANAGED}),
           out)
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
