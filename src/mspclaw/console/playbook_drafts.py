"""A playbook being edited in the console's builder: read from the editor's form into the playbook's YAML
data. Writing it as YAML, checking it and dry-running it is :mod:`mspclaw.pipeline.playbook_drafting` (the
same code behind ``/api/playbooks``), re-exported here for the builder.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, get_args

from mspclaw.pipeline.playbook_drafting import MANAGED, DryRun, DryStep, check, dry_run, render_yaml
from mspclaw.playbooks.schema import Category
from mspclaw.tools import CATALOGUE

__all__ = ["CATEGORIES", "MANAGED", "OS_NAMES", "DryRun", "DryStep", "FormProblems", "blank", "check", "dry_run",
           "from_form", "render_yaml", "tool_fields"]

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
