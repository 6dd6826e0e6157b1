"""Databases for the data-at-rest tests: SQLite and PostgreSQL, as in ``tests/store``.

``database``: a private, migrated database of each kind (PostgreSQL: a schema of the test database).
``pg_url``: a whole PostgreSQL database of the test's own, created empty and dropped afterwards, for
``pg_dump``/``pg_restore``, which work on databases rather than on a schema.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from tests.store.conftest import DATABASE_KINDS, TestDatabase, provision

from mspclaw.store.db import make_engine, migrate

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture(params=DATABASE_KINDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestDatabase]:
    with provision(request.param, tmp_path) as db:
        migrate(db.new_engine())
        yield db


@pytest.fixture
def pg_database() -> Iterator[Callable[[], str]]:
    """Makes empty PostgreSQL databases of the test's own (their URLs); all are dropped afterwards."""
    base = os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    admin = make_engine(base).execution_options(isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def new() -> str:
        name = f"mspclaw_t_{secrets.token_hex(5)}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        made.append(name)
        return make_url(base).set(database=name).render_as_string(hide_password=False)

    try:
        yield new
    finally:
        with admin.connect() as conn:
            for name in made:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
