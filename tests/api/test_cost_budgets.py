"""Cost budgets: huge and adversarial values through REST, the session socket and webhooks.

Every input gets a bounded answer (never a 5xx) within a time budget, the work a ticket can cause
(decoding, clipping, matching) stays within time and memory budgets, and the server keeps
answering ``/healthz`` while oversized bodies, bad credentials and maximum-size tickets arrive
all at once. Budgets are generous bounds, tens of times what a healthy run takes, so a slow CI
machine never fails them and a quadratic path or a body read whole always does.

The server under test is real (uvicorn on loopback, in this test's event loop); hypothesis drives
blocking clients in a worker thread, so the loop keeps serving meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import live_server
from tests.pipeline.test_intake import psa_and_server
from websockets.sync.client import connect

from mspclaw.api.routes.webhooks import MAX_WEBHOOK_BYTES
from mspclaw.errors import ProtocolError
from mspclaw.playbooks.catalogue import load_catalogue
from mspclaw.playbooks.matcher import match
from mspclaw.protocol.codec import decode_session_frame
from mspclaw.protocol.limits import BODY_MAX, SUBJECT_MAX, clip

pytestmark = [
    pytest.mark.anyio,
    # A failing example of megabytes would otherwise fail on hypothesis's "overly large repr" warning and hide
    # the real failure.
    pytest.mark.filterwarnings("ignore:Generating overly large repr:hypothesis.errors.HypothesisWarning"),
]

REQUEST_BUDGET_S = 10.0
"""Longest any one fuzzed request may take to be answered (a healthy one takes milliseconds)."""
MATCH_BUDGET_S = 2.0
"""Longest matching one maximum-size ticket may take (measured: a few milliseconds)."""
MATCH_MEMORY_BUDGET = 64 * 1024 * 1024
"""Most Python memory matching one maximum-size ticket may allocate at its peak."""
HEALTH_BUDGET_S = 5.0
"""Longest ``/healthz`` may take while the server is flooded (measured: about 1 s at worst, in this
process, which also runs the flooding clients and shares its GIL with the matcher's threads)."""
HEALTH_MEDIAN_BUDGET_S = 1.0
"""The median ``/healthz`` under the flood (measured: 50 to 130 ms). An event loop stalled by a ticket
for seconds, as it was before matching went to a thread, is blocked most of the time and fails it."""
FLOOD_MEMORY_BUDGET = 256 * 1024 * 1024
"""Most the process's resident memory may grow while thirty 400 MB bodies are offered to it."""
READ_PER_REFUSED_BODY = 16 * 1024 * 1024
"""Most a client gets to send of a refused body: the 1 MiB limit plus loopback socket buffers."""

FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Pieces attackers and mail clients produce: long words (the matcher's old quadratic case), combining
# marks, control characters, emoji, markup, format strings, injections, whitespace runs.
PIECES = st.sampled_from([
    "a", "printer", "outlook ", "passwort=", "é", "\u0301", "\x00", "\x1b[31m", "😀", "\u202e", "<script>",
    "' OR 1=1 --", "%s%n", "${jndi:ldap://x}", "\r\n", "\t", " ", "[bold]", "\\", '"', "ｆｕｌｌ",
]) | st.text(max_size=12)


class Repeated:
    """A big body built from a few pieces repeated: shown by its recipe, never whole, in a failing example."""

    def __init__(self, parts: list[str], times: int, cap: int) -> None:
        self.parts, self.times, self.cap = parts, times, cap

    def encode(self) -> bytes:
        return ("".join(self.parts) * self.times)[:self.cap].encode()

    def __repr__(self) -> str:
        return f"Repeated({self.parts!r}, times={self.times}, cap={self.cap})"


def huge(cap: int) -> st.SearchStrategy[str]:
    """Strings up to ``cap`` characters built from repeated pieces (big values, cheap to generate)."""
    return st.builds(lambda parts, times: ("".join(parts) * times)[:cap],
                     st.lists(PIECES, min_size=1, max_size=4), st.integers(1, cap))


TEXT = st.one_of(st.text(max_size=50), huge(600), huge(BODY_MAX + 1000), huge(400_000))
VALUE = st.one_of(TEXT, st.none(), st.integers(-(2**80), 2**80), st.floats(), st.booleans(),
                  st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=3))


def timed(call: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started


# -- the work one ticket can cause --------------------------------------------------------------
ADVERSARIAL_TICKETS = [
    ("x" * SUBJECT_MAX, "a" * BODY_MAX),  # one giant word
    ("printer " * 62, ("abcdefghij" * 4 + " ") * (BODY_MAX // 41)),  # long words, repeated
    ("é\u0301" * 250, "\u0301" * BODY_MAX),  # combining marks only
    (" ".join(f"w{i:07d}xyz" for i in range(40)), " ".join(f"word{i:08d}q" for i in range(BODY_MAX // 14))),
]


@pytest.mark.parametrize(("subject", "body"), ADVERSARIAL_TICKETS, ids=["giant_word", "long_words",
                                                                         "combining", "distinct_words"])
def test_matching_a_maximum_size_ticket_stays_within_time_and_memory(subject: str, body: str) -> None:
    books = load_catalogue()
    match(books, "warm up", "printer offline")
    tracemalloc.start()
    try:
        _, took = timed(lambda: match(books, subject[:SUBJECT_MAX], body[:BODY_MAX]))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert took < MATCH_BUDGET_S, f"matching took {took:.2f} s"
    assert peak < MATCH_MEMORY_BUDGET, f"matching allocated {peak / 2**20:.0f} MiB at its peak"


@FUZZ
@given(text=TEXT)
def test_clipping_and_decoding_any_text_is_cheap_and_bounded(text: str) -> None:
    clipped, took = timed(lambda: clip(text, BODY_MAX))
    assert len(clipped.text) <= BODY_MAX and took < 1.0
    frame = json.dumps({"kind": "start", "client_id": "c", "subject": text, "body": text})
    try:
        _, took = timed(lambda: decode_session_frame(frame))
    except ProtocolError as exc:
        assert exc.message  # refused with a reason: over a field limit or over the frame limit
    else:
        assert len(text) <= SUBJECT_MAX and took < 1.0


# -- REST, socket and webhook inputs against a real server --------------------------------------
async def test_fuzzed_rest_tickets_get_bounded_answers_in_time(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live:
        client = await live.client()
        tried: list[int] = []

        @FUZZ
        @given(fields=st.fixed_dictionaries({"subject": VALUE}, optional={
            "client": st.one_of(st.just(client), VALUE), "body": VALUE, "requester": VALUE, "device": VALUE}),
            raw=st.one_of(st.none(), st.sampled_from([b"[" * 100_000, b'{"subject": ' * 50_000, b"\xff\xfe" * 1000,
                                                      b'{"a":' + b"1" * 900_000 + b"}"])))
        def post(fields: dict[str, Any], raw: bytes | None) -> None:
            fields.setdefault("client", client)
            with httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {live.api_key}"},
                              timeout=REQUEST_BUDGET_S * 3) as http:
                content = raw if raw is not None else json.dumps(fields, allow_nan=True).encode()
                r, took = timed(lambda: http.post("/api/tickets", content=content,
                                                  headers={"Content-Type": "application/json"}))
            tried.append(r.status_code)
            assert r.status_code in (202, 400, 404, 409, 413, 422), (r.status_code, r.text[:300])
            assert took < REQUEST_BUDGET_S, f"{took:.1f} s for a {len(content):,}-byte ticket"
            if r.status_code != 202:
                assert r.json()["detail"]["message"]

        await asyncio.to_thread(post)
        assert len(tried) >= 60 and 202 in tried and 422 in tried
        assert (await live.http.get("/healthz")).status_code == 200


async def test_fuzzed_start_frames_get_an_answer_in_time(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live:
        client = await live.client()
        answers: list[str] = []

        @FUZZ
        @given(fields=st.fixed_dictionaries({"subject": VALUE}, optional={
            "client_id": st.one_of(st.just(client), VALUE), "body": VALUE, "requester": VALUE, "device": VALUE}))
        def start(fields: dict[str, Any]) -> None:
            fields.setdefault("client_id", client)
            frame = json.dumps({"kind": "start", **fields}, allow_nan=True)
            with connect(live.ws_url + "/ws/sessions", additional_headers={"Authorization": f"Bearer {live.api_key}"},
                         max_size=None, open_timeout=REQUEST_BUDGET_S) as ws:
                ws.send(frame)
                reply, took = timed(lambda: json.loads(ws.recv(timeout=REQUEST_BUDGET_S)))
            answers.append(reply["kind"] if reply["kind"] == "error" else reply["event"])
            assert reply["kind"] == "error" or reply["event"] == "started", reply
            assert took < REQUEST_BUDGET_S, f"{took:.1f} s for a {len(frame):,}-byte frame"

        await asyncio.to_thread(start)
        assert len(answers) >= 60 and "error" in answers and "started" in answers
        assert (await live.http.get("/healthz")).status_code == 200


async def test_fuzzed_webhook_deliveries_get_bounded_answers_in_time(tmp_path: Path) -> None:
    async with psa_and_server(tmp_path, workers=0, webhook_burst=10_000) as (_psa, live):
        seen: list[int] = []

        @FUZZ
        @given(body=st.one_of(st.binary(max_size=200), st.builds(Repeated, st.lists(PIECES, min_size=1, max_size=4),
                                                                 st.integers(1, 2 * 1024 * 1024),
                                                                 st.just(2 * 1024 * 1024))),
               headers=st.dictionaries(st.sampled_from(["X-LocalPSA-Signature", "X-LocalPSA-Timestamp",
                                                        "Content-Type", "X-Anything"]),
                                       st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=200)))
        def deliver(body: bytes | Repeated, headers: dict[str, str]) -> None:
            content = body.encode() if isinstance(body, Repeated) else body
            with httpx.Client(base_url=live.url, timeout=REQUEST_BUDGET_S * 3) as anon:
                started = time.perf_counter()
                try:
                    r = anon.post("/webhooks/local", content=content, headers=headers)
                except httpx.TransportError:
                    # Over the limit, the 413 goes out before the body is read and the connection closes; a
                    # client still sending may see the close (a reset) instead of the answer. Refused either way.
                    assert len(content) > MAX_WEBHOOK_BYTES, f"a {len(content):,}-byte body lost its connection"
                    seen.append(413)
                    return
                took = time.perf_counter() - started
            seen.append(r.status_code)
            assert r.status_code in (400, 401, 413, 422), (r.status_code, r.text[:300])
            assert took < REQUEST_BUDGET_S

        await asyncio.to_thread(deliver)
        assert len(seen) >= 60 and 401 in seen and 413 in seen
        assert live.services.jobs.list() == []
        assert len(live.services.audit.query(kind="webhook_refused")) <= 3  # counted, not each audited


# -- the server stays responsive while all of it arrives at once --------------------------------
async def _oversized(url: str, path: str, count: int) -> int:
    """Stream ``count`` bodies of 400 MB each (no Content-Length); return the bytes the server took."""
    taken = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal taken
        block = b"x" * 65536
        for _ in range(400 * 16):
            taken += len(block)
            yield block

    async with httpx.AsyncClient(base_url=url, timeout=30) as anon:
        for _ in range(count):
            try:
                r = await anon.post(path, content=chunks(), headers={"Authorization": "Bearer nope"})
                assert r.status_code in (413, 429), r.status_code
            except httpx.TransportError:
                pass  # closed on us mid-body: refused
    return taken


async def _bad_credentials(url: str, count: int) -> list[int]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as anon:
        return [(await anon.get("/api/tickets", headers={"Authorization": f"Bearer guess{i}"})).status_code
                for i in range(count)]


async def _max_tickets(live: Any, client: str, count: int) -> list[int]:
    """Maximum-size tickets, the costliest to match of :data:`ADVERSARIAL_TICKETS` in turn."""
    return [(await live.http.post("/api/tickets", json={"client": client, "subject": subject,
                                                         "body": body})).status_code
            for i in range(count) for subject, body in [ADVERSARIAL_TICKETS[i % len(ADVERSARIAL_TICKETS)]]]


def _rss() -> int:
    """This process's resident memory now, in bytes (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def test_the_server_answers_healthz_while_flooded(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live:
        client = await live.client()
        rss_before = rss_peak = _rss()
        flood = [asyncio.create_task(coro) for coro in (
            *(_oversized(live.url, path, 5) for path in ("/webhooks/local", "/api/tickets", "/auth/login") * 2),
            *(_bad_credentials(live.url, 300) for _ in range(4)),
            _max_tickets(live, client, 20),
        )]
        latencies = []
        async with httpx.AsyncClient(base_url=live.url, timeout=30) as probe:
            while not all(task.done() for task in flood):
                started = time.perf_counter()
                assert (await probe.get("/healthz")).status_code == 200
                latencies.append(time.perf_counter() - started)
                rss_peak = max(rss_peak, _rss())
                await asyncio.sleep(0.05)
        results = await asyncio.gather(*flood)
        offered = sum(r for r in results if isinstance(r, int))
        assert offered < 30 * READ_PER_REFUSED_BODY, f"the server read {offered:,} bytes of 12 GB offered"
        assert all(isinstance(r, list) and set(r) == {401} for r in results[6:10]), "bad credentials"
        assert isinstance(results[10], list) and set(results[10]) == {202}, "maximum-size tickets"
        latencies.sort()
        assert len(latencies) >= 5 and latencies[-1] < HEALTH_BUDGET_S, f"healthz took up to {latencies[-1]:.2f} s"
        median = latencies[len(latencies) // 2]
        assert median < HEALTH_MEDIAN_BUDGET_S, f"healthz median {median:.2f} s"
        assert rss_peak - rss_before < FLOOD_MEMORY_BUDGET, f"memory grew {(rss_peak - rss_before) / 2**20:.0f} MiB"
        assert len(live.services.audit.query(kind="api_refused")) == 1  # 1,200+ refusals, one chained event
