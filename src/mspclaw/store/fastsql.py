"""The store's hot statements, compiled once per engine and run as driver SQL on a ``Connection``.

Every ticket runs a few dozen small prebuilt statements. ``Connection.execute`` of a Core statement
pays each time for a compiled-cache lookup, the construction of its parameters and an execution
context for a compiled statement. :class:`FastSQL` does that part once per statement and engine:

* :meth:`FastSQL.prepare` compiles a Core statement for the engine's dialect and keeps its SQL
  text, the order of its parameters (pysqlite's ``?``) or their names (psycopg's ``%(name)s``),
  the values of its fixed parameters, and SQLAlchemy's own bind processors for each parameter
  (``bind.type.dialect_impl(dialect).bind_processor(dialect)``: JSON, ``UTCDateTime``), so a row
  written here is stored exactly as SQLAlchemy would store it and reads back the same through the
  ORM. Result columns (the statement's ``exported_columns``) go through SQLAlchemy's result
  processors (``type.dialect_impl(dialect).result_processor(dialect, coltype)``) the same way.
* Statements run through ``Connection.exec_driver_sql``: the engine's events
  (``before_cursor_execute``: tracing, SQL echo), SQLAlchemy's translation of driver errors
  (:class:`~sqlalchemy.exc.IntegrityError`, ...) and the invalidation of a dropped connection all
  apply, as to any statement. What it saves against ``Connection.execute``: ``docs/benchmarks.md``
  (Pipeline); ``tests/store/test_database.py`` holds both paths to the same rows.
* :meth:`FastSQL.transaction` is one transaction on a pooled ``Connection``. ``immediate=True``
  opens it with ``BEGIN IMMEDIATE`` on SQLite, which takes the database's write lock before the
  first read; ``pg_advisory_key`` takes ``pg_advisory_xact_lock(key)`` first on PostgreSQL.
  :meth:`FastSQL.run`, :meth:`FastSQL.read`, :meth:`FastSQL.one` and :meth:`FastSQL.mapping` run one
  statement by itself; on PostgreSQL in autocommit mode, one round trip instead of three, on a
  connection of a second engine whose connections stay in that mode when one is given (switching a
  pooled connection into it and back costs more CPU than the rest of SQLAlchemy's work on the statement).

What it does not do, checked when a statement is prepared: Python-side column defaults
(``default=``/``onupdate=`` callables, every value must be given), parameters with a callable
value and expanding ``IN`` parameters. Prepare only statements built once (module level or an
``lru_cache``): each prepared statement is kept for the engine's lifetime.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from sqlalchemy import BigInteger, Connection, CursorResult, Engine, bindparam, exc, func, select
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

Processor = Callable[[Any], Any]
R = TypeVar("R")

_COUNTED = {"preserve_rowcount": True}
"""SQLAlchemy keeps the driver's ``rowcount`` for UPDATE and DELETE only, unless asked to (an INSERT's too)."""
_ADVISORY_LOCK = select(func.pg_advisory_xact_lock(bindparam("key", type_=BigInteger)))


class Prepared:
    """One statement compiled for one dialect: SQL text, parameters, processors. Built by :meth:`FastSQL.prepare`."""

    __slots__ = ("_dialect", "_fixed", "_params", "_positional", "_result", "_result_types", "columns", "sql")

    def __init__(self, stmt: ClauseElement, dialect: Dialect) -> None:
        compiled = cast("SQLCompiler", stmt.compile(dialect=dialect))
        if compiled.insert_prefetch or compiled.update_prefetch:
            names = [c.key for c in [*compiled.insert_prefetch, *compiled.update_prefetch]]
            raise ValueError(f"FastSQL runs no Python-side defaults; give these columns a value: {names}")
        self.sql = compiled.string
        self._dialect = dialect
        processors: dict[str, Processor] = {}
        for bind, name in compiled.bind_names.items():
            found = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if found is not None:
                processors[name] = found
        fixed: dict[str, Any] = {}
        for bind, name in compiled.bind_names.items():
            if bind.expanding:
                raise ValueError(f"FastSQL cannot run the expanding parameter {name!r}; bind each value")
            if bind.callable is not None:
                raise ValueError(f"FastSQL cannot run the parameter {name!r}, whose value is computed per execution")
            if not bind.required:
                value = bind.value
                fixed_processor = processors.get(name)
                fixed[name] = fixed_processor(value) if fixed_processor is not None else value
        self._fixed = fixed
        """Parameters with a value in the statement (``coalesce(max(seq), 0) + 1``), processed once."""
        self._positional = compiled.positiontup is not None
        names = list(compiled.positiontup) if compiled.positiontup is not None else list(
            dict.fromkeys(compiled.bind_names.values()))
        self._params: tuple[tuple[str, Processor | None], ...] = tuple(
            (name, processors.get(name)) for name in names)
        """(name, bind processor) in the driver's order; a name repeats where the SQL repeats it."""
        exported = list(getattr(stmt, "exported_columns", ()))
        self.columns: tuple[str, ...] = tuple(str(c.key) for c in exported)
        self._result: Sequence[Processor | None] | None = None
        """Result processors, built at the first execution from the driver's column types."""
        self._result_types = [c.type for c in exported]

    def parameters(self, given: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        """The driver's parameters: ``given`` by name, plus the fixed ones, each processed as SQLAlchemy would."""
        fixed = self._fixed
        if self._positional:
            return tuple(
                fixed[name] if name in fixed
                else (given[name] if processor is None else processor(given[name]))
                for name, processor in self._params)
        out = dict(fixed)
        for name, processor in self._params:
            if name not in fixed:
                value = given[name]
                out[name] = value if processor is None else processor(value)
        return out

    def processors(self, description: Sequence[Sequence[Any]] | None) -> Sequence[Processor | None]:
        """SQLAlchemy's result processor of each column (for the driver's column type), built once."""
        if self._result is None:
            codes = [d[1] for d in description] if description else [None] * len(self._result_types)
            self._result = [t.dialect_impl(self._dialect).result_processor(self._dialect, code)
                            for t, code in zip(self._result_types, codes, strict=True)]
        return self._result


class Transaction:
    """Statements run on one ``Connection`` inside one transaction (see :meth:`FastSQL.transaction`)."""

    __slots__ = ("_conn", "_hide")

    def __init__(self, conn: Connection, hide: bool) -> None:
        self._conn, self._hide = conn, hide

    @property
    def connection(self) -> Connection:
        """The transaction's ``Connection``, for Core statements that are not prepared."""
        return self._conn

    def execute(self, stmt: Prepared, params: Mapping[str, Any]) -> CursorResult[Any]:
        """Run the statement; returns its result (``rowcount``, unprocessed rows)."""
        return self._conn.exec_driver_sql(stmt.sql, self.parameters(stmt, params))

    def execute_many(self, stmt: Prepared, params: Sequence[Mapping[str, Any]]) -> None:
        """Run the statement once per parameter set, as the driver's ``executemany``."""
        if len(params) == 1:
            self.execute(stmt, params[0])
            return
        self._conn.exec_driver_sql(stmt.sql, [self.parameters(stmt, p) for p in params])

    def parameters(self, stmt: Prepared, params: Mapping[str, Any]) -> Any:
        """The driver's parameters of ``stmt`` (:meth:`Prepared.parameters`); a bad one is a ``StatementError``."""
        try:
            return stmt.parameters(params)
        except (KeyError, TypeError, ValueError) as error:
            raise exc.StatementError(f"({type(error).__module__}.{type(error).__name__}) {error}",
                                     stmt.sql, dict(params), error, hide_parameters=self._hide) from error

    def all(self, stmt: Prepared, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Every result row, each column through SQLAlchemy's result processor for its type."""
        result = self.execute(stmt, params)
        processors = stmt.processors(result.cursor.description if result.cursor is not None else None)
        rows = result.fetchall()
        if not any(processors):
            return [tuple(row) for row in rows]
        return [tuple(value if p is None else p(value) for p, value in zip(processors, row, strict=True))
                for row in rows]

    def first(self, stmt: Prepared, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        rows = self.all(stmt, params)
        return rows[0] if rows else None

    def one(self, stmt: Prepared, params: Mapping[str, Any]) -> tuple[Any, ...]:
        rows = self.all(stmt, params)
        if len(rows) != 1:
            raise exc.NoResultFound("no row was found") if not rows else exc.MultipleResultsFound(
                "more than one row was found")
        return rows[0]

    def mapping(self, stmt: Prepared, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """The first row as ``{column: value}`` (for ``Model(**row)``), or ``None``."""
        row = self.first(stmt, params)
        return dict(zip(stmt.columns, row, strict=True)) if row is not None else None


class FastSQL:
    """Prepared statements of one engine, run as driver SQL on its connections."""

    def __init__(self, engine: Engine, *, autocommit: Engine | None = None) -> None:
        """``autocommit``: an engine on the same database whose connections stay in autocommit mode
        (``create_engine(..., isolation_level="AUTOCOMMIT")``), for :meth:`run`, :meth:`read`,
        :meth:`one` and :meth:`mapping` on PostgreSQL; without it they switch a connection of
        ``engine`` into autocommit mode and back for each statement."""
        self._engine = engine
        self._autocommit = autocommit
        self._dialect = engine.dialect
        self._sqlite = engine.dialect.name == "sqlite"
        self._hide = bool(getattr(engine, "hide_parameters", False))
        self._prepared: dict[int, tuple[ClauseElement, Prepared]] = {}

    def prepare(self, stmt: ClauseElement) -> Prepared:
        """``stmt`` compiled for this engine's dialect (once per statement object)."""
        found = self._prepared.get(id(stmt))
        if found is None or found[0] is not stmt:
            found = self._prepared[id(stmt)] = (stmt, Prepared(stmt, self._dialect))
        return found[1]

    @contextmanager
    def transaction(self, *, immediate: bool = False, pg_advisory_key: int | None = None) -> Iterator[Transaction]:
        """One transaction on a pooled connection: committed when the body returns, rolled back if it raises.

        The body may commit earlier itself (``tx.connection.commit()``). ``immediate``: on SQLite,
        ``BEGIN IMMEDIATE`` first, so the write lock is held from the first read to the commit (on
        PostgreSQL the transaction is the same either way; take row locks with ``FOR UPDATE``).
        ``pg_advisory_key``: on PostgreSQL, ``pg_advisory_xact_lock(key)`` first, which every other
        transaction taking the same key waits for until this one ends."""
        with self._engine.connect() as conn:
            self._begin(conn, immediate, pg_advisory_key)
            try:
                yield Transaction(conn, self._hide)
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    def _begin(self, conn: Connection, immediate: bool, pg_advisory_key: int | None) -> None:
        if self._sqlite:
            # pysqlite opens a deferred transaction itself before the first write, unless the
            # connection is in autocommit mode (SQLAlchemy resets that when a connection returns
            # to the pool; this does not rely on it: several statements here are one transaction
            # or nothing); an explicit BEGIN is committed by the driver's commit all the same
            driver: Any = conn.connection.driver_connection
            begin = "BEGIN IMMEDIATE" if immediate else "BEGIN" if driver.isolation_level is None else None
            if begin is not None:
                conn.exec_driver_sql(begin)
        elif pg_advisory_key is not None:
            Transaction(conn, self._hide).execute(self.prepare(_ADVISORY_LOCK), {"key": pg_advisory_key})

    def _alone(self, immediate: bool, work: Callable[[Transaction], R]) -> R:
        """``work`` on a connection for one statement that is a transaction by itself.

        On PostgreSQL the statement runs in autocommit mode: the server commits it as it runs it, so
        it costs one round trip instead of three (``BEGIN``, the statement, ``COMMIT``), with the same
        atomicity and durability: on the ``autocommit`` engine's connections if there is one, else on one
        of the engine's, which SQLAlchemy puts back out of autocommit mode when it returns to the pool.
        On SQLite it is a transaction (``BEGIN IMMEDIATE`` with ``immediate``). If ``work`` raises,
        closing the connection rolls its transaction back."""
        if self._autocommit is not None:
            with self._autocommit.connect() as conn:
                return work(Transaction(conn, self._hide))
        with self._engine.connect() as conn:
            if not self._sqlite:
                return work(Transaction(conn.execution_options(isolation_level="AUTOCOMMIT"), self._hide))
            self._begin(conn, immediate, None)
            result = work(Transaction(conn, self._hide))
            conn.commit()
            return result

    def run(self, stmt: Prepared, params: Mapping[str, Any], *, immediate: bool = False) -> int:
        """One statement, committed by itself; returns the rows it changed (an INSERT's too)."""
        def work(tx: Transaction) -> int:
            result = tx.connection.exec_driver_sql(stmt.sql, tx.parameters(stmt, params), execution_options=_COUNTED)
            return int(result.rowcount)

        return self._alone(immediate, work)

    def read(self, stmt: Prepared, params: Mapping[str, Any], *, immediate: bool = False) -> list[tuple[Any, ...]]:
        """The rows of one statement (a query, or a write with ``RETURNING``), run by itself."""
        return self._alone(immediate, lambda tx: tx.all(stmt, params))

    def one(self, stmt: Prepared, params: Mapping[str, Any]) -> tuple[Any, ...]:
        """The one row of one statement (an ``INSERT ... RETURNING``), run by itself."""
        return self._alone(False, lambda tx: tx.one(stmt, params))

    def mapping(self, stmt: Prepared, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """The first row of one query, run by itself, as ``{column: value}``; ``None`` without a row."""
        return self._alone(False, lambda tx: tx.mapping(stmt, params))
