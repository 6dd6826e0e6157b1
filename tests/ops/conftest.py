"""Fixtures of the operations tests: a private PostgreSQL schema, and the proxy that takes it down."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy.engine import URL, make_url
from tests.private_schema import postgres_schema


@dataclass(frozen=True)
class PrivateSchema:
    """A schema of its own on the test PostgreSQL, not migrated (the servers under test migrate it), dropped
    when the test ends."""

    url: URL
    schema: str

    def via(self, port: int) -> str:
        """The schema's URL through a proxy listening on ``port`` of loopback."""
        return self.url.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)


@pytest.fixture
def pg_schema() -> Iterator[PrivateSchema]:
    schema = postgres_schema("ops", migrate=False)
    url = make_url(next(schema))
    try:
        yield PrivateSchema(url, str(url.query["options"]).removeprefix("-csearch_path="))
    finally:
        schema.close()
