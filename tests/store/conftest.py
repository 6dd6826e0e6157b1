"""Databases for store tests: every test that asks for ``engine`` runs on SQLite and on PostgreSQL.

* ``engine``: a migrated database of each kind, private to the test.
* ``database``: the same database as a :class:`TestDatabase`, for tests that need a second engine
  on it (``database.new_engine()``, e.g. a second "process") or its URL.
* ``blank_database``: a private, empty database (no tables), for migration tests;
  ``blank_postgres``: the same on PostgreSQL only.

Test modules annotate with ``TestDatabase`` imported under ``TYPE_CHECKING`` (``from tests.store.conftest
import TestDatabase``); fixtures are found by name, so nothing imports this module at run time.

SQLite is a file in ``tmp_path``. PostgreSQL is the server at ``TEST_POSTGRES_URL`` (default
:data:`DEFAULT_POSTGRES_URL`); each test gets its own schema ``t_<random>``, selected through the
connection's ``search_path`` and dropped afterwards, so tests never see each other's rows. An
unreachable server fails the PostgreSQL tests; it never skips them.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from mspclaw.errors import StoreError
from mspclaw.store.database import dispose_engine
from mspclaw.store.db import make_engine, migrate, sqlite_url

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DATABASE_KINDS = ("sqlite", pytest.param("postgres", marks=pytest.mark.postgres))


@dataclass
class TestDatabase:
    """One private test database; engines made here are disposed of when the test ends."""

    __test__ = False  # not a test class, whatever its name

    kind: str
    url: str
    engines: list[Engine] = field(default_factory=list)

    def new_engine(self) -> Engine:
        engine = make_engine(self.url)
        self.engines.append(engine)
        return engine

    def dispose(self) -> None:
        for engine in self.engines:
            dispose_engine(engine)  # a connection a cancelled worker thread still holds is closed on its return


def postgres_url() -> str:
    return os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


@contextmanager
def provision(kind: str, tmp_path: Path) -> Iterator[TestDatabase]:
    """A private, empty database of ``kind`` ("sqlite" or "postgres"), removed afterwards."""
    if kind == "sqlite":
        db = TestDatabase(kind, sqlite_url(tmp_path))
        try:
            yield db
        finally:
            db.dispose()
        return
    if kind != "postgres":
        raise ValueError(f"unknown database kind {kind!r}")
    base = postgres_url()
    schema = f"t_{secrets.token_hex(6)}"
    admin = make_engine(base)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except SQLAlchemyError as exc:
        admin.dispose()
        pytest.fail(
            f"PostgreSQL is required for the store tests and is not usable at "
            f"{make_url(base).render_as_string(hide_password=True)}: {exc}\n"
            "Start it (trust auth, database 'test') or point TEST_POSTGRES_URL at one.",
            pytrace=False,
        )
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    db = TestDatabase(kind, url.render_as_string(hide_password=False))
    try:
        yield db
    finally:
        db.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=DATABASE_KINDS)
def blank_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestDatabase]:
    """A private database with no tables yet."""
    with provision(request.param, tmp_path) as db:
        yield db


@pytest.fixture
def blank_postgres(tmp_path: Path) -> Iterator[TestDatabase]:
    """A private PostgreSQL database with no tables yet, for PostgreSQL-only checks."""
    with provision("postgres", tmp_path) as db:
        yield db


@pytest.fixture(params=DATABASE_KINDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestDatabase]:
    """A private database migrated to the newest schema."""
    with provision(request.param, tmp_path) as db:
        try:
            migrate(db.new_engine())
        except StoreError as exc:
            pytest.fail(f"migrating the {db.kind} test database failed: {exc}", pytrace=False)
        yield db


@pytest.fixture
def engine(database: TestDatabase) -> Engine:
    """An engine on a private, migrated database; the test runs once on each kind."""
    return database.engines[0]  # the engine that ran the migration
