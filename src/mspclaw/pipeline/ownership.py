"""Background loops that run on exactly one replica at a time, through ownership leases.

Each replica runs :meth:`Ownership.run` for every named loop (``poller:<account>``, ``feedback``,
``retention``); only the replica holding the loop's lease (``store/leases.py``) runs the loop:

* The runner acquires the lease, starts the loop, and renews the lease every ``renew_s`` (a third
  of ``ttl_s``). The other replicas try to acquire every ``retry_s``.
* The runner stops (cancels) its loop when a renewal is refused (another replica has the lease) or
  when it could not renew before its own view of the lease ends (the database unreachable from
  this replica): the loop ends ``margin_s`` before the lease can expire in the database, so the
  replica that takes over never runs the loop alongside it. It then tries to acquire again.
* A runner that is cancelled (the server stops) cancels its loop and releases the lease, so
  another replica takes over within ``retry_s``. A replica that dies without releasing is taken
  over once its lease expires: within ``ttl_s + retry_s`` of its last renewal.
* A loop that ends by itself, or fails, is logged, its lease released, and it is started again
  after ``restart_s`` (on whichever replica acquires the lease then).

The lease's fencing token is handed to the loop (:class:`Held`), for writes that must not land after
a takeover (:meth:`~mspclaw.store.leases.Leases.fenced`). With one replica it always holds every
lease, and the loops run as they would without leases (started after one acquire).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from mspclaw.errors import StoreError
from mspclaw.observability.metrics import watch_leases
from mspclaw.store.leases import MAX_HOLDER, Leases

log = logging.getLogger(__name__)


def replica_id() -> str:
    """A name for this process among the replicas: host, process id and a random part (a restarted
    process with the same pid is still a new holder)."""
    name = f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(4)}"
    return name[:MAX_HOLDER]


@dataclass(frozen=True)
class Held:
    """The lease an owned loop runs under: its name and fencing token."""

    name: str
    token: int


OwnedLoop = Callable[[Held], Awaitable[None]]


class Ownership:
    """Runs named loops on this replica only while it holds their leases."""

    def __init__(self, leases: Leases, *, replica: str, ttl_s: float = 10.0, renew_s: float | None = None,
                 retry_s: float = 1.0, margin_s: float | None = None, restart_s: float = 5.0) -> None:
        self.renew_s = renew_s if renew_s is not None else ttl_s / 3
        self.margin_s = margin_s if margin_s is not None else ttl_s / 5
        if not (self.renew_s > 0 and self.margin_s >= 0 and self.renew_s + self.margin_s < ttl_s):
            raise ValueError(f"an ownership lease of {ttl_s:g} s needs renewals (every {self.renew_s:g} s) plus "
                             f"the safety margin ({self.margin_s:g} s) to fit in it")
        if retry_s <= 0 or restart_s < 0:
            raise ValueError("the retry interval must be over 0 s and the restart delay not negative")
        self._leases = leases
        self.replica = replica
        self.ttl_s = ttl_s
        self.retry_s = retry_s
        self.restart_s = restart_s
        self.held: dict[str, Held] = {}
        """The leases this replica holds now, by name (its loops running)."""
        self._runners: set[str] = set()
        watch_leases(self)

    async def run(self, name: str, loop: OwnedLoop) -> None:
        """Run ``loop`` whenever this replica holds the lease ``name``; until cancelled.

        One runner per name and replica: the same replica would hold the lease twice over."""
        if name in self._runners:
            raise ValueError(f"{name!r} already runs under this replica's ownership; stop that runner first")
        self._runners.add(name)
        try:
            while True:
                held, valid_until = await self._acquire(name)
                self.held[name] = held
                log.info("%s: this replica (%s) runs it now, lease token %d", name, self.replica, held.token)
                try:
                    ended = await self._run_held(held, valid_until, loop)
                finally:
                    self.held.pop(name, None)
                    await self._release(held)
                await asyncio.sleep(self.restart_s if ended else self.retry_s)
        finally:
            self._runners.discard(name)

    async def _acquire(self, name: str) -> tuple[Held, float]:
        """Wait until this replica holds ``name``: the lease, and until when (event-loop time) it is sure to."""
        clock = asyncio.get_running_loop()
        failures = 0
        while True:
            asked = clock.time()
            try:
                token = await asyncio.to_thread(self._leases.acquire, name, self.replica, self.ttl_s)
            except StoreError as exc:  # said once, not every retry_s while the database is down
                log.log(logging.WARNING if failures == 0 else logging.DEBUG, "%s: cannot acquire its lease: %s",
                        name, exc.message)
                failures, token = failures + 1, None
            if token is not None:
                return Held(name, token), asked + self.ttl_s
            await asyncio.sleep(self.retry_s)

    async def _run_held(self, held: Held, valid_until: float, loop: OwnedLoop) -> bool:
        """Run the loop while the lease is renewed; ``True`` when the loop ended by itself, ``False`` when
        the lease was lost (the loop is then cancelled, and has stopped when this returns)."""
        clock = asyncio.get_running_loop()
        task = clock.create_task(_run(loop, held), name=f"owned {held.name}")
        try:
            while True:
                stop_at = valid_until - self.margin_s
                wait = min(self.renew_s, stop_at - clock.time())
                if wait > 0:
                    await asyncio.wait({task}, timeout=wait)
                if task.done():
                    return True
                asked = clock.time()
                if asked >= stop_at:
                    log.warning("%s: lease not renewed in time; stopping it here (another replica may take it)",
                                held.name)
                    return False
                try:  # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow the runner's own cancellation
                    async with asyncio.timeout(stop_at - asked):
                        renewed = await asyncio.to_thread(self._leases.renew, held.name, self.replica, held.token,
                                                          self.ttl_s)
                except (StoreError, TimeoutError) as exc:
                    log.warning("%s: cannot renew its lease: %s", held.name,
                                exc.message if isinstance(exc, StoreError) else "no answer in time")
                    continue
                if not renewed:
                    log.warning("%s: lease lost to another replica; stopping it here", held.name)
                    return False
                valid_until = asked + self.ttl_s
        finally:
            if not task.done():
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _release(self, held: Held) -> None:
        try:
            async with asyncio.timeout(self.ttl_s):
                await asyncio.to_thread(self._leases.release, held.name, self.replica, held.token)
        except (StoreError, TimeoutError) as exc:  # it expires by itself, then another replica takes it
            log.warning("%s: cannot release its lease (%s); it expires within %g s",
                        held.name, exc.message if isinstance(exc, StoreError) else "no answer in time", self.ttl_s)


async def _run(loop: OwnedLoop, held: Held) -> None:
    try:
        await loop(held)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("%s: the owned loop failed", held.name)
    else:
        log.warning("%s: the owned loop ended", held.name)


async def owned(ownership: Ownership | None, name: str, loop: Callable[[], Awaitable[None]]) -> None:
    """Run ``loop`` under the lease ``name`` when there is an ``ownership``, else simply run it."""
    if ownership is None:
        await loop()
    else:
        await ownership.run(name, lambda _: loop())
