"""The loop guard: with it on (every test runs so), a database statement that the server's async code runs
on the event loop's thread raises instead of blocking the loop; worker threads, SQLite calls a store runs
inline on purpose, and the tests' own coroutines pass; with it off, an engine gets no listener at all.

The server's code is code in the ``mspclaw`` package: the offending coroutines here are compiled under a
module name in that package (``mspclaw.example_offender``), as the guard sees the server's own code."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, cast

import pytest
from sqlalchemy import Engine, event, text

from mspclaw.pipeline.offload import run_store
from mspclaw.store import loop_guard
from mspclaw.store.database import Database
from mspclaw.store.loop_guard import BlockingOnLoop
from mspclaw.store.tickets import TicketStore

OFFENDER = '''
async def count_with_orm(db):
    with db.sessions() as orm:
        return orm.execute(text("SELECT count(*) FROM tickets")).scalar_one()

async def count_with_core(db):
    with db.transaction() as conn:
        return conn.execute(text("SELECT count(*) FROM tickets")).scalar_one()

async def list_tickets(store):
    return store.tickets()

async def list_tickets_offloaded(store):
    return await asyncio.to_thread(store.tickets)

async def list_tickets_through_run_store(store):
    return await run_store(store, store.tickets)
'''


def offenders() -> dict[str, Callable[[Any], Coroutine[Any, Any, Any]]]:
    """Coroutine functions of a module in the ``mspclaw`` package, as the server's code would be."""
    namespace: dict[str, Any] = {"__name__": "mspclaw.example_offender", "text": text, "asyncio": asyncio,
                                 "run_store": run_store}
    exec(compile(OFFENDER, "<mspclaw.example_offender>", "exec"), namespace)
    return cast("dict[str, Callable[[Any], Coroutine[Any, Any, Any]]]", namespace)


@pytest.mark.parametrize("name", ["count_with_orm", "count_with_core"])
def test_a_statement_run_on_the_loop_by_the_servers_coroutine_raises_and_names_it(engine: Engine, name: str) -> None:
    db = Database(engine)
    with pytest.raises(BlockingOnLoop) as refused:
        asyncio.run(offenders()[name](db))
    message = str(refused.value)
    assert "`SELECT count(*) FROM tickets ...`" in message
    assert f"mspclaw.example_offender.{name}" in message
    assert "await the store's async method or offload the call" in message


def test_a_stores_call_made_on_the_loop_raises_and_one_on_a_worker_thread_passes(engine: Engine) -> None:
    store, found = TicketStore(Database(engine)), offenders()
    with pytest.raises(BlockingOnLoop, match=r"^database statement `SELECT tickets"):
        asyncio.run(found["list_tickets"](store))
    assert asyncio.run(found["list_tickets_offloaded"](store)) == []
    assert asyncio.run(found["list_tickets_through_run_store"](store)) == []  # inline on SQLite, offloaded on PG
    assert store.tickets() == []  # no event loop on this thread


def test_the_tests_own_coroutines_are_not_the_servers_code(engine: Engine) -> None:
    store = TicketStore(Database(engine))

    async def a_test_body() -> int:
        return len(store.tickets())

    assert asyncio.run(a_test_body()) == 0


def test_off_an_engine_gets_no_listener(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    assert event.contains(Database(engine).engine, "before_cursor_execute", loop_guard._refuse_on_loop)  # conftest: on
    monkeypatch.setattr(loop_guard, "_enabled", False)
    fresh = Database.open("sqlite://")
    try:
        assert not event.contains(fresh.engine, "before_cursor_execute", loop_guard._refuse_on_loop)
        assert asyncio.run(offenders()["count_with_orm"](fresh)) == 0
    finally:
        fresh.dispose()
