"""Where the deployment tests find PostgreSQL: ``TEST_POSTGRES_URL``, default the loopback test server."""

from __future__ import annotations

import os

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def postgres_url() -> str:
    return os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
