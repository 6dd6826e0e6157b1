"""Run ``python -m mspclaw ...`` with every database statement, commit and pool checkout counted.

    python bench/statement_counter.py OUT.json server --host ... --database-url ...

Bench-only (``bench/pipeline.py --count-sql``): SQLAlchemy's public event hooks on the ``Engine``
class (so every engine the server builds) count, per process:

* ``statements``: ``before_cursor_execute`` (an ``executemany`` is one), by their first SQL words;
* ``commits`` / ``rollbacks``: ``Connection.commit()``/``rollback()`` (a statement run in autocommit
  mode is committed by the server as it runs, without one: see ``autocommit``);
* ``autocommit``: statements run on a connection in ``AUTOCOMMIT`` mode;
* ``checkouts``: connections taken from the pool (with ``pool_pre_ping`` each costs a ``SELECT 1``).

On SIGUSR1 the counts so far are written to ``OUT.json`` (replaced atomically), so the bench reads
them before and after its burst and reports the difference per ticket.
"""

from __future__ import annotations

import json
import os
import runpy
import signal
import sys
import threading
from collections import Counter
from types import FrameType
from typing import Any

from sqlalchemy import Connection, Engine, event
from sqlalchemy.pool import Pool

_counts: Counter[str] = Counter()
_lock = threading.Lock()


def _bump(*keys: str) -> None:
    with _lock:
        for key in keys:
            _counts[key] += 1


def _shape(sql: str) -> str:
    """A statement's kind for the report: ``INSERT INTO audit_events``, ``SELECT ... FROM jobs``."""
    words = sql.split()
    if not words:
        return "(empty)"
    head = words[0].upper()
    lowered = [w.lower().strip('"') for w in words]
    for keyword in ("into", "from", "update"):
        if keyword in lowered[:-1]:
            target = lowered[lowered.index(keyword) + 1] if keyword != "update" else lowered[1]
            return f"{head} {target.strip('(')}"
    return head


def _install() -> None:
    @event.listens_for(Engine, "before_cursor_execute")
    def _statement(conn: Connection, _cursor: Any, statement: str, _params: Any, _context: Any,
                   _many: bool) -> None:
        keys = ["statements", f"sql: {_shape(statement)}"]
        # the driver's connection says it (psycopg's ``autocommit``), whether the connection was switched
        # (``execution_options(isolation_level="AUTOCOMMIT")``) or its engine's connections all are
        if getattr(conn.connection.driver_connection, "autocommit", False) is True:
            keys.append("autocommit")
        _bump(*keys)

    @event.listens_for(Engine, "commit")
    def _commit(_conn: Connection) -> None:
        _bump("commits")

    @event.listens_for(Engine, "rollback")
    def _rollback(_conn: Connection) -> None:
        _bump("rollbacks")

    @event.listens_for(Pool, "checkout")
    def _checkout(_dbapi: Any, _record: Any, _proxy: Any) -> None:
        _bump("checkouts")


def _dump(path: str) -> None:
    with _lock:
        data = dict(_counts)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit("usage: statement_counter.py OUT.json <mspclaw arguments>")
    out = sys.argv[1]

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        _dump(out)

    _install()
    signal.signal(signal.SIGUSR1, on_signal)
    sys.argv = ["mspclaw", *sys.argv[2:]]
    try:
        runpy.run_module("mspclaw", run_name="__main__", alter_sys=True)
    finally:
        _dump(out)


if __name__ == "__main__":
    main()
