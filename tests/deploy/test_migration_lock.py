"""Several replicas starting at once on one PostgreSQL database migrate it exactly once, without errors.

Each "replica" is a thread with an engine of its own calling :func:`migrate` on a fresh, empty schema
at the same moment, as replicas of a compose deployment do when they start together.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from tests.deploy.postgres import postgres_url

from mspclaw.store.db import make_engine, migrate

pytestmark = pytest.mark.postgres


@pytest.fixture
def empty_schema() -> Iterator[str]:
    """The URL of a private, empty schema in the test database, dropped afterwards."""
    schema = f"mig_{secrets.token_hex(6)}"
    admin = make_engine(postgres_url())
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    # lock_timeout: a race (or a lock never released) fails the test in seconds instead of hanging it
    url = make_url(postgres_url()).update_query_dict({"options": f"-csearch_path={schema} -clock_timeout=30s"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_replicas_starting_together_migrate_once(empty_schema: str) -> None:
    replicas = 6
    engines: list[Engine] = [make_engine(empty_schema) for _ in range(replicas)]
    start = threading.Barrier(replicas)
    failures: list[BaseException] = []

    def replica(engine: Engine) -> None:
        start.wait()
        try:
            migrate(engine)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=replica, args=(e,)) for e in engines]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        assert not any(t.is_alive() for t in threads), "a replica is still migrating after 90 s"
        assert failures == [], f"{len(failures)} replicas failed to start: {failures[0]}"
        with engines[0].connect() as conn:
            versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
            assert len(versions) == 1
            assert conn.execute(text("SELECT count(*) FROM clients")).scalar_one() == 0
        migrate(engines[0])  # a later start finds the schema current and changes nothing
    finally:
        for e in engines:
            e.dispose()
