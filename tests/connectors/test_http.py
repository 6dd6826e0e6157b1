"""The shared PSA HTTP plumbing: retries, Retry-After, the rate limiter and error translation.

The network is an ``httpx.MockTransport`` scripted per test; waits go through the fake clock of
``conftest.py``, so nothing here really sleeps.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import TYPE_CHECKING

import httpx
import pytest

from mspclaw.connectors.http import PSAHttp, RateLimiter, backoff_delay, retry_after_seconds
from mspclaw.errors import (
    PSAAuthError,
    PSAError,
    PSANotFound,
    PSARateLimited,
    PSARejected,
    PSAUnavailable,
)

if TYPE_CHECKING:
    from tests.connectors.conftest import FakeTime

pytestmark = pytest.mark.anyio

TOKEN = "tok_secret_do_not_log_42"
Handler = Callable[[httpx.Request], httpx.Response]


def scripted(*answers: httpx.Response | type[Exception]) -> tuple[list[httpx.Request], Handler]:
    """A handler answering each request with the next item; exception classes are raised."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers[min(len(seen), len(answers)) - 1]
        if isinstance(answer, type):
            raise answer("scripted failure", request=request)  # type: ignore[call-arg]
        return answer

    return seen, handler


def client(handler: Handler, fake_time: FakeTime, **kwargs: object) -> PSAHttp:
    return PSAHttp(service="TestPSA", base_url="https://psa.example/api", transport=httpx.MockTransport(handler),
                   headers={"Authorization": f"Bearer {TOKEN}"}, sleep=fake_time.sleep, random=lambda: 0.5,
                   now=lambda: 1_700_000_000.0, **kwargs)  # type: ignore[arg-type]


def ok(data: object = None) -> httpx.Response:
    return httpx.Response(200, json=data or {"ok": True})


# --- retries ------------------------------------------------------------------------------------------


async def test_a_get_is_retried_after_5xx_and_timeouts_with_jittered_backoff(fake_time: FakeTime) -> None:
    seen, handler = scripted(httpx.Response(502), httpx.ReadTimeout, httpx.Response(500), ok())
    async with client(handler, fake_time) as http:
        response = await http.request("GET", "/tickets")
    assert response.json() == {"ok": True}
    assert len(seen) == 4
    assert fake_time.sleeps == [0.25, 0.5, 1.0]  # random()=0.5 times 0.5 * 2**retry


async def test_retries_run_out_into_psa_unavailable_chained_to_the_cause(fake_time: FakeTime) -> None:
    seen, handler = scripted(httpx.Response(503, text="maintenance"))
    async with client(handler, fake_time, max_retries=2) as http:
        with pytest.raises(PSAUnavailable, match=r"503.*maintenance.*after 3 attempts") as info:
            await http.request("GET", "/tickets")
    assert len(seen) == 3
    assert isinstance(info.value.__cause__, httpx.HTTPStatusError)


async def test_a_post_that_timed_out_is_not_repeated(fake_time: FakeTime) -> None:
    seen, handler = scripted(httpx.ReadTimeout, ok())
    async with client(handler, fake_time, timeout=2.0) as http:
        with pytest.raises(PSAUnavailable, match="within 2s") as info:
            await http.request("POST", "/notes", json={"text": "hi"})
    assert len(seen) == 1 and fake_time.sleeps == []
    assert isinstance(info.value.__cause__, httpx.ReadTimeout)


async def test_a_post_is_not_repeated_after_a_5xx(fake_time: FakeTime) -> None:
    seen, handler = scripted(httpx.Response(500), ok())
    async with client(handler, fake_time) as http:
        with pytest.raises(PSAUnavailable):
            await http.request("POST", "/notes", json={})
    assert len(seen) == 1


async def test_a_post_that_never_connected_is_retried(fake_time: FakeTime) -> None:
    seen, handler = scripted(httpx.ConnectError, httpx.ConnectTimeout, ok())
    async with client(handler, fake_time) as http:
        await http.request("POST", "/notes", json={})
    assert len(seen) == 3


async def test_a_post_marked_idempotent_is_retried_after_a_timeout(fake_time: FakeTime) -> None:
    seen, handler = scripted(httpx.ReadTimeout, ok())
    async with client(handler, fake_time) as http:
        await http.request("POST", "/graphql", json={"query": "{ x }"}, idempotent=True)
    assert len(seen) == 2


async def test_4xx_other_than_429_is_never_retried(fake_time: FakeTime) -> None:
    for status, error in ((400, PSARejected), (401, PSAAuthError), (403, PSAAuthError), (404, PSANotFound),
                          (422, PSARejected)):
        seen, handler = scripted(httpx.Response(status, json={"error": "nope"}), ok())
        async with client(handler, fake_time) as http:
            with pytest.raises(error, match=str(status)):
                await http.request("GET", "/tickets/1")
        assert len(seen) == 1, status
    assert fake_time.sleeps == []


# --- Retry-After and 429 -----------------------------------------------------------------------------


async def test_429_waits_exactly_the_retry_after_seconds_even_for_a_post(fake_time: FakeTime) -> None:
    seen, handler = scripted(httpx.Response(429, headers={"Retry-After": "7"}), ok())
    async with client(handler, fake_time) as http:
        await http.request("POST", "/notes", json={})
    assert len(seen) == 2 and fake_time.sleeps == [7.0]


async def test_retry_after_as_an_http_date_is_honoured_on_503(fake_time: FakeTime) -> None:
    when = format_datetime(datetime.fromtimestamp(1_700_000_012, UTC), usegmt=True)
    seen, handler = scripted(httpx.Response(503, headers={"Retry-After": when}), ok())
    async with client(handler, fake_time) as http:
        await http.request("GET", "/tickets")
    assert len(seen) == 2 and fake_time.sleeps == [12.0]


async def test_429_after_the_retries_is_psa_rate_limited_with_the_hint(fake_time: FakeTime) -> None:
    seen, handler = scripted(httpx.Response(429, headers={"Retry-After": "3"}))
    async with client(handler, fake_time) as http:
        with pytest.raises(PSARateLimited) as info:
            await http.request("GET", "/tickets")
    assert len(seen) == 4 and fake_time.sleeps == [3.0, 3.0, 3.0]
    assert info.value.retry_after == 3.0 and info.value.retryable


async def test_a_retry_after_beyond_the_cap_is_not_slept_through(fake_time: FakeTime) -> None:
    seen, handler = scripted(httpx.Response(429, headers={"Retry-After": "3600"}), ok())
    async with client(handler, fake_time, max_retry_after=60.0) as http:
        with pytest.raises(PSARateLimited) as info:
            await http.request("GET", "/tickets")
    assert len(seen) == 1 and fake_time.sleeps == []
    assert info.value.retry_after == 3600.0


async def test_a_check_raising_rate_limited_inside_a_200_is_retried(fake_time: FakeTime) -> None:
    seen, handler = scripted(ok({"errors": ["slow down"]}), ok({"data": 1}))

    def check(response: httpx.Response) -> None:
        if "errors" in response.json():
            raise PSARateLimited("slow down")

    async with client(handler, fake_time) as http:
        response = await http.request("POST", "/graphql", json={}, idempotent=False, check=check)
    assert response.json() == {"data": 1} and len(seen) == 2 and fake_time.sleeps == [0.25]


async def test_a_check_raising_another_error_propagates_at_once(fake_time: FakeTime) -> None:
    seen, handler = scripted(ok())

    def check(response: httpx.Response) -> None:
        raise PSANotFound("no such ticket")

    async with client(handler, fake_time) as http:
        with pytest.raises(PSANotFound, match="no such ticket"):
            await http.request("POST", "/graphql", json={}, idempotent=True, check=check)
    assert len(seen) == 1


async def test_status_errors_reword_a_status(fake_time: FakeTime) -> None:
    _, handler = scripted(httpx.Response(400, text="bad subdomain"))
    rewords = {400: lambda r: PSAAuthError(f"check the sub-domain: {r.text}")}
    async with client(handler, fake_time, status_errors=rewords) as http:
        with pytest.raises(PSAAuthError, match="check the sub-domain: bad subdomain"):
            await http.request("GET", "/x")


def test_retry_after_parsing() -> None:
    assert retry_after_seconds("5") == 5.0
    assert retry_after_seconds(" 1.5 ") == 1.5
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=lambda: 1445412470.0) == 10.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=lambda: 1445412490.0) == 0.0


def test_full_jitter_stays_under_the_capped_exponential() -> None:
    assert backoff_delay(0, base=0.5, cap=30, random=lambda: 0.999) < 0.5
    assert backoff_delay(3, base=0.5, cap=30, random=lambda: 1.0) == 4.0
    assert backoff_delay(10, base=0.5, cap=30, random=lambda: 1.0) == 30.0
    assert backoff_delay(10, base=0.5, cap=30, random=lambda: 0.0) == 0.0


# --- rate limiter ------------------------------------------------------------------------------------


async def test_the_rate_limiter_never_lets_more_than_n_through_in_any_window(fake_time: FakeTime) -> None:
    limiter = RateLimiter(5, 1.0, clock=fake_time.clock, sleep=fake_time.sleep)
    moments = []
    for _ in range(12):
        await limiter.acquire()
        moments.append(fake_time.now)
    assert moments[:5] == [1000.0] * 5
    assert moments[5:10] == [1001.0] * 5 and moments[10:] == [1002.0] * 2
    assert all(sum(1 for m in moments if start <= m < start + 1.0) <= 5 for start in moments)


async def test_every_attempt_spends_the_rate_limit(fake_time: FakeTime) -> None:
    limiter = RateLimiter(2, 10.0, clock=fake_time.clock, sleep=fake_time.sleep)
    _, handler = scripted(httpx.Response(502), ok())
    async with client(handler, fake_time, rate_limiter=limiter) as http:
        await http.request("GET", "/a")  # two attempts: the window is full
        await http.request("GET", "/b")
    # backoff 0.25 s after the 502; the third request waits until the first (at t=0) leaves the window
    assert fake_time.sleeps == [0.25, pytest.approx(9.75)]


# --- secrets ----------------------------------------------------------------------------------------


async def test_no_log_line_or_error_carries_the_token_and_ours_omit_the_query_string(
        fake_time: FakeTime, caplog: pytest.LogCaptureFixture) -> None:
    _, handler = scripted(httpx.Response(503), httpx.ConnectError, httpx.Response(401, text="invalid"))
    caplog.set_level(logging.DEBUG)
    async with client(handler, fake_time) as http:
        with pytest.raises(PSAError) as info:
            await http.request("GET", "/tickets", params={"apikey": "qs_secret_1"})
    assert isinstance(info.value, PSAAuthError)
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("mspclaw"))
    assert "retry 2/3" in ours
    assert TOKEN not in caplog.text and TOKEN not in str(info.value)
    assert "qs_secret_1" not in ours and "qs_secret_1" not in str(info.value)
