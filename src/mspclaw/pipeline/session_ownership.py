"""Each running session is driven by exactly one replica, under a lease of its own; a dead replica's
sessions are resumed by another within seconds.

A session's lease is ``session:<id>`` in ``ownership_leases`` (``store/leases.py``):

* **Taken when its session is opened**, before any tool call: a new session's lease is written with
  the ticket and the session themselves (:meth:`SessionOwnership.new_lease`, the same statement on
  PostgreSQL; its name is new, so it is free), or acquired when its run starts (one statement); a
  session resumed after a restart or a takeover is acquired *before* it is resumed, so of two
  replicas recovering at once exactly one resumes it. **Deleted when the run ends**, in the
  statement that stores the session's end (:meth:`SessionOwnership.ending`, given to
  ``TicketStore.close_session``; or by itself for a run that ended without that: a finished
  session is never resumed, and the table keeps only unfinished sessions' leases); either way
  only while this replica holds it with its token. **Released** when the server stops (so
  another replica takes it over at once).
* **Renewed** while the run works or waits for an approval or an answer, by one renewer per
  replica that extends every lease the replica holds in one statement every ``renew_s``
  (:meth:`~mspclaw.store.session_leases.SessionLeaseStore.renew_all`): the cost is per replica,
  not per ticket, and a ticket that ends within ``renew_s`` is never renewed at all.
* **Lost**, when the renewal says another replica has taken the lease over (or it expired), or when
  this replica could not renew before its own view of the lease ends (``margin_s`` before it can
  expire in the database): the run is cancelled where it stands, exactly as a server that stops
  leaves it, and the tool port refuses any further call of it (:class:`FencedTools`, the step
  boundary). The replica that holds the lease now resumes it from its last persisted step; a
  destructive call that was in flight is sent again with the same call id, which the agent's journal
  answers with its recorded result instead of running it twice (``pipeline/durable.py``).
* **Recovered**: at start, and every ``recover_s`` through the owned loop ``session-recovery``
  (``pipeline/ownership.py``), a replica resumes the unfinished sessions whose lease is free
  (released or expired; and, at start and every :data:`FULL_SCAN_EVERY` passes, never taken by a
  session opened more than ``ttl_s`` ago), acquiring each first. A session a live replica runs is
  never resumed elsewhere; one whose replica stopped is resumed at once, one whose replica died
  within ``ttl_s + recover_s`` of that replica's last renewal (one whose replica died before it took
  the lease, within a minute or so).

With one replica nothing changes but no statement per ticket of its own (the lease is taken in the
ticket's first write and deleted with its last), one
renewal statement every ``renew_s`` while any session runs, and one orphan query every ``recover_s``.
A single server restarted after a crash waits out its old sessions' leases (up to ``ttl_s``, the
old process may be alive for all it knows) before resuming them; after a clean stop it resumes them
at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any

from mspclaw.engine.ports import ToolPort
from mspclaw.errors import StoreError
from mspclaw.observability.metrics import SESSION_RECOVERIES, watch_leases
from mspclaw.pipeline.offload import run_store
from mspclaw.protocol.frames import Approval
from mspclaw.store.leases import Leases
from mspclaw.store.session_leases import (
    NEW_SESSION_TOKEN,
    HeldLease,
    NewSessionLease,
    SessionLeaseStore,
    session_lease,
)

log = logging.getLogger(__name__)

MAX_ORPHANS_PER_PASS = 100
FULL_SCAN_EVERY = 30
"""Recovery passes between two scans of every unfinished session (the others read only released or
expired leases): a session whose replica died before it took its lease waits for one of these."""


class SessionLost(asyncio.CancelledError):
    """This replica no longer holds the session's lease: its run stops here, as a server that stops leaves
    it, and the replica holding the lease now resumes it. A cancellation, so no handler closes the ticket."""


@dataclass
class _Hold:
    token: int
    valid_until: float
    """Event-loop time until which this replica is sure to hold the lease (when it asked, plus the ttl)."""
    task: asyncio.Task[Any] | None = None
    ending: bool = False
    """The statement that stores the session's end, and deletes this lease, is under way
    (:meth:`SessionOwnership.ending`): a renewal that no longer finds the lease is no loss."""


class SessionOwnership:
    """The session leases this replica holds, their renewer, the fence of their runs and their recovery."""

    def __init__(self, leases: Leases, store: SessionLeaseStore, *, replica: str, ttl_s: float = 10.0,
                 renew_s: float | None = None, margin_s: float | None = None, recover_s: float = 2.0) -> None:
        self.renew_s = renew_s if renew_s is not None else ttl_s / 3
        self.margin_s = margin_s if margin_s is not None else ttl_s / 5
        if not (self.renew_s > 0 and self.margin_s >= 0 and self.renew_s + self.margin_s < ttl_s):
            raise ValueError(f"a session lease of {ttl_s:g} s needs renewals (every {self.renew_s:g} s) plus "
                             f"the safety margin ({self.margin_s:g} s) to fit in it")
        if recover_s <= 0:
            raise ValueError(f"the recovery interval must be over 0 s, not {recover_s:g}")
        self._leases, self._store = leases, store
        self.replica = replica
        self.ttl_s = ttl_s
        self.recover_s = recover_s
        self.held: dict[str, _Hold] = {}
        """The sessions this replica drives now, by id."""
        self._recovering = asyncio.Lock()
        self._passes = 0
        self.stopping = False
        """Set when the server stops: no session is taken or resumed here any more."""
        watch_leases(self, "session")

    # -- one session ------------------------------------------------------------------------------
    def stop(self) -> None:
        """The server stops: take and resume no session any more (the runs under way are cancelled by their
        owner, and their leases released for another replica)."""
        self.stopping = True

    async def claim(self, session_id: str) -> bool:
        """Take the session's lease: ``False`` while another replica holds it, or when this one stops."""
        if self.stopping:
            return False
        clock = asyncio.get_running_loop()
        asked = clock.time()
        token = await run_store(self._store, self._leases.acquire, session_lease(session_id), self.replica,
                                self.ttl_s)
        if token is None:
            return False
        hold = self.held.get(session_id)
        if hold is not None and hold.token == token:
            hold.valid_until = asked + self.ttl_s
        else:
            self.held[session_id] = _Hold(token, asked + self.ttl_s)
        return True

    def new_lease(self) -> NewSessionLease | None:
        """The lease for a session about to be opened, to be written with it (``TicketStore.open_ticket``);
        ``None`` when this replica stops (the session is then left for the others' recovery). After the
        write, :meth:`opened` records it as held."""
        return None if self.stopping else NewSessionLease(self.replica, self.ttl_s)

    def opened(self, session_id: str, asked: float) -> None:
        """The session was opened with its lease from :meth:`new_lease`: held from ``asked`` (event-loop time,
        taken before the write) for ``ttl_s``."""
        self.held[session_id] = _Hold(NEW_SESSION_TOKEN, asked + self.ttl_s)

    async def release(self, session_id: str, *, finished: bool = False) -> None:
        """Give the lease up (the server stops; ``finished``: the run ended, and the lease row goes with it);
        nothing when it was lost already."""
        hold = self.held.pop(session_id, None)
        if hold is None:
            return
        name = session_lease(session_id)
        try:
            if finished:
                await run_store(self._store, self._store.forget, name, self.replica, hold.token)
            else:
                await run_store(self._store, self._leases.release, name, self.replica, hold.token)
        except StoreError as exc:  # it expires by itself; the session is finished or resumed then
            log.warning("session %s: cannot release its lease (%s); it expires within %g s",
                        session_id, exc.message, self.ttl_s)

    def ending(self, session_id: str) -> HeldLease | None:
        """The lease to delete with the session's end (``TicketStore.close_session``), ``None`` when this replica
        does not hold it. Until :meth:`ended`, the renewer takes the lease's disappearance for no loss (so the
        run is not cancelled between the end stored and :meth:`ended`)."""
        hold = self.held.get(session_id)
        if hold is None:
            return None
        hold.ending = True
        return HeldLease(session_lease(session_id), self.replica, hold.token)

    def ended(self, session_id: str, lease: HeldLease, *, stored: bool) -> None:
        """The end of a session given :meth:`ending`'s ``lease`` was ``stored`` (its lease deleted with it: no
        longer held, renewed or released here), or was not (the lease is held and renewed as before)."""
        hold = self.held.get(session_id)
        if hold is None or hold.token != lease.token:
            return
        if stored:
            self.held.pop(session_id)
        else:
            hold.ending = False

    def holds(self, session_id: str) -> bool:
        """Whether this replica surely holds the session's lease now (no database round trip)."""
        hold = self.held.get(session_id)
        return hold is not None and asyncio.get_running_loop().time() < hold.valid_until - self.margin_s

    def check(self, session_id: str) -> None:
        """The fence at a step boundary: :class:`SessionLost` unless this replica surely holds the lease."""
        if not self.holds(session_id):
            raise SessionLost(f"session {session_id}: this replica ({self.replica}) no longer holds its lease; "
                              "the replica that holds it resumes it")

    def fenced(self, session_id: str, tools: ToolPort) -> ToolPort:
        """``tools``, refusing every call once the lease is lost (:meth:`check` before each one)."""
        return FencedTools(tools, self, session_id)

    async def run(self, session_id: str, work: Callable[[], Awaitable[None]], *, claimed: bool) -> None:
        """Run one session's ``work`` under its lease: taken first unless ``claimed`` (a resumed session's
        was taken before it was resumed), released when the work ends. When the lease is lost, the
        renewer cancels the work."""
        if not claimed:
            try:
                taken = await self.claim(session_id)
            except StoreError as exc:  # left unfinished and unleased: recovered once the database answers
                log.warning("session %s: cannot take its lease (%s); a replica's recovery resumes it",
                            session_id, exc.message)
                return
            if not taken:
                log.warning("session %s: another replica holds its lease; it runs there, not here", session_id)
                return
        hold = self.held.get(session_id)
        if hold is None:  # lost between its claim and this start: the replica that holds it now runs it
            log.warning("session %s: its lease was lost before its run started; not run here", session_id)
            return
        hold.task = asyncio.current_task()
        finished = False
        try:
            await work()
            finished = True
        finally:
            hold.task = None
            if self.held.get(session_id) is hold:  # a lost lease is no longer held: nothing to release
                await self.release(session_id, finished=finished)

    # -- every session this replica holds ---------------------------------------------------------
    async def renew_forever(self) -> None:
        """The replica's one renewer: every ``renew_s`` one statement for all its sessions; until cancelled."""
        clock = asyncio.get_running_loop()
        while True:
            stops = [h.valid_until - self.margin_s for h in self.held.values()]
            wait = min([self.renew_s, *(s - clock.time() for s in stops)])
            await asyncio.sleep(max(wait, 0.05))
            await self.renew_once()

    async def renew_once(self) -> None:
        """Renew every held lease in one statement; stop the runs whose lease was lost or runs out."""
        if not self.held:
            return
        clock = asyncio.get_running_loop()
        ids = {session_lease(session_id): session_id for session_id in self.held}
        asked = clock.time()
        first_stop = min(h.valid_until - self.margin_s for h in self.held.values())
        renewed: set[str] | None
        try:  # asyncio.timeout: a renewal answered after the first lease's stop is useless to it
            async with asyncio.timeout(max(first_stop - asked, 0.05)):
                renewed = await asyncio.to_thread(self._store.renew_all, list(ids), self.replica, self.ttl_s)
        except (StoreError, TimeoutError) as exc:
            log.warning("cannot renew %d session leases: %s", len(ids),
                        exc.message if isinstance(exc, StoreError) else "no answer in time")
            renewed = None
        now = clock.time()
        for name, session_id in ids.items():
            hold = self.held.get(session_id)
            if hold is None:
                continue  # ended meanwhile
            if renewed is not None and name in renewed:
                hold.valid_until = asked + self.ttl_s
            elif hold.ending:
                continue  # deleted with its session's end just now, or about to be
            elif renewed is not None:
                self._lose(session_id, hold, "taken over by another replica, or expired")
            elif now >= hold.valid_until - self.margin_s:
                self._lose(session_id, hold, "not renewed in time")

    def _lose(self, session_id: str, hold: _Hold, why: str) -> None:
        self.held.pop(session_id, None)
        log.warning("session %s: lease lost (%s); stopping its run here", session_id, why)
        if hold.task is not None and not hold.task.done():
            hold.task.cancel(f"session {session_id}: lease lost ({why})")

    # -- recovery ---------------------------------------------------------------------------------
    async def recover(self, running: Collection[str], resume: Callable[[str], Awaitable[None]]) -> int:
        """Resume the unfinished sessions no replica holds, each acquired first (``resume`` gets its id);
        ``running``: the sessions under way here. How many were resumed."""
        async with self._recovering:  # one pass at a time here: a session it resumed is running for the next
            return 0 if self.stopping else await self._recover(running, resume)

    async def _recover(self, running: Collection[str], resume: Callable[[str], Awaitable[None]]) -> int:
        full = self._passes % FULL_SCAN_EVERY == 0  # the first pass (at start) is a full one
        self._passes += 1
        found = await run_store(self._store, self._store.orphans, older_than_s=self.ttl_s,
                                limit=MAX_ORPHANS_PER_PASS, leased_only=not full)
        resumed = 0
        for session_id in found:
            if session_id in running or session_id in self.held or not await self.claim(session_id):
                continue  # under way here, or another replica took it since the query
            try:
                await resume(session_id)
            except Exception:
                log.exception("session %s: cannot resume it", session_id)
                await self.release(session_id)
                continue
            resumed += 1
            SESSION_RECOVERIES.inc()
        if resumed:
            log.info("resumed %d unfinished session(s) no replica held", resumed)
        return resumed

    async def recover_forever(self, recover: Callable[[], Awaitable[int]]) -> None:
        """Call ``recover`` every ``recover_s`` (the owned loop ``session-recovery``); until cancelled."""
        failing = False
        while True:
            await asyncio.sleep(self.recover_s)
            try:
                await recover()
            except StoreError as exc:  # said once, not every recover_s while the database is down
                log.log(logging.DEBUG if failing else logging.WARNING, "session recovery: %s", exc.message)
                failing = True
            else:
                failing = False


class FencedTools:
    """A session's tool port that refuses every call once this replica lost the session's lease."""

    def __init__(self, inner: ToolPort, owner: SessionOwnership, session_id: str) -> None:
        self._inner, self._owner, self._session_id = inner, owner, session_id

    async def __call__(self, tool: str, args: dict[str, Any], *, reason: str,
                       approval: Approval | None = None) -> dict[str, Any]:
        self._owner.check(self._session_id)
        return await self._inner(tool, args, reason=reason, approval=approval)
