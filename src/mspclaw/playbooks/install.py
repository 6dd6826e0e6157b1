"""Install, update and remove playbooks from a registry (a file path or an http(s) URL).

Nothing is written until everything checked out: the registry's own hash, the playbook file's size,
YAML limits and schema, its content hash against the registry entry, a signature by a key the MSP
trusts, no revocation and no downgrade. Then the file is written atomically (a temporary file
renamed over the old one) with its signatures added first and the old ones pruned last, so a
server reading the directory at any moment sees either the old or the new playbook, each signed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from mspclaw.playbooks.canonical import MAX_FILE_BYTES, CanonicalError
from mspclaw.playbooks.loader import PlaybookError
from mspclaw.playbooks.registry import (
    REVOKED_FILE,
    Entry,
    Parsed,
    Permissions,
    Registry,
    RegistryError,
    parse_dir,
    parse_registry,
    parse_text,
    permissions,
    version_key,
)
from mspclaw.playbooks.signing import (
    RevokedPlaybook,
    SigningError,
    Trust,
    TrustFile,
    Verdict,
    atomic_write,
    read_signatures,
    read_trust_file,
    verify,
    write_signatures,
)
from mspclaw.playbooks.verified import directory_trust

DEFAULT_TIMEOUT_S = 10.0
MAX_REGISTRY_FETCH = 4 * 1024 * 1024


class InstallError(ValueError):
    """An install, update or removal refused; nothing was written. The message says why."""


Fetch = Callable[[str, int], bytes]


def fetcher(*, timeout_s: float = DEFAULT_TIMEOUT_S, transport: httpx.BaseTransport | None = None) -> Fetch:
    """Read a path or an http(s) URL, at most ``limit`` bytes, within ``timeout_s`` per network wait."""

    def fetch(location: str, limit: int) -> bytes:
        scheme = urlsplit(location).scheme
        if scheme not in ("http", "https"):
            path = Path(location)
            try:
                size = path.stat().st_size
                if size > limit:
                    raise InstallError(f"{location}: {size} bytes is over the {limit}-byte limit")
                return path.read_bytes()
            except OSError as exc:
                raise InstallError(f"{location}: cannot read: {exc.strerror}") from exc
        try:
            with httpx.Client(timeout=timeout_s, transport=transport, follow_redirects=False) as client, \
                    client.stream("GET", location) as response:
                if response.status_code != 200:
                    raise InstallError(f"{location}: the server answered HTTP {response.status_code}")
                body = bytearray()
                for chunk in response.iter_bytes():
                    body.extend(chunk)
                    if len(body) > limit:
                        raise InstallError(f"{location}: more than {limit} bytes; refusing it")
                return bytes(body)
        except httpx.TimeoutException as exc:
            raise InstallError(f"{location}: no answer within {timeout_s:g} s ({type(exc).__name__}); check the "
                               "URL or try again later") from exc
        except httpx.HTTPError as exc:
            raise InstallError(f"{location}: cannot fetch: {exc}") from exc

    return fetch


def shown(location: str) -> str:
    """A registry location fit for messages and the audit trail: a URL without user, password or query."""
    parts = urlsplit(location)
    if parts.scheme not in ("http", "https"):
        return location
    return urlunsplit((parts.scheme, parts.hostname or "" if parts.port is None else f"{parts.hostname}:{parts.port}",
                       parts.path, "", ""))


def resolve(base: str, relative: str) -> str:
    """Where a registry entry's file is: beside the registry, as a URL or as a path."""
    if urlsplit(base).scheme in ("http", "https"):
        return urljoin(base, relative)
    return str(Path(base).parent / relative)


def open_registry(location: str, fetch: Fetch) -> Registry:
    try:
        return parse_registry(fetch(location, MAX_REGISTRY_FETCH), location)
    except RegistryError as exc:
        raise InstallError(str(exc)) from exc


@dataclass(frozen=True)
class Offer:
    """A checked playbook ready to be written: what it needs, and what it adds to what is installed."""

    entry: Entry
    text: bytes
    verdict: Verdict
    permissions: Permissions
    installed: Parsed | None
    widened: list[str]

    @property
    def is_update(self) -> bool:
        return self.installed is not None


def installed(target: Path) -> dict[str, Parsed]:
    """The playbooks in the install directory, by id (an empty or missing directory has none)."""
    if not target.is_dir() or not any(target.glob("*.yaml")):
        return {}
    return {p.book.id: p for p in parse_dir(target)}


def prepare(registry: Registry, location: str, playbook_id: str, *, target: Path, trust: Trust,
            fetch: Fetch) -> Offer:
    """Fetch and check one playbook; raise :class:`InstallError` with the reason, having written nothing."""
    entry = registry.current(playbook_id)
    if entry is None:
        revoked = [e for e in registry.playbooks if e.id == playbook_id]
        if revoked:
            reasons = "; ".join(f"{e.version}: {e.revoked_reason or 'no reason given'}" for e in revoked)
            raise InstallError(f"{playbook_id}: every version in {location} is revoked ({reasons})")
        raise InstallError(f"{playbook_id}: not in {location}; `mspclaw playbooks search` lists what it has")
    where = resolve(location, entry.path)
    text = fetch(where, MAX_FILE_BYTES)
    try:
        book, _data, sha = parse_text(text.decode("utf-8"), where)
    except UnicodeDecodeError as exc:
        raise InstallError(f"{where}: not UTF-8 text") from exc
    except (PlaybookError, CanonicalError) as exc:
        raise InstallError(f"{where}: not a valid playbook:\n  " + "\n  ".join(
            exc.problems if isinstance(exc, PlaybookError) else [str(exc)])) from exc
    if sha != entry.sha256:
        raise InstallError(f"{where}: content hash {sha} is not the registry's {entry.sha256}: the file was changed "
                           "after the registry was built; refusing it")
    if book.id != entry.id or book.version != entry.version:
        raise InstallError(f"{where}: the file is {book.id} {book.version}, the registry says {entry.id} "
                           f"{entry.version}; refusing it")
    try:
        scoped = directory_trust(target, trust)
    except SigningError as exc:
        raise InstallError(str(exc)) from exc
    verdict = verify(entry.signatures, playbook_id=book.id, version=book.version, sha256=sha, trust=scoped)
    if not verdict.ok:
        raise InstallError(f"{book.id} {book.version}: {verdict.status}: {verdict.message}")
    try:
        current = installed(target).get(book.id)
    except PlaybookError as exc:
        raise InstallError(f"{target}: the install directory has invalid playbooks; fix them first:\n  "
                           + "\n  ".join(exc.problems)) from exc
    perms = permissions(book)
    widened: list[str] = sorted(perms.grants())
    if current is not None:
        have, offered = version_key(current.book.version), version_key(book.version)
        if offered < have:
            raise InstallError(f"{book.id}: {current.book.version} is installed and {location} offers "
                               f"{book.version}: refusing a downgrade (remove it first to go back)")
        if offered == have:
            if current.sha256 == sha:
                raise InstallError(f"{book.id} {book.version} is already installed")
            raise InstallError(f"{book.id} {book.version} is installed with other content than {location} offers; "
                               "a changed playbook must have a new version")
        widened = sorted(perms.grants() - permissions(current.book).grants())
    return Offer(entry, text, verdict, perms, current, widened)


def commit(offer: Offer, target: Path) -> Path:
    """Write the playbook and its signatures; old and new stay verifiable at every instant."""
    target.mkdir(parents=True, exist_ok=True)
    book_id = offer.entry.id
    try:
        signatures = read_signatures(target)
    except SigningError as exc:
        raise InstallError(str(exc)) from exc
    old = signatures.get(book_id, [])
    write_signatures(target, {**signatures, book_id: old + [s for s in offer.entry.signatures if s not in old]})
    path = offer.installed.path if offer.installed is not None else target / f"{book_id}.yaml"
    atomic_write(path, offer.text)
    write_signatures(target, {**read_signatures(target), book_id: list(offer.entry.signatures)})
    return path


def remove(playbook_id: str, target: Path) -> Parsed:
    found = installed(target).get(playbook_id)
    if found is None:
        raise InstallError(f"{playbook_id}: not installed in {target}")
    signatures = read_signatures(target)
    found.path.unlink()
    signatures.pop(playbook_id, None)
    write_signatures(target, signatures)
    return found


def record_revocations(registry: Registry, target: Path) -> list[Parsed]:
    """Copy the registry's revocations of installed playbooks into ``revoked.json``; return those playbooks."""
    reasons = {r.sha256: r.reason for r in registry.revoked}
    reasons.update({e.sha256: e.revoked_reason or f"{e.id} {e.version} revoked by the registry"
                    for e in registry.playbooks if e.revoked})
    hit = [p for p in installed(target).values() if p.sha256 in reasons]
    if not hit:
        return []
    path = target / REVOKED_FILE
    current = read_trust_file(path) if path.exists() else TrustFile()
    known = {r.sha256 for r in current.revoked}
    added = [RevokedPlaybook(sha256=p.sha256, reason=reasons[p.sha256] or "revoked by the registry")
             for p in hit if p.sha256 not in known]
    if added:
        updated = TrustFile(keys=current.keys, revoked=[*current.revoked, *added])
        atomic_write(path, (updated.model_dump_json(indent=2) + "\n").encode())
    return hit
