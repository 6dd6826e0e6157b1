"""The builder's pages: the list of playbooks, and the editor (one form whose buttons post to the editor's
routes: redraw, match, dry-run, save), with the live match box, the dry-run's steps and reply, and the YAML
that would be saved. Works as plain forms; ``static/builder.js`` updates the match box as the user types."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mspclaw.console.pages import STATIC, e, layout
from mspclaw.console.playbook_drafts import CATEGORIES, MAX_QUESTIONS, MAX_STEPS, OS_NAMES, DryRun, tool_fields
from mspclaw.pipeline.access import Principal
from mspclaw.pipeline.playbook_authoring import Listed
from mspclaw.playbooks.schema import Playbook
from mspclaw.tools import CATALOGUE


@dataclass(frozen=True)
class MatchView:
    matched: bool
    chosen: str | None
    score: float
    confidence: float
    why: str
    problems: bool = False
    """No verdict: the draft has problems, or there is no ticket text yet (``why`` says which)."""


@dataclass
class Editor:
    route_id: str
    data: dict[str, Any]
    yaml: str
    filename: str
    problems: list[str]
    book: Playbook | None
    library: bool
    save_refused: str
    subject: str = ""
    body: str = ""
    ticket_os: str = ""
    snap_os: str = ""
    snap_identity: str = ""
    snapshots: tuple[list[str], list[str]] = field(default_factory=lambda: ([], []))
    reload_s: float = 5.0


def _message(text: str, kind: str = "error") -> str:
    if not text:
        return ""
    role = ' role="alert"' if kind == "error" else ' role="status"'
    return f'<p class="{kind}"{role} id="{"error" if kind == "error" else "note"}">{e(text)}</p>'


# -- the list ------------------------------------------------------------------------------------------
def list_page(rows: list[Listed], *, dirs: list[str], refused: str, user: Principal, csrf: str) -> str:
    body = "".join(
        f'<tr data-id="{e(r.book_id)}"><td><a href="/playbooks/{e(r.book_id)}/edit">{e(r.book_id)}</a></td>'
        f"<td>{e(r.name)}</td><td>{e(r.category)}</td><td>{e(', '.join(r.os))}</td><td>{e(r.version)}</td>"
        f"<td>{'library (read-only)' if r.library else 'ours'}</td>"
        f"<td>{_server_state(r)}</td></tr>"
        for r in rows)
    untrusted = [r for r in rows if r.refused]
    trust = ("" if not untrusted else
             '<div class="error" role="alert" id="untrusted"><p>The server does not trust '
             f"{len(untrusted)} playbook file{'s' if len(untrusted) > 1 else ''}:</p><ul>"
             + "".join(f"<li><code>{e(r.refused)}</code></li>" for r in untrusted) + "</ul></div>")
    ours = sum(not r.library for r in rows)
    where = (f"Our playbooks are saved in <code>{e(dirs[0])}</code>." if dirs else
             "No playbook directory is configured (MSPCLAW_PLAYBOOK_DIRS): playbooks can be built and dry-run, "
             "not saved.")
    empty = "" if ours else ('<p class="hint" id="none-ours">None of our own yet: start a new one, or open a '
                             "library playbook and copy it.</p>")
    new = '<a class="button" href="/playbooks/new" id="new">New playbook</a>'
    return layout("Playbooks", (
        f'<section class="card"><h1>Playbooks</h1><p>{where} {e(refused) if refused and dirs else ""}</p>{empty}'
        f'<div class="buttons">{new}</div>{trust}'
        f'<table id="playbooks"><thead><tr><th>Id</th><th>Name</th><th>Category</th><th>OS</th><th>Version</th>'
        f"<th>Source</th><th>Server</th></tr></thead><tbody>{body}</tbody></table></section>"),
        user=user, csrf=csrf, page="playbooks")


def _server_state(row: Listed) -> str:
    if row.running:
        return "in service" + (' <span class="hint">(not trusted: loaded under MSPCLAW_PLAYBOOK_TRUST=warn)</span>'
                               if row.refused else "")
    if row.refused:
        return '<span class="error">refused: not trusted</span>'
    return "<span class=hint>not loaded</span>"


# -- the editor ----------------------------------------------------------------------------------------
def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "\n".join(_text(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value)
    return "" if value is None else str(value)


def _input(name: str, label: str, value: Any, *, hint: str = "", required: bool = False, kind: str = "text",
           maxlength: int = 200, field_id: str | None = None) -> str:
    fid = field_id or name.replace(".", "-")
    return (f'<label for="{e(fid)}">{e(label)}{f" <span class=hint>{e(hint)}</span>" if hint else ""}'
            f'<input type="{kind}" id="{e(fid)}" name="{e(name)}" value="{e(_text(value))}" maxlength="{maxlength}"'
            f'{" required" if required else ""}></label>')


def _area(name: str, label: str, value: Any, *, hint: str = "", rows: int = 3, maxlength: int = 4000,
          field_id: str | None = None) -> str:
    fid = field_id or name.replace(".", "-")
    return (f'<label for="{e(fid)}">{e(label)}{f" <span class=hint>{e(hint)}</span>" if hint else ""}'
            f'<textarea id="{e(fid)}" name="{e(name)}" rows="{rows}" maxlength="{maxlength}">{e(_text(value))}'
            f"</textarea></label>")


def _select(name: str, label: str, options: list[tuple[str, str]], chosen: str, *, hint: str = "",
            field_id: str | None = None, css: str = "") -> str:
    fid = field_id or name.replace(".", "-")
    opts = "".join(f'<option value="{e(v)}"{" selected" if v == chosen else ""}>{e(t)}</option>' for v, t in options)
    return (f'<label for="{e(fid)}">{e(label)}{f" <span class=hint>{e(hint)}</span>" if hint else ""}'
            f'<select id="{e(fid)}" name="{e(name)}"{f" class={css}" if css else ""}>{opts}</select></label>')


def _checks(name: str, legend: str, options: list[str], chosen: list[str], *, hint: str = "") -> str:
    boxes = "".join(f'<label class="check"><input type="checkbox" name="{e(name)}" value="{e(o)}"'
                    f'{" checked" if o in chosen else ""}> {e(o)}</label>' for o in options)
    return (f'<fieldset class="checks"><legend>{e(legend)}{f" <span class=hint>{e(hint)}</span>" if hint else ""}'
            f"</legend>{boxes}</fieldset>")


def _tool_options() -> list[tuple[str, str]]:
    options = [("", "(choose a tool)")]
    for name, spec in sorted(CATALOGUE.items()):
        marks = [spec.runs_on, "/".join(sorted(spec.os))]
        if spec.destructive:
            marks.append("destructive: needs approval")
        options.append((name, f"{name} ({', '.join(marks)})"))
    return options


def _arguments(prefix: str, tool: str, args: dict[str, Any]) -> str:
    fields = tool_fields(tool)
    if not tool:
        return '<p class="hint">Choose a tool, then "Show the tool\'s arguments".</p>'
    if not fields:
        return '<p class="hint">This tool takes no arguments.</p>' if tool in CATALOGUE else ""
    required = set(CATALOGUE[tool].json_schema().get("required", []))
    parts = []
    for name, spec in fields.items():
        kinds = [spec.get("type")] + [s.get("type") for s in spec.get("anyOf", [])]
        hint = spec.get("description", "")[:160]
        if "default" in spec:
            hint = f"{hint} (default {json.dumps(spec['default'])})".strip()
        if name in required:
            hint = f"required. {hint}"
        value = args.get(name, "")
        fname, label = f"{prefix}arg.{name}", f"argument {name}"
        if "boolean" in kinds:
            parts.append(_select(fname, label, [("", "(default)"), ("true", "true"), ("false", "false")],
                                 _text(value) if value != "" else "", hint=hint))
        elif "enum" in spec:
            parts.append(_select(fname, label, [("", "(default)")] + [(str(v), str(v)) for v in spec["enum"]],
                                 _text(value), hint=hint))
        elif "array" in kinds or "object" in kinds:
            parts.append(_area(fname, label, value, hint=("one per line. " if "array" in kinds else "JSON. ") + hint,
                               rows=2, maxlength=2000))
        else:
            kind = "number" if ("integer" in kinds or "number" in kinds) else "text"
            step = ' step="any"' if kind == "number" else ""
            html = _input(fname, label, value, hint=hint, kind=kind, maxlength=2000)
            parts.append(html.replace(f'type="{kind}"', f'type="{kind}"{step}', 1))
    return "".join(parts)


def _map(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _step(i: int, step: dict[str, Any]) -> str:
    p = f"s{i}."
    tool = str(step.get("tool", ""))
    spec = CATALOGUE.get(tool)
    warn = (f'<p class="hint destructive">{e(tool)} changes the machine or an account: list it under Approvals.</p>'
            if spec is not None and spec.destructive else "")
    computed = "\n".join(f"{k}: {v}" for k, v in _map(step.get("args_from")).items())
    only = [str(o) for o in _list(step.get("os"))]
    return (f'<fieldset class="step" id="step-{i}"><legend>Step {i + 1}: {e(step.get("title") or "(new)")}</legend>'
            f'<div class="row">{_input(p + "id", "Step id", step.get("id", ""), hint="a-z, 0-9, _", maxlength=64)}'
            f'{_input(p + "title", "Title", step.get("title", ""))}</div>'
            f'{_select(p + "tool", "Tool", _tool_options(), tool, css="tool")}{warn}'
            f'<div class="args">{_arguments(p, tool, _map(step.get("args")))}</div>'
            + _area(p + "from", "Arguments computed when the step runs", computed, rows=2, maxlength=2000,
                    hint="name: expression, one per line, e.g. username: facts.requester")
            + _input(p + "when", "Only when", step.get("when", ""), maxlength=500,
                     hint="a condition over earlier steps and facts")
            + _input(p + "reason", "Reason (shown to the approving technician)", step.get("reason", ""),
                     maxlength=500)
            + _checks(p + "os", "Only on", list(OS_NAMES), only, hint="none checked: every OS of the playbook")
            + f'<label class="check"><input type="checkbox" name="{p}optional" value="1"'
            f'{" checked" if step.get("required") is False else ""}> optional (the run goes on if it fails)</label>'
            f'<label class="check"><input type="checkbox" name="{p}remove" value="1"> remove this step</label>'
            f"</fieldset>")


def _question(i: int, q: dict[str, Any]) -> str:
    p = f"q{i}."
    return (f'<fieldset class="question" id="question-{i}"><legend>Question {i + 1}</legend>'
            f'<div class="row">{_input(p + "id", "Question id", q.get("id", ""), maxlength=64)}'
            f'{_input(p + "fact", "Fills the fact", q.get("fact", ""), hint="read as facts.<name>", maxlength=64)}'
            f"</div>{_input(p + 'text', 'Asked in plain words', q.get('text', ''), maxlength=500)}"
            f'{_area(p + "choices", "Choices", q.get("choices", []), hint="one per line; none: free text", rows=2)}'
            f'<label class="check"><input type="checkbox" name="{p}once" value="1"'
            f'{" checked" if q.get("remember") is False else ""}> for this ticket only (not remembered)</label>'
            f'<label class="check"><input type="checkbox" name="{p}remove" value="1"> remove this question</label>'
            f"</fieldset>")


def _approvals(data: dict[str, Any]) -> str:
    used = [str(s.get("tool")) for s in _list(data.get("steps")) if isinstance(s, dict) and s.get("tool") in CATALOGUE]
    listed = [str(t) for t in _list(data.get("requires_approval")) if t in CATALOGUE]
    tools = list(dict.fromkeys(used + listed))
    if not tools:
        return '<p class="hint">No tools yet: add steps first.</p>'
    rows = []
    for tool in tools:
        spec = CATALOGUE[tool]
        note = "destructive: must be approved" if spec.destructive else "reads only; approval optional"
        rows.append(f'<label class="check"><input type="checkbox" name="approve" value="{e(tool)}"'
                    f'{" checked" if tool in listed else ""}> {e(tool)} <span class="hint">{e(note)}</span></label>')
    return "".join(rows)


def match_box(view: MatchView | None) -> str:
    if view is None:
        return '<p class="hint">Type a ticket above and press "Would it match?".</p>'
    if view.problems:
        return f'<p class="verdict none" id="verdict">{e(view.why)}</p>'
    head = ("Matches this playbook" if view.matched else
            f"Goes to {view.chosen}, not this playbook" if view.chosen else "No playbook would take it")
    figures = f"score {view.score:g}" + (f", confidence {view.confidence:.2f}" if view.chosen else "")
    return (f'<p class="verdict {"yes" if view.matched else "no"}" id="verdict"><strong>{e(head)}</strong> '
            f'<span class="hint">{e(figures)}</span></p><p id="why">{e(view.why)}</p>')


def _dry(dry: DryRun | None) -> str:
    if dry is None:
        return ""
    problems = "".join(f"<li>{e(p)}</li>" for p in dry.problems)
    rows = "".join(
        f'<tr class="{e(s.result)}"><td>{n}</td><td>{e(s.title)}</td><td><code>{e(s.tool)}</code></td>'
        f'<td>{e(s.result)}{" (approved)" if s.approval else ""}</td>'
        f'<td class="summary">{e(s.error or s.summary)}</td></tr>' for n, s in enumerate(dry.steps, 1))
    asked = "".join(f"<li>{e(q)}</li>" for q in dry.questions)
    return (f'<div id="dry-result"><h3>Dry-run on the recorded {e(dry.os)} device'
            f'{f" and {e(dry.identity)} site" if dry.identity != "-" else ""}: '
            f'<span id="outcome" class="tag">{e(dry.outcome or "stopped")}</span></h3>'
            f'{f"<ul class=error>{problems}</ul>" if problems else ""}'
            f'<table id="dry-steps"><thead><tr><th>#</th><th>Step</th><th>Tool</th><th>Result</th><th>What it found'
            f"</th></tr></thead><tbody>{rows or '<tr><td colspan=5 class=empty>no step ran</td></tr>'}</tbody></table>"
            f'{f"<h3>Questions asked</h3><ul>{asked}</ul>" if asked else ""}'
            f'<p class="hint">Why it ended: {e(dry.reason)}</p>'
            f'<h3>The user would read</h3><blockquote id="dry-reply">{e(dry.reply or "(no reply)")}</blockquote></div>')


def _per_os(book: Playbook | None) -> str:
    if book is None:
        return ""
    rows = "".join(f"<tr><th>{e(o)}</th><td>{e(', '.join(s.id for s in book.plan_for(o).steps))}</td></tr>"
                   for o in book.os)
    return f'<table id="per-os"><caption class="hint">Steps per OS</caption>{rows}</table>'


def _about(d: dict[str, Any]) -> str:
    categories = [("", "(choose)")] + [(c, c) for c in CATEGORIES]
    return ('<fieldset id="about"><legend>About</legend><div class="row">'
            + _input("id", "Id", d.get("id", ""), hint="a-z, 0-9, _ . -; also the file name", required=True,
                     maxlength=64)
            + _input("name", "Name", d.get("name", ""), required=True)
            + _input("version", "Version", d.get("version", "1.0.0"), hint="MAJOR.MINOR.PATCH", maxlength=100)
            + _select("category", "Category", categories, str(d.get("category", "")))
            + "</div>" + _area("description", "Description", d.get("description", ""), rows=3)
            + _checks("os", "Operating systems", list(OS_NAMES), [str(o) for o in _list(d.get("os"))])
            + _area("os_notes", "OS notes", d.get("os_notes", ""), rows=1, hint="why an OS is left out")
            + _input("max_steps", "Model turns", d.get("max_steps", ""), hint="empty: the server default",
                     kind="number", maxlength=4)
            + "</fieldset>")


def _triggers(d: dict[str, Any]) -> str:
    trig = _map(d.get("triggers"))
    weights = "\n".join(f"{k}: {v}" for k, v in _map(trig.get("weights")).items())
    return ('<fieldset id="triggers"><legend>Triggers</legend>'
            + _area("keywords", "Keywords", trig.get("keywords", []), rows=3,
                    hint="single words, one per line or comma separated")
            + _area("phrases", "Phrases", trig.get("phrases", []), hint="one per line; each hit counts twice", rows=3)
            + _area("negative", "Rule out when the ticket says", trig.get("negative", []), hint="one per line",
                    rows=2)
            + _area("context", "Context only", trig.get("context", []), rows=2,
                    hint="keywords or phrases that name the subject without saying anything is wrong")
            + _area("weights", "Weights", weights, hint="keyword: weight, one per line (default 1, at most 10)",
                    rows=2)
            + "</fieldset>")


def _match_section(ed: Editor, matched: MatchView | None, rid: str) -> str:
    return ('<fieldset id="match"><legend>Would this ticket match, and why?</legend>'
            + _input("t_subject", "Ticket subject", ed.subject, maxlength=500)
            + _area("t_body", "Ticket body", ed.body, rows=2)
            + _select("t_os", "Device", [("", "any OS")] + [(o, o) for o in OS_NAMES], ed.ticket_os)
            + f'<button type="submit" id="check-match" formaction="/playbooks/{rid}/match">Would it match?</button>'
            f'<div id="match-result" aria-live="polite">{match_box(matched)}</div></fieldset>')


def _steps_section(steps: list[dict[str, Any]], book: Playbook | None, rid: str) -> str:
    return ('<fieldset id="builder-steps"><legend>Steps</legend>'
            f'<input type="hidden" name="nsteps" value="{len(steps)}">'
            + "".join(_step(i, s) for i, s in enumerate(steps))
            + '<div class="buttons"><button type="submit" name="do" value="add_step" id="add-step" class="secondary" '
            f'formaction="/playbooks/{rid}/edit#step-{len(steps)}">'
            "Add a step</button><button type=\"submit\" id=\"show-arguments\" class=\"secondary\">Show the tool's "
            f"arguments</button></div>{_per_os(book)}</fieldset>")


def _questions_section(questions: list[dict[str, Any]], rid: str) -> str:
    shown = "".join(_question(i, q) for i, q in enumerate(questions)) or \
        '<p class="hint">No questions: the playbook asks the user nothing.</p>'
    return ('<fieldset id="questions"><legend>Questions</legend>'
            f'<input type="hidden" name="nquestions" value="{len(questions)}">{shown}'
            '<button type="submit" name="do" value="add_question" id="add-question" class="secondary" '
            f'formaction="/playbooks/{rid}/edit#question-{len(questions)}">Add a question'
            "</button></fieldset>")


def _replies(d: dict[str, Any]) -> str:
    reply = _map(d.get("reply"))
    return ('<fieldset id="replies"><legend>Success and replies</legend>'
            + _input("success_check", "Success check", d.get("success_check", ""), maxlength=500,
                     hint="a condition over the steps, e.g. web.reachable")
            + _area("reply_resolved", "Reply when resolved", reply.get("resolved", ""), rows=2)
            + _area("reply_escalated", "Reply when escalated", reply.get("escalated", ""), rows=2)
            + _area("reply_needs_action", "Reply when the user must act", reply.get("needs_action", ""), rows=2)
            + _area("escalation", "Hints for the technician who takes over", d.get("escalation", ""), rows=2)
            + "</fieldset>")


def _dry_section(ed: Editor, dry: DryRun | None, rid: str) -> str:
    devices, sites = ed.snapshots
    return ('<fieldset id="dry-run"><legend>Dry-run against a recorded snapshot</legend><div class="row">'
            + _select("snap_os", "Recorded device", [(o, o) for o in devices], ed.snap_os)
            + _select("snap_identity", "Recorded site", [("", "none")] + [(s, s) for s in sites], ed.snap_identity)
            + f'</div><button type="submit" id="run-dry" formaction="/playbooks/{rid}/dry-run">Dry-run</button>'
            '<p class="hint">Nothing runs on a real device: a recording answers every call.</p>'
            f"{_dry(dry)}</fieldset>")


def _saving(ed: Editor, rid: str) -> str:
    if ed.library:
        return ('<p class="hint" id="read-only">A shipped library playbook: read-only. '
                f'<a class="button secondary" id="copy" href="/playbooks/new?copy={rid}">Copy to my playbooks</a></p>')
    if ed.save_refused:
        return f'<p class="hint" id="save-refused">{e(ed.save_refused)}</p>'
    return (f'<button type="submit" id="save" formaction="/playbooks/{rid}/save">Save {e(ed.filename)}</button>'
            f'<span class="hint"> into our playbooks; the server picks it up within {ed.reload_s:g} s</span>')


def editor_page(ed: Editor, *, user: Principal, csrf: str, matched: MatchView | None = None,
                dry: DryRun | None = None, message: str = "", note: str = "") -> str:
    d = ed.data
    rid = e(ed.route_id)
    steps = [s for s in _list(d.get("steps")) if isinstance(s, dict)][:MAX_STEPS]
    questions = [q for q in _list(d.get("questions")) if isinstance(q, dict)][:MAX_QUESTIONS]
    title = str(d.get("name") or d.get("id") or "New playbook")
    problems = "".join(f"<li>{e(p)}</li>" for p in ed.problems)
    checked = (f'<div class="error" role="alert" id="problems"><strong>{len(ed.problems)} problem(s), as '
               f"<code>mspclaw playbooks validate</code> reports them:</strong><ul>{problems}</ul></div>"
               if ed.problems else '<p class="chain ok" id="valid">Valid: <code>mspclaw playbooks validate</code> '
                                   "finds no problem.</p>")
    body = (
        f'<section class="card builder"><h1>Playbook: {e(title)}</h1>{_message(note, "note")}{_message(message)}'
        f'<p><a href="/playbooks">All playbooks</a></p>'
        f'<form method="post" action="/playbooks/{rid}/edit" id="builder" data-match="/playbooks/{rid}/match">'
        f'<input type="hidden" name="csrf" value="{e(csrf)}">'
        f'<button type="submit" id="update" class="secondary">Update the form</button>{checked}'
        + _about(d) + _triggers(d) + _match_section(ed, matched, rid) + _steps_section(steps, ed.book, rid)
        + _questions_section(questions, rid)
        + '<fieldset id="approvals"><legend>Approvals</legend><p class="hint">Tools that wait for a technician\'s '
        f"approval. Every destructive tool must be listed.</p>{_approvals(d)}</fieldset>"
        + _replies(d) + _dry_section(ed, dry, rid)
        + f'<div class="buttons" id="saving">{_saving(ed, rid)}</div>'
        f'<details id="yaml-preview"><summary>The YAML to be saved ({e(ed.filename)})</summary>'
        f'<pre id="yaml">{e(ed.yaml)}</pre></details>'
        "</form></section>"
        f'<script src="{STATIC}/builder.js" defer></script>')
    return layout(f"Playbook {title}", body, user=user, csrf=csrf, page="builder")
