"""``/api/playbooks``: the MSP's playbooks listed, read, saved, matched against a ticket and dry-run.

The same service as the console's builder (:class:`mspclaw.pipeline.playbook_authoring.PlaybookAuthoring`):
the same checks and messages, the same signing and ``playbook_saved`` audit. Playbooks are not client-scoped
(one works on every client's tickets): everyone reads, technicians match and dry-run, and only an admin of
every client saves. The shipped library is read-only.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Path

from mspclaw.api.auth import CallerDep, ServicesDep, require_caller
from mspclaw.api.schemas.playbooks import (
    DryRunIn,
    DryRunOut,
    DryStepOut,
    MatchIn,
    MatchOut,
    PlaybookIn,
    PlaybookListed,
    PlaybookOut,
    PlaybookSaved,
)
from mspclaw.errors import NotFound
from mspclaw.pipeline.playbook_authoring import MAX_ID_CHARS, Draft, PlaybookAuthoring
from mspclaw.wiring import Services

api = APIRouter(prefix="/api", dependencies=[Depends(require_caller)])
BookId = Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS, pattern=r"^[A-Za-z0-9_.-]+$")]


def _stored(authoring: PlaybookAuthoring, book_id: str) -> Draft:
    source = authoring.find(book_id)
    if source is None:
        raise NotFound(f"no playbook {book_id!r}; GET /api/playbooks lists them")
    return authoring.draft(book_id, text=source.text)


@api.get("/playbooks", response_model=list[PlaybookListed], tags=["playbooks"])
def list_playbooks(svc: ServicesDep) -> list[PlaybookListed]:
    """Every playbook file: the shipped library, then the MSP's own directories; which the server runs now."""
    return [PlaybookListed(id=r.book_id, name=r.name, category=r.category, os=r.os, version=r.version,
                           library=r.library, own=not r.library, file=r.filename, loaded=r.running,
                           refused=r.refused)
            for r in svc.authoring.listing()]


@api.get("/playbooks/{book_id}", response_model=PlaybookOut, tags=["playbooks"])
def show_playbook(book_id: BookId, svc: ServicesDep) -> PlaybookOut:
    """The playbook's YAML as stored, what the loader reads of it, and its problems."""
    authoring = svc.authoring
    draft = _stored(authoring, book_id)
    assert draft.source is not None
    running = {b.id for b in svc.tickets.playbooks}
    return PlaybookOut(id=draft.source.book_id, library=draft.source.library, file=draft.source.path.name,
                       loaded=draft.source.book_id in running, yaml=draft.text,
                       parsed=draft.book.model_dump(mode="json") if draft.book else None, problems=draft.problems)


@api.put("/playbooks/{book_id}", response_model=PlaybookSaved, tags=["playbooks"])
async def save_playbook(book_id: BookId, body: PlaybookIn, svc: ServicesDep, caller: CallerDep) -> PlaybookSaved:
    """Save the playbook (the whole file, its ``id`` the path's) into the MSP's first playbook directory, or over
    the MSP's own file of that id; checked as ``mspclaw playbooks validate`` checks it (400 with its problems),
    signed with the MSP's own key (``MSPCLAW_PLAYBOOK_SIGNING_KEY``, or the data directory's), audited; the server
    loads it on its next reload."""
    authoring = svc.authoring
    draft = await asyncio.to_thread(authoring.draft, book_id, text=body.yaml)
    saved = await authoring.save(caller, draft)
    assert draft.book is not None
    key = authoring.config.signing_key
    return PlaybookSaved(id=draft.book.id, version=draft.book.version, file=saved.path.name, created=saved.created,
                         signed=key is not None and not saved.unsigned, note=saved.unsigned)


def _match(svc: Services, book_id: str, body: MatchIn) -> MatchOut:
    authoring = svc.authoring
    found = authoring.match(_stored(authoring, book_id), body.subject, body.body, body.os)
    return MatchOut(matched=found.matched, playbook=found.chosen, score=found.score, confidence=found.confidence,
                    why=found.why)


@api.post("/playbooks/{book_id}/match", response_model=MatchOut, tags=["playbooks"])
def match_playbook(book_id: BookId, body: MatchIn, svc: ServicesDep) -> MatchOut:
    """Would a ticket with this subject and body get the playbook among those loaded, with what score, and why."""
    return _match(svc, book_id, body)


@api.post("/playbooks/{book_id}/dry-run", response_model=DryRunOut, tags=["playbooks"])
async def dry_run_playbook(book_id: BookId, body: DryRunIn, svc: ServicesDep) -> DryRunOut:
    """Run the playbook with the deterministic runner against a recorded device (and site) snapshot: each
    step's result and the reply. Nothing runs on any agent."""
    authoring = svc.authoring
    draft = await asyncio.to_thread(_stored, authoring, book_id)
    ran = await authoring.dry_run(draft, body.snapshot, body.site)
    return DryRunOut(snapshot=ran.os, site=ran.identity, outcome=ran.outcome, reason=ran.reason, reply=ran.reply,
                     steps=[DryStepOut(title=s.title, tool=s.tool, args=s.args,
                                       result=s.result,
                                       summary=s.summary, error=s.error, approval=s.approval) for s in ran.steps],
                     questions=ran.questions, problems=ran.problems)
