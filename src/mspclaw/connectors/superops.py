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
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final, Literal

import httpx

from mspclaw.connectors.base import CloseStatus, PSANote, PSATicket, WebhookEvent
from mspclaw.connectors.freshness import REPLAY_WINDOW_S, check_fresh
from mspclaw.connectors.http import Clock, HttpConnector, PSAHttp, RateLimiter, Sleep
from mspclaw.connectors.text import changed_after, plain_text
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
        data = await self.graphql(GET_TICKET, {"input": {"ticketId": ticket_id}}, idempotent=True)
        raw = data.get("getTicket")
        if not isinstance(raw, dict):
            raise PSANotFound(f"SuperOps has no ticket {ticket_id!r}")
        ticket = self._ticket(raw)
        conversations = [c for c in _records(data, "getTicketConversationList") if c.get("type") == "DESCRIPTION"]
        conversations.sort(key=lambda c: str(c.get("time") or ""))
        if conversations:
            ticket.body = plain_text(str(conversations[0].get("content") or ""))
        ticket.notes = [PSANote(plain_text(str(n.get("content") or "")), n.get("privacyType") == "PUBLIC")
                        for n in _records(data, "getTicketNoteList")]
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
            data = await self.graphql(GET_TICKET_LIST, {"input": {**base, "page": page}}, idempotent=True)
            listing = data.get("getTicketList")
            if not isinstance(listing, dict):
                raise PSAError("SuperOps answered getTicketList without a ticket list")
            batch = [self._ticket(t) for t in listing.get("tickets") or [] if isinstance(t, dict)]
            found += batch
            info = listing.get("listInfo")
            if not batch or not (isinstance(info, dict) and info.get("hasMore") is True):
                break
            page += 1
        # SuperOps' "after" is applied by the server; we drop anything at or before ``since`` too.
        return changed_after(found, since)

    async def add_note(self, ticket_id: str, text: str, *, public: bool) -> None:
        """A ``PRIVATE`` or ``PUBLIC`` note (or a conversation reply, see ``public_reply``), unless the
        same text with the same visibility is already on the ticket."""
        ident = {"ticketId": ticket_id}
        wanted = _normalised(text)
        if public and self.public_reply == "conversation":
            data = await self.graphql(GET_CONVERSATIONS, {"input": ident}, idempotent=True)
            if any(c.get("type") != "DESCRIPTION" and _normalised(str(c.get("content") or "")) == wanted
                   for c in _records(data, "getTicketConversationList")):
                return
            await self.graphql(CREATE_CONVERSATION, {"input": {"ticket": ident, "content": text, "sendMail": True}},
                               idempotent=False)
            return
        privacy = "PUBLIC" if public else "PRIVATE"
        data = await self.graphql(GET_NOTES, {"input": ident}, idempotent=True)
        if any((n.get("privacyType") or "PRIVATE") == privacy and _normalised(str(n.get("content") or "")) == wanted
               for n in _records(data, "getTicketNoteList")):
            return
        await self.graphql(CREATE_NOTE, {"input": {"ticket": ident, "content": text, "privacyType": privacy}},
                           idempotent=False)

    async def set_status(self, ticket_id: str, status: CloseStatus) -> None:
        """Set the status ``status_map[status]`` names, after checking the instance defines it."""
        name = await self._status_name(self.status_map[status], status)
        data = await self.graphql(UPDATE_TICKET, {"input": {"ticketId": ticket_id, "status": name}},
                                  idempotent=False)
        if not isinstance(data.get("updateTicket"), dict):
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
        payload = {"query": document, "variables": dict(variables or {})}
        response = await self._http.request("POST", "", json=payload, idempotent=idempotent, check=_check_graphql)
        data = _json(response).get("data")
        if not isinstance(data, dict):
            raise PSAError("SuperOps answered without GraphQL data or errors")
        return data

    async def status_names(self) -> list[str]:
        """The status names this SuperOps instance defines (``getStatusList``), fetched once."""
        if self._statuses is None:
            data = await self.graphql(GET_STATUSES, idempotent=True)
            self._statuses = [str(s["name"]) for s in _records(data, "getStatusList") if s.get("name")]
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

    def _ticket(self, raw: dict[str, Any]) -> PSATicket:
        ticket_id = raw.get("ticketId")
        if not isinstance(ticket_id, str | int) or isinstance(ticket_id, bool):
            raise PSAError("SuperOps sent a ticket without a ticketId")
        client, custom = raw.get("client"), raw.get("customFields")
        company = client.get("accountId") if isinstance(client, dict) else None
        asset = custom.get(self.asset_field) if self.asset_field and isinstance(custom, dict) else None
        return PSATicket(
            id=str(ticket_id), company=str(company or ""), requester=_requester(raw.get("requester")),
            subject=str(raw.get("subject") or ""), body="",
            asset=asset.strip() if isinstance(asset, str) and asset.strip() else None,
            status=self._our_status(raw.get("status")),
            created_at=parse_time(raw.get("createdTime")), updated_at=parse_time(raw.get("updatedTime")))

    def _our_status(self, name: object) -> str:
        if not isinstance(name, str):
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
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise MalformedWebhook(f"the SuperOps webhook body is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise MalformedWebhook("the SuperOps webhook body is not a JSON object")
        ticket_id, event, delivery = data.get("ticketId"), data.get("event", "ticket.created"), data.get("deliveryId")
        if isinstance(ticket_id, bool) or not isinstance(ticket_id, str | int) or not str(ticket_id).strip():
            raise MalformedWebhook('the SuperOps webhook body has no "ticketId"')
        if not isinstance(event, str) or not event:
            raise MalformedWebhook('the SuperOps webhook "event" is not a non-empty string')
        if delivery is not None and not isinstance(delivery, str):
            raise MalformedWebhook('the SuperOps webhook "deliveryId" is not a string')
        return WebhookEvent(psa=self.name, ticket_id=str(ticket_id).strip(), event=event, delivery_id=delivery)


# --- GraphQL answers -------------------------------------------------------------------------------

_REJECTED_CODES: Final = frozenset({"referred_value_does_not_exist", "value_length_exceeds_limit"})


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError as exc:
        raise PSAError("SuperOps answered with something that is not JSON") from exc
    if not isinstance(payload, dict):
        raise PSAError(f"SuperOps answered with a JSON {type(payload).__name__}, not an object")
    return payload


def _check_graphql(response: httpx.Response) -> None:
    """Raise for GraphQL ``errors`` in a 2xx answer (the http layer retries PSARateLimited)."""
    errors = _json(response).get("errors")
    if errors:
        raise graphql_error(errors if isinstance(errors, list) else [errors])


def graphql_error(errors: list[Any]) -> PSAError:
    """The exception for a GraphQL ``errors`` list, by ``extensions.clientError[].code``."""
    messages: list[str] = []
    codes: list[str] = []
    for error in errors:
        if not isinstance(error, dict):
            messages.append(str(error))
            continue
        messages.append(str(error.get("message") or "no message"))
        extensions = error.get("extensions")
        client = extensions.get("clientError") if isinstance(extensions, dict) else None
        for item in client if isinstance(client, list) else [client]:
            if isinstance(item, dict) and isinstance(item.get("code"), str):
                codes.append(item["code"])
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


def _records(data: Mapping[str, Any], field: str) -> list[dict[str, Any]]:
    value = data.get(field)
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


# --- values ----------------------------------------------------------------------------------------


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def format_time(moment: datetime) -> str:
    """SuperOps' date format: UTC ISO-8601 to the second, without zone (a naive ``moment`` is UTC)."""
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%S")


def parse_time(value: object) -> datetime | None:
    """A SuperOps time (UTC ISO-8601 without zone) as an aware UTC datetime; ``None`` when absent."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise PSAError(f"SuperOps sent a time that is not a string: {value!r}")
    try:
        return _utc(datetime.fromisoformat(value))
    except ValueError as exc:
        raise PSAError(f"SuperOps sent a time that is not ISO-8601: {value!r}") from exc


def _requester(value: object) -> str:
    if isinstance(value, dict):
        for key in ("email", "name", "userId"):
            found = value.get(key)
            if isinstance(found, str | int) and not isinstance(found, bool) and str(found).strip():
                return str(found).strip()
        return ""
    return str(value) if isinstance(value, str) else ""
