"""Files only their owner may read: the data directory (0700), its database, keys and backups (0600).

A file is created with its final mode in the ``open`` call itself (never created with the
umask's mode and narrowed afterwards, which leaves a window), and replaced atomically: a
temporary file in the same directory, written, synced and renamed over the old one, so a crash
leaves either the old content or the new, never half of one.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from sqlalchemy.engine import make_url

from mspclaw.errors import ConfigError

log = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) readable by its owner only; an existing one is left as it is."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    except OSError as exc:
        raise ConfigError(f"cannot create directory {path}: {exc.strerror}") from exc
    return path


def create_private(path: Path) -> bool:
    """Create an empty file ``path`` with mode 0600 unless it exists; whether it was created."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return False
    except OSError as exc:
        raise ConfigError(f"cannot create {path}: {exc.strerror}") from exc
    os.close(fd)
    return True


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically; the file has mode 0600 from its first byte."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # mkstemp: 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _sync_dir(path.parent)


def _sync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite database URL; ``None`` for other databases and in-memory SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def private_database_file(url: str) -> None:
    """Before SQLite creates the database at ``url``, create its file 0600 (SQLite gives its WAL and
    shared-memory files the database file's mode); a database file an older version left readable by
    others (0644) is narrowed to 0600, with its WAL and shared-memory files. Other databases: nothing."""
    path = sqlite_path(url)
    if path is None or not path.parent.is_dir() or create_private(path):
        return
    for each in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            if each.stat().st_mode & 0o077:
                each.chmod(FILE_MODE)
                log.info("%s was readable by other users; now 0600", each)
        except FileNotFoundError:
            continue
        except OSError as exc:  # not ours to change (a volume mounted with its own owner): say so, go on
            log.warning("%s is readable by other users and cannot be narrowed to 0600: %s", each, exc.strerror)
