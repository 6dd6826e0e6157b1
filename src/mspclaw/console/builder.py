"""The playbook builder: list the playbooks, edit one in a form, see whether a ticket would match it and why,
dry-run it against a recorded snapshot, and save it as YAML into the MSP's first playbook directory.

Everyone signed in may read; technicians check matches and dry-run (nothing changes); only an admin of every
client saves, because a playbook works on every client's tickets. Saving writes the file atomically, keeps
the comments of the file it replaces, signs it with ``MSPCLAW_PLAYBOOK_SIGNING_KEY`` when one is configured,
and records ``playbook_saved`` in the audit trail; the running server picks the change up
(``MSPCLAW_PLAYBOOK_RELOAD_S``). The shipped library is read-only: a copy goes to the MSP's directory.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from mspclaw.console import builder_pages as render
from mspclaw.console import playbook_drafts as drafts
from mspclaw.console.builder_pages import Editor, Listed, MatchView
from mspclaw.console.http import HEADERS, Sign, Svc, error, html, redirect, signed_in_as, to_login, viewer
from mspclaw.console.pages import error_page
from mspclaw.pipeline.access import Principal
from mspclaw.playbooks.canonical import MAX_FILE_BYTES, CanonicalError, check_yaml
from mspclaw.playbooks.contribution import Snapshot, SnapshotError, load_snapshots
from mspclaw.playbooks.loader import LIBRARY, PlaybookError
from mspclaw.playbooks.matcher import Matcher
from mspclaw.playbooks.schema import Playbook
from mspclaw.playbooks.signing import SigningError, atomic_write, load_private_key
from mspclaw.playbooks.verified import sign_path
from mspclaw.wiring import Services

router = APIRouter(include_in_schema=False)

NEW = "_new"
"""The path segment of a playbook not saved yet (no playbook id starts with ``_``)."""
MAX_EDITOR_BYTES = 192 * 1024
MAX_EDITOR_FIELDS = 1200
"""The editor posts every field of every step (up to 30, with their arguments) at once."""
MAX_FILES = 500
_EXPIRED = "The form expired or did not come from this console; open the playbook again."
_NOT_TECH = "Only technicians and admins check matches and dry-run playbooks."
_MATCHERS: dict[str, tuple[list[Playbook], Matcher]] = {}
"""The match box's index by draft (its YAML's hash), with the running set it was built beside."""


# -- where playbooks are -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    book_id: str
    path: Path
    library: bool
    text: str
    data: dict[str, Any] | None
    """The file's YAML data; ``None`` when it cannot be read as a mapping."""


_READ: dict[tuple[str, int, int], Source | None] = {}
"""Files already read, by path, modification time and size: a list or a post reads only what changed."""


def _read(path: Path, library: bool) -> Source | None:
    try:
        st = path.stat()
    except OSError:
        return None
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _READ:
        if len(_READ) > 4 * MAX_FILES:
            _READ.clear()
        _READ[key] = _parse(path, library, st.st_size)
    return _READ[key]


def _parse(path: Path, library: bool, size: int) -> Source | None:
    try:
        if size > MAX_FILE_BYTES:
            return None
        text = path.read_text(encoding="utf-8")
        check_yaml(text, path.name)
        data = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, CanonicalError, yaml.YAMLError):
        return None
    if not isinstance(data, dict):
        return None
    return Source(str(data.get("id", path.stem))[:100], path, library, text, data)


def sources(svc: Services) -> list[Source]:
    """Every playbook file: the shipped library first, then the MSP's directories in order."""
    found: list[Source] = []
    for directory, library in [(LIBRARY, True)] + [(d, False) for d in svc.settings.playbook_dirs]:
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.yaml"))[:MAX_FILES]:
            source = _read(path, library)
            if source is not None:
                found.append(source)
    return found


def find(svc: Services, book_id: str) -> Source | None:
    return next((s for s in sources(svc) if s.book_id == book_id[:100]), None)


def listed(svc: Services) -> list[Listed]:
    running = {b.id for b in svc.tickets.playbooks}
    rows = []
    for s in sources(svc):
        data = s.data or {}
        rows.append(Listed(s.book_id, str(data.get("name", ""))[:120], str(data.get("category", ""))[:40],
                           [str(o) for o in data.get("os", []) if isinstance(o, str)][:3] if isinstance(
                               data.get("os"), list) else [], str(data.get("version", ""))[:40], s.library,
                           s.path.name, s.book_id in running))
    return rows


# -- the editor's form ---------------------------------------------------------------------------------
async def read_editor_form(request: Request) -> dict[str, list[str]] | str:
    """The editor's urlencoded form with every value of a repeated field (bounded), or why it is refused
    (a foreign ``Origin`` is a forged request)."""
    origin = request.headers.get("origin")
    if origin == "null" or (origin and urlsplit(origin).netloc != request.headers.get("host", "")):
        return "this form was sent from another site"
    body = await request.body()
    if len(body) > MAX_EDITOR_BYTES:
        return f"the form is larger than {MAX_EDITOR_BYTES // 1024} KiB; shorten the playbook"
    try:
        fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=MAX_EDITOR_FIELDS)
    except ValueError:
        return f"the form has more than {MAX_EDITOR_FIELDS} fields; send the console's own form"
    if any("\x00" in k or "\x00" in v for k, values in fields.items() for v in values):
        return "the form holds a NUL character, which no field of the console takes; remove it"
    return fields


async def _staff(request: Request, sign: Sign) -> tuple[dict[str, list[str]], Principal, str] | Response:
    form = await read_editor_form(request)
    if isinstance(form, str):
        return html(error_page(403, form), 403)
    found = await run_in_threadpool(signed_in_as, request, sign)
    if found is None:
        return to_login(request)
    principal, token = found
    csrf = sign.csrf(token)
    if not sign.csrf_ok(token, (form.get("csrf") or [""])[0]):
        return html(error_page(403, _EXPIRED, user=principal, csrf=csrf), 403)
    if not principal.at_least("tech"):
        return html(error_page(403, _NOT_TECH, user=principal, csrf=csrf), 403)
    return form, principal, csrf


def _first(form: dict[str, list[str]], name: str, limit: int = 4000) -> str:
    return (form.get(name) or [""])[0][:limit]


def can_save(svc: Services, principal: Principal) -> str:
    """Why ``principal`` may not save here, or ``""``."""
    if not principal.at_least("tech"):
        return "Viewers read playbooks; technicians check matches and dry-run, and admins save."
    if not principal.at_least("admin"):
        return "Only admins save playbooks; you can check matches and dry-run."
    if principal.scope is not None:
        return "A playbook works on every client's tickets: only an admin of every client saves one."
    if not svc.settings.playbook_dirs:
        return ("No playbook directory is configured: set MSPCLAW_PLAYBOOK_DIRS (a JSON list of directories) and "
                "restart the server; the builder saves into the first one.")
    return ""


def _filename(book_id: str) -> str:
    return f"{book_id}.yaml" if re.fullmatch(r"[a-z][a-z0-9_-]{0,63}", book_id) else "playbook.yaml"


def build_draft(svc: Services, route_id: str, data: dict[str, Any], form_problems: Sequence[str]
                ) -> tuple[Source | None, str, str, Playbook | None, list[str]]:
    """(the file edited, its file name, the YAML to save, the playbook, every problem as `validate` says it)."""
    source = None if route_id == NEW else find(svc, route_id)
    mine = source if source is not None and not source.library else None
    filename = mine.path.name if mine else _filename(str(data.get("id", "")))
    text = drafts.render_yaml(data, mine.text if mine else None)
    book, problems = drafts.check(text, filename)
    if book is not None:
        for other in sources(svc):
            if other.book_id == book.id and (source is None or other.path != source.path):
                problems.append(f"{filename}:1: id: {book.id!r} is also used by "
                                f"{'the shipped library' if other.library else other.path.parent.name}/"
                                f"{other.path.name}")
                break
    return source, filename, text, (book if not problems and not form_problems else None), \
        [*form_problems, *problems]


@functools.cache
def _snapshots() -> tuple[dict[str, Snapshot], dict[str, Snapshot]]:
    """The recorded snapshots shipped with the package (read once; frozen models)."""
    return load_snapshots()


def _editor(svc: Services, principal: Principal, csrf: str, route_id: str, data: dict[str, Any],
            form: dict[str, list[str]] | None = None, form_problems: Sequence[str] = ()) -> Editor:
    source, filename, text, book, problems = build_draft(svc, route_id, data, form_problems)
    form = form or {}
    try:
        devices, sites = _snapshots()
        snapshot_names = (sorted(devices), sorted(sites))
    except SnapshotError:
        snapshot_names = ([], [])
    return Editor(route_id=route_id, data=data, yaml=text, filename=filename, problems=problems, book=book,
                  library=bool(source and source.library), save_refused=can_save(svc, principal),
                  subject=_first(form, "t_subject", 500), body=_first(form, "t_body", 4000),
                  ticket_os=_first(form, "t_os", 10), snap_os=_first(form, "snap_os", 20),
                  snap_identity=_first(form, "snap_identity", 40), snapshots=snapshot_names,
                  reload_s=svc.settings.playbook_reload_s)


def match_view(svc: Services, editor: Editor) -> MatchView:
    if editor.book is None:
        return MatchView(False, None, 0.0, 0.0, "fix the problems listed first: " + "; ".join(editor.problems[:3]),
                         problems=True)
    if not (editor.subject.strip() or editor.body.strip()):
        return MatchView(False, None, 0.0, 0.0, "type a ticket's subject or body to see whether it matches",
                         problems=True)
    book = editor.book
    running = svc.tickets.playbooks
    key = f"{editor.route_id}\n{hashlib.sha256(editor.yaml.encode()).hexdigest()}"
    cached = _MATCHERS.get(key)
    if cached is not None and cached[0] is running:  # typing a ticket reuses the index; a reload rebuilds it
        matcher = cached[1]
    else:
        replaced = {editor.route_id, book.id}
        matcher = Matcher([b for b in running if b.id not in replaced] + [book])
        if len(_MATCHERS) > 8:
            _MATCHERS.clear()
        _MATCHERS[key] = (running, matcher)
    os_name = editor.ticket_os if editor.ticket_os in drafts.OS_NAMES else None
    found = matcher.match(editor.subject, editor.body, os_name)
    chosen = found.playbook.id if found.playbook else None
    return MatchView(chosen == book.id, chosen, found.score, found.confidence, found.explanation)


# -- pages ---------------------------------------------------------------------------------------------
@router.get("/playbooks")
def playbooks(request: Request, svc: Svc, sign: Sign) -> Response:
    found = viewer(request, sign)
    if not isinstance(found, tuple):
        return found
    principal, csrf = found
    return html(render.list_page(listed(svc), dirs=[str(d) for d in svc.settings.playbook_dirs],
                                 refused=can_save(svc, principal), user=principal, csrf=csrf))


@router.get("/playbooks/new")
def new(request: Request, svc: Svc, sign: Sign, copy: str = "") -> Response:
    """A new playbook: empty, or a copy of another (a library playbook to adapt) under a new id."""
    found = viewer(request, sign)
    if not isinstance(found, tuple):
        return found
    principal, csrf = found
    data = drafts.blank()
    if copy:
        source = find(svc, copy)
        if source is None or source.data is None:
            return error(404, f"no playbook {copy[:100]!r} to copy; see the list", principal, csrf)
        data = dict(source.data)
        data["id"] = f"{source.book_id}_local"[:64]
        data["name"] = f"{data.get('name', source.book_id)} (our copy)"
        data.pop("tested_against", None)
    return html(render.editor_page(_editor(svc, principal, csrf, NEW, data), user=principal, csrf=csrf))


@router.get("/playbooks/{book_id}/edit")
def edit(book_id: str, request: Request, svc: Svc, sign: Sign, saved: str = "") -> Response:
    found = viewer(request, sign)
    if not isinstance(found, tuple):
        return found
    principal, csrf = found
    source = find(svc, book_id)
    if source is None or source.data is None:
        return error(404, f"no playbook {book_id[:100]!r}; see the list of playbooks", principal, csrf)
    editor = _editor(svc, principal, csrf, book_id, source.data)
    note = ""
    if saved:
        note = (f"Saved to {source.path}. The server picks it up within {svc.settings.playbook_reload_s:g} s."
                if svc.settings.playbook_reload_s > 0 else f"Saved to {source.path}. Restart the server to use it.")
    return html(render.editor_page(editor, user=principal, csrf=csrf, note=note))


async def _posted(book_id: str, request: Request, svc: Services, sign: Sign
                  ) -> tuple[Editor, Principal, str] | Response:
    checked = await _staff(request, sign)
    if isinstance(checked, Response):
        return checked
    form, principal, csrf = checked
    if book_id != NEW and await run_in_threadpool(find, svc, book_id) is None:
        return error(404, f"no playbook {book_id[:100]!r}; see the list of playbooks", principal, csrf)
    data, problems = drafts.from_form(form)
    editor = await run_in_threadpool(_editor, svc, principal, csrf, book_id, data, form, problems)
    return editor, principal, csrf


@router.post("/playbooks/{book_id}/edit")
async def redraw(book_id: str, request: Request, svc: Svc, sign: Sign) -> Response:
    """The editor again with the form's draft: a step or question added or removed, a tool's arguments shown."""
    posted = await _posted(book_id, request, svc, sign)
    if isinstance(posted, Response):
        return posted
    editor, principal, csrf = posted
    return html(render.editor_page(editor, user=principal, csrf=csrf))


@router.post("/playbooks/{book_id}/match")
async def match(book_id: str, request: Request, svc: Svc, sign: Sign) -> Response:
    """Would this ticket get the draft playbook, with what score, and why (JSON for the live box)."""
    posted = await _posted(book_id, request, svc, sign)
    if isinstance(posted, Response):
        return posted
    editor, principal, csrf = posted
    view = await run_in_threadpool(match_view, svc, editor)
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse({"matched": view.matched, "playbook": view.chosen, "score": view.score,
                             "confidence": view.confidence, "why": view.why, "problems": editor.problems,
                             "html": render.match_box(view)}, headers=HEADERS)
    return html(render.editor_page(editor, user=principal, csrf=csrf, matched=view))


@router.post("/playbooks/{book_id}/dry-run")
async def dry_run(book_id: str, request: Request, svc: Svc, sign: Sign) -> Response:
    """The draft run by the deterministic runner against a recorded snapshot: each step's result and the reply."""
    posted = await _posted(book_id, request, svc, sign)
    if isinstance(posted, Response):
        return posted
    editor, principal, csrf = posted
    if editor.book is None:
        return html(render.editor_page(editor, user=principal, csrf=csrf,
                                       message="Fix the problems listed before a dry-run."), 400)
    try:
        devices, sites = await run_in_threadpool(_snapshots)
    except SnapshotError as exc:
        return html(render.editor_page(editor, user=principal, csrf=csrf, message=str(exc)), 500)
    device = devices.get(editor.snap_os or (editor.book.os[0] if editor.book.os else ""))
    if device is None:
        return html(render.editor_page(editor, user=principal, csrf=csrf, message=(
            f"choose a recorded device: {', '.join(sorted(devices))}")), 400)
    site = sites.get(editor.snap_identity) if editor.snap_identity else None
    if editor.snap_identity and site is None:
        return html(render.editor_page(editor, user=principal, csrf=csrf, message=(
            f"choose a recorded site: {', '.join(sorted(sites))}, or none")), 400)
    ran = await drafts.dry_run(editor.book, device, site)
    return html(render.editor_page(editor, user=principal, csrf=csrf, dry=ran))


@router.post("/playbooks/{book_id}/save")
async def save(book_id: str, request: Request, svc: Svc, sign: Sign) -> Response:
    """Write the draft as YAML into the MSP's first playbook directory (admins of every client only)."""
    posted = await _posted(book_id, request, svc, sign)
    if isinstance(posted, Response):
        return posted
    editor, principal, csrf = posted
    refused = can_save(svc, principal)
    if refused:
        return html(render.editor_page(editor, user=principal, csrf=csrf, message=refused), 403)
    if editor.library:
        return html(render.editor_page(editor, user=principal, csrf=csrf, message=(
            "The shipped library is read-only: use 'Copy to my playbooks' and save the copy.")), 403)
    if editor.book is None:
        return html(render.editor_page(editor, user=principal, csrf=csrf,
                                       message="Not saved: fix the problems listed first."), 400)
    key = svc.settings.playbook_signing_key
    if svc.settings.playbook_trust == "enforce" and key is None:
        return html(render.editor_page(editor, user=principal, csrf=csrf, message=(
            "Not saved: MSPCLAW_PLAYBOOK_TRUST=enforce refuses unsigned playbooks; set MSPCLAW_PLAYBOOK_SIGNING_KEY "
            "to the MSP's key (`mspclaw playbooks keygen`) so the builder signs what it saves.")), 409)
    source = None if book_id == NEW else await run_in_threadpool(find, svc, book_id)
    target = source.path if source is not None else svc.settings.playbook_dirs[0] / editor.filename
    if source is None and target.exists():
        return html(render.editor_page(editor, user=principal, csrf=csrf, message=(
            f"Not saved: {target} already exists; give the playbook another id.")), 409)
    try:
        await run_in_threadpool(_write, target, editor.yaml)
    except OSError as exc:
        return html(render.editor_page(editor, user=principal, csrf=csrf,
                                       message=f"Not saved: {target}: {exc.strerror}"), 500)
    unsigned = "" if key is None else await run_in_threadpool(_sign, target, key, principal)
    await svc.audit.record("playbook_saved", actor=principal.name, data={
        "playbook": editor.book.id, "version": editor.book.version, "file": target.name,
        "directory": str(target.parent), "created": source is None,
        "sha256": hashlib.sha256(editor.yaml.encode()).hexdigest(), "signed": key is not None and not unsigned})
    if unsigned:
        return html(render.editor_page(editor, user=principal, csrf=csrf, message=(
            f"Saved to {target}, but not signed: {unsigned}")))
    return redirect(f"/playbooks/{editor.book.id}/edit?saved=1")


def _write(target: Path, text: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, text.encode("utf-8"))


def _sign(target: Path, key: Path, principal: Principal) -> str:
    """Sign the saved file with the MSP's key into its directory's signatures.json; why not, or ``""``."""
    try:
        sign_path(target, load_private_key(key), signee=principal.email or principal.name)
    except PlaybookError as exc:
        return exc.problems[0]
    except (SigningError, OSError) as exc:
        return str(exc)
    return ""
