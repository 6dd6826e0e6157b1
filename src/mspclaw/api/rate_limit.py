"""Webhook deliveries per source address, limited before anything of them is read.

A webhook route is open to the internet: its caller is only known once its body has been read
and its signature checked. :class:`SourceRateLimit` is a pure ASGI middleware that gives each
source address (an IPv6 /64 counts as one) a token bucket, and answers 429 with ``Retry-After``
when a source's bucket is empty, before the body is read or a connector runs. A delivery the
route accepts (any answer below 400) gives its token back: only refused or failed deliveries
(forged signatures, oversized bodies) spend a source's budget, so a PSA sending a genuine backlog
is never slowed, while a source that sends forgeries is held to ``rate`` a second after its burst.
"""

from __future__ import annotations

import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mspclaw.pipeline.refusals import source_of


class TokenBuckets:
    """One token bucket per key, ``burst`` deep, refilled at ``rate`` tokens a second.

    At most ``max_keys`` buckets are kept (the least recently used goes first), so memory stays
    bounded however many sources there are; a source evicted meanwhile starts again with a full bucket.
    """

    def __init__(self, *, rate: float, burst: int, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"a token bucket needs a positive rate and a burst of at least 1, not {rate}/{burst}")
        self.rate, self.burst, self.max_keys, self._clock = rate, burst, max_keys, clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)
        self.refused = 0
        """Requests refused since start (for metrics)."""

    def __len__(self) -> int:
        """Buckets kept now (at most ``max_keys``)."""
        return len(self._buckets)

    def refund(self, key: str) -> None:
        """Give back the token a request took (it was accepted)."""
        found = self._buckets.get(key)
        if found is not None:
            self._buckets[key] = (min(float(self.burst), found[0] + 1.0), found[1])

    def take(self, key: str) -> float:
        """Take one token for ``key``: 0.0 when it was there, else the seconds until one will be."""
        now = self._clock()
        tokens, at = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
            self.refused += 1
        self._buckets[key] = (tokens, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait


class SourceRateLimit:
    """Answer 429 to HTTP requests under ``prefix`` from a source whose bucket is empty."""

    def __init__(self, app: ASGIApp, *, prefix: str, buckets: TokenBuckets) -> None:
        self.app, self.prefix, self.buckets = app, prefix, buckets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.prefix):
            client = scope.get("client")
            source = source_of(client[0] if client else "unknown")
            wait = self.buckets.take(source)
            if wait > 0:
                retry = max(1, math.ceil(wait))
                body = json.dumps({"detail": {"code": "rate_limited", "message": (
                    f"too many deliveries to {self.prefix}... from this address; "
                    f"send again in {retry} s")}}).encode()
                await send({"type": "http.response.start", "status": 429, "headers": [
                    (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(retry).encode()), (b"connection", b"close")]})
                await send({"type": "http.response.body", "body": body})
                return

            async def watch(message: Message) -> None:
                if message["type"] == "http.response.start" and message["status"] < 400:
                    self.buckets.refund(source)
                await send(message)

            await self.app(scope, receive, watch)
            return
        await self.app(scope, receive, send)
