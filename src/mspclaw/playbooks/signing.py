"""Ed25519 signatures over a playbook's canonical form, and the keys an MSP trusts per tier.

A signature is a detached object shaped after OASIS CACAO 2.0's signature object (``type``,
``id``, ``created``, ``signee``, ``related_to``, ``related_version``, ``hash_algorithm``,
``algorithm``, ``public_key``, ``thumbprint``, ``value``), plus ``sha256``: the content hash of the
playbook's canonical form (:mod:`mspclaw.playbooks.canonical`). The bytes signed are the canonical
JSON of the signature object without ``value``, so one signature binds the key, the playbook's id,
its version and its exact content. docs/playbook-registry.md says where this differs from CACAO.

Signatures live beside the playbooks, in ``signatures.json`` of their directory (id -> list of
signatures), or in a registry entry. A key is trusted when its public half is pinned in a trust
file for one tier (official, community, local); the official key ships with the package.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mspclaw.playbooks.canonical import canonical_bytes

Tier = Literal["official", "community", "local"]
TIERS: tuple[Tier, ...] = ("official", "community", "local")
SIGNATURES_FILE = "signatures.json"
OFFICIAL_KEYS = Path(__file__).parent / "official_keys.json"
"""The public half of the key that signs the shipped library (and the official registry)."""
MAX_TRUST_BYTES = 256 * 1024
MAX_SIGNATURES_BYTES = 4 * 1024 * 1024


class SigningError(ValueError):
    """A key, trust file or signature file that cannot be used; says which and what to do."""


class Signature(BaseModel):
    """One detached signature (CACAO 2.0 signature object, profile: Ed25519 over JCS)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["jss"] = "jss"
    id: str = Field(pattern=r"^signature--[0-9a-f-]{36}$")
    created: str = Field(max_length=40)
    signee: str = Field(min_length=1, max_length=200, description="Who signed: the key's owner.")
    related_to: str = Field(pattern=r"^playbook--[a-z][a-z0-9_.-]*$", max_length=120)
    related_version: str = Field(max_length=100)
    hash_algorithm: Literal["sha256"] = "sha256"
    algorithm: Literal["Ed25519"] = "Ed25519"
    public_key: str = Field(max_length=100, description="The raw 32-byte Ed25519 public key, base64.")
    thumbprint: str = Field(pattern=r"^ed25519:[0-9a-f]{16}$", description="Key id: first 16 hex of its sha256.")
    sha256: str = Field(pattern=r"^sha256:[0-9a-f]{64}$", description="Content hash of the playbook signed.")
    value: str = Field(max_length=200, description="The Ed25519 signature, base64.")

    def signed_bytes(self) -> bytes:
        return canonical_bytes(self.model_dump(mode="json", exclude={"value"}))


class TrustedKey(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    tier: Tier
    public_key: str = Field(max_length=100)
    revoked: bool = False


class RevokedPlaybook(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sha256: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    reason: str = Field("", max_length=500)


class TrustFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    keys: list[TrustedKey] = Field(default_factory=list, max_length=200)
    revoked: list[RevokedPlaybook] = Field(default_factory=list, max_length=10_000)


def thumbprint(raw_public: bytes) -> str:
    return "ed25519:" + hashlib.sha256(raw_public).hexdigest()[:16]


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _decode_public(text: str, where: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
        Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise SigningError(f"{where}: public_key is not a base64 Ed25519 public key (32 bytes)") from exc
    return raw


@dataclass(frozen=True)
class Trust:
    """The keys an MSP trusts, each for one tier, and the playbook contents it has revoked."""

    keys: dict[str, TrustedKey]  # thumbprint -> key
    revoked: dict[str, str]  # sha256 -> reason

    @classmethod
    def load(cls, *files: Path, official: bool = True) -> Trust:
        """The shipped official key (unless ``official`` is False) and every key of ``files``."""
        keys: dict[str, TrustedKey] = {}
        revoked: dict[str, str] = {}
        for path in ((OFFICIAL_KEYS,) if official else ()) + files:
            parsed = read_trust_file(path)
            for key in parsed.keys:
                keys[thumbprint(_decode_public(key.public_key, str(path)))] = key
            revoked.update({r.sha256: r.reason for r in parsed.revoked})
        return cls(keys, revoked)

    def pinning(self, key: Ed25519PrivateKey, *, name: str, tier: Tier = "local") -> Trust:
        """This trust plus the public half of ``key`` at ``tier``; a trust file's own entry for the same key
        (revoked, or at another tier) wins."""
        raw = _raw_public(key.public_key())
        if thumbprint(raw) in self.keys:
            return self
        pinned = TrustedKey(name=name[:200], tier=tier, public_key=base64.b64encode(raw).decode())
        return Trust({**self.keys, thumbprint(raw): pinned}, self.revoked)


def read_trust_file(path: Path) -> TrustFile:
    """A trust file: ``{"keys": [{name, tier, public_key, revoked?}], "revoked": [{sha256, reason}]}``."""
    data = _read_json(path, MAX_TRUST_BYTES, "trust file")
    try:
        return TrustFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise SigningError(f"{path}: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}; a trust file is "
                           '{"keys": [{"name": ..., "tier": "official|community|local", "public_key": ...}]}') from exc


def _read_json(path: Path, limit: int, what: str) -> Any:
    try:
        size = path.stat().st_size
        if size > limit:
            raise SigningError(f"{path}: {size} bytes is over the {limit}-byte limit for a {what}")
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SigningError(f"{path}: cannot read the {what}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise SigningError(f"{path}:{exc.lineno}: the {what} is not JSON: {exc.msg}") from exc


# --- keys ----------------------------------------------------------------------------------------

def generate_key(path: Path) -> str:
    """Write a new private key (PEM, PKCS#8, mode 0600) to ``path``; return its public half, base64."""
    if path.exists():
        raise SigningError(f"{path} exists; choose another file or move it away (a key is never overwritten)")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return base64.b64encode(_raw_public(key.public_key())).decode()


def ensure_key(path: Path) -> Ed25519PrivateKey:
    """The private key at ``path``, made first (mode 0600, its directory created) when there is none.

    The new key is written whole to a temporary file and linked into place, so two processes starting at
    once agree on one key and neither reads a half-written file."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            generate_key(tmp)
            try:
                os.link(tmp, path)
            except FileExistsError:  # another process made it first: use theirs
                pass
            except OSError as exc:
                raise SigningError(f"{path}: cannot create the playbook signing key: {exc.strerror}") from exc
        finally:
            tmp.unlink(missing_ok=True)
    return load_private_key(path)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningError(f"{path}: cannot read the signing key: {exc.strerror}") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningError(f"{path}: not an unencrypted PEM private key; make one with "
                           "`mspclaw playbooks keygen`") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError(f"{path}: not an Ed25519 key; make one with `mspclaw playbooks keygen`")
    return key


def public_key_of(key: Ed25519PrivateKey) -> str:
    return base64.b64encode(_raw_public(key.public_key())).decode()


def sign(key: Ed25519PrivateKey, *, playbook_id: str, version: str, sha256: str, signee: str,
         now: dt.datetime | None = None) -> Signature:
    raw = _raw_public(key.public_key())
    unsigned = Signature(id=f"signature--{uuid.uuid4()}",
                         created=(now or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                         signee=signee, related_to=f"playbook--{playbook_id}", related_version=version,
                         public_key=base64.b64encode(raw).decode(), thumbprint=thumbprint(raw), sha256=sha256,
                         value="")
    value = base64.b64encode(key.sign(unsigned.signed_bytes())).decode()
    return unsigned.model_copy(update={"value": value})


# --- verification --------------------------------------------------------------------------------

Status = Literal["trusted", "unsigned", "altered", "untrusted", "revoked"]


@dataclass(frozen=True)
class Verdict:
    status: Status
    message: str
    tier: Tier | None = None
    signee: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "trusted"


def verify(signatures: list[Signature], *, playbook_id: str, version: str, sha256: str, trust: Trust) -> Verdict:
    """Whether one of ``signatures`` is a valid signature of this content by a key ``trust`` pins.

    The most trusted tier wins when several verify. The reasons for a refusal, in order: the content is
    revoked; no signature; a signature by a pinned key whose hash differs (the playbook was changed after
    signing) or whose value does not verify; only keys nobody pinned (or revoked keys).
    """
    if sha256 in trust.revoked:
        reason = trust.revoked[sha256]
        return Verdict("revoked", f"{reason or 'no reason given'}; remove it or update to a newer version")
    if not signatures:
        return Verdict("unsigned", "not signed; sign it with `mspclaw playbooks sign PATH --key KEY` using a key "
                                   "your trust file pins")
    good: list[tuple[int, TrustedKey]] = []
    problems: list[str] = []
    for sig in signatures:
        pinned = trust.keys.get(sig.thumbprint)
        if pinned is None:
            problems.append(f"untrusted: signed by key {sig.thumbprint} ({sig.signee}), which no trust file pins")
            continue
        if pinned.revoked:
            problems.append(f"untrusted: signed by key {sig.thumbprint} ({pinned.name}), which is revoked")
            continue
        if sig.public_key != pinned.public_key:
            problems.append(f"altered: signature {sig.id} names key {sig.thumbprint} with another public key")
            continue
        if sig.sha256 != sha256 or sig.related_to != f"playbook--{playbook_id}" or sig.related_version != version:
            signed = f"{sig.related_to.removeprefix('playbook--')} {sig.related_version} {sig.sha256[:19]}"
            problems.append(f"altered: the content differs from what {pinned.name} signed "
                            f"(signed {signed}, found {playbook_id} {version} {sha256[:19]})")
            continue
        try:
            Ed25519PublicKey.from_public_bytes(base64.b64decode(pinned.public_key)).verify(
                base64.b64decode(sig.value), sig.signed_bytes())
        except (InvalidSignature, ValueError):
            problems.append(f"altered: signature {sig.id} by {pinned.name} does not verify")
            continue
        good.append((TIERS.index(pinned.tier), pinned))
    if good:
        good.sort(key=lambda item: item[0])
        best = good[0][1]
        return Verdict("trusted", f"signed by {best.name} ({best.tier})", best.tier, best.name)
    status: Status = "altered" if any(p.startswith("altered") for p in problems) else "untrusted"
    return Verdict(status, "; ".join(p.split(": ", 1)[1] for p in problems))


# --- signatures.json -----------------------------------------------------------------------------

def read_signatures(directory: Path) -> dict[str, list[Signature]]:
    """``directory/signatures.json`` (playbook id -> signatures); empty when there is none."""
    path = directory / SIGNATURES_FILE
    if not path.exists():
        return {}
    data = _read_json(path, MAX_SIGNATURES_BYTES, "signatures file")
    if not isinstance(data, dict):
        raise SigningError(f"{path}: must be an object of playbook id -> list of signatures")
    found: dict[str, list[Signature]] = {}
    for book_id, items in data.items():
        if not isinstance(items, list):
            raise SigningError(f"{path}: {book_id}: must be a list of signatures")
        try:
            found[book_id] = [Signature.model_validate(item) for item in items]
        except ValidationError as exc:
            first = exc.errors()[0]
            raise SigningError(f"{path}: {book_id}: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from exc
    return found


def write_signatures(directory: Path, signatures: dict[str, list[Signature]]) -> None:
    """Replace ``signatures.json`` atomically (a temporary file renamed over it)."""
    data = {book_id: [s.model_dump(mode="json") for s in sigs] for book_id, sigs in sorted(signatures.items()) if sigs}
    atomic_write(directory / SIGNATURES_FILE, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, flush it to disk, and rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
