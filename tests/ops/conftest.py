"""Fixtures of the operations tests: a private PostgreSQL schema, and the proxy that takes it down."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError

from mspclaw.store.db import make_engine

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@dataclass(frozen=True)
class PrivateSchema:
    """A schema of its own on the test PostgreSQL, dropped when the test ends."""

    url: URL
    schema: str

    def via(self, port: int) -> str:
        """The schema's URL through a proxy listening on ``port`` of loopback."""
        return self.url.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)


@pytest.fixture
def pg_schema() -> Iterator[PrivateSchema]:
    base = make_url(os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL))
    schema = f"ops_{secrets.token_hex(6)}"
    admin = make_engine(base.render_as_string(hide_password=False))
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except SQLAlchemyError as exc:
        admin.dispose()
        pytest.fail(f"PostgreSQL is required and is not usable at "
                    f"{base.render_as_string(hide_password=True)}: {exc}", pytrace=False)
    try:
        yield PrivateSchema(base.update_query_dict({"options": f"-csearch_path={schema}"}), schema)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
