"""What any input may cost: field limits on REST and the session socket, body limits while reading,
a rate per source for webhooks, and refusals that are counted rather than each audited."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import live_server
from websockets.asyncio.client import connect

from mspclaw.api.rate_limit import TokenBuckets
from mspclaw.pipeline.refusals import Refusals, source_of
from mspclaw.protocol.codec import decode_session_frame, encode
from mspclaw.protocol.frames import Error, Event, Start
from mspclaw.protocol.limits import BODY_MAX, REQUESTER_MAX, SEQ_MAX, SUBJECT_MAX

pytestmark = pytest.mark.anyio

OVER = [("subject", "s" * (SUBJECT_MAX + 1), SUBJECT_MAX), ("body", "b" * (BODY_MAX + 1), BODY_MAX),
        ("requester", "r" * (REQUESTER_MAX + 1), REQUESTER_MAX)]


async def test_rest_and_socket_refuse_the_same_fields_naming_field_and_limit(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live:
        client = await live.client()
        auth = {"Authorization": f"Bearer {live.api_key}"}
        async with connect(live.ws_url + "/ws/sessions", additional_headers=auth, max_size=None) as ws:
            for field, value, limit in OVER:
                fields = {"subject": "printer offline", field: value}
                r = await live.http.post("/api/tickets", json={"client": client, **fields})
                assert r.status_code == 422, r.text
                message = r.json()["detail"]["message"]
                assert field in message and f"{limit}" in message, message
                await ws.send(json.dumps({"kind": "start", "client_id": client, **fields}))
                frame = decode_session_frame(await asyncio.wait_for(ws.recv(), 10))
                assert isinstance(frame, Error), frame
                assert field in frame.message and f"{limit}" in frame.message, frame.message
            # at the limits both take the ticket
            at = {"subject": "s" * SUBJECT_MAX, "body": "b" * BODY_MAX, "requester": "r" * REQUESTER_MAX}
            r = await live.http.post("/api/tickets", json={"client": client, **at})
            assert r.status_code == 202, r.text
            await ws.send(encode(Start(client_id=client, **at)))
            frame = decode_session_frame(await asyncio.wait_for(ws.recv(), 10))
            assert isinstance(frame, Event) and frame.event == "started", frame
        assert len(live.services.store.tickets()) == 2


async def test_a_huge_socket_subject_is_refused_at_once_and_the_server_stays_up(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live:
        client = await live.client()
        auth = {"Authorization": f"Bearer {live.api_key}"}
        async with connect(live.ws_url + "/ws/sessions", additional_headers=auth, max_size=None) as ws:
            await ws.send(json.dumps({"kind": "start", "client_id": client, "subject": "x" * 900_000}))
            frame = decode_session_frame(await asyncio.wait_for(ws.recv(), 5))
            assert isinstance(frame, Error) and "subject" in frame.message
            await ws.send(json.dumps({"kind": "watch", "session_id": "s", "after_seq": 2**70}))
            frame = decode_session_frame(await asyncio.wait_for(ws.recv(), 5))
            assert isinstance(frame, Error) and "after_seq" in frame.message
        assert (await live.http.get("/healthz")).status_code == 200
        assert live.services.store.tickets() == []


async def test_audit_query_integers_are_bounded(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live:
        for huge in (SEQ_MAX + 1, 2**63, 10**30):
            r = await live.http.get("/api/audit", params={"after_seq": huge})
            assert r.status_code == 422, (huge, r.text)
            assert "after_seq" in r.json()["detail"]["message"]
        assert (await live.http.get("/api/audit", params={"after_seq": SEQ_MAX})).status_code == 200


async def _stream(total: int, sent: list[int], chunk: int = 64 * 1024) -> AsyncIterator[bytes]:
    block = b"x" * chunk
    while sent[0] < total:
        sent[0] += chunk
        yield block


async def _declare(url: str, path: str, length: int) -> tuple[int, dict[str, Any]]:
    """Send only the headers of a POST declaring ``length`` bytes of body; return the answer."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {length}\r\n\r\n".encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        size = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:"))
        body = await asyncio.wait_for(reader.readexactly(size), 10)
        return int(head.split(b" ")[1]), json.loads(body)
    finally:
        writer.close()


async def test_bodies_over_the_limit_are_refused_while_read_and_before_authentication(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live:
        limit = live.services.settings.max_body_bytes
        async with httpx.AsyncClient(base_url=live.url, timeout=30) as anon:
            for path in ("/api/tickets", "/webhooks/local", "/auth/login"):
                # a declared length over the limit: refused before a byte of the body is sent
                status, answer = await _declare(live.url, path, 400 * 1024 * 1024)
                assert status == 413, (path, answer)
                assert answer["detail"]["code"] == "body_too_large"
                assert f"{limit:,}-byte limit" in answer["detail"]["message"]
                # no declared length (chunked): refused once the limit is crossed, the rest is never read
                sent = [0]
                try:
                    r = await anon.post(path, content=_stream(400 * 1024 * 1024, sent))
                except httpx.TransportError:
                    pass  # the server closed the connection while the client was still sending: also a refusal
                else:
                    assert r.status_code == 413, (path, r.text)
                assert sent[0] < 64 * 1024 * 1024, f"the server read {sent[0]:,} bytes of {path}"
        assert live.services.audit.query(kind="api_refused") == []  # refused before authentication ran
        assert (await live.http.get("/healthz")).status_code == 200


def test_token_buckets_refill_at_their_rate_and_stay_bounded() -> None:
    now = [0.0]
    buckets = TokenBuckets(rate=2.0, burst=3, max_keys=100, clock=lambda: now[0])
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)
    assert buckets.take("b") == 0.0  # another source has its own bucket
    now[0] += 0.5
    assert buckets.take("a") == 0.0
    for i in range(1000):
        buckets.take(f"k{i}")
    assert len(buckets) == 100  # memory stays bounded however many sources there are
    assert source_of("2001:db8::1") == source_of("2001:db8::ffff") == "2001:db8::/64"
    assert source_of("::ffff:10.0.0.1") == "10.0.0.1"


async def test_webhook_deliveries_are_rate_limited_per_source_with_retry_after(tmp_path: Path) -> None:
    async with live_server(tmp_path, webhook_burst=5, webhook_rate_per_s=0.5) as live:
        async with httpx.AsyncClient(base_url=live.url) as anon:
            answers = [await anon.post("/webhooks/local", content=b"{}") for _ in range(8)]
        assert [r.status_code for r in answers[:5]] == [404] * 5  # no such PSA here: each was read
        assert [r.status_code for r in answers[5:]] == [429] * 3
        assert int(answers[5].headers["retry-after"]) >= 1
        assert "send again in" in answers[5].json()["detail"]["message"]
        assert (await live.http.get("/healthz")).status_code == 200  # other routes are not limited


async def test_bad_credentials_are_counted_and_audited_once_a_minute_per_source(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live:
        async with httpx.AsyncClient(base_url=live.url) as anon:
            for i in range(200):
                r = await anon.get("/api/tickets", headers={"Authorization": f"Bearer guess-{i:04}"})
                assert r.status_code == 401
        refusals = live.services.intake.refusals
        assert refusals.counts()["api_refused"] == 200
        [event] = live.services.audit.query(kind="api_refused")
        assert event.actor == "127.0.0.1" and event.data["path"] == "/api/tickets"
        assert "guess-" not in json.dumps(event.data)  # the credential tried is never kept


async def test_after_a_window_the_next_event_says_how_many_were_suppressed(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live:
        now = [0.0]
        refusals = Refusals(live.services.audit, window_s=60, max_events=3, clock=lambda: now[0])
        audited = [await refusals.refused("api_refused", "10.0.0.1", code="unauthorized", data={"path": "/api/x"})
                   for _ in range(50)]
        assert audited == [True] + [False] * 49
        now[0] = 61.0
        assert await refusals.refused("api_refused", "10.0.0.1", code="unauthorized", data={"path": "/api/x"})
        # many sources at once: at most max_events chained events in a window, the rest only counted
        audited = [await refusals.refused("api_refused", f"10.1.0.{i}", code="unauthorized", data={})
                   for i in range(20)]
        assert sum(audited) == 2
        events = live.services.audit.query(kind="api_refused")
        assert [e.data["suppressed_before"] for e in events] == [0, 49, 0, 0]
        assert refusals.counts() == {"api_refused": 71, "audited": 4, "suppressed": 67}


async def test_accepted_deliveries_give_their_token_back_so_only_refusals_spend_a_sources_budget() -> None:
    """A PSA sending a genuine backlog is never throttled; a source sending forgeries is, after its burst."""
    from mspclaw.api.rate_limit import SourceRateLimit

    async def psa_route(scope: Any, receive: Any, send: Any) -> None:
        status = 202 if scope["path"].endswith("/genuine") else 401
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app = SourceRateLimit(psa_route, prefix="/webhooks/", buckets=TokenBuckets(rate=0.001, burst=3))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://psa") as client:
        genuine = [(await client.post("/webhooks/x/genuine")).status_code for _ in range(50)]
        forged = [(await client.post("/webhooks/x/forged")).status_code for _ in range(5)]
    assert genuine == [202] * 50
    assert forged == [401, 401, 401, 429, 429]
