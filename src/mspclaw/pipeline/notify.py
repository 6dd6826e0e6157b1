"""Notifications to Slack and Teams: escalations and approval requests, to the right channel and
technician, delivered in the background with retries.

Each message is stored (``notifications``) before the first attempt; every attempt's outcome
is recorded on the row. Retryable failures (network, 429, 5xx) are retried with exponential
backoff (honouring ``Retry-After``); a refusal (400, 403, 404) is final at once. Nothing here
raises into the ticket's run: a channel that is down costs a failed row and an audit event,
never a ticket. Webhook URLs are secrets: they are never stored on the row, logged or audited.

An approval request says what the server knows (:func:`~mspclaw.pipeline.approval_view.approval_facts`)
and everything a technician needs to decide from the chat alone: the ticket's subject, who asked and
how they were verified, the account or device it acts on, the exact tool and arguments (secret-looking
values redacted), the reason, what a deny does, the deadline. Its headline is the effect of the exact
arguments, never the model's words, which come later, labelled. In Slack it carries Approve and Deny
buttons whose value is an :class:`ApprovalReferences` reference (when the Slack app's signing secret
is configured, so clicks can be verified); in Teams a button opens the approval in MSPclaw.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Sequence
from datetime import datetime

import httpx

from mspclaw.connectors.notify.message import Mention, Message, Sender
from mspclaw.connectors.notify.slack import SlackSender, respond
from mspclaw.connectors.notify.teams import TeamsSender
from mspclaw.errors import DeliveryError, Forbidden, MSPClawError
from mspclaw.pipeline.approval_view import ApprovalFacts, approval_facts, argument_lines
from mspclaw.pipeline.techs import Channel, Tech, TechRegistry
from mspclaw.store.audit import AuditLog
from mspclaw.store.escalations import EscalationStore
from mspclaw.store.redact import REDACTED, is_secret_key, redact, redact_text
from mspclaw.store.registry import Registry
from mspclaw.store.tables import ApprovalRow, Client, Ticket, utcnow
from mspclaw.store.tickets import TicketStore

log = logging.getLogger(__name__)
MAX_RETRY_AFTER_S = 60.0
_REFERENCE_LABEL = b"mspclaw approval reference v1"
_MAC_HEX = 32
_HEADLINE = {"approved": "Approved", "denied": "Denied", "expired": "Not decided in time (denied)"}


def mention_of(tech: Tech | None) -> Mention | None:
    return Mention(tech.name, tech.slack_id, tech.teams_id) if tech is not None else None


class ApprovalReferences:
    """Opaque references that stand for one approval in a chat button's ``value``.

    ``<approval id>.<HMAC>``: the MAC (SHA-256, keyed with a key derived from the server's secret)
    binds the reference to that one approval, so a value edited into another approval's id is
    refused (:class:`~mspclaw.errors.Forbidden`) before anything is looked up.
    """

    def __init__(self, secret: bytes) -> None:
        self._key = hmac.new(secret, _REFERENCE_LABEL, hashlib.sha256).digest()

    def _mac(self, approval_id: str) -> str:
        return hmac.new(self._key, approval_id.encode(), hashlib.sha256).hexdigest()[:_MAC_HEX]

    def issue(self, approval_id: str) -> str:
        return f"{approval_id}.{self._mac(approval_id)}"

    def resolve(self, reference: str) -> str:
        """The approval id ``reference`` stands for; :class:`Forbidden` if this server did not issue it."""
        approval_id, dot, mac = reference.strip().rpartition(".")
        if not dot or not approval_id or not hmac.compare_digest(mac.encode(), self._mac(approval_id).encode()):
            raise Forbidden("this button does not carry an approval reference issued by this MSPclaw server")
        return approval_id


def _shown(facts: ApprovalFacts) -> ApprovalFacts:
    """``facts`` with every secret-looking argument value redacted (a chat message is no place for one)."""
    return facts.model_copy(update={"arguments": [
        arg.model_copy(update={"value": REDACTED if arg.value is not None and is_secret_key(arg.name)
                               else redact(arg.value)})
        for arg in facts.arguments]})


def _ticket_line(ticket: Ticket | None, ticket_id: str) -> str:
    if ticket is None:
        return ticket_id
    where = f"{ticket.psa} #{ticket.external_id}" if ticket.psa and ticket.external_id else ticket.id
    return f"{redact_text(ticket.subject)[:300]} ({where})"


class Notifier:
    def __init__(self, *, techs: TechRegistry, registry: Registry, store: EscalationStore, audit: AuditLog,
                 public_url: str, retries: int = 4, backoff_s: float = 2.0,
                 transport: httpx.AsyncBaseTransport | None = None, tickets: TicketStore | None = None,
                 references: ApprovalReferences | None = None, slack_buttons: bool = False,
                 slack_response_prefixes: Sequence[str] = ()) -> None:
        """``slack_buttons``: Approve/Deny buttons in Slack (with ``references``, once the Slack app's signing
        secret is configured); ``slack_response_prefixes``: where an interaction's ``response_url`` may point."""
        self.techs, self._registry, self.store, self._audit = techs, registry, store, audit
        self._tickets = tickets
        self.public_url = public_url.rstrip("/")
        self.retries, self.backoff_s = retries, backoff_s
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        self.references = references
        self._slack = SlackSender(buttons=slack_buttons and references is not None)
        self._senders: dict[str, Sender] = {"slack": self._slack, "teams": TeamsSender()}
        self._response_prefixes = tuple(slack_response_prefixes)
        self._tasks: set[asyncio.Task[None]] = set()

    # -- what to say ----------------------------------------------------------------------------
    def approval_message(self, row: ApprovalRow, ticket_id: str = "", *, outcome: str | None = None) -> Message:
        """What a technician needs to decide ``row`` without opening anything else; ``outcome`` (who decided,
        when) for a message that is updated after a decision. Buttons to decide only while it is pending."""
        client = self._registry.client(row.client_id)
        ticket = self._ticket(row)
        facts = approval_facts(row.tool, row.args, row.target)
        who = self.techs.on_duty(client.id, client.name, utcnow())
        requester = facts.requester
        if requester is not None:
            asked = f"{requester.requested_by}: " + (", ".join(requester.verified_by) or "not verified")
        elif ticket is not None and ticket.requester:
            asked = f"{redact_text(ticket.requester)} (as the ticket names them; this step does not verify them)"
        else:
            asked = "nobody named on the ticket"
        where = row.target or ("the client's site" if facts.runs_on == "site" else "the device")
        account = row.args.get("username") if facts.runs_on == "site" else None
        acts_on = f"{where} ({facts.runs_on} agent)"
        if isinstance(account, str) and account:
            acts_on = f"the account {redact_text(account)[:200]}, through {acts_on}"
        deadline = row.deadline.strftime("%Y-%m-%d %H:%M UTC")
        pending = row.status == "pending"
        return Message(
            title=f"{_HEADLINE.get(row.status, 'Approval needed')}: {row.tool} on {where}",
            summary=facts.effect,
            facts=[("Client", client.name), ("Ticket", _ticket_line(ticket, ticket_id or "not found")),
                   ("Requester", asked), ("Acts on", acts_on),
                   ("Tool", f"{facts.tool}: {facts.description}"), ("Auto-deny at", deadline),
                   ("Approval", row.id)],
            sections=[("Exact arguments", argument_lines(_shown(facts)) or ["none"]),
                      ("Why (the assistant's note in it is unverified model text)",
                       redact_text(row.reason).splitlines() or ["none"]),
                      ("If you deny", [f"{row.tool} does not run and nothing is changed.",
                                       "MSPclaw records your reason; the ticket is escalated to a technician "
                                       "unless the run can finish without this step.",
                                       f"No decision by {deadline} counts as a deny."]),
                      ("Also from the command line", [f"mspclaw approvals approve {row.id} --as NAME",
                                                      f"mspclaw approvals deny {row.id} --as NAME --reason WHY"])],
            mention=mention_of(who.tech),
            link=("Review and approve" if pending else "Open in MSPclaw", f"{self.public_url}/ui/approvals/{row.id}"),
            decision=self.references.issue(row.id) if pending and self.references is not None else None,
            outcome=outcome)

    def _ticket(self, row: ApprovalRow) -> Ticket | None:
        if self._tickets is None:
            return None
        try:
            return self._tickets.ticket(self._tickets.session(row.session_id).ticket_id)
        except MSPClawError:
            return None

    async def approval_requested(self, row: ApprovalRow, ticket_id: str) -> None:
        """Tell the client's on-duty technician that a destructive step waits for them."""
        def prepare() -> tuple[Client, Message, Tech | None]:
            client = self._registry.client(row.client_id)
            return (client, self.approval_message(row, ticket_id),
                    self.techs.on_duty(client.id, client.name, utcnow()).tech)
        try:
            client, message, recipient = await asyncio.to_thread(prepare)  # the roster and the ticket: the database
            await self.send(client.id, client.name, "approval", row.id, message, recipient)
        except MSPClawError as exc:  # a notification never fails the approval request
            log.warning("approval %s: not notified: %s", row.id, exc.message)

    def slack_update(self, row: ApprovalRow, outcome: str) -> dict[str, object]:
        """The approval's Slack message as it stands now, with ``outcome``; its buttons stay only while pending."""
        return self._slack.render(self.approval_message(row, outcome=outcome))

    async def respond_in_slack(self, response_url: str, payload: dict[str, object]) -> bool:
        """POST ``payload`` to a Slack interaction's ``response_url`` if it points where Slack's do; never raises.
        The URL is a credential for that message: it is never logged."""
        if not response_url.startswith(self._response_prefixes):
            log.warning("a Slack interaction's response_url is outside MSPCLAW_SLACK_RESPONSE_URL_PREFIXES; "
                        "the message was not updated")
            return False
        try:
            await respond(self._client(), response_url, payload)
        except DeliveryError as exc:
            log.warning("the Slack message was not updated: %s", exc.message)
            return False
        return True

    async def send(self, client_id: str | None, client_name: str, subject: str, ref_id: str, message: Message,
                   recipient: Tech | None) -> int:
        """Queue ``message`` on every channel for this client and subject; returns how many."""
        def store_them() -> list[tuple[str, Channel, Sender, dict[str, object]]]:
            queued = []
            for channel in self.techs.channels(client_id or "", client_name, subject):
                sender = self._senders[channel.kind]
                payload = sender.render(message)
                row = self.store.add_notification(client_id=client_id, channel=channel.name,
                                                  channel_kind=channel.kind, subject=subject, ref_id=ref_id,
                                                  recipient=recipient.email if recipient else None, payload=payload)
                queued.append((row.id, channel, sender, payload))
            return queued
        queued = await asyncio.to_thread(store_them)  # each stored before its first try, off the event loop
        for notification_id, channel, sender, payload in queued:
            self._spawn(self._deliver(notification_id, channel, sender, payload, client_id))
        return len(queued)

    async def resume(self) -> int:
        """Deliver what a stopped process left pending (each message was stored before its first try)."""
        rows = await asyncio.to_thread(self.store.pending_notifications)
        channels = {c.name: c for c in (await asyncio.to_thread(self.techs.load)).channels}
        for row in rows:
            channel = channels.get(row.channel)
            if channel is None or channel.kind != row.channel_kind:
                await asyncio.to_thread(self.store.attempt, row.id, ok=False,
                                        error=f"channel {row.channel!r} is no longer in the roster", final=True)
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
                await asyncio.to_thread(self.store.attempt, notification_id, ok=False, error=exc.message,
                                        final=final)
                if final:
                    await self._audit.record("notify_failed", client_id=client_id,
                                             data={"notification_id": notification_id, "channel": channel.name,
                                                   "attempts": attempt, "error": exc.message})
                    return
                wait = min(exc.retry_after, MAX_RETRY_AFTER_S) if exc.retry_after is not None else delay
                await asyncio.sleep(wait)
                delay *= 2
            else:
                await asyncio.to_thread(self.store.attempt, notification_id, ok=True, error=None, final=True)
                await self._audit.record("notified", client_id=client_id,
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
