"""The store's hot statements, compiled once and run on the pool's DB-API connection.

Every ticket runs a few dozen small prebuilt statements. Through a SQLAlchemy ``Connection`` each
one pays for an execution context, a compiled-cache lookup, parameter processing, a ``Row`` per
result row and the connection's begin/commit bookkeeping: an ``INSERT ... RETURNING`` in a
transaction of its own cost 103 µs of CPU that way on SQLite here and 56 µs through this module
(on PostgreSQL 353 and 250 µs, most of it the driver's round trips). :class:`FastSQL` does the
part of that work these statements need, and the rest once per statement and engine:

* :meth:`FastSQL.prepare` compiles a Core statement for the engine's dialect and keeps its SQL
  text, the order of its parameters (pysqlite's ``?``) or their names (psycopg's ``%(name)s``),
  the values of its fixed parameters, and SQLAlchemy's own bind processors for each parameter
  (JSON, ``UTCDateTime``), so a row written here is stored exactly as SQLAlchemy would store it and
  reads back the same through the ORM. Result columns go through SQLAlchemy's result processors
  the same way.
* :meth:`FastSQL.transaction` checks a connection out of the engine's pool (its events, pre-ping
  and reset on return still run), runs the statements on the driver connection and commits, or
  rolls back if the body raises. ``immediate=True`` opens it with ``BEGIN IMMEDIATE`` on SQLite,
  which takes the database's write lock before the first read (see :mod:`.locking`); otherwise
  the driver's own transaction begins at the first write (pysqlite) or statement (psycopg), as
  it does under a SQLAlchemy ``Connection``. :meth:`FastSQL.run` and :meth:`FastSQL.read` run one
  statement by itself; on PostgreSQL in autocommit mode, one round trip instead of three.
* Driver errors become the same SQLAlchemy exceptions a ``Connection`` raises
  (:class:`~sqlalchemy.exc.IntegrityError`, :class:`~sqlalchemy.exc.OperationalError`, ...), and
  a connection the dialect calls disconnected is invalidated in the pool, so callers translate
  them to :class:`~mspclaw.errors.StoreError` or :class:`~mspclaw.errors.Conflict` as before.

What it does not do, checked when a statement is prepared: Python-side column defaults
(``default=``/``onupdate=`` callables, every value must be given), parameters with a callable
value, expanding ``IN`` parameters, and executemany.

Everything it asks SQLAlchemy is public API: each parameter's processor is
``bind.type.dialect_impl(dialect).bind_processor(dialect)``, the result columns are the statement's
``exported_columns`` (the selected or ``RETURNING`` columns) and their processors
``type.dialect_impl(dialect).result_processor(dialect, coltype)``, all computed once per statement
and engine, so the per-execution cost is what it was. ``tests/store/test_fastsql.py`` checks on both
databases that what is written here reads back the same through the ORM.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, cast

from sqlalchemy import Engine, exc
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

Processor = Callable[[Any], Any]


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
    """Statements run on one driver connection inside one transaction (see :meth:`FastSQL.transaction`)."""

    __slots__ = ("_dialect", "_error", "_fairy", "_hide", "_raw")

    def __init__(self, fairy: Any, dialect: Dialect, error: type[Exception], hide: bool) -> None:
        self._raw, self._fairy = fairy.driver_connection, fairy
        self._dialect, self._error, self._hide = dialect, error, hide

    def execute(self, stmt: Prepared, params: Mapping[str, Any]) -> Any:
        """Run the statement; returns the driver's cursor (``rowcount``, unprocessed rows)."""
        try:
            driver_params = stmt.parameters(params)
        except (KeyError, TypeError, ValueError) as error:
            raise exc.StatementError(f"({type(error).__module__}.{type(error).__name__}) {error}",
                                     stmt.sql, dict(params), error, hide_parameters=self._hide) from error
        try:
            return self._raw.execute(stmt.sql, driver_params)
        except self._error as error:
            raise _translated(error, stmt.sql, driver_params, self._dialect, self._fairy, self._hide) from error

    def all(self, stmt: Prepared, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Every result row, each column through SQLAlchemy's result processor for its type."""
        cursor = self.execute(stmt, params)
        try:
            rows = cursor.fetchall()
        except self._error as error:
            raise _translated(error, stmt.sql, None, self._dialect, self._fairy, self._hide) from error
        processors = stmt.processors(cursor.description)
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
    """Prepared statements of one engine, run on its pooled DB-API connections."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._dialect = engine.dialect
        self._sqlite = engine.dialect.name == "sqlite"
        self._error: type[Exception] = engine.dialect.loaded_dbapi.Error
        self._hide = bool(getattr(engine, "hide_parameters", False))
        self._prepared: dict[int, tuple[ClauseElement, Prepared]] = {}

    def prepare(self, stmt: ClauseElement) -> Prepared:
        """``stmt`` compiled for this engine's dialect (once per statement object)."""
        found = self._prepared.get(id(stmt))
        if found is None or found[0] is not stmt:
            found = self._prepared[id(stmt)] = (stmt, Prepared(stmt, self._dialect))
        return found[1]

    @contextmanager
    def transaction(self, *, immediate: bool = False) -> Iterator[Transaction]:
        """One transaction on a pooled connection: committed when the body returns, rolled back if it raises.

        ``immediate``: on SQLite, ``BEGIN IMMEDIATE`` first, so the write lock is held from the first
        read to the commit (on PostgreSQL the transaction is the same either way; take row locks with
        ``FOR UPDATE``)."""
        fairy = self._engine.raw_connection()
        raw: Any = fairy.driver_connection
        try:
            # pysqlite opens a deferred transaction itself before the first write, unless the connection
            # is in autocommit mode (SQLAlchemy resets that when a connection returns to the pool; this
            # does not rely on it: several statements here are one transaction or nothing)
            begin = None
            if self._sqlite:
                begin = "BEGIN IMMEDIATE" if immediate else "BEGIN" if raw.isolation_level is None else None
            if begin is not None:
                try:
                    raw.execute(begin)
                except self._error as error:
                    raise _translated(error, begin, None, self._dialect, fairy, self._hide) from error
            try:
                yield Transaction(fairy, self._dialect, self._error, self._hide)
            except BaseException:
                try:
                    raw.rollback()
                except self._error:
                    pass  # the connection is gone or invalidated; the error that got here matters
                raise
            try:
                raw.commit()
            except self._error as error:
                raise _translated(error, "COMMIT", None, self._dialect, fairy, self._hide) from error
        finally:
            fairy.close()

    @contextmanager
    def _alone(self, immediate: bool = False) -> Iterator[Transaction]:
        """A connection for one statement that is a transaction by itself.

        On PostgreSQL the statement runs in autocommit mode: the server commits it as it runs it, so
        it costs one round trip instead of three (``BEGIN``, the statement, ``COMMIT``), with the same
        atomicity and durability. The connection goes back to the pool out of autocommit mode, or
        is invalidated if it cannot be. On SQLite it is :meth:`transaction` (``immediate`` there)."""
        if self._sqlite:
            with self.transaction(immediate=immediate) as tx:
                yield tx
            return
        fairy = self._engine.raw_connection()
        raw: Any = fairy.driver_connection
        try:
            raw.autocommit = True
            try:
                yield Transaction(fairy, self._dialect, self._error, self._hide)
            finally:
                try:
                    raw.autocommit = False
                except self._error as error:
                    if fairy.is_valid:
                        fairy.invalidate(error)
        finally:
            fairy.close()

    def run(self, stmt: Prepared, params: Mapping[str, Any], *, immediate: bool = False) -> int:
        """One statement, committed by itself; returns the rows it changed."""
        with self._alone(immediate) as tx:
            rowcount: int = tx.execute(stmt, params).rowcount
        return rowcount

    def read(self, stmt: Prepared, params: Mapping[str, Any], *, immediate: bool = False) -> list[tuple[Any, ...]]:
        """The rows of one statement (a query, or a write with ``RETURNING``), run by itself."""
        with self._alone(immediate) as tx:
            return tx.all(stmt, params)

    def one(self, stmt: Prepared, params: Mapping[str, Any]) -> tuple[Any, ...]:
        """The one row of one statement (an ``INSERT ... RETURNING``), run by itself."""
        with self._alone() as tx:
            return tx.one(stmt, params)

    def mapping(self, stmt: Prepared, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """The first row of one query, run by itself, as ``{column: value}``; ``None`` without a row."""
        with self._alone() as tx:
            return tx.mapping(stmt, params)


def _translated(error: Exception, sql: str, params: Any, dialect: Dialect, connection: Any,
                hide: bool) -> BaseException:
    """The SQLAlchemy exception a ``Connection`` would raise; a disconnected connection is invalidated."""
    disconnected = False
    try:
        disconnected = dialect.is_disconnect(cast("Any", error), connection.driver_connection, None)
    except Exception:  # deciding must not hide the error itself
        disconnected = False
    if disconnected:
        connection.invalidate(error)
    return exc.DBAPIError.instance(sql, params, error, dialect.loaded_dbapi.Error, hide_parameters=hide,
                                   connection_invalidated=disconnected, dialect=dialect)
