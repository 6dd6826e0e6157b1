"""The playbook builder: list the playbooks, edit one in a form, see whether a ticket would match it and why,
dry-run it against a recorded snapshot, and save it as YAML into the MSP's first playbook directory. Every
check and the save are :class:`mspclaw.pipeline.playbook_authoring.PlaybookAuthoring`, as for ``/api/playbooks``.

Everyone signed in may read; technicians check matches and dry-run (nothing changes); only an admin of every
client saves, because a playbook works on every client's tickets. Saving writes the file atomically, keeps
the comments of the file it replaces, signs it with the MSP's own key (``MSPCLAW_PLAYBOOK_SIGNING_KEY``, or the
one the server made in its data directory), and records ``playbook_saved`` in the audit trail; the running
server picks the change up (``MSPCLAW_PLAYBOOK_RELOAD_S``). The shipped library is read-only: a copy goes to
the MSP's directory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from mspclaw.console import builder_pages as render
from mspclaw.console import playbook_drafts as drafts
from mspclaw.console.builder_pages import Editor, MatchView
from mspclaw.console.http import (
    HEADERS,
    Refused,
    Sign,
    Svc,
    Viewer,
    ViewerPage,
    html,
    needs,
    redirect,
    refused,
    sender,
)
from mspclaw.errors import Conflict, Forbidden, InvalidRequest, MSPClawError, StoreError
from mspclaw.pipeline.access import Principal
from mspclaw.pipeline.playbook_authoring import Draft, Listed, Source
from mspclaw.wiring import Services

router = APIRouter(include_in_schema=False)

NEW = "_new"
"""The path segment of a playbook not saved yet (no playbook id starts with ``_``)."""
MAX_EDITOR_BYTES = 192 * 1024
MAX_EDITOR_FIELDS = 1200
"""The editor posts every field of every step (up to 30, with their arguments) at once."""
_EXPIRED = "The form expired or did not come from this console; open the playbook again."
_NOT_TECH = "Only technicians and admins check matches and dry-run playbooks."


def _route(route_id: str) -> str | None:
    return None if route_id == NEW else route_id


def listed(svc: Services) -> list[Listed]:
    return svc.authoring.listing()


def find(svc: Services, book_id: str) -> Source | None:
    return svc.authoring.find(book_id)


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


def _first(form: dict[str, list[str]], name: str, limit: int = 4000) -> str:
    return (form.get(name) or [""])[0][:limit]


def can_save(svc: Services, principal: Principal) -> str:
    """Why ``principal`` may not save here, or ``""``."""
    return svc.authoring.can_save(principal)


def _editor(svc: Services, principal: Principal, csrf: str, route_id: str, data: dict[str, Any],
            form: dict[str, list[str]] | None = None, form_problems: Sequence[str] = ()) -> Editor:
    draft = svc.authoring.draft(_route(route_id), data=data, form_problems=form_problems)
    form = form or {}
    return Editor(route_id=route_id, data=data, yaml=draft.text, filename=draft.filename, problems=draft.problems,
                  book=draft.book, library=bool(draft.source and draft.source.library),
                  save_refused=can_save(svc, principal),
                  subject=_first(form, "t_subject", 500), body=_first(form, "t_body", 4000),
                  ticket_os=_first(form, "t_os", 10), snap_os=_first(form, "snap_os", 20),
                  snap_identity=_first(form, "snap_identity", 40), snapshots=svc.authoring.snapshot_names(),
                  reload_s=svc.settings.playbook_reload_s)


def _draft_of(svc: Services, editor: Editor) -> Draft:
    """The editor's draft as the service checked it (the editor holds its text, book and problems)."""
    route = _route(editor.route_id)
    source = None if route is None else svc.authoring.find(route)
    return Draft(route, source, editor.filename, editor.yaml, editor.book, editor.problems)


def match_view(svc: Services, editor: Editor) -> MatchView:
    try:
        found = svc.authoring.match(_draft_of(svc, editor), editor.subject, editor.body, editor.ticket_os or None)
    except InvalidRequest as exc:
        return MatchView(False, None, 0.0, 0.0, exc.message, problems=True)
    return MatchView(found.matched, found.chosen, found.score, found.confidence, found.why)


# -- pages ---------------------------------------------------------------------------------------------
@router.get("/playbooks")
def playbooks(me: ViewerPage, svc: Svc) -> Response:
    return html(render.list_page(listed(svc), dirs=[str(d) for d in svc.settings.playbook_dirs],
                                 refused=can_save(svc, me.principal), user=me.principal, csrf=me.csrf))


@router.get("/playbooks/new")
def new(me: ViewerPage, svc: Svc, copy: str = "") -> Response:
    """A new playbook: empty, or a copy of another (a library playbook to adapt) under a new id."""
    data = drafts.blank()
    if copy:
        source = find(svc, copy)
        if source is None or source.data is None:
            return me.error(404, f"no playbook {copy[:100]!r} to copy; see the list")
        data = dict(source.data)
        data["id"] = f"{source.book_id}_local"[:64]
        data["name"] = f"{data.get('name', source.book_id)} (our copy)"
        data.pop("tested_against", None)
    return html(render.editor_page(_editor(svc, me.principal, me.csrf, NEW, data), user=me.principal, csrf=me.csrf))


@router.get("/playbooks/{book_id}/edit")
def edit(book_id: str, me: ViewerPage, svc: Svc, saved: str = "") -> Response:
    principal, csrf = me.principal, me.csrf
    source = find(svc, book_id)
    if source is None or source.data is None:
        return me.error(404, f"no playbook {book_id[:100]!r}; see the list of playbooks")
    editor = _editor(svc, principal, csrf, book_id, source.data)
    note = ""
    if saved:
        note = (f"Saved to {source.path}. The server picks it up within {svc.settings.playbook_reload_s:g} s."
                if svc.settings.playbook_reload_s > 0 else f"Saved to {source.path}. Restart the server to use it.")
    return html(render.editor_page(editor, user=principal, csrf=csrf, note=note))


@dataclass(frozen=True)
class _Edited(Viewer):
    """The editor's form as the service checked it, sent by :attr:`principal` (a technician, its CSRF token
    checked)."""

    editor: Editor


async def _edited(book_id: str, request: Request, svc: Svc, sign: Sign) -> _Edited:
    form = await read_editor_form(request)
    if isinstance(form, str):
        raise Refused(refused(form))
    me = await sender(request, sign, (form.get("csrf") or [""])[0], expired=_EXPIRED, check=needs("tech", _NOT_TECH))
    if book_id != NEW and await run_in_threadpool(find, svc, book_id) is None:
        raise Refused(me.error(404, f"no playbook {book_id[:100]!r}; see the list of playbooks"))
    data, problems = drafts.from_form(form)
    editor = await run_in_threadpool(_editor, svc, me.principal, me.csrf, book_id, data, form, problems)
    return _Edited(me.principal, me.csrf, editor)


Edited = Annotated[_Edited, Depends(_edited)]
"""A technician's editor form (``POST /playbooks/{book_id}/...``), else :class:`Refused`."""


@router.post("/playbooks/{book_id}/edit")
async def redraw(book_id: str, posted: Edited, svc: Svc) -> Response:
    """The editor again with the form's draft: a step or question added or removed, a tool's arguments shown."""
    editor, principal, csrf = posted.editor, posted.principal, posted.csrf
    return html(render.editor_page(editor, user=principal, csrf=csrf))


@router.post("/playbooks/{book_id}/match")
async def match(book_id: str, request: Request, posted: Edited, svc: Svc) -> Response:
    """Would this ticket get the draft playbook, with what score, and why (JSON for the live box)."""
    editor, principal, csrf = posted.editor, posted.principal, posted.csrf
    view = await run_in_threadpool(match_view, svc, editor)
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse({"matched": view.matched, "playbook": view.chosen, "score": view.score,
                             "confidence": view.confidence, "why": view.why, "problems": editor.problems,
                             "html": render.match_box(view)}, headers=HEADERS)
    return html(render.editor_page(editor, user=principal, csrf=csrf, matched=view))


@router.post("/playbooks/{book_id}/dry-run")
async def dry_run(book_id: str, posted: Edited, svc: Svc) -> Response:
    """The draft run by the deterministic runner against a recorded snapshot: each step's result and the reply."""
    editor, principal, csrf = posted.editor, posted.principal, posted.csrf
    if editor.book is None:
        return html(render.editor_page(editor, user=principal, csrf=csrf,
                                       message="Fix the problems listed before a dry-run."), 400)
    try:
        draft = await run_in_threadpool(_draft_of, svc, editor)
        ran = await svc.authoring.dry_run(draft, editor.snap_os, editor.snap_identity)
    except InvalidRequest as exc:
        return html(render.editor_page(editor, user=principal, csrf=csrf, message=exc.message), 400)
    except StoreError as exc:
        return html(render.editor_page(editor, user=principal, csrf=csrf, message=exc.message), 500)
    return html(render.editor_page(editor, user=principal, csrf=csrf, dry=ran))


@router.post("/playbooks/{book_id}/save")
async def save(book_id: str, posted: Edited, svc: Svc) -> Response:
    """Write the draft as YAML into the MSP's first playbook directory (admins of every client only)."""
    editor, principal, csrf = posted.editor, posted.principal, posted.csrf
    refusal = can_save(svc, principal)
    if refusal:
        return html(render.editor_page(editor, user=principal, csrf=csrf, message=refusal), 403)
    draft = await run_in_threadpool(_draft_of, svc, editor)
    try:
        saved = await svc.authoring.save(principal, draft)
    except MSPClawError as exc:
        status = 403 if isinstance(exc, Forbidden) else 400 if isinstance(exc, InvalidRequest) else \
            409 if isinstance(exc, Conflict) else 500
        return html(render.editor_page(editor, user=principal, csrf=csrf, message=exc.message), status)
    if saved.unsigned:
        return html(render.editor_page(editor, user=principal, csrf=csrf, message=(
            f"Saved to {saved.path}, but not signed: {saved.unsigned}")))
    return redirect(f"/playbooks/{editor.book.id if editor.book else book_id}/edit?saved=1")
