"""Backups of a data directory and its database, and their restore into a fresh place.

A backup is a directory (0700, files 0600):

* ``manifest.json``: format, time, MSPclaw version, the database's kind, whether the secret key is
  in it, and the SHA-256 of every file below;
* ``mspclaw.db``: the SQLite database, copied with SQLite's online backup API
  (:meth:`sqlite3.Connection.backup`) while the server runs; or ``database.pgdump``: PostgreSQL's
  ``pg_dump --format=custom`` (without ``pg_dump`` on the PATH a PostgreSQL backup is refused);
* ``files/``: everything else of the data directory: the audit day files, the audit checkpoints and
  their key, the API key, the JWT and approval-signing keys, and the secret key file
  ``secret.key`` unless ``include_key=False`` (then keep that key apart: without it the PSA
  credentials, second factors and channel webhook URLs in the database cannot be decrypted). The
  technician roster is in the database. A key given by ``MSPCLAW_SECRET_KEY`` or
  ``MSPCLAW_SECRET_KEY_FILE`` is never in a backup.

**Consistency.** The audit trail is written to the database and to the day files under one lock
(the SQLite write lock, or the audit's PostgreSQL advisory lock): the backup holds that lock while
it copies the files and takes the database's snapshot, so the two copies of the trail agree and
:meth:`~mspclaw.store.audit.AuditLog.verify` passes on the restored data. Audit appends wait
meanwhile (the rest of the server reads and writes on).

**Restore** refuses, before writing anything, a data directory that is not empty, a PostgreSQL
database that already has tables, a backup whose files do not match its manifest, and a SQLite
backup restored into PostgreSQL or the reverse.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

import mspclaw
from mspclaw.errors import MSPClawError
from mspclaw.store.audit.log import PG_LOCK_KEY
from mspclaw.store.database import Database
from mspclaw.store.private_files import FILE_MODE, create_private, private_dir, sqlite_path, write_private
from mspclaw.store.secretbox import KEY_FILE

MANIFEST = "manifest.json"
FORMAT = 1
SQLITE_FILE = "mspclaw.db"
PG_DUMP_FILE = "database.pgdump"
FILES_DIR = "files"
MAX_MANIFEST = 16 * 1024 * 1024
NOT_COPIED = frozenset({SQLITE_FILE, f"{SQLITE_FILE}-wal", f"{SQLITE_FILE}-shm", f"{SQLITE_FILE}-journal"})
"""Files of the data directory a backup does not copy: the SQLite database comes through its backup API."""


class BackupError(MSPClawError):
    """A backup or a restore was refused or failed; the message says why and what was left unchanged."""

    code = "backup"


@dataclass(frozen=True)
class BackupReport:
    path: Path
    database: str
    files: int
    secret_key_included: bool


@dataclass(frozen=True)
class RestoreReport:
    data_dir: Path
    database: str
    files: int
    secret_key_included: bool
    created_at: str


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _walk(root: Path) -> Iterator[Path]:
    """Regular files under ``root``, in a stable order, without following symbolic links."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                yield path


def _copy_private(src: Path, dst: Path) -> None:
    private_dir(dst.parent)
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    with open(src, "rb") as fin, os.fdopen(fd, "wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
        fout.flush()
        os.fsync(fout.fileno())


def _empty_or_absent(path: Path) -> bool:
    return not path.exists() or (path.is_dir() and not any(path.iterdir()))


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """A SQLAlchemy PostgreSQL URL as libpq's URI without the password, and the environment carrying it
    (``PGPASSWORD``: never on a command line another user could read)."""
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password is not None:
        env["PGPASSWORD"] = str(parsed.password)
    plain = parsed.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _run(command: list[str], env: dict[str, str], what: str) -> None:
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=24 * 3600, check=False)
    except FileNotFoundError:
        raise BackupError(f"{command[0]} is not installed (or not on the PATH): {what} of a PostgreSQL database "
                          "needs the PostgreSQL client tools of the server's major version") from None
    if done.returncode != 0:
        raise BackupError(f"{what} failed: {command[0]} exited with {done.returncode}: "
                          f"{done.stderr.strip()[-2000:]}")


def backup(db: Database, data_dir: Path, dest: Path, *, include_key: bool = True,
           pg_dump: str = "pg_dump") -> BackupReport:
    """Write a backup of ``data_dir`` and ``db`` into ``dest`` (absent or empty), while the server runs."""
    data_dir, dest = data_dir.resolve(), dest.resolve()
    if dest == data_dir or dest.is_relative_to(data_dir):
        raise BackupError(f"the backup must go outside the data directory {data_dir}, not into {dest}")
    if not _empty_or_absent(dest):
        raise BackupError(f"{dest} is not empty: a backup goes into a new or empty directory")
    if db.dialect == "postgresql" and shutil.which(pg_dump) is None:
        raise BackupError(f"{pg_dump} is not installed (or not on the PATH): a PostgreSQL database is backed up "
                          "with pg_dump of the server's major version; install the PostgreSQL client tools, or back "
                          "the database up with your own tooling and this command's files with it")
    private_dir(dest)
    hashes: dict[str, str] = {}
    with db.transaction(immediate=True, pg_advisory_key=PG_LOCK_KEY):  # audit appends wait: one snapshot
        for path in _walk(data_dir):
            rel = path.relative_to(data_dir)
            if rel.as_posix() in NOT_COPIED or (not include_key and rel.as_posix() == KEY_FILE):
                continue
            target = dest / FILES_DIR / rel
            _copy_private(path, target)
            hashes[f"{FILES_DIR}/{rel.as_posix()}"] = _sha256(target)
        if db.is_sqlite:
            source = sqlite_path(str(db.engine.url))
            if source is None:
                raise BackupError("an in-memory SQLite database cannot be backed up")
            target = dest / SQLITE_FILE
            create_private(target)
            _sqlite_copy(source, target)
            hashes[SQLITE_FILE] = _sha256(target)
        else:
            target = dest / PG_DUMP_FILE
            create_private(target)
            uri, env = _libpq(db.engine.url.render_as_string(hide_password=False))
            _run([pg_dump, "--format=custom", "--no-owner", "--no-privileges", f"--file={target}",
                  f"--dbname={uri}"], env, "the backup")
            hashes[PG_DUMP_FILE] = _sha256(target)
    manifest = {"format": FORMAT, "created_at": datetime.now(UTC).isoformat(), "version": mspclaw.__version__,
                "database": db.dialect, "secret_key_included": include_key and (data_dir / KEY_FILE).exists(),
                "files": hashes}
    write_private(dest / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode())
    return BackupReport(dest, db.dialect, len(hashes), bool(manifest["secret_key_included"]))


def _sqlite_copy(source: Path, target: Path) -> None:
    """Copy a SQLite database page by page with its online backup API (a consistent snapshot)."""
    src = sqlite3.connect(source, timeout=30)  # only read: the backup API copies from it
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")  # a self-contained file, no -wal beside it
    except sqlite3.Error as exc:
        raise BackupError(f"copying the SQLite database {source} failed: {exc}") from exc
    finally:
        dst.close()
        src.close()


def read_manifest(src: Path) -> dict[str, Any]:
    path = src / MANIFEST
    try:
        if path.stat().st_size > MAX_MANIFEST:
            raise BackupError(f"{path} is larger than {MAX_MANIFEST} bytes: not an MSPclaw backup manifest")
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise BackupError(f"{src} is not an MSPclaw backup: it has no {MANIFEST}") from None
    except (OSError, ValueError) as exc:
        raise BackupError(f"cannot read {path}: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(
            manifest.get("files"), dict) or manifest.get("database") not in ("sqlite", "postgresql"):
        raise BackupError(f"{path} is not a manifest this MSPclaw can restore (format {FORMAT})")
    return manifest


def _check_files(src: Path, files: dict[str, Any]) -> None:
    """Every file of the manifest is there, inside the backup, with its hash."""
    root = src.resolve()
    for rel, expected in files.items():
        path = (src / rel).resolve()
        if not path.is_relative_to(root) or not isinstance(expected, str):
            raise BackupError(f"the manifest of {src} names {rel!r}, which is outside the backup")
        if not path.is_file():
            raise BackupError(f"{src} is incomplete: {rel} is missing; nothing was restored")
        if _sha256(path) != expected:
            raise BackupError(f"{src} is damaged: {rel} does not match its checksum; nothing was restored")


def restore(src: Path, data_dir: Path, *, database_url: str | None = None,
            pg_restore: str = "pg_restore") -> RestoreReport:
    """Restore the backup in ``src`` into ``data_dir`` (absent or empty) and, for PostgreSQL, into the empty
    database at ``database_url``; SQLite goes to ``data_dir/mspclaw.db``. Refusals change nothing."""
    manifest = read_manifest(src)
    kind: str = manifest["database"]
    files: dict[str, Any] = manifest["files"]
    if not _empty_or_absent(data_dir):
        raise BackupError(f"refusing to restore into {data_dir}: it is not empty (it may hold a live installation); "
                          "restore into a new or empty directory; nothing was changed")
    target_kind = make_url(database_url).get_backend_name() if database_url else "sqlite"
    if target_kind != kind:
        raise BackupError(f"this backup holds a {kind} database; it cannot be restored into {target_kind}")
    if kind == "postgresql":
        assert database_url is not None
        if shutil.which(pg_restore) is None:
            raise BackupError(f"{pg_restore} is not installed (or not on the PATH): restoring a PostgreSQL backup "
                              "needs the PostgreSQL client tools")
        _require_empty_database(database_url)
    elif database_url is not None and sqlite_path(database_url) != (data_dir / SQLITE_FILE).resolve():
        path = sqlite_path(database_url)
        if path is not None and path.exists():
            raise BackupError(f"refusing to restore over the existing database {path}; nothing was changed")
    _check_files(src, files)
    private_dir(data_dir)
    for rel in files:
        if rel.startswith(FILES_DIR + "/"):
            _copy_private(src / rel, data_dir / rel.removeprefix(FILES_DIR + "/"))
    if kind == "sqlite":
        target = sqlite_path(database_url) if database_url else data_dir / SQLITE_FILE
        assert target is not None
        create_private(target)
        _sqlite_copy(src / SQLITE_FILE, target)
    else:
        assert database_url is not None
        uri, env = _libpq(database_url)
        _run([pg_restore, "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction",
              f"--dbname={uri}", str(src / PG_DUMP_FILE)], env, "the restore")
    return RestoreReport(data_dir, kind, len(files), bool(manifest.get("secret_key_included")),
                         str(manifest.get("created_at", "")))


def _require_empty_database(url: str) -> None:
    db = Database.open(url, migrated=False)
    try:
        tables = inspect(db.engine).get_table_names()
    except SQLAlchemyError as exc:
        raise BackupError(f"cannot reach the database to restore into: {exc}") from exc
    finally:
        db.dispose()
    if tables:
        raise BackupError(f"refusing to restore into a database that already has tables ({', '.join(tables[:5])}"
                          f"{', ...' if len(tables) > 5 else ''}); create an empty one; nothing was changed")
