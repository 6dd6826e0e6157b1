"""Fixtures of the scale-out tests: the private PostgreSQL schema of the operations tests."""

from tests.ops.conftest import pg_schema

__all__ = ["pg_schema"]
