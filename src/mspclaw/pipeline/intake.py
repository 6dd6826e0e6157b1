"""PSA intake without a human: webhooks and pollers enqueue, workers process.

* A webhook is verified by its PSA's connector, turned into one job, and acknowledged at once.
* A poller lists each PSA's tickets since a stored cursor and enqueues them the same way.
* Both use the dedupe key ``psa:ticket``, so a ticket becomes one job however often it is
  delivered, concurrently or not, by webhook or poll.
* A worker claims a job, keeps its lease alive while the ticket runs, and completes it. A
  worker that dies loses its lease and another one picks the job up; a ticket that already has
  a session is never run twice.
* An idle worker polls the queue every ``idle_s``, and is woken at once when this process
  enqueues a job. On PostgreSQL, jobs enqueued by other replicas wake it too (``NOTIFY``, see
  ``store/wakeups.py``), and it then polls only every ``ChannelWakeups.fallback_s``.
* With an :class:`~mspclaw.pipeline.ownership.Ownership`, each PSA's poller runs on one replica at
  a time (the holder of the lease ``poller:<account>``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from mspclaw.connectors.base import PreparesWebhooks, PSAConnector, PSATicket
from mspclaw.errors import AuthError, MSPClawError, NotFound, PSAError, StoreError
from mspclaw.observability import logs
from mspclaw.observability.polls import POLL_HEALTH, record_poll
from mspclaw.pipeline.connector_set import AccountUnavailable
from mspclaw.pipeline.offload import run_store
from mspclaw.pipeline.ownership import Ownership, owned
from mspclaw.pipeline.refusals import Refusals
from mspclaw.pipeline.submission import PSACompany, UnknownCompany
from mspclaw.pipeline.tickets import TicketService
from mspclaw.protocol.limits import TICKET_LIMITS, Clipped, clip
from mspclaw.store.audit import AuditLog
from mspclaw.store.jobs import Job, JobQueue
from mspclaw.store.tickets import ExternalTicketExists
from mspclaw.store.wakeups import ChannelWakeups

log = logging.getLogger(__name__)

JOB_KIND = "psa_ticket"


def dedupe_key(psa: str, ticket_id: str) -> str:
    return f"{psa}:{ticket_id}"


class Intake:
    def __init__(self, *, jobs: JobQueue, tickets: TicketService, audit: AuditLog,
                 connectors: Mapping[str, PSAConnector], refusals: Refusals | None = None,
                 ownership: Ownership | None = None) -> None:
        self.jobs, self.tickets, self.audit, self.connectors = jobs, tickets, audit, connectors
        self.ownership = ownership
        """When set, the pollers of this intake run only on the replica that holds their lease."""
        self.refusals = refusals or Refusals(audit)
        """Refused deliveries, counted and sampled into the audit trail; the API's refusals share it."""
        self._listeners: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    def listen(self) -> asyncio.Event:
        """An event set whenever this process enqueues a new job (from any thread); for idle workers."""
        event = asyncio.Event()
        self._listeners.append((asyncio.get_running_loop(), event))
        return event

    def unlisten(self, event: asyncio.Event) -> None:
        self._listeners = [(loop, e) for loop, e in self._listeners if e is not event]

    def _job_added(self) -> None:
        for loop, event in self._listeners:
            with contextlib.suppress(RuntimeError):  # a loop that has closed meanwhile
                loop.call_soon_threadsafe(event.set)

    def connector(self, psa: str) -> PSAConnector:
        try:
            return self.connectors[psa]
        except AccountUnavailable as exc:  # a disabled account: refused with its own reason
            raise exc.error from None
        except KeyError:
            raise NotFound(f"no PSA account {psa!r} is configured") from None

    # -- triggers -------------------------------------------------------------------------------
    async def accept_webhook(self, psa: str, headers: Mapping[str, str], body: bytes, *,
                             remote: str) -> tuple[Job, bool]:
        """Verify, enqueue, return ``(job, created)``. A refused webhook is counted, audited as a sample
        (:class:`~mspclaw.pipeline.refusals.Refusals`) and creates nothing.

        A connector that needs I/O to verify (a signing key to fetch) does it first in
        ``prepare_webhook``; its failures are refused and audited the same way."""
        connector = self.connector(psa)
        try:
            if isinstance(connector, PreparesWebhooks):
                await connector.prepare_webhook(headers, body)
            event = connector.parse_webhook(headers, body)
        except (AuthError, MSPClawError) as exc:
            await self.refusals.refused("webhook_refused", remote, code=exc.code,
                                        data={"psa": psa, "reason": exc.message})
            raise
        # off the event loop where its commit waits for a database server (as every per-ticket write)
        job, created = await run_store(self.jobs, self.enqueue, psa, event.ticket_id, source="webhook",
                                       delivery_id=event.delivery_id)
        await self.audit.record("webhook_received", actor=remote, data={
            "psa": psa, "ticket": event.ticket_id, "event": event.event, "delivery_id": event.delivery_id,
            "job_id": job.id, "duplicate": not created})
        return job, created

    def enqueue(self, psa: str, ticket_id: str, *, source: str, delivery_id: str | None = None) -> tuple[Job, bool]:
        job, created = self.jobs.enqueue(JOB_KIND, {"psa": psa, "ticket_id": ticket_id, "source": source,
                                                    "delivery_id": delivery_id},
                                         dedupe_key=dedupe_key(psa, ticket_id))
        if created:
            self._job_added()
        return job, created

    async def poll(self, psa: str) -> int:
        """List tickets changed since the stored cursor; enqueue each; move the cursor. Returns new jobs."""
        connector = self.connector(psa)
        cursor_name = f"poll:{psa}"
        raw = await run_store(self.jobs, self.jobs.get_cursor, cursor_name)
        since = datetime.fromisoformat(raw) if raw else None
        found = await connector.list_tickets(since)
        created = 0
        newest = since
        for ticket in found:
            _, is_new = await run_store(self.jobs, self.enqueue, psa, ticket.id, source="poll")
            created += is_new
            stamp = ticket.updated_at or ticket.created_at
            if stamp is not None and (newest is None or stamp > newest):
                newest = stamp
        if newest is not None and newest != since:
            await run_store(self.jobs, self.jobs.set_cursor, cursor_name, newest.isoformat())
        return created

    # -- processing -----------------------------------------------------------------------------
    async def process(self, job: Job) -> str:
        """Run one PSA ticket through the loop; returns the outcome. Raises PSAError when the PSA fails."""
        psa, ticket_id = str(job.payload["psa"]), str(job.payload["ticket_id"])
        if job.attempts > 1:  # picked up again after its worker died: the ticket may have its session already
            existing = await run_store(self.tickets.store, self.tickets.find_external, psa, ticket_id)
            if existing is not None:
                return await self._opened_before(existing)
        connector = self.connector(psa)
        psa_ticket = await connector.get_ticket(ticket_id)
        fields = {name: clip(value, TICKET_LIMITS[name]) for name, value in (
            ("subject", psa_ticket.subject), ("body", psa_ticket.body), ("requester", psa_ticket.requester),
            ("device", psa_ticket.asset or ""))}
        try:  # the client is found by the PSA's company in the trip that opens the ticket
            sub = await self.tickets.submit(client=PSACompany(psa, psa_ticket.company), subject=fields["subject"].text,
                                            body=fields["body"].text, requester=fields["requester"].text,
                                            device=fields["device"].text or None, psa=psa,
                                            external_id=psa_ticket.id, actor=f"psa:{psa}",
                                            requester_name=(psa_ticket.requester_name or "")[:255])
        except UnknownCompany:
            await self._unknown_company(connector, psa, psa_ticket)
            return "escalated"
        except ExternalTicketExists as exc:  # opened before by another job (a retried one, say): not looked up first
            return await self._opened_before(exc.ticket_id)
        cut = {name: c for name, c in fields.items() if c.cut}
        if cut:
            await self._truncated(connector, psa, psa_ticket.id, sub.session.id, sub.ticket.client_id, cut)
        outcome = await self.tickets.wait(sub.session.id)  # what the run closed the ticket with: not read again
        if outcome is not None:
            return outcome
        return (await run_store(self.tickets.store, self.tickets.store.ticket, sub.ticket.id)).status

    async def _opened_before(self, ticket_id: str) -> str:
        """A ticket that already has its session: wait for it, or resume what a dead process left; its status."""
        await self.tickets.wait_or_recover(ticket_id)
        return (await run_store(self.tickets.store, self.tickets.store.ticket, ticket_id)).status

    async def _truncated(self, connector: PSAConnector, psa: str, ticket_id: str, session_id: str,
                         client_id: str, cut: Mapping[str, Clipped]) -> None:
        """A PSA ticket over the field limits was clipped (a visible mark ends each cut field): say so
        in the audit trail and, for the technician, in a private note on the PSA ticket."""
        what = ", ".join(f"{name} {c.original_length:,} > {TICKET_LIMITS[name]:,}" for name, c in cut.items())
        await self.audit.record("ticket_truncated", actor=f"psa:{psa}", client_id=client_id, session_id=session_id,
                                data={"psa": psa, "external_id": ticket_id, "fields": {
                                    name: {"length": c.original_length, "limit": TICKET_LIMITS[name],
                                           "kept": len(c.text)} for name, c in cut.items()}})
        note = (f"MSPclaw: this ticket is longer than MSPclaw reads ({what} characters); it worked on the "
                "beginning of each of these fields. The whole text stays here in the PSA.")
        try:
            await connector.add_note(ticket_id, note, public=False)
        except PSAError as exc:  # the audit event above keeps the fact; the ticket is still worked on
            log.warning("ticket %s: could not add the truncation note: %s", ticket_id, exc.message)

    async def _unknown_company(self, connector: PSAConnector, psa: str, ticket: PSATicket) -> None:
        note = (f"MSPclaw: ESCALATED\nNo MSPclaw client maps to {psa} company {ticket.company!r}, so nothing was "
                f"run.\nNext: add it with `mspclaw clients add NAME --psa {psa}={ticket.company}` and re-run with "
                f"`mspclaw run-ticket --psa {psa} --ticket {ticket.id}`.")
        await connector.add_note(ticket.id, note, public=False)
        await connector.set_status(ticket.id, "escalated")
        await self.audit.record("status_changed", actor=f"psa:{psa}", data={
            "psa": psa, "external_id": ticket.id, "status": "escalated", "reason": "unknown company"})


class Worker:
    """Claims intake jobs and runs them, ``concurrency`` at a time, keeping each lease alive.

    One claimer per worker: it claims a job whenever a slot is free and starts the ticket as a
    task of its own. A ticket that waits (for an approval, up to five minutes, or for the end
    user's answer) holds its slot but never the claimer, and an idle worker costs one claim
    every ``idle_s`` however many slots it has. A job that completes claims the next one in the
    same write (:meth:`JobQueue.complete_and_claim`) and its slot's task runs it; its slot goes
    back to the claimer only when nothing was due then.
    """

    def __init__(self, intake: Intake, *, concurrency: int = 32, lease_s: float = 30.0, idle_s: float = 0.5,
                 name: str | None = None, wakeups: ChannelWakeups | None = None) -> None:
        if concurrency < 1:
            raise ValueError(f"a worker needs at least one slot, not {concurrency}")
        self.intake = intake
        self.concurrency = concurrency
        self.lease_s = lease_s
        self.idle_s = idle_s
        self.name = name or f"worker-{secrets.token_hex(3)}"
        self.wakeups = wakeups
        """Jobs enqueued on other replicas wake this worker (PostgreSQL's NOTIFY on the jobs' channel), if given."""

    async def run(self) -> None:
        added = self.intake.listen()
        if self.wakeups is not None:
            self.wakeups.subscribe(added)
        slots = asyncio.Semaphore(self.concurrency)
        running: set[asyncio.Task[None]] = set()
        try:
            while True:
                await slots.acquire()
                added.clear()  # a job enqueued from here on sets it again, so no wake-up is missed
                try:
                    job = await run_store(self.intake.jobs, self.intake.jobs.claim, self.name, kinds=[JOB_KIND],
                                          lease_s=self.lease_s)
                except StoreError as exc:  # the database is down: keep going, claim again once it is back
                    slots.release()
                    log.warning("%s cannot claim a job: %s", self.name, exc.message)
                    await asyncio.sleep(max(self.idle_s, 1.0))
                    continue
                except BaseException:
                    slots.release()
                    raise
                if job is None:
                    slots.release()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(added.wait(), self.wakeups.idle_s(self.idle_s)
                                               if self.wakeups is not None else self.idle_s)
                    continue
                task = asyncio.get_running_loop().create_task(self.run_one(job, self.name),
                                                              name=f"{self.name} job {job.id}")
                running.add(task)
                task.add_done_callback(running.discard)
                task.add_done_callback(lambda _: slots.release())
        finally:
            self.intake.unlisten(added)
            if self.wakeups is not None:
                self.wakeups.unsubscribe(added)
            for task in running:
                task.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)

    async def run_one(self, job: Job, worker: str) -> None:
        """Run ``job`` in one slot; then, as long as completing a job claims the next one, that one."""
        next_job: Job | None = await self._run_job(job, worker)
        while next_job is not None:
            task = asyncio.current_task()
            if task is not None:  # named after the job it runs now
                task.set_name(f"{worker} job {next_job.id}")
            next_job = await self._run_job(next_job, worker)

    async def _run_job(self, job: Job, worker: str) -> Job | None:
        """Run one job and settle it; the next job, claimed by the write that completed this one (``None``:
        none was due, or this one failed)."""
        logs.bind(job_id=job.id)  # this job's task, and the ticket's task it starts, log with its id
        beat = asyncio.get_running_loop().create_task(self._heartbeat(job.id, worker))
        jobs = self.intake.jobs
        try:
            outcome = await self.intake.process(job)
        except PSAError as exc:
            await run_store(jobs, jobs.fail, job.id, worker, f"{exc.code}: {exc.message}", retryable=exc.retryable)
            log.warning("job %s failed: %s", job.id, exc.message)
        except MSPClawError as exc:
            await run_store(jobs, jobs.fail, job.id, worker, f"{exc.code}: {exc.message}", retryable=False)
        except Exception as exc:
            log.exception("job %s crashed", job.id)
            await run_store(jobs, jobs.fail, job.id, worker, f"{type(exc).__name__}: {exc}")
        else:
            # the slot this job frees claims its next job in the same write: one trip fewer per job
            _, claimed = await run_store(jobs, jobs.complete_and_claim, job.id, worker, kinds=[JOB_KIND],
                                         lease_s=self.lease_s)
            log.info("job %s: ticket %s %s", job.id, job.payload.get("ticket_id"), outcome)
            return claimed
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
        return None

    async def _heartbeat(self, job_id: str, worker: str) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            if not await run_store(self.intake.jobs, self.intake.jobs.heartbeat, job_id, worker, lease_s=self.lease_s):
                log.warning("job %s: lease lost", job_id)
                return


class Poller:
    def __init__(self, intake: Intake, psa: str, *, interval_s: float = 60.0) -> None:
        self.intake, self.psa, self.interval_s = intake, psa, interval_s

    async def run(self) -> None:
        """Poll every ``interval_s``; with the intake's ownership, only while this replica holds ``poller:<psa>``."""
        await owned(self.intake.ownership, f"poller:{self.psa}", self._poll_here)

    async def _poll_here(self) -> None:
        try:
            await self._poll_forever()
        finally:  # stopped, or its lease moved to another replica: this one reports nothing of it now
            POLL_HEALTH.forget(self.psa)

    async def _poll_forever(self) -> None:
        while True:
            try:
                created = await self.intake.poll(self.psa)
                record_poll(self.psa)  # the poller's health, for /readyz and /metrics
                if created:
                    log.info("poll %s: %d new tickets", self.psa, created)
            except MSPClawError as exc:  # the PSA failed, or the database is down: the next round tries again
                record_poll(self.psa, exc.message)
                log.warning("poll %s failed: %s", self.psa, exc.message)
            await asyncio.sleep(self.interval_s)


def payload_summary(job: Job) -> dict[str, Any]:
    return {"psa": job.payload.get("psa"), "ticket": job.payload.get("ticket_id"),
            "source": job.payload.get("source")}
