"""SuperOps.ai, over its GraphQL API (the MSP surface).

**Endpoint and auth.** One GraphQL endpoint per data centre: ``https://api.superops.ai/msp`` (US,
the default) or ``https://euapi.superops.ai/msp`` (EU); ``endpoint=`` overrides it (tests, the IT
surface). Every request is a POST carrying ``Authorization: Bearer <API token>`` and
``CustomerSubDomain: <sub-domain>``. SuperOps answers HTTP 401 for a bad token and HTTP 400 for a
bad sub-domain; both become :class:`~mspclaw.errors.PSAAuthError`.

**Errors inside a 200.** Everything else comes back as HTTP 200 with GraphQL ``errors``; the
machine code is ``errors[].extensions.clientError[].code``:

==============================================  ====================================================
code                                            raised
==============================================  ====================================================
``rate_limit_exceeded``                         retried with backoff, then :class:`PSARateLimited`
``entity_does_not_exist``                       :class:`PSANotFound`
``forbidden``                                   :class:`PSAAuthError`
``subscription_*`` (trial expired, paused…)     :class:`PSAAuthError` saying the subscription blocks
                                                the API
``*_validation_failed``, ``value_*``,           :class:`PSARejected` with SuperOps' messages
``referred_value_does_not_exist``, or no code
(a GraphQL validation error)
any other code                                  :class:`PSAError`
==============================================  ====================================================

Retries, backoff, ``Retry-After`` and the client-side limit of 800 requests a minute per token
live in :mod:`mspclaw.connectors.http`; queries are retried after a timeout, mutations are not.

**Mapping a ticket** (:meth:`SuperOpsConnector.get_ticket`, one GraphQL request):

* ``id`` ← ``ticketId``; ``company`` ← ``client.accountId`` (empty when the ticket has no client,
  which the intake escalates as an unknown company);
* ``requester`` ← the requester's ``email`` when SuperOps includes one, else ``name``, else ``userId``;
* ``requester_name`` ← the requester's ``name`` (the contact's name the reply greets);
* ``body`` ← the ticket's first conversation of type ``DESCRIPTION`` (``getTicket`` has no
  description field), HTML reduced to plain text; empty when there is none;
* ``asset`` ← the custom field named by ``asset_field`` (e.g. ``"udf1text"``, holding the device's
  host name) when configured and non-empty, else ``None`` (routing then falls back to the
  requester's device);
* ``status`` ← ``"resolved"`` for the status ``status_map["resolved"]`` names or ``Closed``,
  ``"escalated"`` for the one ``status_map["escalated"]`` names unless that is a stock open state
  (``New``/``Open``), else ``"open"``;
* ``notes`` ← ``getTicketNoteList`` (``PUBLIC`` notes are public); times are SuperOps' UTC ISO
  strings without zone, returned as aware UTC datetimes.

:meth:`~SuperOpsConnector.list_tickets` pages ``getTicketList`` (100 a page, following ``hasMore``)
with ``condition {attribute: "updatedTime", operator: "after", value: since}`` sorted by
``updatedTime`` ascending; it returns summaries (``body`` and ``notes`` empty): the intake fetches
each ticket with ``get_ticket``.

**Writing back.** :meth:`~SuperOpsConnector.add_note` posts ``createTicketNote`` with
``privacyType`` ``PRIVATE`` (technical trail) or ``PUBLIC`` (shown to the requester). With
``public_reply="conversation"`` a public reply is a ``createTicketConversation`` with
``sendMail: true`` instead, for MSPs that reach users by the ticket's e-mail thread. Both first read
the ticket's notes (or conversations) and post nothing when the same text with the same visibility
is already there, so repeating a write whose answer was lost to a timeout never posts twice.
:meth:`~SuperOpsConnector.set_status` sends ``updateTicket`` with the status *name*
``status_map`` gives (default ``resolved`` → ``Resolved``, ``escalated`` → ``Open``), checked once
against ``getStatusList``: a name the instance does not define raises :class:`PSARejected` listing
the names it does.

**Webhooks.** SuperOps documents no webhook signature: its outbound calls are workflow actions an
admin configures, body and headers included. MSPclaw defines the contract (also in
``docs/psa/superops.md``). The body is JSON::

    {"ticketId": "7928838372746166987", "event": "ticket.created", "deliveryId": "optional"}

``event`` defaults to ``ticket.created``; ``ticketId`` may be a string or a number. The account's
``webhook_auth`` picks how a delivery is authenticated:

* ``"hmac"`` (default): ``X-MSPclaw-Timestamp`` (unix seconds) and ``X-MSPclaw-Signature:
  sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>`` (the ``sha256=`` prefix is optional);
  the timestamp must be within the replay window of our clock (:mod:`mspclaw.connectors.freshness`,
  five minutes either way): a captured delivery is refused once it is older.
* ``"shared_secret"``: for workflows that cannot compute an HMAC, ``X-MSPclaw-Secret: <secret>``;
  a timestamp header, when sent, is checked the same way. Only when the account is configured so:
  an ``"hmac"`` account refuses a bare secret. This mode cannot refuse replays: the secret travels
  in every delivery and signs nothing, so whoever captured one can send it again with a fresh
  timestamp, or send anything else (``docs/psa/superops.md``, Replays).

Secrets are compared in constant time. Any failure raises :class:`~mspclaw.errors.AuthError`; a
correctly authenticated body that is not such an event raises :class:`~mspclaw.errors.MalformedWebhook`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final, Generic, Literal, TypeVar

import httpx
from pydantic import ConfigDict, Field

from mspclaw.connectors.base import CloseStatus, NoteFormat, PSANote, PSATicket, WebhookEvent
from mspclaw.connectors.freshness import REPLAY_WINDOW_S, check_fresh
from mspclaw.connectors.http import Clock, HttpConnector, PSAHttp, RateLimiter, Sleep
from mspclaw.connectors.note_format import render
from mspclaw.connectors.payload import Key, Name, Payload, Text, Time, read, webhook_body
from mspclaw.connectors.text import changed_after, plain_text, utc
from mspclaw.connectors.text import normalised as _normalised
from mspclaw.errors import (
    AuthError,
    ConfigError,
    MalformedWebhook,
    PSAAuthError,
    PSAError,
    PSANotFound,
    PSARateLimited,
    PSARejected,
)

Region = Literal["us", "eu"]
ENDPOINTS: Final[dict[str, str]] = {"us": "https://api.superops.ai/msp", "eu": "https://euapi.superops.ai/msp"}
PAGE_SIZE: Final = 100
"""SuperOps' maximum records per request."""
DEFAULT_STATUS_MAP: Final[dict[str, str]] = {"resolved": "Resolved", "escalated": "Open"}
OPEN_STATES: Final = frozenset({"new", "open"})

TIMESTAMP_HEADER: Final = "x-mspclaw-timestamp"
SIGNATURE_HEADER: Final = "x-mspclaw-signature"
SECRET_HEADER: Final = "x-mspclaw-secret"  # noqa: S105 (a header name)
WEBHOOK_TOLERANCE_S: Final = REPLAY_WINDOW_S

_TICKET_FIELDS = "ticketId displayId subject status client requester customFields createdTime updatedTime"
GET_TICKET: Final = f"""
query getTicket($input: TicketIdentifierInput!) {{
  getTicket(input: $input) {{ {_TICKET_FIELDS} }}
  getTicketConversationList(input: $input) {{ conversationId content time type }}
  getTicketNoteList(input: $input) {{ noteId content addedOn privacyType }}
}}"""
GET_TICKET_LIST: Final = f"""
query getTicketList($input: ListInfoInput!) {{
  getTicketList(input: $input) {{
    tickets {{ {_TICKET_FIELDS} }}
    listInfo {{ page pageSize hasMore totalCount }}
  }}
}}"""
GET_NOTES: Final = """
query getTicketNoteList($input: TicketIdentifierInput!) {
  getTicketNoteList(input: $input) { noteId content privacyType }
}"""
CREATE_NOTE: Final = """
mutation createTicketNote($input: CreateTicketNoteInput!) {
  createTicketNote(input: $input) { noteId privacyType }
}"""
GET_CONVERSATIONS: Final = """
query getTicketConversationList($input: TicketIdentifierInput!) {
  getTicketConversationList(input: $input) { conversationId content time type }
}"""
CREATE_CONVERSATION: Final = """
mutation createTicketConversation($input: CreateTicketConversationInput!) {
  createTicketConversation(input: $input) { conversationId type }
}"""
GET_STATUSES: Final = """
query getStatusList {
  getStatusList { id name }
}"""
UPDATE_TICKET: Final = """
mutation updateTicket($input: UpdateTicketInput!) {
  updateTicket(input: $input) { ticketId status updatedTime }
}"""

DOCUMENTS: Final = (GET_TICKET, GET_TICKET_LIST, GET_NOTES, CREATE_NOTE, GET_CONVERSATIONS, CREATE_CONVERSATION,
                    GET_STATUSES, UPDATE_TICKET)
"""Every GraphQL document this connector sends."""


# --- what the connector reads from SuperOps' answers -----------------------------------------------
# A field a document selects is always in the answer (GraphQL), so it is required here: a field
# SuperOps renamed is one clear error, not an empty value. ``client``, ``requester`` and
# ``customFields`` are SuperOps' scalar ``JSON`` type: we read the keys we need from them.

D = TypeVar("D", bound=Payload)


class _Client(Payload):
    account_id: str = Field(alias="accountId")


class _Person(Payload):
    email: Name = None
    name: Name = None
    user_id: Key | None = Field(None, alias="userId")

    def best(self) -> str:
        user = str(self.user_id).strip() if self.user_id is not None else ""
        return self.email or self.name or user


class _Ticket(Payload):
    ticket_id: Key = Field(alias="ticketId")
    subject: Text
    status: str | None
    client: _Client | None
    requester: _Person | str | None
    custom_fields: dict[str, Any] | None = Field(alias="customFields")
    created: Time = Field(alias="createdTime")
    updated: Time = Field(alias="updatedTime")


class _Conversation(Payload):
    content: Text
    time: Time
    type: str | None


class _Note(Payload):
    content: Text
    privacy: str | None = Field(alias="privacyType")


class _TicketAnswer(Payload):
    ticket: _Ticket | None = Field(alias="getTicket")
    conversations: list[_Conversation] | None = Field(alias="getTicketConversationList")
    notes: list[_Note] | None = Field(alias="getTicketNoteList")


class _ListInfo(Payload):
    has_more: bool | None = Field(alias="hasMore")


class _TicketList(Payload):
    tickets: list[_Ticket] | None
    list_info: _ListInfo | None = Field(alias="listInfo")


class _TicketListAnswer(Payload):
    listing: _TicketList = Field(alias="getTicketList")


class _NotesAnswer(Payload):
    notes: list[_Note] | None = Field(alias="getTicketNoteList")


class _ConversationsAnswer(Payload):
    conversations: list[_Conversation] | None = Field(alias="getTicketConversationList")


class _Status(Payload):
    name: Name


class _StatusesAnswer(Payload):
    statuses: list[_Status] | None = Field(alias="getStatusList")


class _Written(Payload):
    """The answer to a mutation: only whether the record came back."""

    created_note: dict[str, Any] | None = Field(None, alias="createTicketNote")
    created_conversation: dict[str, Any] | None = Field(None, alias="createTicketConversation")
    updated: dict[str, Any] | None = Field(None, alias="updateTicket")


class _AnyData(Payload):
    """``data`` as it came, for :meth:`SuperOpsConnector.graphql` callers with their own documents."""

    model_config = ConfigDict(extra="allow")


class _Data(Payload, Generic[D]):
    data: D


class _ClientError(Payload):
    code: str | None = None


class _Extensions(Payload):
    client_error: list[_ClientError | None] | _ClientError | None = Field(None, alias="clientError")


class _GraphQLError(Payload):
    message: str | None = None
    extensions: _Extensions | None = None


class _Errors(Payload):
    errors: list[_GraphQLError | str] | _GraphQLError | None = None


class _Hook(Payload):
    """The body of a SuperOps workflow's webhook (the contract in the module docstring)."""

    ticket_id: Key | None = Field(None, alias="ticketId")
    event: str | None = "ticket.created"
    delivery_id: str | None = Field(None, alias="deliveryId")


def sign_webhook(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-MSPclaw-Signature`` value for ``body`` sent at ``timestamp`` (unix seconds)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class SuperOpsConnector(HttpConnector):
    """The SuperOps connector (see the module docstring for every mapping and rule).

    ``transport`` replaces the network; ``clock``/``sleep`` drive the rate limiter and retry waits,
    ``now`` is the wall clock for webhook timestamps, so tests never really wait. ``rate_limiter``
    may be shared by every connector using the same API token; otherwise one of ``rate_per_minute``
    is made. Close with :meth:`aclose` or use as an async context manager.
    """

    name = "superops"
    note_format: NoteFormat = "html"
    """SuperOps notes and conversations are rich text (HTML)."""

    def __init__(self, *, subdomain: str, token: str, region: Region = "us", webhook_secret: str | None = None,
                 webhook_auth: Literal["hmac", "shared_secret"] = "hmac",
                 status_map: Mapping[str, str] | None = None, asset_field: str | None = None,
                 public_reply: Literal["note", "conversation"] = "note",
                 transport: httpx.AsyncBaseTransport | None = None, endpoint: str | None = None,
                 timeout: float = 30.0, max_retries: int = 3, rate_per_minute: int = 800,
                 rate_limiter: RateLimiter | None = None, clock: Clock = time.monotonic,
                 sleep: Sleep = asyncio.sleep, now: Clock = time.time) -> None:
        if not subdomain or not token:
            raise ConfigError("SuperOps needs the account's sub-domain (Settings > MSP Information) and an API token")
        if endpoint is None and region not in ENDPOINTS:
            raise ConfigError(f"SuperOps region must be 'us' or 'eu', not {region!r}")
        if webhook_auth not in ("hmac", "shared_secret"):
            raise ConfigError(f"SuperOps webhook_auth must be 'hmac' or 'shared_secret', not {webhook_auth!r}")
        unknown = set(status_map or {}) - set(DEFAULT_STATUS_MAP)
        if unknown:
            raise ConfigError(f"SuperOps status_map keys must be resolved/escalated, not {sorted(unknown)}")
        self.subdomain = subdomain
        self.endpoint = endpoint or ENDPOINTS[region]
        self.status_map: dict[str, str] = {**DEFAULT_STATUS_MAP, **(status_map or {})}
        self.asset_field = asset_field
        self.public_reply = public_reply
        self._webhook_secret = webhook_secret
        self._webhook_auth = webhook_auth
        self._now = now
        self._statuses: list[str] | None = None
        self.rate_limiter = rate_limiter or RateLimiter(rate_per_minute, 60.0, clock=clock, sleep=sleep)
        """Spent by every attempt; pass it to another connector that uses the same API token."""
        self._http = PSAHttp(
            service="SuperOps", base_url=self.endpoint, timeout=timeout, max_retries=max_retries,
            headers={"Authorization": f"Bearer {token}", "CustomerSubDomain": subdomain,
                     "Content-Type": "application/json", "Accept": "application/json"},
            rate_limiter=self.rate_limiter, status_errors={400: self._bad_subdomain}, transport=transport, sleep=sleep,
            now=now)


    # --- the PSAConnector protocol -------------------------------------------------------------

    async def get_ticket(self, ticket_id: str) -> PSATicket:
        """The ticket, its description as ``body`` and its notes (one GraphQL request)."""
        data = await self._run(_TicketAnswer, GET_TICKET, {"input": {"ticketId": ticket_id}}, idempotent=True)
        if data.ticket is None:
            raise PSANotFound(f"SuperOps has no ticket {ticket_id!r}")
        ticket = self._ticket(data.ticket)
        described = sorted((c for c in data.conversations or [] if c.type == "DESCRIPTION"),
                           key=lambda c: c.time or _EPOCH)
        if described:
            ticket.body = plain_text(described[0].content)
        ticket.notes = [PSANote(plain_text(n.content), n.privacy == "PUBLIC") for n in data.notes or []]
        return ticket

    async def list_tickets(self, since: datetime | None = None) -> list[PSATicket]:
        """Tickets updated after ``since`` (all when ``None``), oldest first, following every page.

        Summaries only: ``body`` and ``notes`` are empty (:meth:`get_ticket` brings them).
        """
        base: dict[str, Any] = {"pageSize": PAGE_SIZE, "sort": [{"attribute": "updatedTime", "order": "ASC"}]}
        if since is not None:
            base["condition"] = {"attribute": "updatedTime", "operator": "after", "value": format_time(since)}
        found: list[PSATicket] = []
        page = 1
        while True:
            data = await self._run(_TicketListAnswer, GET_TICKET_LIST, {"input": {**base, "page": page}},
                                   idempotent=True)
            batch = [self._ticket(t) for t in data.listing.tickets or []]
            found += batch
            info = data.listing.list_info
            if not batch or info is None or info.has_more is not True:
                break
            page += 1
        # SuperOps' "after" is applied by the server; we drop anything at or before ``since`` too.
        return changed_after(found, since)

    async def add_note(self, ticket_id: str, text: str, *, public: bool) -> None:
        """A ``PRIVATE`` or ``PUBLIC`` note (or a conversation reply, see ``public_reply``), unless the
        same text with the same visibility is already on the ticket."""
        ident = {"ticketId": ticket_id}
        wanted = {_normalised(text), _normalised(render(text, self.note_format))}
        text = render(text, self.note_format)
        if public and self.public_reply == "conversation":
            replies = await self._run(_ConversationsAnswer, GET_CONVERSATIONS, {"input": ident}, idempotent=True)
            if any(c.type != "DESCRIPTION" and _normalised(c.content) in wanted for c in replies.conversations or []):
                return
            await self._run(_Written, CREATE_CONVERSATION,
                            {"input": {"ticket": ident, "content": text, "sendMail": True}}, idempotent=False)
            return
        privacy = "PUBLIC" if public else "PRIVATE"
        notes = await self._run(_NotesAnswer, GET_NOTES, {"input": ident}, idempotent=True)
        if any((n.privacy or "PRIVATE") == privacy and _normalised(n.content) in wanted for n in notes.notes or []):
            return
        await self._run(_Written, CREATE_NOTE, {"input": {"ticket": ident, "content": text, "privacyType": privacy}},
                        idempotent=False)

    async def set_status(self, ticket_id: str, status: CloseStatus) -> None:
        """Set the status ``status_map[status]`` names, after checking the instance defines it."""
        name = await self._status_name(self.status_map[status], status)
        data = await self._run(_Written, UPDATE_TICKET, {"input": {"ticketId": ticket_id, "status": name}},
                               idempotent=False)
        if data.updated is None:
            raise PSANotFound(f"SuperOps has no ticket {ticket_id!r} to set to {name!r}")

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
        """Authenticate and read an inbound webhook (contract in the module docstring)."""
        lower = {key.lower(): value for key, value in headers.items()}
        secret = self._webhook_secret
        if not secret:
            raise AuthError("no webhook secret is configured for this SuperOps account; refusing the webhook")
        timestamp = lower.get(TIMESTAMP_HEADER)
        if self._webhook_auth == "hmac":
            signature = lower.get(SIGNATURE_HEADER)
            if not timestamp or not signature:
                raise AuthError("the SuperOps webhook has no X-MSPclaw-Timestamp or X-MSPclaw-Signature header")
            given = signature.strip().lower().removeprefix("sha256=")
            expected = sign_webhook(secret, timestamp.strip(), body).removeprefix("sha256=")
            if not hmac.compare_digest(expected.encode(), given.encode()):
                raise AuthError("the SuperOps webhook signature does not match the configured secret")
        else:
            given_secret = lower.get(SECRET_HEADER)
            if not given_secret:
                raise AuthError("the SuperOps webhook has no X-MSPclaw-Secret header")
            if not hmac.compare_digest(secret.encode(), given_secret.strip().encode()):
                raise AuthError("the SuperOps webhook secret does not match the configured secret")
        if timestamp is not None:
            self._check_timestamp(timestamp)
        return self._event(body)

    # --- beyond the protocol -------------------------------------------------------------------

    async def graphql(self, document: str, variables: Mapping[str, Any] | None = None, *,
                      idempotent: bool) -> dict[str, Any]:
        """Run one GraphQL operation and return its ``data``; GraphQL ``errors`` raise (module docstring).

        ``idempotent`` says whether the operation may be repeated after a timeout: true for
        queries, false for mutations.
        """
        answer = await self._run(_AnyData, document, variables, idempotent=idempotent)
        return dict(answer.model_extra or {})

    async def _run(self, model: type[D], document: str, variables: Mapping[str, Any] | None = None, *,
                   idempotent: bool) -> D:
        """Run one GraphQL operation; its ``data`` read as ``model`` (GraphQL ``errors`` raise first)."""
        payload = {"query": document, "variables": dict(variables or {})}
        response = await self._http.request("POST", "", json=payload, idempotent=idempotent, check=_check_graphql)
        return read(_Data[model], response, service="SuperOps").data  # type: ignore[valid-type]

    async def check(self) -> str:
        """The credential test: the instance's ticket statuses (``getStatusList``), one small authenticated query."""
        data = await self._run(_StatusesAnswer, GET_STATUSES, idempotent=True)
        return (f"SuperOps accepted the API token for sub-domain {self.subdomain}; "
                f"it defines {len(data.statuses or [])} ticket statuses")

    async def status_names(self) -> list[str]:
        """The status names this SuperOps instance defines (``getStatusList``), fetched once."""
        if self._statuses is None:
            data = await self._run(_StatusesAnswer, GET_STATUSES, idempotent=True)
            self._statuses = [s.name for s in data.statuses or [] if s.name]
        return self._statuses

    # --- plumbing ------------------------------------------------------------------------------

    async def _status_name(self, wanted: str, ours: str) -> str:
        for refresh in (False, True):
            if refresh:
                self._statuses = None
            for name in await self.status_names():
                if name.casefold() == wanted.casefold():
                    return name
        available = ", ".join(repr(n) for n in self._statuses or []) or "none"
        raise PSARejected(f"SuperOps has no ticket status {wanted!r} (mapped from {ours!r}); this instance "
                          f"defines: {available}. Fix the account's status_map.")

    def _bad_subdomain(self, response: httpx.Response) -> PSAError:
        return PSAAuthError(f"SuperOps refused the request (HTTP 400): it answers so when the CustomerSubDomain "
                            f"{self.subdomain!r} is not the account's sub-domain (Settings > MSP Information). "
                            f"Answer: {' '.join(response.text.split())[:200]}")

    def _ticket(self, raw: _Ticket) -> PSATicket:
        asset = (raw.custom_fields or {}).get(self.asset_field) if self.asset_field else None
        requester = raw.requester.best() if isinstance(raw.requester, _Person) else (raw.requester or "")
        return PSATicket(
            id=str(raw.ticket_id), company=raw.client.account_id if raw.client else "", requester=requester,
            requester_name=raw.requester.name if isinstance(raw.requester, _Person) else None,
            subject=raw.subject, body="", asset=asset.strip() if isinstance(asset, str) and asset.strip() else None,
            status=self._our_status(raw.status), created_at=raw.created, updated_at=raw.updated)

    def _our_status(self, name: str | None) -> str:
        if name is None:
            return "open"
        folded = name.casefold()
        if folded in (self.status_map["resolved"].casefold(), "closed"):
            return "resolved"
        escalated = self.status_map["escalated"].casefold()
        if folded == escalated and escalated not in OPEN_STATES:
            return "escalated"
        return "open"

    def _check_timestamp(self, timestamp: str) -> None:
        try:
            sent = datetime.fromtimestamp(int(timestamp.strip()), UTC)
        except (ValueError, OverflowError, OSError):
            raise AuthError(f"the SuperOps webhook timestamp {timestamp[:40]!r} is not unix seconds") from None
        check_fresh(sent, self._now(), what="the SuperOps webhook (X-MSPclaw-Timestamp)")

    def _event(self, body: bytes) -> WebhookEvent:
        hook = webhook_body(_Hook, body, service="SuperOps")
        ticket_id = str(hook.ticket_id).strip() if hook.ticket_id is not None else ""
        if not ticket_id:
            raise MalformedWebhook('the SuperOps webhook body has no "ticketId"')
        if not hook.event:
            raise MalformedWebhook('the SuperOps webhook "event" is not a non-empty string')
        return WebhookEvent(psa=self.name, ticket_id=ticket_id, event=hook.event, delivery_id=hook.delivery_id)


# --- GraphQL answers -------------------------------------------------------------------------------

_REJECTED_CODES: Final = frozenset({"referred_value_does_not_exist", "value_length_exceeds_limit"})


def _check_graphql(response: httpx.Response) -> None:
    """Raise for GraphQL ``errors`` in a 2xx answer (the http layer retries PSARateLimited)."""
    errors = read(_Errors, response, service="SuperOps").errors
    if errors:
        raise graphql_error(errors if isinstance(errors, list) else [errors])


def graphql_error(errors: list[_GraphQLError | str]) -> PSAError:
    """The exception for a GraphQL ``errors`` list, by ``extensions.clientError[].code``."""
    messages: list[str] = []
    codes: list[str] = []
    for error in errors:
        if isinstance(error, str):
            messages.append(error)
            continue
        messages.append(error.message or "no message")
        client = error.extensions.client_error if error.extensions else None
        codes += [item.code for item in (client if isinstance(client, list) else [client])
                  if item is not None and item.code]
    said = "; ".join(dict.fromkeys(messages))
    named = f" [{', '.join(dict.fromkeys(codes))}]" if codes else ""
    if "rate_limit_exceeded" in codes:
        return PSARateLimited(f"SuperOps is rate limiting this API token (800 requests/minute): {said}")
    if "entity_does_not_exist" in codes:
        return PSANotFound(f"SuperOps has no such record: {said}")
    if "forbidden" in codes:
        return PSAAuthError(f"SuperOps forbids this operation for the API token's user: {said}")
    subscription = [c for c in codes if c.startswith("subscription_")]
    if subscription:
        state = subscription[0].removeprefix("subscription_").replace("_", " ")
        return PSAAuthError(f"SuperOps refuses API calls because the account's subscription is {state}: {said}")
    if not codes or all("validation" in c or c in _REJECTED_CODES for c in codes):
        return PSARejected(f"SuperOps rejected the request{named}: {said}")
    return PSAError(f"SuperOps answered with errors{named}: {said}")


# --- values ----------------------------------------------------------------------------------------


def format_time(moment: datetime) -> str:
    """SuperOps' date format: UTC ISO-8601 to the second, without zone (a naive ``moment`` is UTC)."""
    return utc(moment).strftime("%Y-%m-%dT%H:%M:%S")


_EPOCH: Final = datetime.min.replace(tzinfo=UTC)
