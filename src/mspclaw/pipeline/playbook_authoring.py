"""Playbooks as the MSP writes them: listed, read, checked, matched against a ticket, dry-run against a recorded
snapshot, and saved. The one service behind the console's builder and ``/api/playbooks``.

Everyone signed in may read; technicians check matches and dry-run (nothing changes); only an admin of every
client saves, because a playbook works on every client's tickets. Saving checks the text with the loader
behind ``mspclaw playbooks validate``, writes the file atomically into the MSP's first playbook directory
(an edited file keeps its place), signs it with the MSP's own key (``MSPCLAW_PLAYBOOK_SIGNING_KEY``, or the one
the server made in its data directory, which it trusts at tier ``local``), and records
``playbook_saved`` in the audit trail; the running server picks the change up on its next reload. The shipped
library is read-only: a copy under another id goes to the MSP's directory.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mspclaw.errors import Conflict, Forbidden, InvalidRequest, StoreError
from mspclaw.pipeline.access import Principal
from mspclaw.pipeline.playbook_drafting import DryRun, check, dry_run, render_yaml
from mspclaw.playbooks.canonical import MAX_FILE_BYTES, CanonicalError, check_yaml
from mspclaw.playbooks.contribution import Snapshot, SnapshotError, load_snapshots
from mspclaw.playbooks.loader import LIBRARY, PlaybookError
from mspclaw.playbooks.matcher import Matcher
from mspclaw.playbooks.schema import Playbook
from mspclaw.playbooks.signing import SigningError, atomic_write, load_private_key
from mspclaw.playbooks.verified import Refused, sign_path
from mspclaw.store.audit import AuditLog

MAX_FILES = 500
"""Playbook files read from one directory."""
MAX_ID_CHARS = 100
OS_NAMES = ("linux", "macos", "windows")
_MATCHERS: dict[str, tuple[list[Playbook], Matcher]] = {}
"""The match index by draft (its YAML's hash), with the running set it was built beside."""


@dataclass(frozen=True)
class Source:
    """One playbook file."""

    book_id: str
    path: Path
    library: bool
    text: str
    data: dict[str, Any] | None
    """The file's YAML data; ``None`` when it cannot be read as a mapping."""


@dataclass(frozen=True)
class Listed:
    book_id: str
    name: str
    category: str
    os: list[str]
    version: str
    library: bool
    filename: str
    running: bool
    """Loaded by the running server (matched against tickets now)."""
    refused: str = ""
    """Why the server does not trust the file (``MSPCLAW_PLAYBOOK_TRUST``) and how to fix it; ``""``: trusted or
    not checked."""


@dataclass(frozen=True)
class Draft:
    """A playbook as it would be saved: the file it replaces, its name, its text, and every problem."""

    route_id: str | None
    """The playbook edited (``None``: a new one)."""
    source: Source | None
    filename: str
    text: str
    book: Playbook | None
    """The playbook, when there is no problem."""
    problems: list[str]


@dataclass(frozen=True)
class Match:
    matched: bool
    chosen: str | None
    """The playbook the ticket would get among the running ones with the draft in place (``None``: none)."""
    score: float
    confidence: float
    why: str


@dataclass(frozen=True)
class Saved:
    path: Path
    created: bool
    unsigned: str
    """Why the file could not be signed with the MSP's key (``""``: signed, or no key)."""


@dataclass(frozen=True)
class AuthoringConfig:
    dirs: tuple[Path, ...]
    """The MSP's own playbook directories (``MSPCLAW_PLAYBOOK_DIRS``); saves go into the first."""
    signing_key: Path | None = None
    """The MSP's own key, which saves sign with (wiring always gives one)."""
    trust: str = "enforce"
    reload_s: float = 5.0


# -- reading files -------------------------------------------------------------------------------------
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
    return Source(str(data.get("id", path.stem))[:MAX_ID_CHARS], path, library, text, data)


def filename_for(book_id: str) -> str:
    return f"{book_id}.yaml" if re.fullmatch(r"[a-z][a-z0-9_-]{0,63}", book_id) else "playbook.yaml"


@functools.cache
def _snapshots() -> tuple[dict[str, Snapshot], dict[str, Snapshot]]:
    """The recorded snapshots shipped with the package (read once; frozen models)."""
    return load_snapshots()


class PlaybookAuthoring:
    """Read, check, match, dry-run and save the MSP's playbooks (the console's builder and ``/api/playbooks``)."""

    def __init__(self, config: AuthoringConfig, audit: AuditLog, running: Callable[[], list[Playbook]],
                 refused: Callable[[], Mapping[str, Refused]] = dict) -> None:
        self.config = config
        self._audit = audit
        self._running = running
        """The playbooks the server runs now (they change on a reload)."""
        self._refused = refused
        """The files the server does not trust now, by path."""

    # -- reading -------------------------------------------------------------------------------------
    def sources(self) -> list[Source]:
        """Every playbook file: the shipped library first, then the MSP's directories in order."""
        found: list[Source] = []
        for directory, library in [(LIBRARY, True)] + [(d, False) for d in self.config.dirs]:
            if not directory.is_dir():
                continue
            for path in sorted(directory.glob("*.yaml"))[:MAX_FILES]:
                source = _read(path, library)
                if source is not None:
                    found.append(source)
        return found

    def find(self, book_id: str) -> Source | None:
        return next((s for s in self.sources() if s.book_id == book_id[:MAX_ID_CHARS]), None)

    def listing(self) -> list[Listed]:
        running = {b.id for b in self._running()}
        refused = self._refused()
        rows = []
        for s in self.sources():
            why = refused.get(str(s.path))
            data = s.data or {}
            os_names = data.get("os")
            rows.append(Listed(s.book_id, str(data.get("name", ""))[:120], str(data.get("category", ""))[:40],
                               [str(o) for o in os_names if isinstance(o, str)][:3] if isinstance(os_names, list)
                               else [], str(data.get("version", ""))[:40], s.library, s.path.name,
                               s.book_id in running, why.line() if why is not None else ""))
        return rows

    def can_save(self, principal: Principal) -> str:
        """Why ``principal`` may not save here, or ``""``."""
        if not principal.at_least("tech"):
            return "Viewers read playbooks; technicians check matches and dry-run, and admins save."
        if not principal.at_least("admin"):
            return "Only admins save playbooks; you can check matches and dry-run."
        if principal.scope is not None:
            return "A playbook works on every client's tickets: only an admin of every client saves one."
        if not self.config.dirs:
            return ("No playbook directory is configured: set MSPCLAW_PLAYBOOK_DIRS (a JSON list of directories) "
                    "and restart the server; playbooks are saved into the first one.")
        return ""

    # -- drafts --------------------------------------------------------------------------------------
    def draft(self, route_id: str | None, *, data: dict[str, Any] | None = None, text: str | None = None,
              form_problems: Sequence[str] = ()) -> Draft:
        """The playbook ``route_id`` (``None``: a new one) as it would be saved, from its YAML ``data`` (written
        into the existing file, its comments kept) or its full YAML ``text``, with every problem as
        ``mspclaw playbooks validate`` says it."""
        source = None if route_id is None else self.find(route_id)
        mine = source if source is not None and not source.library else None
        from_text = text is not None
        if text is None:
            data = data or {}
            filename = mine.path.name if mine else filename_for(str(data.get("id", "")))
            text = render_yaml(data, mine.text if mine else None)
        else:
            filename = mine.path.name if mine else filename_for(route_id or "")
        book, problems = check(text, filename)
        if book is not None:
            if from_text and route_id is not None and book.id != route_id:
                problems.append(f"{filename}:1: id: {book.id!r} is not the playbook edited ({route_id!r}); "
                                "give the id of the path, or save it under its own id")
            for other in self.sources():
                if other.book_id == book.id and (source is None or other.path != source.path):
                    problems.append(f"{filename}:1: id: {book.id!r} is also used by "
                                    f"{'the shipped library' if other.library else other.path.parent.name}/"
                                    f"{other.path.name}")
                    break
        all_problems = [*form_problems, *problems]
        return Draft(route_id, source, filename, text, book if not all_problems else None, all_problems)

    def match(self, draft: Draft, subject: str, body: str, os_name: str | None = None) -> Match:
        """Whether a ticket would get the draft among the running playbooks (the draft in place of the one it
        edits), with what score, and why."""
        if draft.book is None:
            raise InvalidRequest("fix the problems listed first: " + "; ".join(draft.problems[:3]))
        if not (subject.strip() or body.strip()):
            raise InvalidRequest("give a ticket's subject or body to see whether it matches")
        book = draft.book
        running = self._running()
        key = f"{draft.route_id}\n{hashlib.sha256(draft.text.encode()).hexdigest()}"
        cached = _MATCHERS.get(key)
        if cached is not None and cached[0] is running:  # typing a ticket reuses the index; a reload rebuilds it
            matcher = cached[1]
        else:
            replaced = {draft.route_id, book.id}
            matcher = Matcher([b for b in running if b.id not in replaced] + [book])
            if len(_MATCHERS) > 8:
                _MATCHERS.clear()
            _MATCHERS[key] = (running, matcher)
        found = matcher.match(subject, body, os_name if os_name in OS_NAMES else None)
        chosen = found.playbook.id if found.playbook else None
        return Match(chosen == book.id, chosen, found.score, found.confidence, found.explanation)

    @staticmethod
    def snapshots() -> tuple[dict[str, Snapshot], dict[str, Snapshot]]:
        """The recorded device snapshots by OS and site snapshots by identity system; :class:`SnapshotError` if
        the package's recordings cannot be read."""
        return _snapshots()

    @staticmethod
    def snapshot_names() -> tuple[list[str], list[str]]:
        try:
            devices, sites = _snapshots()
        except SnapshotError:
            return [], []
        return sorted(devices), sorted(sites)

    async def dry_run(self, draft: Draft, snapshot: str = "", site: str = "") -> DryRun:
        """The draft run by the deterministic runner against a recorded device ``snapshot`` (its OS; default the
        playbook's first) and ``site`` snapshot (an identity system, or none): each step's result and the reply.
        Nothing runs anywhere: a recording answers every call."""
        if draft.book is None:
            raise InvalidRequest("fix the problems listed before a dry-run: " + "; ".join(draft.problems[:3]))
        try:
            devices, sites = _snapshots()
        except SnapshotError as exc:
            raise StoreError(f"the recorded snapshots cannot be read: {exc}") from exc
        device = devices.get(snapshot or (draft.book.os[0] if draft.book.os else ""))
        if device is None:
            raise InvalidRequest(f"choose a recorded device: {', '.join(sorted(devices))}")
        recorded = sites.get(site) if site else None
        if site and recorded is None:
            raise InvalidRequest(f"choose a recorded site: {', '.join(sorted(sites))}, or none")
        return await dry_run(draft.book, device, recorded)

    # -- saving --------------------------------------------------------------------------------------
    async def save(self, principal: Principal, draft: Draft) -> Saved:
        """Write ``draft`` (from :meth:`draft`) into the MSP's directory, sign it when a key is configured, and
        audit ``playbook_saved``. Refused (:class:`Forbidden`) to all but an admin of every client and for the
        shipped library; :class:`InvalidRequest` with the problems; :class:`Conflict` when no directory is
        configured, when trust is enforced without a signing key, or when a new playbook's file exists."""
        refused = self.can_save(principal)
        if refused:
            raise (Conflict if principal.at_least("admin") and principal.scope is None else Forbidden)(refused)
        source = draft.source
        if source is not None and source.library:
            raise Forbidden("The shipped library is read-only: save a copy under another id (a new playbook).")
        if draft.book is None:
            raise InvalidRequest("Not saved: fix the problems listed first: " + "; ".join(draft.problems[:10]))
        key = self.config.signing_key
        if self.config.trust == "enforce" and key is None:
            raise Conflict("Not saved: MSPCLAW_PLAYBOOK_TRUST=enforce refuses unsigned playbooks and no signing "
                           "key is configured; set MSPCLAW_PLAYBOOK_SIGNING_KEY (`mspclaw playbooks keygen`).")
        target = source.path if source is not None else self.config.dirs[0] / draft.filename
        if source is None and await asyncio.to_thread(target.exists):
            raise Conflict(f"Not saved: {target} already exists; give the playbook another id.")
        try:
            await asyncio.to_thread(_write, target, draft.text)
        except OSError as exc:
            raise StoreError(f"Not saved: {target}: {exc.strerror}") from exc
        unsigned = "" if key is None else await asyncio.to_thread(_sign, target, key, principal)
        await self._audit.record("playbook_saved", actor=principal.name, data={
            "playbook": draft.book.id, "version": draft.book.version, "file": target.name,
            "directory": str(target.parent), "created": source is None,
            "sha256": hashlib.sha256(draft.text.encode()).hexdigest(), "signed": key is not None and not unsigned})
        return Saved(target, source is None, unsigned)


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
