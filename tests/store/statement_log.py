"""What the store tests watch an engine run, through SQLAlchemy's public event hooks: said once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event


@contextmanager
def statements_seen(*engines: Engine) -> Iterator[list[str]]:
    """Every statement's SQL run on the ``engines`` while the body runs, in order (a store on PostgreSQL runs
    single statements on an autocommit engine of its own: pass ``Database.engines``)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)


@contextmanager
def statements_counted(engine: Engine) -> Iterator[Counter[str]]:
    """Statements (``statements``, and by first word) and ``commits`` on ``engine`` while the body runs."""
    counts: Counter[str] = Counter()

    def statement(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        counts["statements"] += 1
        counts[sql.split()[0].upper()] += 1

    def commit(_conn: Any) -> None:
        counts["commits"] += 1

    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "commit", commit)
    try:
        yield counts
    finally:
        event.remove(engine, "before_cursor_execute", statement)
        event.remove(engine, "commit", commit)
