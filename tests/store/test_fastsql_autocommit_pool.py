"""PostgreSQL through ``Database.open``: single statements run on a pool whose connections stay in
autocommit mode, transactions on the main pool, whose connections never are; each kind of work
commits as it did when one pool switched connections in and out of autocommit mode."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import pytest
from sqlalchemy import Engine, Table, bindparam, event, insert, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError
from tests.ops.tcp_proxy import ProxyThread
from tests.private_schema import postgres_schema

from mspclaw.store.database import Database
from mspclaw.store.db import make_engine
from mspclaw.store.registry import Registry
from mspclaw.store.tables import Client, utcnow

pytestmark = pytest.mark.postgres

_CLIENTS = cast("Table", Client.__table__)
_ADD_CLIENT = insert(_CLIENTS).values(id=bindparam("id"), name=bindparam("name"), psa_refs=bindparam("refs"),
                                      created_at=bindparam("at"))
_CLIENT = select(_CLIENTS.c.name).where(_CLIENTS.c.id == bindparam("id"))


@pytest.fixture
def url() -> Iterator[str]:
    yield from postgres_schema("fastac")


@pytest.fixture
def db(url: str) -> Iterator[Database]:
    opened = Database.open(url, migrated=False)
    try:
        yield opened
    finally:
        opened.dispose()


def watch_checkouts(engine: Engine) -> list[bool]:
    """The driver's ``autocommit`` of each connection ``engine`` hands out, as it is handed out."""
    seen: list[bool] = []

    def checkout(dbapi: Any, _record: Any, _proxy: Any) -> None:
        seen.append(bool(dbapi.autocommit))

    event.listen(engine, "checkout", checkout)
    return seen


def client_values(client_id: str) -> dict[str, Any]:
    return {"id": client_id, "name": f"Client {client_id}", "refs": {}, "at": utcnow()}


def test_single_statements_take_connections_already_in_autocommit_mode_and_transactions_never_do(
        db: Database, url: str) -> None:
    assert db.autocommit is not None, "Database.open on PostgreSQL keeps a pool of autocommit connections"
    single, main = watch_checkouts(db.autocommit), watch_checkouts(db.engine)
    fast = db.fast
    assert fast.run(fast.prepare(_ADD_CLIENT), client_values("c1")) == 1
    assert fast.read(fast.prepare(_CLIENT), {"id": "c1"}) == [("Client c1",)]
    Registry(db).add_client("Acme", {"local": "7"})  # an ORM write: a transaction on the main pool
    with pytest.raises(IntegrityError), fast.transaction() as tx:  # several statements: all or nothing
        tx.execute(fast.prepare(_ADD_CLIENT), client_values("c2"))
        tx.execute(fast.prepare(_ADD_CLIENT), client_values("c1"))
    assert single and all(single), "every single statement found its connection in autocommit mode"
    assert main and not any(main), "no transaction was handed a connection in autocommit mode"
    other = make_engine(url)  # what another process sees: the single statement committed, the failed transaction not
    try:
        with other.connect() as conn:
            names = sorted(conn.execute(select(_CLIENTS.c.name)).scalars())
    finally:
        other.dispose()
    assert names == ["Acme", "Client c1"]


def test_a_failing_single_statement_leaves_its_pool_in_autocommit_mode_and_the_main_pool_out_of_it(
        db: Database) -> None:
    assert db.autocommit is not None
    fast = db.fast
    fast.run(fast.prepare(_ADD_CLIENT), client_values("c1"))
    with pytest.raises(IntegrityError):
        fast.run(fast.prepare(_ADD_CLIENT), client_values("c1"))
    single, main = watch_checkouts(db.autocommit), watch_checkouts(db.engine)
    assert fast.mapping(fast.prepare(_CLIENT), {"id": "c1"}) == {"name": "Client c1"}
    with pytest.raises(IntegrityError), fast.transaction() as tx:
        tx.execute(fast.prepare(_ADD_CLIENT), client_values("c2"))
        tx.execute(fast.prepare(_ADD_CLIENT), client_values("c1"))
    assert fast.read(fast.prepare(_CLIENT), {"id": "c2"}) == []
    assert single == [True, True] and main == [False]


def test_disposing_of_the_engine_closes_the_autocommit_pools_connections_too(db: Database) -> None:
    """Callers that dispose of ``db.engine`` (tests, a forked process) leave no autocommit connection open."""
    assert db.autocommit is not None
    fast = db.fast
    fast.run(fast.prepare(_ADD_CLIENT), client_values("c1"))
    pool: Any = db.autocommit.pool
    assert pool.checkedin() == 1
    db.engine.dispose()
    pool = db.autocommit.pool  # disposing replaces the pool; the old one's connections are closed
    assert pool.checkedin() == 0
    assert fast.read(fast.prepare(_CLIENT), {"id": "c1"}) == [("Client c1",)]  # and it still works


@pytest.mark.parametrize("found_by", ["a transaction", "a single statement"])
def test_a_connection_found_lost_by_one_pool_leaves_no_lost_connection_in_the_other(url: str, found_by: str) -> None:
    """The database goes away and comes back (a restart, a failover) while each pool holds a connection: the
    first statement on a lost connection fails, as with one pool, and then the other pool's work goes on
    (its lost connection was closed when the first one was found lost, not handed to the next caller)."""
    proxy = ProxyThread("127.0.0.1", make_url(url).port or 5432)
    proxy.up()
    db = Database.open(make_url(url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False),
                       migrated=False)
    try:
        fast = db.fast
        fast.run(fast.prepare(_ADD_CLIENT), client_values("c1"))  # a connection in the autocommit pool
        with fast.transaction() as tx:  # and one in the main pool
            tx.execute(fast.prepare(_ADD_CLIENT), client_values("c2"))
        proxy.down()
        proxy.up()

        def transaction() -> None:
            with fast.transaction() as tx:
                tx.execute(fast.prepare(_CLIENT), {"id": "c2"})

        def single() -> None:
            assert fast.read(fast.prepare(_CLIENT), {"id": "c1"}) == [("Client c1",)]

        first, then = (transaction, single) if found_by == "a transaction" else (single, transaction)
        with pytest.raises(OperationalError):
            first()
        then()
    finally:
        db.dispose()
        proxy.close()
