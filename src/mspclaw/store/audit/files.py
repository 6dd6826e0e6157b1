"""The audit trail's day files: ``<audit_dir>/YYYY-MM-DD.jsonl``, one line per event, appended and synced.

The current day's file stays open between batches; a ``stat`` per batch notices it deleted,
rotated or replaced, and it is then opened by name again. A batch's lines are written together,
one write per file, and cut off again if the batch fails, so a file never keeps an event the
database does not. Not thread-safe: the audit log calls it under its own lock.
"""

from __future__ import annotations

import os
import re
import weakref
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from mspclaw.errors import StoreError
from mspclaw.store.audit.chain import AuditRecord, day_file_name

_FILE_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})\.jsonl$")

Copies = list[tuple[int, Path | None]]
"""Descriptors to sync after a commit (see :meth:`DayFiles.copies`), each with the directory to sync too."""


@dataclass(slots=True)
class _DayFile:
    """A day file kept open for appending, and the file it was opened as (to notice a rotation)."""

    path: Path
    fd: int
    dev: int
    ino: int


@dataclass(frozen=True, slots=True)
class Written:
    """A day file a batch wrote to: its length before, and whether the batch created it."""

    file: _DayFile
    size: int
    created: bool


class DayFiles:
    """Appends batches of lines to the day files of one directory; reads them back for verification."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._open: dict[Path, _DayFile] = {}
        """Day files kept open between batches (the current day's)."""
        weakref.finalize(self, _close_all, self._open)

    # --- writing ---------------------------------------------------------------------------------

    def append(self, records: list[AuditRecord], lines: list[bytes]) -> list[Written]:
        """Append the records' lines, each to its day's file (written, not yet synced).

        If a write fails, what the batch wrote is cut off again and :class:`StoreError` raised."""
        by_day: dict[str, list[bytes]] = {}
        for record, line in zip(records, lines, strict=True):
            by_day.setdefault(day_file_name(record), []).append(line)
        written: list[Written] = []
        try:
            for name, chunk in by_day.items():
                path = self.directory / name  # one path per day file of the batch, not one per event
                day_file, size, created = self._day_file(path)
                written.append(Written(day_file, size, created))
                _write_all(day_file.fd, b"".join(chunk))
        except OSError as exc:
            self.undo(written)
            raise StoreError(f"cannot write audit file {path}: {exc}") from exc
        return written

    def undo(self, written: list[Written]) -> None:
        """Cut the files a batch wrote back to their length before it (the batch failed)."""
        for item in written:
            with suppress(OSError):
                os.ftruncate(item.file.fd, item.size)
        self.close()

    def sync(self, written: list[Written]) -> None:
        """fdatasync the files just written (and the directory, for a file just created)."""
        for item in written:
            try:
                fdatasync(item.file.fd)
            except OSError as exc:
                self.close()
                raise StoreError(f"cannot write audit file {item.file.path}: {exc}") from exc
            if item.created:
                fsync_dir(self.directory)

    def copies(self, written: list[Written]) -> Copies:
        """Copies of the written files' descriptors for a sync after the lock is released (the
        originals may be closed by the next batch meanwhile), each with the directory to sync too
        when the file is new. Hand them to :func:`sync_copies`."""
        copies: Copies = []
        try:
            for item in written:
                copies.append((os.dup(item.file.fd), self.directory if item.created else None))
        except OSError as exc:
            for fd, _ in copies:
                os.close(fd)
            raise StoreError(f"audit events were committed, but cannot sync their file: {exc}") from exc
        return copies

    def keep_only(self, written: list[Written]) -> None:
        """Close the kept day files other than the batch's last (yesterday's, once today's is written)."""
        if not written:
            return
        keep = written[-1].file.path
        for other in [other for other in self._open if other != keep]:
            with suppress(OSError):
                os.close(self._open.pop(other).fd)

    def close(self) -> None:
        _close_all(self._open)

    def _day_file(self, path: Path) -> tuple[_DayFile, int, bool]:
        """The open day file ``path``, its length now and whether it was just created.

        A file kept open from an earlier batch is used only if ``path`` still names it: deleted,
        or renamed away (log rotation) and perhaps replaced, it is closed and ``path`` opened (or
        created) again, as a fresh open per batch would. One ``stat`` per batch."""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            st = None
        kept = self._open.get(path)
        if kept is not None:
            if st is not None and (st.st_dev, st.st_ino) == (kept.dev, kept.ino):
                return kept, st.st_size, False
            del self._open[path]
            with suppress(OSError):
                os.close(kept.fd)
        if st is None:
            self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            opened = os.fstat(fd)
        except OSError:
            os.close(fd)
            raise
        day_file = self._open[path] = _DayFile(path, fd, opened.st_dev, opened.st_ino)
        return day_file, opened.st_size, st is None

    # --- reading ---------------------------------------------------------------------------------

    def snapshot(self) -> list[tuple[Path, int]]:
        """Every day file, in day order, with its length now (what a verification reads)."""
        if not self.directory.is_dir():
            return []
        found = [p for p in self.directory.iterdir() if _FILE_NAME.match(p.name) and p.is_file()]
        return [(p, p.stat().st_size) for p in sorted(found, key=lambda p: p.name)]


def lines(path: Path, size: int) -> Iterator[bytes]:
    """The lines among the first ``size`` bytes of ``path`` (the length it had at the snapshot)."""
    try:
        with path.open("rb") as fh:
            remaining = size
            for raw in fh:
                if remaining <= 0:
                    return
                yield raw[:remaining]
                remaining -= len(raw)
    except OSError as exc:
        raise StoreError(f"cannot read audit file {path}: {exc}") from exc


def fdatasync(fd: int) -> None:
    """``fdatasync``: enough for an appended line (the file's new length is flushed with the data)
    and cheaper than ``fsync``, which also flushes the modification time. macOS has no
    ``fdatasync``: ``fsync`` there."""
    if hasattr(os, "fdatasync"):
        os.fdatasync(fd)
    else:
        os.fsync(fd)


def fsync_dir(directory: Path) -> None:
    with suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def sync_copies(copies: Copies) -> None:
    """fsync and close the descriptor copies :meth:`DayFiles.copies` made (every one, even when one
    fails), and the directory of a file just created."""
    failure: OSError | None = None
    for fd, directory in copies:
        try:
            fdatasync(fd)
        except OSError as exc:
            failure = failure or exc
        finally:
            os.close(fd)
        if directory is not None:
            fsync_dir(directory)
    if failure is not None:
        raise StoreError(f"cannot write audit file: {failure} (the events were committed)") from failure


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _close_all(files: dict[Path, _DayFile]) -> None:
    for day_file in files.values():
        with suppress(OSError):
            os.close(day_file.fd)
    files.clear()
