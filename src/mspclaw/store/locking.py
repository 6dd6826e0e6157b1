"""Write transactions that hold their lock from the first statement, on SQLite and PostgreSQL.

SQLite has one write lock per database. A transaction opened with ``BEGIN IMMEDIATE`` takes it
at once, so everything it reads stays true until it commits: no other writer, in this process or
another, can slip in between a read and the write that depends on it. PostgreSQL has row locks
(``SELECT ... FOR UPDATE [SKIP LOCKED]``, which SQLite ignores) and, for callers that must
serialise more than rows, a transaction-scoped advisory lock.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import SQLAlchemyError


@contextmanager
def locked_transaction(engine: Engine, *, pg_advisory_key: int | None = None) -> Iterator[Connection]:
    """An open transaction that already holds the write lock; the body must ``COMMIT`` it.

    SQLite: ``BEGIN IMMEDIATE``. PostgreSQL: ``BEGIN`` and, with ``pg_advisory_key``,
    ``pg_advisory_xact_lock(key)``, which every other caller using the same key waits for until
    this transaction ends. The body ends the transaction itself with
    ``conn.exec_driver_sql("COMMIT")`` (so it may do work between its last statement and the
    commit); if the body raises, the transaction is rolled back.

    The connection runs in driver autocommit mode so that the transaction is exactly the
    ``BEGIN``/``COMMIT`` written here: pysqlite would otherwise defer its own ``BEGIN`` to the first
    write and take the write lock only after the reads before it.
    """
    conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")
            if pg_advisory_key is not None:
                conn.execute(select(func.pg_advisory_xact_lock(pg_advisory_key)))
        yield conn
    except BaseException:
        with suppress(SQLAlchemyError):
            conn.exec_driver_sql("ROLLBACK")
        raise
    finally:
        conn.close()
