"""Session events and PSA account changes reach every server replica through Redis.

Real services only. :class:`Broadcast` alone runs on the shared Redis (127.0.0.1:6379) under a random key
prefix of its own test, so its channels are private. The end-to-end tests run two servers (``wiring.build`` +
uvicorn + the agent listener, as ``mspclaw serve``) on one PostgreSQL schema of the test's own (127.0.0.1:5432)
and a ``redis-server`` of the test's own on a free loopback port, which the test stops (the shared Redis is
never stopped): a real agent daemon enrolled on server A runs the sessions, a technician signed in to server
B's console follows them over server-sent events, and an API client follows them on B's session socket. The
PSA is MSPclaw's local PSA simulator, which signs and sends its webhooks as the product's local PSA does.
The follower's gap and repeat handling runs on one server with SQLite and no Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import statistics
import time
from collections.abc import AsyncIterator, Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from tests.conftest import Live, live_server, make_old_files
from tests.console.signing_in import DANA, register, signed_in
from tests.dispatch.cluster_replicas import SHARED_REDIS, OwnRedis, key_prefix
from tests.private_schema import postgres_schema as private_schema
from websockets.asyncio.client import connect

from mspclaw.dispatch.broadcast import MAX_MESSAGE_BYTES, Broadcast
from mspclaw.protocol.codec import decode_session_frame, encode
from mspclaw.protocol.frames import Event, Watch
from mspclaw.simulators.local_psa import run_local_psa
from mspclaw.store.secretbox import SecretKey

pytestmark = pytest.mark.anyio
HOOK = "relay-hook-secret-5d1e"
PUSHED_S = 1.0
"""A pushed event reaches the other replica's watcher well within this; a catch-up read takes CATCH_UP_S (5 s)."""


async def until(condition: Callable[[], bool], what: str | Callable[[], str], seconds: float = 30.0) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"{what() if callable(what) else what} (waited {seconds:g} s)")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


# --- the broadcast alone, on the shared Redis under a private prefix ------------------------------------

@contextlib.asynccontextmanager
async def broadcasting(prefix: str, name: str, seen: list[Event],
                       reloads: list[str] | None = None) -> AsyncIterator[Broadcast]:
    async def reload() -> None:
        assert reloads is not None
        reloads.append(name)
        await asyncio.sleep(0.05)  # a reload takes a while: signals arriving meanwhile make one more, not many

    broadcast = Broadcast(Redis.from_url(SHARED_REDIS), replica_id=name, prefix=prefix, retry_s=0.2)
    task = asyncio.create_task(broadcast.run(seen.append, {"psa_accounts": reload} if reloads is not None else {}))
    try:
        await until(lambda: broadcast.healthy, f"{name} did not subscribe", 10)
        yield broadcast
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await broadcast.redis.aclose()


async def test_events_reach_the_other_replicas_in_order_and_never_come_back() -> None:
    async with key_prefix() as prefix:
        at_a: list[Event] = []
        at_b: list[Event] = []
        async with broadcasting(prefix, "a", at_a) as a, broadcasting(prefix, "b", at_b) as b:
            frames = [Event(session_id="ss_1", seq=n, event="step", data={"n": n}) for n in range(1, 301)]
            for frame in frames[:150]:
                a.share(frame)
            def from_a_thread() -> None:  # as a synchronous route emits
                for frame in frames[150:]:
                    a.share(frame)

            await asyncio.to_thread(from_a_thread)
            await until(lambda: len(at_b) >= 300, "b did not get every event", 10)
            await asyncio.sleep(0.2)
            assert at_b == frames, "in order, each once"
            assert at_a == [], "a replica never acts on its own events"

            b.share(Event(session_id="ss_1", seq=301, event="final_answer", data={"text": "x" * MAX_MESSAGE_BYTES}))
            assert b.dropped == 1, "an event over the size limit is not sent (watchers read it from the store)"
            raw = Redis.from_url(SHARED_REDIS)
            try:
                await raw.publish(b.events_channel, b'{"kind":"event","origin":"x","frame":{"kind":"nope"}}')
                await raw.publish(b.events_channel, b"not json")
                await raw.publish(b.events_channel, json.dumps({"kind": "event", "origin": "x", "frame": {
                    "kind": "event", "session_id": "ss_2", "seq": 1, "event": "started", "data": {}}}))
            finally:
                await raw.aclose()
            await until(lambda: len(at_a) == 1 and len(at_b) == 301, "a valid message after invalid ones was not "
                        "delivered", 10)
            assert at_a[0].session_id == at_b[-1].session_id == "ss_2"


async def test_a_configuration_change_makes_every_other_replica_reload_once() -> None:
    async with key_prefix() as prefix:
        reloads: list[str] = []
        async with broadcasting(prefix, "a", [], reloads) as a, broadcasting(prefix, "b", [], reloads), \
                broadcasting(prefix, "c", [], reloads):
            a.changed("psa_accounts")
            await until(lambda: sorted(reloads) == ["b", "c"], "b and c did not reload", 10)
            for _ in range(20):  # a burst while reloading: coalesced into one more reload each
                a.changed("psa_accounts")
            await asyncio.sleep(0.5)
            assert 4 <= len(reloads) <= 6 and "a" not in reloads, reloads


# --- two servers on one database ------------------------------------------------------------------------

def postgres_schema() -> Generator[str, None, None]:
    return private_schema("relay")


def subscribed(broadcast: Broadcast) -> Callable[[], bool]:
    return lambda: broadcast.healthy


@contextlib.asynccontextmanager
async def two_replicas(tmp: Path, redis: OwnRedis) -> AsyncIterator[tuple[Live, Live]]:
    """Server A (runs tickets) and server B (no workers) on one database and one Redis, sharing their keys."""
    schema = postgres_schema()
    url = next(schema)
    shared: dict[str, Any] = {"database_url": url, "redis_url": redis.url, "jwt_secret": secrets.token_urlsafe(32),
              "secret_key": SecretKey.generate().encoded()}
    try:
        async with live_server(tmp / "a", **shared) as a, live_server(tmp / "b", workers=0, **shared) as b:
            for broadcast in (a.services.broadcast, b.services.broadcast):
                assert broadcast is not None
                await until(subscribed(broadcast), "a replica did not subscribe to the shared channels", 10)
            yield a, b
    finally:
        with contextlib.suppress(StopIteration):
            next(schema)


@dataclass
class Watcher:
    """What one watcher saw: each event with the monotonic time it arrived."""

    seen: list[tuple[Event, float]] = field(default_factory=list)

    def events(self) -> list[str]:
        return [e.event for e, _ in self.seen]

    def seqs(self) -> list[int]:
        return [e.seq for e, _ in self.seen]

    def saw(self, event: str, nth: int = 1) -> bool:
        return self.events().count(event) >= nth


async def socket_watch(live: Live, session_id: str, into: Watcher) -> None:
    """Follow the session on ``live``'s session socket (API key) until its final answer."""
    async with connect(live.ws_url + "/ws/sessions",
                       additional_headers={"Authorization": f"Bearer {live.api_key}"}) as ws:
        await ws.send(encode(Watch(session_id=session_id, after_seq=0)))
        while True:
            frame = decode_session_frame(await ws.recv())
            assert isinstance(frame, Event), frame
            into.seen.append((frame, time.monotonic()))
            if frame.event == "final_answer":
                return


async def sse_watch(console: httpx.AsyncClient, ticket_id: str, session_id: str, into: Watcher) -> None:
    """Follow the ticket's timeline on a signed-in console's server-sent events until its final answer."""
    async with console.stream("GET", f"/tickets/{ticket_id}/events", timeout=120) as stream:
        assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
        async for line in stream.aiter_lines():
            if line.startswith("data: "):
                payload = json.loads(line[6:])
                into.seen.append((Event(session_id=session_id, seq=payload["seq"], event=payload["event"]),
                                  time.monotonic()))
                if payload["event"] == "final_answer":
                    return


async def watch_a_ticket_on_b(a: Live, b: Live, console: httpx.AsyncClient, client: str,
                              tag: str) -> tuple[Watcher, Watcher, Watcher, list[Event]]:
    """A ticket run on A (approved on A), followed on B's socket and B's console; and by a watcher on A, the
    reference for when each event was pushed. Returns the three watchers and the events in the store."""
    r = await a.http.post("/api/tickets", json={"client": client, "subject": f"disk full {tag}",
                                                "body": "no space left", "requester": "maria@acme.example"})
    assert r.status_code == 202, r.text
    ticket_id, session_id = r.json()["ticket_id"], r.json()["session_id"]
    on_a, on_socket, on_console = Watcher(), Watcher(), Watcher()
    tasks = [asyncio.create_task(socket_watch(a, session_id, on_a)),
             asyncio.create_task(socket_watch(b, session_id, on_socket)),
             asyncio.create_task(sse_watch(console, ticket_id, session_id, on_console))]
    try:
        await until(lambda: all(w.saw("approval_request") for w in (on_a, on_socket, on_console)),
                    lambda: f"the approval request did not reach every watcher: {on_a.events()} {on_socket.events()} "
                    f"{on_console.events()}", 60)
        approval = await a.wait_approval()
        # the roster is one for both servers: the technician registered through B approves on A
        decided = await a.http.post(f"/api/approvals/{approval['id']}/approve", json={"approver": DANA["email"]})
        assert decided.status_code == 200, decided.text
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    stored = await asyncio.to_thread(b.services.events.history, session_id)
    final = next(e.seq for e in stored if e.event == "final_answer")
    return on_a, on_socket, on_console, [e for e in stored if e.seq <= final]  # feedback_requested may follow


@pytest.mark.postgres
@pytest.mark.timeout(240)
async def test_a_watcher_on_another_replica_sees_a_session_at_once_and_catches_up_without_redis(
        tmp_path: Path) -> None:
    redis = OwnRedis()
    await redis.start()
    try:
        async with two_replicas(tmp_path, redis) as (a, b):
            client = await a.client()
            make_old_files(tmp_path / "temp", 2)
            await a.start_agent(client, temp_root=tmp_path / "temp")
            register(b, DANA)  # the roster is in the database: A sees Dana too
            console, _ = await signed_in(b, DANA["email"])
            try:
                on_a, on_socket, on_console, stored = await watch_a_ticket_on_b(a, b, console, client, "one")
                every = [e.seq for e in stored]
                assert every == list(range(1, len(every) + 1)) and stored[-1].event == "final_answer"
                for watcher in (on_socket, on_console):
                    assert watcher.seqs() == every, "in order, none missed, none twice"
                pushed_at = {e.seq: t for e, t in on_a.seen}
                decision = next(e.seq for e, _ in on_a.seen if e.event == "approval_decision")
                delays = [t - pushed_at[e.seq] for w in (on_socket, on_console) for e, t in w.seen
                          if e.seq >= decision]
                assert len(delays) >= 4 and max(delays) < PUSHED_S, delays
                print(f"\nanother replica's watcher, behind the run's own: median "
                      f"{statistics.median(delays) * 1000:.1f} ms, max {max(delays) * 1000:.1f} ms over "
                      f"{len(delays)} events")

                redis.stop()
                assert b.services.broadcast is not None
                await until(lambda: b.services.broadcast is not None and not b.services.broadcast.healthy,
                            "B did not notice Redis stopped", 10)
                make_old_files(tmp_path / "temp", 2)  # the first ticket cleaned them: this one asks again
                on_a, on_socket, on_console, stored = await watch_a_ticket_on_b(a, b, console, client, "two")
                every = [e.seq for e in stored]
                assert stored[-1].event == "final_answer"
                for watcher in (on_socket, on_console):
                    assert watcher.seqs() == every, "caught up from the store: in order, none missed, none twice"
                assert not b.services.broadcast.healthy, "Redis stayed down throughout"
            finally:
                await console.aclose()
    finally:
        redis.stop()


@pytest.mark.postgres
@pytest.mark.timeout(180)
async def test_a_psa_account_changed_on_one_replica_applies_at_once_on_the_other(tmp_path: Path) -> None:
    redis = OwnRedis()
    await redis.start()
    try:
        async with two_replicas(tmp_path, redis) as (a, b), \
                run_local_psa(webhook_url=f"{b.url}/webhooks/lpsa", webhook_secret=HOOK, retry_delays=()) as psa:
            assert psa.webhooks is not None
            company = await psa.connector.create_company("Acme Dental")
            r = await a.http.post("/api/clients", json={"name": "Acme Dental", "psa_refs": {"lpsa": company}})
            assert r.status_code == 201, r.text

            async def delivered(status: str, error: str | None = None) -> None:
                ticket = await psa.connector.create_ticket(company, requester="maria@acme.example",
                                                           subject="printer offline")
                assert psa.webhooks is not None
                await psa.webhooks.drain()
                found = [d for d in psa.webhooks.deliveries.values() if d.ticket_id == ticket.id]
                assert [(d.status, d.last_error) for d in found] == [(status, error)]

            added = await a.http.post("/api/psa-accounts", json={
                "name": "lpsa", "kind": "local", "poll_interval_s": 0, "enabled": False,
                "fields": {"base_url": psa.base_url, "token": psa.api_token, "webhook_secret": HOOK}})
            assert added.status_code == 201, added.text
            await until(lambda: [x.name for x in b.services.accounts] == ["lpsa"], "B never saw the account", 5)
            await delivered("failed", "HTTP 409")  # B knows it, disabled

            assert (await a.http.post("/api/psa-accounts/lpsa/enable")).status_code == 200
            took = await until(lambda: "lpsa" in b.services.intake.connectors, "B never enabled the account", 5)
            assert took < PUSHED_S, f"B applied the change after {took:.2f} s"
            await delivered("delivered")  # B's webhook takes the ticket, no restart
            assert "lpsa" in b.services.psa_accounts.connectors.taking

            assert (await a.http.post("/api/psa-accounts/lpsa/disable")).status_code == 200
            await until(lambda: "lpsa" not in b.services.intake.connectors, "B never disabled the account", PUSHED_S)
            await delivered("failed", "HTTP 409")
            assert (await a.http.delete("/api/psa-accounts/lpsa")).status_code == 204
            await until(lambda: "lpsa" not in b.services.psa_accounts.connectors, "B kept the removed account",
                        PUSHED_S)
            await delivered("failed", "HTTP 404")
            assert b.services.accounts == []
    finally:
        redis.stop()


async def test_without_redis_nothing_is_shared(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live:
        assert live.services.broadcast is None and live.services.cluster is None


async def test_a_follower_fills_a_gap_from_the_store_at_once_and_skips_repeats(tmp_path: Path) -> None:
    """SQLite server, no Redis: a pushed event after a lost one makes the follower read the store at once."""
    async with live_server(tmp_path, workers=0) as live:
        client = await live.client()
        r = await live.http.post("/api/tickets", json={"client": client, "subject": "printer offline"})
        assert r.status_code == 202, r.text
        session_id = r.json()["session_id"]
        events, store = live.services.events, live.services.store
        await live.wait_ticket(r.json()["ticket_id"])  # no agent: escalated; nothing more is written to it
        past = events.history(session_id)
        got: list[Event] = []
        follower = events.follow(session_id, 0, catch_up_s=30)
        try:
            while len(got) < len(past):
                got.append(await anext(follower))
            assert got == past
            lost = store.add_event(session_id, "note", {"n": 1})  # written, its push lost
            pushed = store.add_event(session_id, "note", {"n": 2})
            frame = Event(session_id=session_id, seq=pushed.seq, event="note", data={"n": 2})
            started = time.monotonic()
            events.deliver(frame)
            events.deliver(frame)  # the same event twice (a local push and a relayed one)
            first = await asyncio.wait_for(anext(follower), 5)
            second = await asyncio.wait_for(anext(follower), 5)
            assert [first.seq, second.seq] == [lost.seq, pushed.seq] and time.monotonic() - started < PUSHED_S
            events.deliver(Event(session_id=session_id, seq=pushed.seq + 1, event="note", data={}))
            third = await asyncio.wait_for(anext(follower), 5)
            assert third.seq == pushed.seq + 1, "the repeat was skipped, the next one delivered"
        finally:
            await follower.aclose()
