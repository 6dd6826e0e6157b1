"""Verify directories of playbooks against the keys an MSP trusts, and load the server's set that way.

``MSPCLAW_PLAYBOOK_TRUST`` picks what the server does with a playbook that does not verify:
``off`` (the default: nothing is checked), ``warn`` (loaded, one warning line per playbook) or
``enforce`` (the server refuses the whole set, naming each unsigned, altered, revoked or
untrusted-key playbook, as it refuses an invalid one). The shipped library verifies against the
official key that ships with the package (``official_keys.json``; ``make sign-library``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mspclaw.playbooks.catalogue import load_catalogue
from mspclaw.playbooks.loader import LIBRARY, PlaybookError
from mspclaw.playbooks.registry import REVOKED_FILE, Parsed, parse_dir
from mspclaw.playbooks.schema import Playbook
from mspclaw.playbooks.signing import (
    Signature,
    SigningError,
    Trust,
    Verdict,
    public_key_of,
    read_signatures,
    read_trust_file,
    sign,
    verify,
    write_signatures,
)

log = logging.getLogger(__name__)
TrustMode = Literal["off", "warn", "enforce"]


@dataclass(frozen=True)
class Checked:
    parsed: Parsed
    verdict: Verdict

    def line(self) -> str:
        return f"{self.parsed.path}: {self.parsed.book.id} {self.parsed.book.version}: {self.verdict.status}: " \
               f"{self.verdict.message}"


def directory_trust(directory: Path, trust: Trust) -> Trust:
    """``trust`` plus the revocations recorded in the directory (``revoked.json``, written by updates)."""
    path = directory / REVOKED_FILE
    if not path.exists():
        return trust
    extra = {r.sha256: r.reason for r in read_trust_file(path).revoked}
    return replace(trust, revoked={**trust.revoked, **extra})


def verify_directory(directory: Path, trust: Trust) -> list[Checked]:
    """Every playbook of ``directory`` with its verdict; raises :class:`PlaybookError` for invalid files."""
    parsed = parse_dir(directory)
    try:
        signatures = read_signatures(directory)
        scoped = directory_trust(directory, trust)
    except SigningError as exc:
        raise PlaybookError([str(exc)]) from exc
    return [Checked(p, verify(signatures.get(p.book.id, []), playbook_id=p.book.id, version=p.book.version,
                              sha256=p.sha256, trust=scoped)) for p in parsed]


def load_verified_catalogue(extra: Sequence[Path] = (), *, mode: TrustMode, trust_files: Sequence[Path] = (),
                            library: Path | None = LIBRARY) -> list[Playbook]:
    """:func:`load_catalogue`, then (unless ``mode`` is off) every directory verified against the trust files."""
    books = load_catalogue(extra, library=library)
    if mode == "off":
        return books
    try:
        trust = Trust.load(*trust_files)
    except SigningError as exc:
        raise PlaybookError([f"MSPCLAW_PLAYBOOK_TRUSTED_KEYS: {exc}"]) from exc
    problems: list[str] = []
    for directory in ([library] if library is not None else []) + list(extra):
        problems.extend(c.line() for c in verify_directory(directory, trust) if not c.verdict.ok)
    if problems and mode == "enforce":
        raise PlaybookError([*problems, "MSPCLAW_PLAYBOOK_TRUST=enforce refuses these; sign them with a trusted key "
                                        "(`mspclaw playbooks sign`), remove them, or pin their key in the trust file"])
    for problem in problems:
        log.warning("playbook not trusted (MSPCLAW_PLAYBOOK_TRUST=warn loads it anyway): %s", problem)
    return books


def sign_path(path: Path, key: Ed25519PrivateKey, *, signee: str) -> list[tuple[Parsed, Signature]]:
    """Sign one playbook file or every playbook of a directory with ``key``; the directory's
    ``signatures.json`` keeps other keys' signatures and replaces this key's earlier one."""
    directory = path if path.is_dir() else path.parent
    found = parse_dir(directory)
    chosen = found if path.is_dir() else [p for p in found if p.path.resolve() == path.resolve()]
    if not chosen:
        raise PlaybookError([f"{path}: not a playbook (*.yaml) in {directory}"])
    try:
        signatures = read_signatures(directory)
    except SigningError as exc:
        raise PlaybookError([str(exc)]) from exc
    done: list[tuple[Parsed, Signature]] = []
    for parsed in chosen:
        mine = public_key_of(key)
        kept = [s for s in signatures.get(parsed.book.id, []) if s.public_key == mine and s.sha256 == parsed.sha256
                and s.related_version == parsed.book.version and s.signee == signee]
        if kept:  # already signed as it is: keep the signature (re-signing would only churn the file)
            done.append((parsed, kept[0]))
            continue
        sig = sign(key, playbook_id=parsed.book.id, version=parsed.book.version, sha256=parsed.sha256, signee=signee)
        signatures[parsed.book.id] = [s for s in signatures.get(parsed.book.id, []) if s.thumbprint != sig.thumbprint]
        signatures[parsed.book.id].append(sig)
        done.append((parsed, sig))
    known = {p.book.id for p in found}
    write_signatures(directory, {k: v for k, v in signatures.items() if k in known})
    return done
