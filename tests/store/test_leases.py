"""Ownership leases with fencing tokens, on the real databases: SQLite in a temporary file and the
PostgreSQL server on 127.0.0.1:5432 (a private schema per test, ``tests/store/conftest.py``).

Racing replicas are threads, each with an engine (and so connections) of its own, as separate
processes would have. Time moves through an injected clock where expiry is under test.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select, update

from mspclaw.store.database import Database
from mspclaw.store.jobs import JobQueue
from mspclaw.store.leases import Lease, LeaseLost, Leases
from mspclaw.store.tables import PSACursor

if TYPE_CHECKING:
    from tests.store.conftest import TestDatabase


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def test_racing_replicas_exactly_one_wins(database: TestDatabase) -> None:
    """Eight replicas (each its own engine) acquire the same free lease at the same instant, five rounds."""
    replicas = [Leases(Database(database.new_engine())) for _ in range(8)]
    for round_ in range(5):
        name = f"poller:race-{round_}"
        barrier = threading.Barrier(len(replicas))
        won: dict[str, int | None] = {}

        def race(i: int, leases: Leases, name: str = name, barrier: threading.Barrier = barrier,
                 won: dict[str, int | None] = won) -> None:
            barrier.wait()
            won[f"replica-{i}"] = leases.acquire(name, f"replica-{i}", 30)

        threads = [threading.Thread(target=race, args=(i, leases)) for i, leases in enumerate(replicas)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        winners = {holder: token for holder, token in won.items() if token is not None}
        assert len(won) == len(replicas)
        assert len(winners) == 1, won
        (holder, token), = winners.items()
        assert token == 1
        current = replicas[0].current(name)
        assert current is not None and (current.holder, current.token) == (holder, 1)


def test_expiry_and_takeover_bump_the_token(database: TestDatabase) -> None:
    clock = Clock()
    leases = Leases(Database(database.engines[0]), clock=clock)

    assert leases.acquire("feedback", "a", 10) == 1
    assert leases.acquire("feedback", "b", 10) is None  # a holds it
    assert leases.acquire("feedback", "a", 10) == 1  # the holder again: extended, same token
    clock.advance(9)
    assert leases.acquire("feedback", "b", 10) is None  # a's re-acquire moved the expiry to 12:00:10
    clock.advance(1)  # 12:00:10 exactly: expired
    assert leases.current("feedback") is None
    assert leases.acquire("feedback", "b", 10) == 2  # taken over
    assert leases.current("feedback") == Lease(name="feedback", holder="b", token=2,
                                               expires_at=clock.now + timedelta(seconds=10))
    assert leases.renew("feedback", "a", 1, 10) is False  # a lost it
    assert leases.release("feedback", "b", 2) is True
    assert leases.current("feedback") is None
    assert leases.acquire("feedback", "a", 10) == 3  # after a release, the token still goes up
    assert [(lease.name, lease.holder) for lease in leases.holders()] == [("feedback", "a")]


def test_renew_needs_holder_token_and_an_unexpired_lease(database: TestDatabase) -> None:
    clock = Clock()
    leases = Leases(Database(database.engines[0]), clock=clock)
    token = leases.acquire("poller:halo", "a", 5)
    assert token == 1

    assert leases.renew("poller:halo", "b", token, 5) is False  # not the holder
    assert leases.renew("poller:halo", "a", token + 1, 5) is False  # not its token
    assert leases.release("poller:halo", "b", token) is False
    clock.advance(4)
    assert leases.renew("poller:halo", "a", token, 5) is True
    clock.advance(4)  # 8 s after acquiring, alive only thanks to the renewal
    current = leases.current("poller:halo")
    assert current is not None and current.holder == "a"
    clock.advance(1)  # expired now, though nobody took it over
    assert leases.renew("poller:halo", "a", token, 5) is False  # must acquire again
    assert leases.acquire("poller:halo", "a", 5) == 2


def test_a_stale_token_is_fenced_out_of_the_write(database: TestDatabase) -> None:
    """The old holder's write in a fenced transaction is refused after a takeover; the new holder's lands."""
    clock = Clock()
    db = Database(database.engines[0])
    old = Leases(db, clock=clock)
    new = Leases(Database(database.new_engine()), clock=clock)
    JobQueue(db, clock=clock).set_cursor("poll:halo", "2026-12-06T11:00:00+00:00")

    def write_cursor(leases: Leases, token: int, value: str) -> None:
        with leases.fenced("poller:halo", token) as conn:
            conn.execute(update(PSACursor).where(PSACursor.name == "poll:halo").values(value=value))

    stale = old.acquire("poller:halo", "replica-a", 10)
    assert stale == 1
    write_cursor(old, stale, "2026-12-06T11:30:00+00:00")  # held: written
    clock.advance(11)  # replica-a paused past its lease (a long GC, a partition)
    fresh = new.acquire("poller:halo", "replica-b", 10)
    assert fresh == 2
    write_cursor(new, fresh, "2026-12-06T11:45:00+00:00")

    with pytest.raises(LeaseLost, match="taken over"):
        write_cursor(old, stale, "2026-12-06T11:31:00+00:00")  # replica-a wakes up with its old token

    with db.engine.connect() as conn:
        assert conn.execute(select(PSACursor.value).where(PSACursor.name == "poll:halo")).scalar() == (
            "2026-12-06T11:45:00+00:00")
    assert new.release("poller:halo", "replica-b", fresh)
    with pytest.raises(LeaseLost, match="released"):
        write_cursor(new, fresh, "2026-12-06T11:50:00+00:00")
    with pytest.raises(LeaseLost, match="never taken"), new.fenced("poller:nobody", 1):
        pass


def test_the_fence_holds_a_takeover_until_the_fenced_write_commits(database: TestDatabase) -> None:
    """While a fenced transaction is open, another replica's acquire of that lease waits for it (the row
    lock on PostgreSQL, the write lock on SQLite): the takeover lands after the write, never under it."""
    clock = Clock()
    holder = Leases(Database(database.engines[0]), clock=clock)
    rival = Leases(Database(database.new_engine()), clock=clock)
    token = holder.acquire("retention", "replica-a", 10)
    assert token == 1
    taken: list[int | None] = []
    started = threading.Event()

    def take_over() -> None:
        started.set()
        taken.append(rival.acquire("retention", "replica-b", 10))

    with holder.fenced("retention", token):
        clock.advance(11)  # expires while the write is under way
        thread = threading.Thread(target=take_over)
        thread.start()
        started.wait(5)
        thread.join(0.5)
        assert thread.is_alive()  # the takeover waits for the fenced transaction
        assert taken == []
    thread.join(30)
    assert taken == [2]


@pytest.mark.parametrize(("name", "holder", "ttl"), [("", "a", 5.0), ("x" * 201, "a", 5.0), ("n", "", 5.0),
                                                     ("n", "h" * 101, 5.0), ("n", "a", 0.0), ("n", "a", 86_401.0)])
def test_bad_input_is_refused_with_a_clear_error(database: TestDatabase, name: str, holder: str, ttl: float) -> None:
    leases = Leases(Database(database.engines[0]))
    with pytest.raises(ValueError, match="lease"):
        leases.acquire(name, holder, ttl)
