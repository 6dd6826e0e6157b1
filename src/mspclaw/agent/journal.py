"""The call journal: each ``call_id`` the agent accepted, and the result it produced.

DESIGN section 4: "a call_id seen before returns the recorded result instead of running again".
The server resends a call after a reconnect or after its own restart; without this journal a
destructive tool would run twice. The journal is a SQLite file in the state directory so it
survives the agent's own restarts too.

A call is recorded as ``started`` before its tool runs and ``done`` (with the result) after.
A ``started`` row found later means the agent died mid-call: whether the tool finished is
unknown, so it is reported as interrupted rather than run again. Rows older than the
retention window (7 days) are pruned when the journal opens.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mspclaw.errors import StoreError
from mspclaw.protocol.frames import ToolResult

RETENTION_S = 7 * 24 * 3600.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    call_id    TEXT PRIMARY KEY,
    tool       TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('started', 'done')),
    started_at REAL NOT NULL,
    result     TEXT
)
"""


@dataclass(frozen=True)
class Fresh:
    """First sight of this call: it is now recorded as started and must run."""


@dataclass(frozen=True)
class Recorded:
    """The call already ran; ``result`` is what it returned then, marked ``replayed``."""

    result: ToolResult


@dataclass(frozen=True)
class Interrupted:
    """The call started earlier and never finished (the agent stopped mid-call)."""

    tool: str
    started_at: float


Claim = Fresh | Recorded | Interrupted


class Journal:
    """call_id -> status and result, in SQLite (WAL, synchronous=FULL: a crash loses no row).

    Calls are short and rare, so the statements run on the caller's thread; each is one small
    transaction.
    """

    def __init__(
        self, path: Path, *, retention_s: float = RETENTION_S, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = path
        self._clock = clock
        with _translated(path):
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(_SCHEMA)
        self.pruned = self.prune(retention_s)

    def prune(self, retention_s: float = RETENTION_S) -> int:
        """Forget calls started more than ``retention_s`` ago; returns how many."""
        with _translated(self.path):
            cursor = self._db.execute("DELETE FROM calls WHERE started_at < ?", (self._clock() - retention_s,))
        return cursor.rowcount

    def claim(self, call_id: str, tool: str) -> Claim:
        """Record ``call_id`` as started unless seen before; say what to do with it."""
        with _translated(self.path), self._transaction():
            inserted = self._db.execute(
                "INSERT OR IGNORE INTO calls (call_id, tool, status, started_at) VALUES (?, ?, 'started', ?)",
                (call_id, tool, self._clock()),
            ).rowcount
            if inserted:
                return Fresh()
            tool_seen, status, started_at, result = self._db.execute(
                "SELECT tool, status, started_at, result FROM calls WHERE call_id = ?", (call_id,)
            ).fetchone()
        if status == "done":
            recorded = ToolResult.model_validate_json(result)
            return Recorded(recorded.model_copy(update={"replayed": True}))
        return Interrupted(tool=tool_seen, started_at=started_at)

    def finish(self, result: ToolResult) -> None:
        """Record the result of a call claimed with :meth:`claim`."""
        with _translated(self.path):
            self._db.execute(
                "UPDATE calls SET status = 'done', result = ? WHERE call_id = ?",
                (result.model_dump_json(exclude={"secret"}), result.call_id),  # a secret is never written
            )

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        # BEGIN IMMEDIATE takes the write lock up front, so insert-or-read is one atomic step
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


@contextmanager
def _translated(path: Path) -> Iterator[None]:
    """SQLite failures (disk full, unreadable file) leave here as :class:`StoreError` naming the file."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreError(f"call journal {path}: {exc}") from exc
