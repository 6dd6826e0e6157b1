"""A migrated schema of its own on the test PostgreSQL (``TEST_POSTGRES_URL``), for tests that run servers or
replicas on one database: create it, migrate it, hand out its URL, drop it when the test is done."""

from __future__ import annotations

import os
import secrets
from collections.abc import Generator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from mspclaw.store.database import Database
from mspclaw.store.db import make_engine, sqlite_url

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def postgres_schema(prefix: str, *, migrate: bool = True) -> Generator[str, None, None]:
    """A generator: its first value is the URL of a new schema named ``<prefix>_<random>``, migrated unless
    ``migrate`` is false (a test whose servers migrate it themselves); closing it (or running it to its end) drops
    the schema. A PostgreSQL that cannot be used fails the test, saying why."""
    base = make_url(os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL))
    schema = f"{prefix}_{secrets.token_hex(6)}"
    admin = make_engine(base.render_as_string(hide_password=False))
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except SQLAlchemyError as exc:
        admin.dispose()
        pytest.fail(f"PostgreSQL is required and is not usable at "
                    f"{base.render_as_string(hide_password=True)}: {exc}", pytrace=False)
    url = base.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    try:
        if migrate:
            Database.open(url).dispose()
        yield url
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def migrated_database(kind: str, tmp_path: Path, prefix: str) -> Generator[str, None, None]:
    """A migrated private database for a fixture parametrised by ``kind``: a SQLite file in ``tmp_path``
    (``"sqlite"``), or a schema of its own on the test PostgreSQL, dropped afterwards."""
    if kind == "sqlite":
        url = sqlite_url(tmp_path)
        Database.open(url).dispose()
        yield url
        return
    yield from postgres_schema(prefix)
