"""``POST /integrations/slack/interactions``: Approve and Deny clicked in Slack, decided as in the console.

Slack posts a click here (no bearer: the request proves itself with Slack's signature). In order:

1. the body, at most :data:`~mspclaw.connectors.notify.slack.MAX_INTERACTION_BYTES` (413 above, before
   anything else is read), is verified with the configured signing secret
   (``MSPCLAW_SLACK_SIGNING_SECRET``): a missing, forged or older-than-five-minutes signature is 401 and
   nothing is looked up; without a configured secret the route answers 404;
2. a click on anything but Approve or Deny (the button that opens MSPclaw sends one too) is acknowledged
   and ignored;
3. the button's value must be an approval reference this server issued (an HMAC binds it to one
   approval), else 403;
4. the clicking Slack user must be a technician of the roster (``slack_id``) who serves the
   approval's client, else 403 and nothing is decided;
5. the decision goes through :meth:`~mspclaw.pipeline.approvals.Approvals.decide_async`, the one
   decision path of the console, the API and the CLI: the same approver rules (never the requester or
   the opener of the ticket, the two-person rule), the same audit event, attributed to the technician
   with ``via: slack``. A Deny records the reason :data:`DENY_REASON`.

The answer to Slack is an empty 200 within its three seconds; then the message is replaced through the
interaction's ``response_url`` to show who decided and when (buttons gone), or, when the request was
already decided (a double click, a second technician, the console first), who decided it and when.
A refusal (403) also tells only the clicking user why, as an ephemeral message.

Statuses: 200 acknowledged; 400 not an interaction payload; 401 a bad or missing signature or a
timestamp over five minutes off; 403 not an approval reference of this server, or a Slack user who may
not decide it; 404 Slack interactions not configured; 413 an oversized body. The route is Slack's
callback, not an API for clients, so it is left out of ``/openapi.json`` (``docs/chat-approvals.md``).
"""

from __future__ import annotations

import time
from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.background import BackgroundTask

from mspclaw.api.auth import ServicesDep
from mspclaw.connectors.notify.slack import (
    MAX_INTERACTION_BYTES,
    SlackInteraction,
    ephemeral,
    parse_interaction,
    replacement,
    verify_request,
)
from mspclaw.errors import Conflict, Forbidden, MalformedWebhook, NotFound
from mspclaw.pipeline.offload import run_store
from mspclaw.pipeline.techs import Tech
from mspclaw.store.tables import ApprovalRow, utcnow
from mspclaw.wiring import Services

open_router = APIRouter()

SLACK_INTERACTIONS = "/integrations/slack/interactions"
DENY_REASON = "denied in Slack"
"""The reason a Deny from Slack records (a button carries no text); a technician who wants to say more denies in
the console's approval view."""


def _when(moment: datetime | None) -> str:
    return f"{moment or utcnow():%Y-%m-%d %H:%M:%S} UTC"


def _later(svc: Services, interaction: SlackInteraction, payload: dict[str, object]) -> BackgroundTask | None:
    """Post ``payload`` to the interaction's ``response_url`` once the 200 has gone back to Slack."""
    if not interaction.response_url:
        return None
    return BackgroundTask(svc.staff.notifier.respond_in_slack, interaction.response_url, payload)


async def _refuse(svc: Services, request: Request, interaction: SlackInteraction, row: ApprovalRow,
                  reason: str) -> Response:
    """403: audited like any refused API call, and told to the clicking user alone."""
    await svc.audit.record("api_forbidden", actor=f"slack:{interaction.user.id}", client_id=row.client_id,
                           data={"path": request.url.path, "method": request.method, "approval_id": row.id,
                                 "reason": reason, "via": "slack"})
    return JSONResponse({"detail": {"code": Forbidden.code, "message": reason}}, status_code=403,
                        background=_later(svc, interaction,
                                          ephemeral(f"MSPclaw did not record your click: {reason}")))


def _technician(svc: Services, slack_id: str) -> Tech | None:
    return next((t for t in svc.staff.techs.techs() if t.slack_id == slack_id), None)


@open_router.post(SLACK_INTERACTIONS, status_code=200, response_class=Response, include_in_schema=False)
async def slack_interactions(request: Request, svc: ServicesDep) -> Response:
    """Verify a Slack button click and decide the approval it names, as the clicking technician."""
    secret = svc.settings.slack_signing_secret.get_secret_value() if svc.settings.slack_signing_secret else ""
    if not secret:
        raise NotFound("Slack interactions are off: set MSPCLAW_SLACK_SIGNING_SECRET to the Slack app's signing "
                       "secret (docs/chat-approvals.md)")
    body = await request.body()  # BodyLimit answered 413 past MAX_INTERACTION_BYTES
    if len(body) > MAX_INTERACTION_BYTES:
        raise MalformedWebhook(f"a Slack interaction is at most {MAX_INTERACTION_BYTES} bytes")
    verify_request(secret, timestamp=request.headers.get("x-slack-request-timestamp"),
                   signed=request.headers.get("x-slack-signature"), body=body, now=time.time())
    interaction = parse_interaction(body)
    request.state.caller_name = f"slack:{interaction.user.id}"
    clicked = interaction.decision()
    references = svc.staff.notifier.references
    if clicked is None or references is None:
        return Response(status_code=200)  # another button (the link to MSPclaw): nothing to decide
    approve, reference = clicked
    row = await run_store(svc.store, svc.store.approval, references.resolve(reference))
    tech = await run_store(svc.store, _technician, svc, interaction.user.id)
    if tech is None:
        return await _refuse(svc, request, interaction, row,
                             f"Slack user {interaction.user.id} is not a technician of the roster (an admin adds "
                             f"`slack_id: {interaction.user.id}` to your entry); nothing was decided")
    client = await run_store(svc.store, svc.registry.client, row.client_id)
    if not tech.serves(client.id, client.name):
        return await _refuse(svc, request, interaction, row,
                             f"{tech.name} does not serve {client.name}; nothing was decided")
    principal = await run_store(svc.store, svc.staff.access.principal_for, tech)
    verb = "Approve" if approve else "Deny"
    try:
        decided = await svc.approvals.decide_async(row.id, approve=approve, approver=tech.email,
                                                   reason="" if approve else DENY_REASON, scope=principal.scope,
                                                   principal=principal, via="slack")
    except Forbidden as exc:
        return await _refuse(svc, request, interaction, row, f"{exc.message}; nothing was decided")
    except Conflict:
        current = await run_store(svc.store, svc.store.approval, row.id)
        outcome = (f"Already {current.status} by {current.approver or 'nobody'} at {_when(current.decided_at)}; "
                   f"{tech.name}'s {verb} in Slack changed nothing")
        message = await run_store(svc.store, svc.staff.notifier.slack_update, current, outcome)  # reads the ticket
        return Response(status_code=200, background=_later(svc, interaction, replacement(message)))
    if decided.status == "pending":  # the first of two approvals: the buttons stay for the second technician
        outcome = (f"First approval by {tech.name} <{tech.email}> via Slack at {_when(None)}; a second, different "
                   "technician must approve")
    elif decided.status == "approved":
        outcome = f"Approved by {decided.approver} via Slack at {_when(decided.decided_at)}"
    else:
        outcome = f"Denied by {decided.approver} via Slack at {_when(decided.decided_at)}: {DENY_REASON}"
    message = await run_store(svc.store, svc.staff.notifier.slack_update, decided, outcome)  # reads the ticket
    return Response(status_code=200, background=_later(svc, interaction, replacement(message)))
