"""Secrets at rest: values encrypted with AES-256-GCM under a key kept outside the database.

**Keys.** A key is 32 random bytes, written as URL-safe base64 (``mspclaw secrets new-key``
prints one). Its id is the first 12 hex digits of its SHA-256, so a ciphertext names the key it
needs without the key being stored anywhere near it. Keys come from, in order:

* ``MSPCLAW_SECRET_KEY``: one key, or several separated by commas;
* ``MSPCLAW_SECRET_KEY_FILE``: a file of keys (containers mount it as a secret);
* else ``secret.key`` in the data directory, created (0600) the first time something is encrypted.

A key file holds one key per line (``#`` starts a comment). The first key encrypts; every key
listed decrypts, which is how :meth:`SecretBox.reencrypt` (``mspclaw secrets rotate``) moves
every value to a new key while the old one is still at hand.

**Ciphertext.** ``v1:<key id>:<base64(nonce || AES-GCM ciphertext and tag)>`` with a fresh
96-bit nonce per value. The *context* a caller passes (the table, column and row id) is the
associated data: a value copied into another row does not decrypt there.

**Failure.** A value that does not decrypt raises :class:`SecretKeyError` naming the key id it
needs and where the box looked, never a partial result; callers decrypt everything they need
before they write anything (see ``PSAAccounts``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mspclaw.errors import ConfigError
from mspclaw.store.private_files import write_private

KEY_FILE = "secret.key"
"""The key file's name in the data directory."""

VERSION = "v1"
NONCE_BYTES = 12
KEY_BYTES = 32
MAX_PLAINTEXT = 64 * 1024
"""Largest value the box encrypts: secrets are tokens and URLs, not documents."""
MAX_KEY_FILE = 64 * 1024


class SecretKeyError(ConfigError):
    """A secret in the database cannot be decrypted with the keys at hand (missing or wrong key, or a
    changed value), or a key is malformed. Nothing was decrypted or written."""

    code = "secret_key"


@dataclass(frozen=True)
class SecretKey:
    material: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.material) != KEY_BYTES:
            raise SecretKeyError(f"a secret key is {KEY_BYTES} bytes, not {len(self.material)}")

    @property
    def id(self) -> str:
        return hashlib.sha256(self.material).hexdigest()[:12]

    @classmethod
    def generate(cls) -> SecretKey:
        return cls(AESGCM.generate_key(bit_length=KEY_BYTES * 8))

    @classmethod
    def parse(cls, text: str, where: str) -> SecretKey:
        try:
            material = base64.urlsafe_b64decode(text.strip().encode("ascii"))
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raise SecretKeyError(f"{where}: a key is {KEY_BYTES} bytes in URL-safe base64 "
                                 "(make one with `mspclaw secrets new-key`)") from None
        if len(material) != KEY_BYTES:
            raise SecretKeyError(f"{where}: a key is {KEY_BYTES} bytes in URL-safe base64, this one is "
                                 f"{len(material)} bytes (make one with `mspclaw secrets new-key`)")
        return cls(material)

    def encoded(self) -> str:
        return base64.urlsafe_b64encode(self.material).decode("ascii")


def parse_keys(text: str, where: str, *, separator: str = "\n") -> list[SecretKey]:
    """Keys from a key file's text (``separator="\\n"``) or an environment value (``","``)."""
    keys: list[SecretKey] = []
    for n, raw in enumerate(text.split(separator), start=1):
        item = raw.split("#", 1)[0].strip()
        if item:
            keys.append(SecretKey.parse(item, f"{where}, key {n}" if separator == "," else f"{where}:{n}"))
    return keys


def key_file_text(keys: Sequence[SecretKey]) -> bytes:
    lines = ["# MSPclaw secret keys: the first encrypts, all decrypt. Keep a copy apart from the database."]
    lines += [f"{key.encoded()}  # {key.id}" for key in keys]
    return ("\n".join(lines) + "\n").encode()


def read_key_file(path: Path) -> list[SecretKey]:
    try:
        if path.stat().st_size > MAX_KEY_FILE:
            raise SecretKeyError(f"{path} is larger than {MAX_KEY_FILE} bytes: not a key file")
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not ASCII text"
        raise SecretKeyError(f"cannot read the secret key file {path}: {reason}") from exc
    keys = parse_keys(text, str(path))
    if not keys:
        raise SecretKeyError(f"the secret key file {path} holds no key")
    return keys


class SecretBox:
    """Encrypts and decrypts short secrets with the first of its keys; decrypts with any of them.

    ``key_file``: the data directory's key file the keys were read from, or that the first
    :meth:`encrypt` writes with a new key when the box has none yet (a fresh install encrypts from
    its first secret on; one with nothing to encrypt writes no key). ``origin`` says where the keys
    came from, for messages.
    """

    def __init__(self, keys: Sequence[SecretKey], *, origin: str, key_file: Path | None = None) -> None:
        self._keys = list(keys)
        self.origin = origin
        self.key_file = key_file
        """The data directory's key file (``None``: keys from the environment or memory)."""

    @classmethod
    def open(cls, *, key_text: str | None, key_file: Path | None, data_dir_key_file: Path) -> SecretBox:
        """The keys of the environment (``key_text``), else of ``key_file``, else of the data directory's file."""
        if key_text is not None and key_text.strip():
            keys = parse_keys(key_text, "MSPCLAW_SECRET_KEY", separator=",")
            if not keys:
                raise SecretKeyError("MSPCLAW_SECRET_KEY is set but holds no key")
            return cls(keys, origin="MSPCLAW_SECRET_KEY")
        if key_file is not None:
            try:
                return cls(read_key_file(key_file), origin=f"MSPCLAW_SECRET_KEY_FILE ({key_file})")
            except FileNotFoundError:
                raise SecretKeyError(f"MSPCLAW_SECRET_KEY_FILE names {key_file}, which does not exist") from None
        try:
            keys = read_key_file(data_dir_key_file)
        except FileNotFoundError:
            keys = []
        return cls(keys, origin=str(data_dir_key_file), key_file=data_dir_key_file)

    @classmethod
    def ephemeral(cls) -> SecretBox:
        """A box with a key of its own that lives as long as the object (tests, throw-away stores)."""
        return cls([SecretKey.generate()], origin="a key in memory")

    @property
    def key_ids(self) -> list[str]:
        return [key.id for key in self._keys]

    @property
    def current_id(self) -> str | None:
        return self._keys[0].id if self._keys else None

    def _current(self) -> SecretKey:
        if not self._keys:
            if self.key_file is None:
                raise SecretKeyError(f"no secret key in {self.origin}")
            key = SecretKey.generate()
            try:
                fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another process made it first: use that one
                self._keys = read_key_file(self.key_file)
                return self._keys[0]
            except OSError as exc:
                raise SecretKeyError(f"cannot create the secret key file {self.key_file}: {exc.strerror}") from exc
            with os.fdopen(fd, "wb") as fh:
                fh.write(key_file_text([key]))
                fh.flush()
                os.fsync(fh.fileno())
            self._keys = [key]
        return self._keys[0]

    def encrypt(self, plaintext: str, *, context: str) -> str:
        data = plaintext.encode()
        if len(data) > MAX_PLAINTEXT:
            raise ValueError(f"a secret is at most {MAX_PLAINTEXT} bytes")
        key = self._current()
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(key.material).encrypt(nonce, data, context.encode())
        return f"{VERSION}:{key.id}:{base64.urlsafe_b64encode(nonce + sealed).decode('ascii')}"

    @staticmethod
    def is_ciphertext(value: object) -> bool:
        return isinstance(value, str) and value.startswith(VERSION + ":") and value.count(":") == 2

    @staticmethod
    def key_id_of(ciphertext: str) -> str:
        return ciphertext.split(":", 2)[1]

    def decrypt(self, ciphertext: str, *, context: str) -> str:
        """The plaintext of ``ciphertext`` sealed under ``context``; :class:`SecretKeyError` if it will not open."""
        if not self.is_ciphertext(ciphertext) or len(ciphertext) > 2 * MAX_PLAINTEXT:
            raise SecretKeyError(f"{context}: the stored value is not a secret sealed by MSPclaw")
        _version, key_id, body = ciphertext.split(":", 2)
        key = next((k for k in self._keys if k.id == key_id), None)
        if key is None and self.key_file is not None:
            key = self._reread(key_id)
        if key is None:
            held = ", ".join(self.key_ids) or "none"
            where = (f"{self.origin} does not exist" if self.key_file is not None and not self._keys
                     else f"{self.origin} holds key(s) {held}")
            raise SecretKeyError(
                f"{context} was encrypted with secret key {key_id}, but {where}: restore the key file from "
                "the backup it was kept in, or set MSPCLAW_SECRET_KEY / MSPCLAW_SECRET_KEY_FILE to the key with "
                f"id {key_id}; nothing was decrypted or changed")
        try:
            raw = base64.urlsafe_b64decode(body.encode("ascii"))
            plain = AESGCM(key.material).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode())
        except (InvalidTag, binascii.Error, ValueError, UnicodeEncodeError):
            raise SecretKeyError(
                f"{context} does not decrypt with secret key {key_id} from {self.origin}: the stored value was "
                "changed or belongs to another row; nothing was decrypted or changed") from None
        return plain.decode()

    def _reread(self, key_id: str) -> SecretKey | None:
        """Read the data directory's key file again for a key this process has not seen: another replica
        sharing the data directory made the file after this one started, or added a key to it."""
        assert self.key_file is not None
        try:
            keys = read_key_file(self.key_file)
        except FileNotFoundError:
            return None
        known = set(self.key_ids)
        self._keys = self._keys + [k for k in keys if k.id not in known]
        return next((k for k in self._keys if k.id == key_id), None)

    # --- rotation of the data directory's key file ----------------------------------------------

    def begin_rotation(self) -> SecretKey:
        """Put a new key first in this box and in its key file, keeping the old keys after it (so every value
        still decrypts whatever happens next); :meth:`finish_rotation` drops them once nothing needs them."""
        path = self.key_file
        if path is None:
            raise SecretKeyError(
                f"the keys come from {self.origin}: put a new key first there (`mspclaw secrets new-key`), keep the "
                "old one after it, run `mspclaw secrets rotate`, then remove the old key")
        new = SecretKey.generate()
        keys = [new, *self._keys]
        write_private(path, key_file_text(keys))
        self._keys = keys
        return new

    def finish_rotation(self) -> list[str]:
        """Keep only the current key in the key file; the ids of the keys dropped."""
        path = self.key_file
        if path is None or not self._keys:
            return []
        dropped = self.key_ids[1:]
        write_private(path, key_file_text(self._keys[:1]))
        self._keys = self._keys[:1]
        return dropped


# --- a map of secrets as one stored value ---------------------------------------------------------

SEALED = "$sealed"
"""Key of the one entry of a sealed map: ``{"$sealed": ciphertext of the map's JSON}``."""


def seal_map(box: SecretBox, values: Mapping[str, str], *, context: str) -> dict[str, str]:
    """``values`` as the one JSON column value that stores them: ``{"$sealed": ciphertext}``."""
    return {SEALED: box.encrypt(json.dumps(dict(values)), context=context)}


def is_sealed(stored: Mapping[str, Any]) -> bool:
    return isinstance(stored.get(SEALED), str)


def open_map(box: SecretBox, stored: Mapping[str, Any], *, context: str) -> dict[str, Any]:
    """The map in clear from a stored value; one written before encryption (plain values) as it is."""
    sealed = stored.get(SEALED)
    if not isinstance(sealed, str):
        return dict(stored)
    opened = json.loads(box.decrypt(sealed, context=context))
    if not isinstance(opened, dict):
        raise SecretKeyError(f"{context}: the decrypted value is not a map")
    return opened
