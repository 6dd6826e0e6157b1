"""Verify directories of playbooks against the keys an MSP trusts, and load the server's set that way.

``MSPCLAW_PLAYBOOK_TRUST`` picks what the server does with a playbook that does not verify:
``enforce`` (the default: that playbook is left out, the others load, and each refusal names the file,
why, and the command that fixes it), ``warn`` (loaded anyway, the same line reported) or ``off``
(nothing is checked). The shipped library verifies against the official key that ships with the
package (``official_keys.json``; ``make sign-library``); the MSP's own playbooks against the keys its
trust file pins and its own signing key (:class:`LocalKey`), which is trusted at tier ``local``.
"""

from __future__ import annotations

import shlex
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
    SIGNATURES_FILE,
    Signature,
    SigningError,
    Status,
    Trust,
    Verdict,
    public_key_of,
    read_signatures,
    read_trust_file,
    sign,
    verify,
    write_signatures,
)

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


@dataclass(frozen=True)
class LocalKey:
    """The MSP's own signing key (``MSPCLAW_PLAYBOOK_SIGNING_KEY``, or the one the server made in its data
    directory): what the builder and ``mspclaw playbooks sign`` sign with, trusted at tier ``local``."""

    path: Path
    key: Ed25519PrivateKey

    @property
    def name(self) -> str:
        return f"the MSP's own key ({self.path})"


WHY: dict[Status, str] = {"unsigned": "unsigned", "altered": "altered since it was signed", "revoked": "revoked",
                          "untrusted": "signed by a key not trusted", "trusted": "trusted"}


@dataclass(frozen=True)
class Refused:
    """A playbook that does not verify: what the log, ``/readyz``, the console and the audit trail say of it."""

    path: Path
    book_id: str
    version: str
    sha256: str
    status: Status
    detail: str
    fix: str

    def line(self) -> str:
        return f"{self.path}: playbook {self.book_id} {self.version}: {WHY[self.status]} ({self.detail}); " \
               f"to fix: {self.fix}"


@dataclass(frozen=True)
class Verified:
    """The playbooks a server runs and the ones that did not verify (left out under ``enforce``; loaded anyway
    under ``warn``; none are checked under ``off``)."""

    books: list[Playbook]
    refused: list[Refused]
    mode: TrustMode


def _fix(checked: Checked, *, library: bool, sign_key: Path | None) -> str:
    path, book = checked.parsed.path, checked.parsed.book
    if library:
        return "the shipped library was changed after its release; reinstall mspclaw (developers: `make sign-library`)"
    sign = f"mspclaw playbooks sign {shlex.quote(str(path))}" + (
        f" --key {shlex.quote(str(sign_key))}" if sign_key is not None else "")
    directory = shlex.quote(str(path.parent))
    match checked.verdict.status:
        case "unsigned":
            return f"if it is yours, sign it: `{sign}`"
        case "altered":
            return f"if you made the change, sign it again: `{sign}`; if not, restore the file as it was signed"
        case "untrusted":
            return f"pin the key in MSPCLAW_PLAYBOOK_TRUSTED_KEYS if you trust its signer, or review it and sign it " \
                   f"with your own key: `{sign}`"
        case "revoked":
            return f"remove it: `mspclaw playbooks remove {book.id} --dir {directory}`, or update it: " \
                   f"`mspclaw playbooks update {book.id} -r REGISTRY --dir {directory}`"
        case _:
            return ""


def load_verified_catalogue(extra: Sequence[Path] = (), *, mode: TrustMode, trust_files: Sequence[Path] = (),
                            library: Path | None = LIBRARY, local_key: LocalKey | None = None) -> Verified:
    """:func:`load_catalogue`, then (unless ``mode`` is off) every directory verified against the official key, the
    trust files and ``local_key``. An invalid playbook still stops the whole set (:class:`PlaybookError`)."""
    books = load_catalogue(extra, library=library)
    if mode == "off":
        return Verified(books, [], mode)
    try:
        trust = Trust.load(*trust_files)
    except SigningError as exc:
        raise PlaybookError([f"MSPCLAW_PLAYBOOK_TRUSTED_KEYS: {exc}"]) from exc
    if local_key is not None:
        trust = trust.pinning(local_key.key, name=local_key.name)
    # the shipped library: only keys at tier official (the one that ships, or a successor the trust file pins)
    official = Trust({t: k for t, k in trust.keys.items() if k.tier == "official"}, trust.revoked)
    refused: list[Refused] = []
    for directory in ([library] if library is not None else []) + list(extra):
        for c in verify_directory(directory, official if directory == library else trust):
            if not c.verdict.ok:
                fix = _fix(c, library=directory == library, sign_key=local_key.path if local_key else None)
                detail = f"no signature in {SIGNATURES_FILE}" if c.verdict.status == "unsigned" else c.verdict.message
                refused.append(Refused(c.parsed.path, c.parsed.book.id, c.parsed.book.version, c.parsed.sha256,
                                       c.verdict.status, detail, fix))
    if mode == "enforce":
        left_out = {r.book_id for r in refused}  # ids are unique across the catalogue (load_catalogue checks)
        books = [b for b in books if b.id not in left_out]
    return Verified(books, refused, mode)


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
