"""Signed checkpoints of the audit chain's head, so that a cut tail does not verify.

The hash chain proves that nothing was changed, inserted or removed *before* its last event; it
cannot tell that events were removed *after* it: delete the last rows and the last lines, and what
is left is a shorter, intact chain. A checkpoint closes that gap: ``seq``, ``hash`` and the time
of the chain's head, signed with an Ed25519 key the server keeps for this alone
(``<data dir>/audit_checkpoint_key``, 0600), appended as one line to
``<data dir>/audit_checkpoints.jsonl`` (fsynced) and logged on the ``mspclaw.audit.checkpoint``
logger, so that a log shipper keeps a copy off the host. :meth:`AuditLog.verify` then requires
the chain to reach the newest checkpoint's ``seq`` with that very ``hash``: a chain that ends
before it, or that was cut and grown again, fails with the checkpoint's ``seq`` and time.

What it cannot do on its own: someone who can write the data directory can also delete the newest
checkpoint lines along with the events (or read the key and sign a checkpoint of their own). The
copies that leave the host (the log lines, or a checkpoint an operator keeps and passes back to
``verify``) are what holds then; ``docs/security.md`` says so.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from mspclaw.errors import AuditIntegrityError, ConfigError, StoreError

KEY_FILE = "audit_checkpoint_key"
CHECKPOINT_FILE = "audit_checkpoints.jsonl"
_DOMAIN = b"mspclaw audit checkpoint v1\n"
"""Prefix of every signed message: a checkpoint signature can never pass for anything else."""

log = logging.getLogger("mspclaw.audit.checkpoint")


@dataclass(frozen=True)
class Checkpoint:
    """The chain's head as sealed: event ``seq`` had ``hash``; written at ``sealed_at``."""

    seq: int
    hash: str
    sealed_at: datetime
    signature: str = ""

    def message(self) -> bytes:
        body = {"hash": self.hash, "sealed_at": self.sealed_at.isoformat(), "seq": self.seq}
        return _DOMAIN + json.dumps(body, sort_keys=True, separators=(",", ":")).encode("ascii")

    def line(self) -> str:
        return json.dumps({"hash": self.hash, "sealed_at": self.sealed_at.isoformat(), "seq": self.seq,
                           "signature": self.signature}, sort_keys=True, separators=(",", ":"))


class Checkpoints:
    """Writes and reads the signed checkpoint file; :meth:`in_data_dir` for the server's own."""

    def __init__(self, path: Path, key: Ed25519PrivateKey) -> None:
        self.path = Path(path)
        self._key = key
        self.public_key: Ed25519PublicKey = key.public_key()
        self._mutex = threading.Lock()
        self._last_seq: int | None = None

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> Checkpoints:
        """The data directory's checkpoint file and key (the key is created, 0600, the first time)."""
        key_path = Path(data_dir) / KEY_FILE
        if not key_path.exists():
            raw = Ed25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
            try:
                fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "w") as fh:
                    fh.write(raw.hex() + "\n")
        try:
            key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(key_path.read_text().strip()))
        except (ValueError, OSError) as exc:
            raise ConfigError(f"{key_path} is not a hex Ed25519 key ({exc}); restore it from a backup: without it "
                              "the checkpoints written so far cannot be checked") from exc
        return cls(Path(data_dir) / CHECKPOINT_FILE, key)

    def public_key_hex(self) -> str:
        return self.public_key.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()

    def last_seq(self) -> int:
        """The ``seq`` of the newest checkpoint written (0 with none), read from the file once."""
        if self._last_seq is None:
            found = self.read()
            self._last_seq = max((c.seq for c in found), default=0)
        return self._last_seq

    def write(self, seq: int, hash_: str, *, now: datetime | None = None) -> Checkpoint | None:
        """Seal ``seq``/``hash_`` unless a checkpoint of that ``seq`` or a later one is already written.

        The line is appended and fsynced, then logged (``INFO``, the whole signed line)."""
        with self._mutex:
            if seq <= self.last_seq():
                return None
            sealed_at = (now or datetime.now(UTC)).astimezone(UTC)
            unsigned = Checkpoint(seq, hash_, sealed_at)
            checkpoint = Checkpoint(seq, hash_, sealed_at, self._key.sign(unsigned.message()).hex())
            data = (checkpoint.line() + "\n").encode("ascii")
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    os.write(fd, data)
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                raise StoreError(f"cannot write audit checkpoint file {self.path}: {exc}") from exc
            self._last_seq = seq
        log.info("audit checkpoint %s", checkpoint.line())  # passes redaction whole: nothing in it is a secret
        return checkpoint

    def read(self) -> list[Checkpoint]:
        """Every checkpoint of the file, each signature checked; :class:`AuditIntegrityError` at the
        first line that is not a checkpoint signed with this key."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreError(f"cannot read audit checkpoint file {self.path}: {exc}") from exc
        found: list[Checkpoint] = []
        for lineno, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), start=1):
            if line.strip():
                found.append(self.parse(line, f"{self.path.name}:{lineno}"))
        return found

    def parse(self, line: str, where: str) -> Checkpoint:
        """One checkpoint line (also one kept elsewhere and given back), its signature checked."""
        try:
            fields = json.loads(line)
            checkpoint = Checkpoint(int(fields["seq"]), str(fields["hash"]),
                                    datetime.fromisoformat(str(fields["sealed_at"])), str(fields["signature"]))
            self.public_key.verify(bytes.fromhex(checkpoint.signature), checkpoint.message())
        except InvalidSignature:
            raise AuditIntegrityError("checkpoint signature does not match: the line was altered or signed "
                                      "with another key", where) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise AuditIntegrityError(f"malformed checkpoint line ({exc})", where) from exc
        return checkpoint

    def newest(self, extra: list[Checkpoint] | None = None) -> tuple[Checkpoint, str] | None:
        """The checkpoint of the highest ``seq`` (file and ``extra``) and where it was read."""
        best: tuple[Checkpoint, str] | None = None
        for lineno, cp in enumerate(self.read(), start=1):
            if best is None or cp.seq > best[0].seq:
                best = (cp, f"{self.path.name}:{lineno}")
        for cp in extra or []:
            if best is None or cp.seq > best[0].seq:
                best = (cp, "the checkpoint given")
        return best
