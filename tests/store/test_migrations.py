"""The Alembic migrations build exactly the schema that ``mspclaw.store.tables`` declares."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, Text, insert, inspect, select, text

from mspclaw.store.db import alembic_config, migrate
from mspclaw.store.tables import AuditEvent, Base, Client, UTCDateTime

if TYPE_CHECKING:
    from tests.store.conftest import TestDatabase


def schema_diff(engine: Engine, metadata: MetaData = Base.metadata) -> list[Any]:
    """What autogenerate would change to turn the database into ``metadata``: types included."""
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        return list(compare_metadata(context, metadata))


def flat_ops(diff: list[Any]) -> list[tuple[Any, ...]]:
    """Column changes come grouped in a list per column; flatten to (op, ...) tuples."""
    flat: list[tuple[Any, ...]] = []
    for item in diff:
        flat.extend(item if isinstance(item, list) else [item])
    return flat


def head_revision(engine: Engine) -> str | None:
    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def test_migrate_builds_the_declared_schema(blank_database: TestDatabase) -> None:
    engine = blank_database.new_engine()
    assert inspect(engine).get_table_names() == []

    migrate(engine)

    assert schema_diff(engine) == []
    tables = set(inspect(engine).get_table_names())
    assert tables == set(Base.metadata.tables) | {"alembic_version"}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [
            head_revision(engine)
        ]


def test_utc_datetime_columns_round_trip_aware(engine: Engine) -> None:
    """The UTCDateTime columns hold what they are given, as aware UTC, on both databases."""
    stamp = datetime(2026, 11, 23, 23, 59, 58, 123456, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(insert(Client).values(id="cl_1", name="Acme", psa_refs={}, created_at=stamp))
    with engine.connect() as conn:
        got = conn.execute(select(Client.created_at)).scalar_one()
    assert got == stamp
    offset = got.utcoffset()
    assert offset is not None and offset.total_seconds() == 0


def _copy_of_tables() -> MetaData:
    copy = MetaData()
    for table in Base.metadata.sorted_tables:
        table.to_metadata(copy)
    return copy


def _retype(table: str, column: str, type_: Any) -> Callable[[MetaData], None]:
    def change(md: MetaData) -> None:
        md.tables[table].c[column].type = type_

    return change


def _add_column(md: MetaData) -> None:
    md.tables["audit_events"].append_column(Column("extra", String(10), nullable=True))


def _add_table(md: MetaData) -> None:
    Table("extra_table", md, Column("id", Integer, primary_key=True))


def _drop_index(md: MetaData) -> None:
    table = md.tables["audit_events"]
    table.indexes.discard(next(ix for ix in table.indexes if ix.name == "ix_audit_client_ts"))


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_retype("audit_events", "ts", Text()), ("modify_type", "audit_events", "ts")),
        (_retype("approvals", "deadline", String(40)), ("modify_type", "approvals", "deadline")),
        (_retype("audit_events", "kind", String(65)), ("modify_type", "audit_events", "kind")),
        (_add_column, ("add_column", "audit_events", "extra")),
        (_add_table, ("add_table", "extra_table", None)),
        (_drop_index, ("remove_index", "audit_events", "ix_audit_client_ts")),
    ],
    ids=["utc-datetime-to-text", "utc-datetime-to-varchar", "varchar-length", "column", "table", "index"],
)
def test_the_comparison_sees_drift(
    engine: Engine, mutate: Callable[[MetaData], None], expected: tuple[str, str, str | None]
) -> None:
    """The empty diff above means something: each kind of difference is reported.

    Here the declared side drifts from the migrated database; in particular a UTCDateTime
    column is compared by the type it stores as, not skipped.
    """
    declared = _copy_of_tables()
    mutate(declared)

    ops = flat_ops(schema_diff(engine, declared))

    found = []
    for op in ops:
        match op:
            case ("modify_type", _, table, column, *_):
                found.append(("modify_type", table, column))
            case ("add_column", _, table, column):
                found.append(("add_column", table, column.name))
            case ("add_table", table):
                found.append(("add_table", table.name, None))
            case ("remove_index", index):
                found.append(("remove_index", index.table.name, index.name))
            case _:
                found.append((op[0], "?", None))
    assert found == [expected]


@pytest.mark.postgres
def test_a_timestamp_without_time_zone_is_a_difference_on_postgres(blank_postgres: TestDatabase) -> None:
    """On PostgreSQL, UTCDateTime must be ``timestamp with time zone``; a naive column is drift."""
    engine = blank_postgres.new_engine()
    migrate(engine)
    assert schema_diff(engine) == []
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE audit_events ALTER COLUMN ts TYPE timestamp without time zone"))

    ops = flat_ops(schema_diff(engine))

    assert isinstance(AuditEvent.__table__.c.ts.type, UTCDateTime)
    assert [(op[0], op[2], op[3]) for op in ops] == [("modify_type", "audit_events", "ts")]


def test_migrating_twice_is_harmless(engine: Engine, database: TestDatabase) -> None:
    with engine.begin() as conn:
        conn.execute(insert(Client).values(id="cl_1", name="Acme", psa_refs={"halo": "7"},
                                           created_at=datetime.now(UTC)))

    migrate(engine)
    migrate(database.new_engine())

    assert schema_diff(engine) == []
    with engine.connect() as conn:
        assert conn.execute(select(Client.id, Client.psa_refs)).all() == [("cl_1", {"halo": "7"})]
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
