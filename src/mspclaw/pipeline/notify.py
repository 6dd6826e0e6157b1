"""Notifications to Slack and Teams: escalations and approval requests, to the right channel and
technician, delivered in the background with retries.

Each message is stored (``notifications``) before the first attempt; every attempt's outcome
is recorded on the row. Retryable failures (network, 429, 5xx) are retried with exponential
backoff (honouring ``Retry-After``); a refusal (400, 403, 404) is final at once. Nothing here
raises into the ticket's run: a channel that is down costs a failed row and an audit event,
never a ticket. Webhook URLs are secrets: they are never stored on the row, logged or audited.

An approval request says what the server knows (:func:`~mspclaw.pipeline.approval_view.approval_facts`):
its headline is the effect of the exact arguments, never the model's words, which come last, labelled.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

import httpx

from mspclaw.connectors.notify.message import Mention, Message, Sender
from mspclaw.connectors.notify.slack import SlackSender
from mspclaw.connectors.notify.teams import TeamsSender
from mspclaw.errors import DeliveryError, MSPClawError
from mspclaw.pipeline.approval_view import approval_facts, argument_lines
from mspclaw.pipeline.techs import Channel, Tech, TechRegistry
from mspclaw.store.audit import AuditLog
from mspclaw.store.escalations import EscalationStore
from mspclaw.store.registry import Registry
from mspclaw.store.tables import ApprovalRow, utcnow

log = logging.getLogger(__name__)
MAX_RETRY_AFTER_S = 60.0


def mention_of(tech: Tech | None) -> Mention | None:
    return Mention(tech.name, tech.slack_id, tech.teams_id) if tech is not None else None


class Notifier:
    def __init__(self, *, techs: TechRegistry, registry: Registry, store: EscalationStore, audit: AuditLog,
                 public_url: str, retries: int = 4, backoff_s: float = 2.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.techs, self._registry, self.store, self._audit = techs, registry, store, audit
        self.public_url = public_url.rstrip("/")
        self.retries, self.backoff_s = retries, backoff_s
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        self._senders: dict[str, Sender] = {"slack": SlackSender(), "teams": TeamsSender()}
        self._tasks: set[asyncio.Task[None]] = set()

    # -- what to say ----------------------------------------------------------------------------
    def approval_requested(self, row: ApprovalRow, ticket_id: str) -> None:
        """Tell the client's on-duty technician that a destructive step waits for them."""
        try:
            client = self._registry.client(row.client_id)
            who = self.techs.on_duty(client.id, client.name, utcnow())
            facts = approval_facts(row.tool, row.args, row.target)
            requester = facts.requester
            message = Message(
                title=f"Approval needed: {row.tool} on {row.target or 'the device'}",
                summary=facts.effect,
                facts=[("Client", client.name), ("Ticket", ticket_id), ("Approval", row.id),
                       ("Tool", f"{facts.tool}: {facts.description}"),
                       ("Runs on", f"{row.target or 'the device'} ({facts.runs_on} agent)"),
                       *([("Requester", f"{requester.requested_by}: " + ", ".join(requester.verified_by))]
                         if requester is not None else []),
                       ("Auto-deny at", row.deadline.strftime("%Y-%m-%d %H:%M UTC"))],
                sections=[("Exact arguments", argument_lines(facts)),
                          ("Context (the assistant's note in it is unverified model text)",
                           row.reason.splitlines() or ["none"]),
                          ("To decide", [f"mspclaw approvals approve {row.id} --as NAME",
                                         f"mspclaw approvals deny {row.id} --as NAME --reason WHY"])],
                mention=mention_of(who.tech),
                link=("Review and approve", f"{self.public_url}/ui/approvals/{row.id}"))
            self.send(client.id, client.name, "approval", row.id, message, who.tech)
        except MSPClawError as exc:  # a notification never fails the approval request
            log.warning("approval %s: not notified: %s", row.id, exc.message)

    def send(self, client_id: str | None, client_name: str, subject: str, ref_id: str, message: Message,
             recipient: Tech | None) -> int:
        """Queue ``message`` on every channel for this client and subject; returns how many."""
        channels = self.techs.channels(client_id or "", client_name, subject)
        for channel in channels:
            sender = self._senders[channel.kind]
            payload = sender.render(message)
            row = self.store.add_notification(client_id=client_id, channel=channel.name, channel_kind=channel.kind,
                                              subject=subject, ref_id=ref_id,
                                              recipient=recipient.email if recipient else None, payload=payload)
            self._spawn(self._deliver(row.id, channel, sender, payload, client_id))
        return len(channels)

    def resume(self) -> int:
        """Deliver what a stopped process left pending (each message was stored before its first try)."""
        rows = self.store.pending_notifications()
        channels = {c.name: c for c in self.techs.load().channels}
        for row in rows:
            channel = channels.get(row.channel)
            if channel is None or channel.kind != row.channel_kind:
                self.store.attempt(row.id, ok=False, error=f"channel {row.channel!r} is no longer in techs.yaml",
                                   final=True)
                continue
            self._spawn(self._deliver(row.id, channel, self._senders[channel.kind], row.payload, row.client_id))
        return len(rows)

    # -- delivery -------------------------------------------------------------------------------
    def _spawn(self, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(transport=self._transport, timeout=10.0, follow_redirects=False)
        return self._http

    async def _deliver(self, notification_id: str, channel: Channel, sender: Sender,
                       payload: dict[str, object], client_id: str | None) -> None:
        delay = self.backoff_s
        for attempt in range(1, self.retries + 1):
            try:
                await sender.post(self._client(), channel.url, payload)
            except DeliveryError as exc:
                final = not exc.retryable or attempt == self.retries
                self.store.attempt(notification_id, ok=False, error=exc.message, final=final)
                if final:
                    self._audit.append("notify_failed", client_id=client_id,
                                       data={"notification_id": notification_id, "channel": channel.name,
                                             "attempts": attempt, "error": exc.message})
                    return
                wait = min(exc.retry_after, MAX_RETRY_AFTER_S) if exc.retry_after is not None else delay
                await asyncio.sleep(wait)
                delay *= 2
            else:
                self.store.attempt(notification_id, ok=True, error=None, final=True)
                self._audit.append("notified", client_id=client_id,
                                   data={"notification_id": notification_id, "channel": channel.name,
                                         "attempts": attempt})
                return

    async def drain(self, timeout: float | None = None) -> None:
        """Wait for every delivery under way (tests; shutdown)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
            self._http = None


def on_duty_label(tech: Tech | None, when: datetime) -> str:
    return f"{tech.name} <{tech.email}>" if tech is not None else f"nobody on duty at {when:%H:%M} UTC"
