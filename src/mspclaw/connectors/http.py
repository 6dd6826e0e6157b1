"""Shared HTTP plumbing for every PSA connector: timeouts, retries, rate limits, error translation.

A connector builds one :class:`PSAHttp` and sends every request through :meth:`PSAHttp.request`.
Nothing in here knows which PSA it talks to; a connector adapts it with hooks (``status_errors``
to reword a status, ``check`` to read errors that arrive inside a 2xx answer, as GraphQL does).

**Retries.** At most ``max_retries`` retries (four attempts in all by default). Between attempts
we wait the server's ``Retry-After`` (seconds or an HTTP date) when a 429 or 503 carries one,
otherwise a backoff with full jitter: ``random() * min(cap, base * 2**retry)``. A ``Retry-After``
longer than ``max_retry_after`` is not slept through: :class:`~mspclaw.errors.PSARateLimited` or
:class:`~mspclaw.errors.PSAUnavailable` is raised at once, carrying the hint, so the job queue
reschedules instead of holding a worker.

Which failures are retried depends on whether repeating the request is safe:

===============================================  ==========================  ===========================
failure                                          idempotent request          non-idempotent request
===============================================  ==========================  ===========================
connection refused / connect or pool timeout     retried                     retried (nothing was sent)
HTTP 429, or ``check`` raised PSARateLimited     retried                     retried (the server did
                                                                             not act on it)
read/write timeout, connection lost mid-way      retried                     **not** retried
HTTP 500/502/503/504, ``check`` raised           retried                     **not** retried
PSAUnavailable, a body that does not decode
any other status                                 not retried                 not retried
===============================================  ==========================  ===========================

A request is idempotent when its method is GET, HEAD, OPTIONS, PUT or DELETE, unless the caller
says otherwise with ``idempotent=`` (a GraphQL query travels as a POST but is safe to repeat; a
mutation is not). A non-idempotent write that timed out may have happened: the connector makes
the *operation* idempotent (it looks before it writes), so the job that retries it later is safe.

**Rate limit.** An optional :class:`RateLimiter` (a sliding window: at most N requests in any
period) is waited on before every attempt, retries included, so we never exceed the PSA's quota.

**Errors.** After the retries, failures become the PSA branch of :mod:`mspclaw.errors`, always
chained to the foreign exception: 401/403 → :class:`~mspclaw.errors.PSAAuthError`, 404 →
:class:`~mspclaw.errors.PSANotFound`, 429 → :class:`~mspclaw.errors.PSARateLimited`, 5xx,
timeouts, connection failures (a proxy's included), broken HTTP framing and a body that does
not decode → :class:`~mspclaw.errors.PSAUnavailable`, any other 4xx →
:class:`~mspclaw.errors.PSARejected`. An answer whose JSON does not fit the connector's model is
:class:`~mspclaw.errors.PSAError` (:mod:`mspclaw.connectors.payload`).

**Secrets.** Headers are never logged nor put into messages, and URLs appear without their
query string; log lines and errors name the method and the path only.
"""

from __future__ import annotations

import asyncio
import logging
import random as _random
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Final, Self

import httpx

from mspclaw.connectors.transport import default_transport
from mspclaw.errors import (
    PSAAuthError,
    PSAError,
    PSANotFound,
    PSARateLimited,
    PSARejected,
    PSAUnavailable,
)
from mspclaw.observability.metrics import psa_request

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
"""``asyncio.sleep`` or a test's fake that records the wait and advances a fake clock."""
Clock = Callable[[], float]
"""Seconds: ``time.monotonic`` for the rate limiter, ``time.time`` for HTTP dates."""
ErrorFactory = Callable[[httpx.Response], PSAError]
"""Turns a final non-2xx answer into the exception to raise (a connector's rewording of a status)."""
ResponseCheck = Callable[[httpx.Response], None]
"""Reads a 2xx answer and raises a :class:`PSAError` when it carries an error after all."""

IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRYABLE_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
"""Transport failures that happen before a single byte of the request left this machine."""
_PLAIN_PATH = re.compile(r"/(?!/)(?:[A-Za-z0-9\-_~/]|\.(?![./]|$)|(?<!/)\.|%[0-9A-Fa-f]{2})*")
"""A relative URL that is a path only, of characters httpx's URL parsing leaves as they are, and no ``.`` or
``..`` segment (which it would resolve): see :meth:`PSAHttp._absolute`."""


class RateLimiter:
    """At most ``limit`` acquisitions in any window of ``period`` seconds (a sliding-window log).

    Share one limiter between every client that spends the same quota (SuperOps counts per API
    token). Waiters are served one at a time, in arrival order.
    """

    def __init__(self, limit: int, period: float, *, clock: Clock = time.monotonic,
                 sleep: Sleep = asyncio.sleep) -> None:
        if limit < 1 or period <= 0:
            raise ValueError(f"a rate limit needs limit >= 1 and period > 0, not {limit}/{period}s")
        self.limit = limit
        self.period = period
        self._clock = clock
        self._sleep = sleep
        self._stamps: deque[float] = deque()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Wait until one more request fits in the window, then count it."""
        async with self._lock:
            while True:
                now = self._clock()
                while self._stamps and self._stamps[0] <= now - self.period:
                    self._stamps.popleft()
                if len(self._stamps) < self.limit:
                    self._stamps.append(now)
                    return
                await self._sleep(max(self._stamps[0] + self.period - now, 0.001))


def retry_after_seconds(value: str | None, *, now: Clock = time.time) -> float | None:
    """A ``Retry-After`` header in seconds from now: delta-seconds or an HTTP date; ``None`` when
    absent or unreadable. A date in the past means zero."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(float(text), 0.0)
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return max(moment.timestamp() - now(), 0.0)


def backoff_delay(retry: int, *, base: float, cap: float, random: Callable[[], float]) -> float:
    """Full jitter: a uniform wait in ``[0, min(cap, base * 2**retry))`` before retry ``retry`` (0-based)."""
    return random() * min(cap, base * 2.0**retry)


def translate_status(service: str, response: httpx.Response) -> PSAError:
    """The exception for a final non-2xx answer (see the module docstring for the table)."""
    status = response.status_code
    where = f"{response.request.method} {response.request.url.path}"
    detail = _excerpt(response)
    if status in (401, 403):
        return PSAAuthError(f"{service} refused our credentials ({status}) on {where}: {detail}")
    if status == 404:
        return PSANotFound(f"{service} has no such record ({where}, 404): {detail}")
    if status == 429:
        hint = retry_after_seconds(response.headers.get("retry-after"))
        return PSARateLimited(f"{service} is rate limiting us (429 on {where}): {detail}", retry_after=hint)
    if status >= 500:
        return PSAUnavailable(f"{service} failed ({status}) on {where}: {detail}")
    if 400 <= status < 500:
        return PSARejected(f"{service} rejected {where} ({status}): {detail}")
    return PSAError(f"{service} answered {where} with an unexpected {status}: {detail}")


def _excerpt(response: httpx.Response, limit: int = 300) -> str:
    text = " ".join(response.text.split())
    if not text:
        return response.reason_phrase or "no body"
    return text if len(text) <= limit else text[:limit] + "…"


class PSAHttp:
    """An ``httpx.AsyncClient`` with the retry, rate-limit and error rules of this module.

    ``service`` names the PSA in messages only. Requests go through
    :class:`~mspclaw.connectors.transport.StreamTransport`, or through the proxy the environment
    names for the PSA's host (:mod:`mspclaw.connectors.proxies`). ``transport`` replaces the network
    (``httpx.MockTransport``, ``httpx.ASGITransport``); ``sleep``, ``random`` and ``now`` replace
    waiting, jitter and the wall clock so tests never really wait.
    """

    def __init__(self, *, service: str, base_url: str, headers: Mapping[str, str] | None = None,
                 timeout: float = 30.0, max_retries: int = 3, backoff_base: float = 0.5, backoff_cap: float = 30.0,
                 max_retry_after: float = 60.0, rate_limiter: RateLimiter | None = None,
                 status_errors: Mapping[int, ErrorFactory] | None = None,
                 transport: httpx.AsyncBaseTransport | None = None, sleep: Sleep = asyncio.sleep,
                 random: Callable[[], float] = _random.random, now: Clock = time.time) -> None:
        self.service = service
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_retry_after = max_retry_after
        self.rate_limiter = rate_limiter
        self.base_url = base_url
        self._status_errors = dict(status_errors or {})
        self._sleep = sleep
        self._random = random
        self._now = now
        self._transport = transport or default_transport()
        """Requests go straight to it (see :meth:`_send`)."""
        self._client = httpx.AsyncClient(base_url=base_url, headers=dict(headers or {}),
                                         transport=self._transport,
                                         timeout=httpx.Timeout(timeout), follow_redirects=False)
        base = self._client.base_url
        prefix = str(base)
        self._prefix = prefix if prefix.endswith("/") and not base.query and not base.fragment else None
        """The base URL as httpx holds it (with its trailing ``/``): a path is appended to it (:meth:`_absolute`)."""

    async def __aenter__(self) -> PSAHttp:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    @psa_request  # requests, errors and latency per PSA, for /metrics
    async def request(self, method: str, url: str = "", *, json: Any = None,
                      params: Mapping[str, str | int] | None = None, headers: Mapping[str, str] | None = None,
                      idempotent: bool | None = None, check: ResponseCheck | None = None,
                      data: Mapping[str, str] | None = None) -> httpx.Response:
        """Send a request under the retry and rate-limit rules; return its 2xx answer or raise a PSAError.

        ``data`` sends a form (``application/x-www-form-urlencoded``) instead of ``json``.
        ``idempotent`` overrides the method's default (see the module docstring). ``check`` reads
        each 2xx answer and may raise: :class:`PSARateLimited` is retried like a 429,
        :class:`PSAUnavailable` like a 503, anything else propagates at once.
        """
        safe = method.upper() in IDEMPOTENT_METHODS if idempotent is None else idempotent
        retry = 0
        while True:
            if self.rate_limiter is not None:
                await self.rate_limiter.acquire()
            absolute = self._absolute(url, params)
            if absolute is not None:  # the URL httpx would build, parsed once instead of three times
                request = self._client.build_request(method, absolute, json=json, headers=headers, data=data)
            else:  # ``url=""`` means the base URL exactly as given (httpx would add a trailing slash to it).
                request = self._client.build_request(method, url or self.base_url, json=json, params=params,
                                                     headers=headers, data=data)
            where = f"{request.method} {request.url.path}"
            failure: PSAError
            cause: BaseException | None = None
            hint: float | None = None
            try:
                response = await self._send(request)
            except _NOT_SENT as exc:
                failure = PSAUnavailable(f"{self.service} is unreachable ({where}): {exc!r}")
                cause, may_retry = exc, True
            except httpx.TimeoutException as exc:
                failure = PSAUnavailable(f"{self.service} did not answer {where} within {self.timeout:g}s")
                cause, may_retry = exc, safe
            except httpx.TransportError as exc:
                failure = PSAUnavailable(f"{self.service} connection failed during {where}: {exc!r}")
                cause, may_retry = exc, safe
            except httpx.DecodingError as exc:
                failure = PSAUnavailable(f"{self.service} answered {where} with a body its Content-Encoding "
                                         f"does not decode: {exc!r}")
                cause, may_retry = exc, safe
            else:
                if response.is_success:
                    if check is None:
                        return response
                    try:
                        check(response)
                    except PSARateLimited as exc:
                        failure, cause, hint, may_retry = exc, exc, exc.retry_after, True
                    except PSAUnavailable as exc:
                        failure, cause, may_retry = exc, exc, safe
                    else:
                        return response
                else:
                    status = response.status_code
                    try:
                        response.raise_for_status()
                    except httpx.HTTPStatusError as exc:
                        cause = exc
                    factory = self._status_errors.get(status)
                    failure = factory(response) if factory else translate_status(self.service, response)
                    if status in (429, 503):
                        hint = retry_after_seconds(response.headers.get("retry-after"), now=self._now)
                    may_retry = status == 429 or (status in RETRYABLE_STATUSES and safe)
            give_up = not may_retry or retry >= self.max_retries
            if not give_up and hint is not None and hint > self.max_retry_after:
                log.warning("%s %s: told to wait %.1fs, more than %.1fs; giving up for now",
                            self.service, where, hint, self.max_retry_after)
                give_up = True
            if give_up:
                final = self._final(failure, hint, retry)
                if final is failure and cause is failure:
                    raise failure
                raise final from cause
            delay = hint if hint is not None else backoff_delay(retry, base=self.backoff_base, cap=self.backoff_cap,
                                                               random=self._random)
            retry += 1
            log.warning("%s %s: %s; retry %d/%d in %.2fs", self.service, where, failure.message, retry,
                        self.max_retries, delay)
            await self._sleep(delay)

    def _absolute(self, url: str, params: Mapping[str, str | int] | None) -> str | None:
        """The absolute URL ``build_request(method, url, params=params)`` makes of a plain path (``/tickets/42``)
        and its query, as one string; ``None`` for anything else (an absolute URL, a query or fragment in
        ``url``, characters httpx would encode, ``.`` segments), which goes through httpx's own merging.

        httpx joins the base URL and a relative one by parsing the relative URL, then the joined path,
        then the URL with its query added: three parses of the whole URL per request, the largest
        part of its CPU. For these paths the string joined here parses to the same URL
        (``tests/connectors/test_http_urls.py`` compares them)."""
        if self._prefix is None or not url or _PLAIN_PATH.fullmatch(url) is None:
            return None
        target = self._prefix + url[1:]
        if params:
            target += "?" + str(httpx.QueryParams(params))
        return target

    async def _send(self, request: httpx.Request) -> httpx.Response:
        """The request's answer, read in full.

        With a transport of ours (or a test's), the request goes straight to it: what
        ``AsyncClient.send`` adds on top is redirects (off here), auth flows (our credentials are
        headers, already on the request) and a cookie jar (no PSA API uses cookies), and it cost
        a third of the CPU of each request.
        """
        response = await self._transport.handle_async_request(request)
        response.request = request
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    @staticmethod
    def _final(failure: PSAError, hint: float | None, retries: int) -> PSAError:
        suffix = f" (after {retries + 1} attempts)" if retries else ""
        if isinstance(failure, PSARateLimited):
            after = hint if hint is not None else failure.retry_after
            if suffix or after != failure.retry_after:
                return PSARateLimited(failure.message + suffix, retry_after=after)
            return failure
        return type(failure)(failure.message + suffix) if suffix else failure


class HttpConnector:
    """What every HTTP-based connector shares: its :class:`PSAHttp` and closing it, also as
    ``async with``."""

    _http: PSAHttp

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()
