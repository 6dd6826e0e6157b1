"""``mspclaw playbooks validate|list|show|match|eval|schema``: the playbook library from the command line.

These commands work offline, on YAML files; no server is needed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from mspclaw.cli.groups import runs_bare
from mspclaw.cli.output import JsonOpt, err, out
from mspclaw.cli.playbook_registry import register as register_registry_commands
from mspclaw.playbooks.evaluation import LabelledFileError, Report, evaluate, fit_calibration, read_labelled
from mspclaw.playbooks.loader import LIBRARY, PlaybookError, load_dir, load_file
from mspclaw.playbooks.matcher import Matcher
from mspclaw.playbooks.schema import Playbook, json_schema

playbooks_app = typer.Typer(help="The playbook library: check, list, show and match playbooks (offline).")
DirOpt = Annotated[Path | None, typer.Option("--dir", help="Playbook directory [default: the shipped library].")]
OS_NAMES = ("linux", "macos", "windows")


def _books(directory: Path | None) -> list[Playbook]:
    try:
        return load_dir(directory or LIBRARY)
    except PlaybookError as exc:
        for problem in exc.problems:
            err.print(problem, markup=False, highlight=False)
        raise typer.Exit(1) from exc


@playbooks_app.command("validate")
def validate(paths: Annotated[list[Path], typer.Argument(help="Playbook files or directories of *.yaml.")]) -> None:
    """Check playbooks; print every problem as FILE:LINE: FIELD: MESSAGE and exit 1 if there is one."""
    problems: list[str] = []
    ids: dict[str, Path] = {}
    count = 0
    for path in paths:
        files = sorted(path.glob("*.yaml")) if path.is_dir() else [path]
        if path.is_dir() and not files:
            problems.append(f"{path}: no *.yaml files in this directory")
        if not path.exists():
            problems.append(f"{path}: no such file or directory")
            continue
        for file in files:
            try:
                book = load_file(file)
            except PlaybookError as exc:
                problems.extend(exc.problems)
                continue
            count += 1
            if book.id in ids and ids[book.id] != file:
                problems.append(f"{file}:1: id: {book.id!r} is also used by {ids[book.id]}")
            ids.setdefault(book.id, file)
    for problem in problems:
        err.print(problem, markup=False, highlight=False, soft_wrap=True)
    if problems:
        err.print(f"{len(problems)} problem(s); fix them and run `mspclaw playbooks validate` again.", markup=False)
        raise typer.Exit(1)
    print(f"{count} playbook(s) valid")


@playbooks_app.command("list")
def list_playbooks(as_json: JsonOpt = False, directory: DirOpt = None) -> None:
    """List the playbooks: id, category, operating systems, tools, approvals."""
    books = _books(directory)
    rows: list[dict[str, Any]] = [
        {"id": b.id, "name": b.name, "version": b.version, "category": b.category, "os": list(b.os),
         "tools": list(b.tools), "requires_approval": list(b.requires_approval)} for b in books]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title=f"{len(rows)} playbooks", title_justify="left")
    for col in ("id", "category", "os", "tools", "approval"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["id"], r["category"], ", ".join(r["os"]), ", ".join(r["tools"]),
                      ", ".join(r["requires_approval"]))
    out.print(table)


@playbooks_app.command("show")
def show(playbook_id: Annotated[str, typer.Argument(metavar="ID")], as_json: JsonOpt = False,
         directory: DirOpt = None) -> None:
    """Show one playbook in full: triggers, questions, steps per OS, success check, replies."""
    books = {b.id: b for b in _books(directory)}
    book = books.get(playbook_id)
    if book is None:
        err.print(f"no playbook {playbook_id!r}; known: {', '.join(sorted(books))}", markup=False)
        raise typer.Exit(1)
    data = book.model_dump(mode="json", exclude_defaults=False)
    if as_json:
        print(json.dumps(data, indent=2))
        return
    print(f"{book.id} (v{book.version}) - {book.name} [{book.category}] on {', '.join(book.os)}")
    print(book.description.strip())
    print(f"tools: {', '.join(book.tools)}; approval needed for: {', '.join(book.requires_approval) or 'none'}")
    for os_name in book.os:
        print(f"\nsteps on {os_name}:")
        for i, step in enumerate(book.plan_for(os_name).steps, 1):
            cond = f"  when {step.when}" if step.when else ""
            print(f"  {i}. {step.title} ({step.tool}){cond}")
    print(f"\nsuccess check: {book.success_check}")
    for question in book.questions:
        print(f"question -> facts.{question.fact}: {question.text}")
    print(f"reply (resolved): {book.reply.resolved}")


def _decision(matcher: Matcher, subject: str, body: str, os_name: str | None) -> dict[str, Any]:
    found = matcher.match(subject, body, os_name)
    return {"category": found.playbook.category if found.playbook else None,
            "playbook": found.playbook.id if found.playbook else None,
            "score": found.score, "confidence": found.confidence, "explanation": found.explanation}


def _read_batch(path: Path) -> list[tuple[str, str, str | None]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        err.print(f"{path}: cannot read: {exc.strerror}", markup=False)
        raise typer.Exit(2) from exc
    items: list[tuple[str, str, str | None]] = []
    problems: list[str] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{path}:{number}: not JSON: {exc.msg}")
            continue
        if not isinstance(row, dict) or not isinstance(row.get("subject", ""), str) \
                or not isinstance(row.get("body", ""), str):
            problems.append(f"{path}:{number}: need an object with string 'subject' and 'body'")
            continue
        os_name = row.get("os")
        if os_name is not None and os_name not in OS_NAMES:
            problems.append(f"{path}:{number}: os: {os_name!r} is not one of {', '.join(OS_NAMES)}")
            continue
        items.append((row.get("subject", ""), row.get("body", ""), os_name))
    if problems:
        for problem in problems:
            err.print(problem, markup=False, highlight=False, soft_wrap=True)
        err.print("no decisions written; fix the lines above and run again", markup=False)
        raise typer.Exit(2)
    return items


@playbooks_app.command("match")
def match_cmd(
    text: Annotated[str | None, typer.Argument(help="The ticket's subject (or whole text).")] = None,
    body: Annotated[str, typer.Option(help="The ticket's body.")] = "",
    os_name: Annotated[str | None, typer.Option("--os", help="The device's OS: linux, macos or windows.")] = None,
    batch: Annotated[Path | None, typer.Option(help="JSON lines {subject, body, os}; one decision per line out.")]
    = None,
    as_json: JsonOpt = False,
    directory: DirOpt = None,
) -> None:
    """Which playbook a ticket gets, its score and why; or none (then a model or a technician takes it)."""
    if os_name is not None and os_name not in OS_NAMES:
        err.print(f"--os must be one of {', '.join(OS_NAMES)}, not {os_name!r}", markup=False)
        raise typer.Exit(2)
    matcher = Matcher(_books(directory))
    if batch is not None:
        for subject, ticket_body, row_os in _read_batch(batch):
            sys.stdout.write(json.dumps(_decision(matcher, subject, ticket_body, row_os or os_name)) + "\n")
        return
    if text is None:
        err.print("give the ticket text, or --batch FILE", markup=False)
        raise typer.Exit(2)
    if os_name is None:
        err.print("--os is required (linux, macos or windows): playbooks differ by OS", markup=False)
        raise typer.Exit(2)
    decision = _decision(matcher, text, body, os_name)
    if as_json:
        print(json.dumps(decision))
        return
    target = decision["playbook"] or "no playbook (a model without a playbook, or a technician)"
    print(f"{target}  score {decision['score']:g}\n{decision['explanation']}")


def _summary(report: Report) -> dict[str, Any]:
    must_not = report.must_not
    return {"tickets": len(report.outcomes), "top1_accuracy": round(report.accuracy, 4),
            "must_not_automate": len(must_not), "false_automations": len(report.false_automations),
            "false_automation_rate": round(len(report.false_automations) / len(must_not), 4) if must_not else 0.0,
            "automated": len(report.automated), "precision_when_automated": round(report.precision, 4)}


@playbooks_app.command("eval")
def eval_cmd(
    files: Annotated[list[Path], typer.Argument(help="JSON lines {subject, body, os, label}; label 'none' or "
                                                     "'not_automatable' for a ticket no playbook may take.")],
    worst: Annotated[int, typer.Option(help="How many of the worst decisions to show.")] = 15,
    calibrate: Annotated[bool, typer.Option(help="Also fit the confidence calibration on these tickets.")] = False,
    as_json: JsonOpt = False,
    directory: DirOpt = None,
) -> None:
    """How the matcher does on your own labelled tickets: accuracy, false automation, confusion, worst cases."""
    try:
        tickets = [t for file in files for t in read_labelled(file)]
    except (LabelledFileError, OSError) as exc:
        err.print(str(exc), markup=False, highlight=False)
        raise typer.Exit(2) from exc
    if not tickets:
        err.print("no tickets in the given files", markup=False)
        raise typer.Exit(2)
    books = _books(directory)
    report = evaluate(Matcher(books), tickets)
    summary = _summary(report)
    sources = sorted({t.source for t in tickets})
    per_source = {src: _summary(Report([o for o in report.outcomes if o.ticket.source == src])) for src in sources}
    fitted = fit_calibration(evaluate(Matcher(books, min_confidence=0.0), tickets).outcomes) if calibrate else None
    if as_json:
        print(json.dumps({**summary, "per_file": per_source,
                          "confusion": [[gold, got, n] for (gold, got), n in sorted(report.confusion().items())],
                          "calibration": [list(row) for row in report.calibration()],
                          "calibration_fit": fitted,
                          "worst": [{"subject": o.ticket.subject, "label": o.ticket.label, "got": o.got,
                                     "confidence": o.confidence, "explanation": o.explanation}
                                    for o in report.worst(worst)]}, indent=2))
        return
    out.print(f"{summary['tickets']} tickets: top-1 accuracy {report.accuracy:.1%}; "
              f"false automation {summary['false_automations']} of {summary['must_not_automate']} must-not-automate "
              f"tickets ({summary['false_automation_rate']:.1%}); {summary['automated']} given a playbook, "
              f"{report.precision:.1%} of them the right one", markup=False, highlight=False)
    if len(sources) > 1:
        for src, row in per_source.items():
            out.print(f"  {src}: {row['tickets']} tickets, top-1 {row['top1_accuracy']:.1%}, false automation "
                      f"{row['false_automations']}/{row['must_not_automate']}", markup=False, highlight=False)
    confusion = report.confusion()
    table = Table(title="confusion: each label, and what the matcher chose for it", title_justify="left")
    for col, justify in (("label", "left"), ("tickets", "right"), ("right", "right"), ("chosen instead", "left")):
        table.add_column(col, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for gold in sorted({g for g, _ in confusion}):
        row = {got: n for (g, got), n in confusion.items() if g == gold}
        others = ", ".join(f"{got} {n}" for got, n in sorted(row.items(), key=lambda item: -item[1]) if got != gold)
        table.add_row(gold, str(sum(row.values())), str(row.get(gold, 0)), others)
    out.print(table)
    bands = Table(title="confidence of the playbooks chosen", title_justify="left")
    for col in ("confidence", "tickets", "right"):
        bands.add_column(col, justify="right")
    for low, high, count, right in report.calibration():
        bands.add_row(f"{low:.1f}-{high:.1f}", str(count), f"{right:.0%}" if count else "-")
    out.print(bands)
    if fitted is not None:
        out.print(f"calibration fitted on these tickets: CALIBRATION = ({fitted[0]:.2f}, {fitted[1]:.2f}, "
                  f"{fitted[2]:.2f})", markup=False)
    shown = report.worst(worst)
    if shown:
        out.print(f"worst {len(shown)} decisions (false automations first):", markup=False)
        for o in shown:
            out.print(f"- [{o.ticket.label or 'none'} -> {o.got or 'none'}, confidence {o.confidence:.2f}] "
                      f"{o.ticket.subject[:70]!r}: {o.explanation[:160]}", markup=False, highlight=False)


@playbooks_app.command("schema")
def schema(output: Annotated[Path | None, typer.Option(help="Write to this file instead of stdout.")] = None) -> None:
    """Print (or write) the playbook JSON Schema; docs/playbook.schema.json is this output."""
    text = json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        print(f"wrote {output}")


register_registry_commands(playbooks_app)  # keygen, sign, verify, registry, search, install, ...
runs_bare(playbooks_app, list_playbooks)
