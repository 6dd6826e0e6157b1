"""Operator routes: logins, API keys, technicians, devices, escalations, feedback,
stats, audit. Every ``/api`` route here runs through :func:`~mspclaw.api.auth.require_caller`
(role rule in :mod:`mspclaw.api.rbac`) and scopes its query to the caller's clients.
"""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from mspclaw.api.auth import CallerDep, ServicesDep, require_caller
from mspclaw.api.operator_schemas import (
    AuditOut,
    DailyOut,
    DeviceDetail,
    DeviceOut,
    EscalationOut,
    FactOut,
    FeedbackIn,
    FeedbackOut,
    ForgetOut,
    KeyCreated,
    KeyIn,
    KeyOut,
    LinkOut,
    LoginIn,
    MeOut,
    NotificationOut,
    RefreshIn,
    StatsOut,
    StatsRowOut,
    TechOut,
    TokensOut,
)
from mspclaw.errors import Conflict, NotFound
from mspclaw.pipeline.access import Tokens
from mspclaw.protocol.limits import SEQ_MAX
from mspclaw.store.stats import DIMENSIONS, StatsRow, aggregate, daily_rates
from mspclaw.store.tables import ApiKeyRow, Device, utcnow

open_router = APIRouter()
api = APIRouter(prefix="/api", dependencies=[Depends(require_caller)])


def _remote(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _tokens(t: Tokens) -> TokensOut:
    return TokensOut(access_token=t.access_token, refresh_token=t.refresh_token, expires_in=t.expires_in)


def parse_since(value: str | None) -> datetime | None:
    """An ISO time or an age such as 30m, 12h, 7d."""
    if not value:
        return None
    units = {"m": 60, "h": 3600, "d": 86400}
    try:
        if value[:-1].isdigit() and value[-1] in units:
            return utcnow() - timedelta(seconds=int(value[:-1]) * units[value[-1]])
        parsed = datetime.fromisoformat(value)
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError):  # not a time, or one outside years 1 to 9999 in UTC
        raise Conflict(f"since={value[:40]!r}: use an ISO time (2026-11-23T10:00) or an age like 30m, 12h, "
                       "7d") from None


# -- logins (no bearer: these make one) ----------------------------------------------------------
@open_router.post("/auth/login", response_model=TokensOut, tags=["auth"],
                  responses={401: {"description": "wrong e-mail or password"}, 429: {"description": "throttled"}})
def login(body: LoginIn, request: Request, svc: ServicesDep) -> TokensOut:
    """A technician logs in with e-mail and password; gets a short-lived JWT and a refresh token."""
    return _tokens(svc.ops.access.login(body.email, body.password, remote=_remote(request)))


@open_router.post("/auth/refresh", response_model=TokensOut, tags=["auth"])
def refresh(body: RefreshIn, request: Request, svc: ServicesDep) -> TokensOut:
    """Trade a refresh token (once) for a new access token and refresh token."""
    return _tokens(svc.ops.access.refresh(body.refresh_token, remote=_remote(request)))


_LINK_PAGE = """<!doctype html><meta charset="utf-8"><title>MSPclaw login</title>
<body style="font-family:sans-serif;max-width:32em;margin:3em auto">
<h1>MSPclaw</h1><p>This one-time link logs you in once.</p>
<form method="post"><button type="submit">Log in</button></form></body>"""


@open_router.get("/auth/link/{token}", response_class=HTMLResponse, tags=["auth"])
def link_page(token: str) -> HTMLResponse:
    """A page with one button; the link is spent only by the POST (mail scanners only GET)."""
    del token
    return HTMLResponse(_LINK_PAGE)


@open_router.post("/auth/link/{token}", response_model=TokensOut, tags=["auth"])
def redeem_link(token: str, request: Request, svc: ServicesDep) -> TokensOut:
    """Spend a one-time login link for a token pair."""
    return _tokens(svc.ops.access.redeem_link(token, remote=_remote(request)))


_APPROVAL_PAGE = """<!doctype html><meta charset="utf-8"><title>MSPclaw approval</title>
<body style="font-family:sans-serif;max-width:40em;margin:3em auto">
<h1>Approval <code>{id}</code></h1>
<form id="login"><p><input id="email" placeholder="e-mail" autocomplete="username">
<input id="password" type="password" placeholder="password" autocomplete="current-password">
<button>Log in</button></p></form>
<pre id="detail"></pre>
<p id="act" hidden><input id="reason" placeholder="reason (optional)">
<button id="approve">Approve</button> <button id="deny">Deny</button></p><p id="msg"></p>
<script>
const id = {id_json}; let token = null;
const $ = name => document.getElementById(name);
const msg = t => $("msg").textContent = t;
async function call(method, path, body) {{
  const r = await fetch(path, {{method, headers: Object.assign({{"Content-Type": "application/json"}},
    token ? {{"Authorization": "Bearer " + token}} : {{}}), body: body ? JSON.stringify(body) : undefined}});
  let data = null;
  try {{ data = await r.json(); }} catch (err) {{
    throw new Error(`the server answered ${{r.status}} ${{r.statusText}} without JSON; try again or ask your admin`);
  }}
  if (!r.ok) throw new Error((data && data.detail && data.detail.message) || `the server answered ${{r.status}}`);
  return data;
}}
function show(a) {{
  const f = a.facts, lines = [
    "Tool: " + f.tool + " (" + f.description + ")", "Effect: " + f.effect,
    "Runs on: " + (f.target || "the device") + " (" + f.runs_on + " agent)", "Exact arguments:"];
  for (const arg of f.arguments) lines.push("  " + arg.name + " = " + JSON.stringify(arg.value) +
    (arg.meaning ? ": " + arg.meaning : ""));
  if (f.requester) lines.push("Requester: " + f.requester.requested_by + ": " + f.requester.verified_by.join(", "));
  lines.push("", "Status: " + a.status + (a.approver ? " by " + a.approver : ""), "",
    "Context (the assistant's note in it is unverified model text):", a.reason || "none");
  $("detail").textContent = lines.join("\\n");
  $("act").hidden = a.status !== "pending";
}}
$("login").onsubmit = async e => {{
  e.preventDefault();
  try {{
    token = (await call("POST", "/auth/login", {{email: $("email").value,
      password: $("password").value}})).access_token;
    $("password").value = "";
    const all = await call("GET", "/api/approvals?status=");
    const a = all.find(x => x.id === id); if (!a) throw new Error("no such approval for you");
    $("login").hidden = true; show(a); msg(a.status);
  }} catch (err) {{ token = null; $("detail").textContent = ""; $("act").hidden = true; msg(String(err)); }}
}};
for (const verb of ["approve", "deny"]) $(verb).onclick = async () => {{
  $("approve").disabled = $("deny").disabled = true;
  try {{ const r = await call("POST", `/api/approvals/${{encodeURIComponent(id)}}/${{verb}}`,
    {{approver: "", reason: $("reason").value}}); show(r); msg(`${{r.status}} by ${{r.approver}}`); }}
  catch (err) {{ msg(String(err)); }}
  finally {{ $("approve").disabled = $("deny").disabled = false; }}
}};
</script></body>"""


def _script_json(value: str) -> str:
    """A JSON string safe inside an inline <script>: no ``<``, ``>`` or ``&`` to end or comment it."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@open_router.get("/ui/approvals/{approval_id}", response_class=HTMLResponse, tags=["approvals"])
def approval_page(approval_id: str) -> HTMLResponse:
    """The page the Slack/Teams button opens: log in, review, approve or deny. Shows nothing before login;
    then the server's facts (effect, exact arguments, target, requester) first, the model's note last, labelled."""
    return HTMLResponse(_APPROVAL_PAGE.format(id=html.escape(approval_id), id_json=_script_json(approval_id)))


# -- who am I --------------------------------------------------------------------------------------
@api.get("/me", response_model=MeOut, tags=["auth"])
def me(caller: CallerDep) -> MeOut:
    return MeOut(name=caller.name, kind=caller.kind, role=caller.role, email=caller.email,
                 clients=sorted(caller.scope) if caller.scope is not None else None)


@api.post("/logout", tags=["auth"])
def logout(svc: ServicesDep, caller: CallerDep) -> dict[str, int]:
    """Revoke every refresh token of the calling technician (access tokens expire on their own)."""
    return {"revoked": svc.ops.access.logout(caller)}


# -- devices ---------------------------------------------------------------------------------------
def _device_out(d: Device, facts: int) -> DeviceOut:
    return DeviceOut(id=d.id, client_id=d.client_id, hostname=d.hostname, os=d.os, agent_id=d.agent_id,
                     primary_user=d.primary_user, facts=facts)


@api.get("/devices", response_model=list[DeviceOut], tags=["devices"])
def list_devices(svc: ServicesDep, caller: CallerDep, client: str | None = None) -> list[DeviceOut]:
    client_id = None
    if client:
        found = svc.registry.client(client)
        if not caller.sees(found.id):
            raise NotFound(f"no client {client!r}")
        client_id = found.id
    return [_device_out(d, n) for d, n in svc.ops.devices.devices(caller.scope, client_id)]


@api.get("/devices/{device_id}", response_model=DeviceDetail, tags=["devices"])
def show_device(device_id: str, svc: ServicesDep, caller: CallerDep) -> DeviceDetail:
    found = svc.ops.devices.device(device_id, caller.scope)
    base = _device_out(found.device, len(found.facts))
    return DeviceDetail(**base.model_dump(), known=[FactOut(key=f.key, value=f.value, source=f.source,
                                                            updated_at=f.updated_at) for f in found.facts])


@api.post("/devices/{device_id}/forget", response_model=ForgetOut, tags=["devices"])
def forget_device(device_id: str, svc: ServicesDep, caller: CallerDep) -> ForgetOut:
    """Remove every fact MSPclaw learned about a device (and its primary user); audited."""
    device = svc.ops.devices.device(device_id, caller.scope).device
    keys = svc.ops.devices.forget(device_id, caller.scope)
    svc.audit.append("device_forgotten", actor=caller.name, client_id=device.client_id,
                     data={"device_id": device_id, "hostname": device.hostname, "keys": keys})
    return ForgetOut(device_id=device_id, forgotten=keys)


# -- stats -----------------------------------------------------------------------------------------
def _row(r: StatsRow) -> StatsRowOut:
    return StatsRowOut(**r.as_dict())


@api.get("/stats", response_model=StatsOut, tags=["stats"])
def stats(svc: ServicesDep, caller: CallerDep, by: Annotated[str, Query(pattern="^(playbook|client|model)$")]
          = "playbook", since: str | None = None) -> StatsOut:
    """Outcomes per playbook, client or model: confirmed, partial, failed, unconfirmed, escalated,
    median time to resolution, tokens and cost; and the resolution rate per day."""
    assert by in DIMENSIONS
    outcomes = svc.ops.stats.outcomes(caller.scope, since=parse_since(since))
    return StatsOut(by=by, rows=[_row(r) for r in aggregate(outcomes, by)], total=_row(aggregate(outcomes, None)[0]),
                    daily=[DailyOut(day=d.isoformat(), tickets=n, resolved_rate=rr, confirmed_rate=cr)
                           for d, n, rr, cr in daily_rates(outcomes)])


# -- escalations and notifications -----------------------------------------------------------------
@api.get("/escalations", response_model=list[EscalationOut], tags=["escalations"])
def list_escalations(svc: ServicesDep, caller: CallerDep, ticket: str | None = None,
                     limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[EscalationOut]:
    rows = svc.ops.escalation_store.escalations(caller.scope, ticket_id=ticket, limit=limit)
    return [EscalationOut.model_validate(r, from_attributes=True) for r in rows]


@api.get("/escalations/{escalation_id}", response_model=EscalationOut, tags=["escalations"])
def show_escalation(escalation_id: str, svc: ServicesDep, caller: CallerDep) -> EscalationOut:
    return EscalationOut.model_validate(svc.ops.escalation_store.get(escalation_id, caller.scope),
                                        from_attributes=True)


@api.get("/notifications", response_model=list[NotificationOut], tags=["escalations"])
def list_notifications(svc: ServicesDep, caller: CallerDep, ref: str | None = None,
                       limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[NotificationOut]:
    """Slack/Teams deliveries with their attempts and last error (payloads stay server-side)."""
    rows = svc.ops.escalation_store.notifications(caller.scope, ref_id=ref, limit=limit)
    return [NotificationOut.model_validate(r, from_attributes=True) for r in rows]


# -- feedback --------------------------------------------------------------------------------------
@api.get("/tickets/{ticket_id}/feedback", response_model=FeedbackOut, tags=["tickets"])
def show_feedback(ticket_id: str, svc: ServicesDep, caller: CallerDep) -> FeedbackOut:
    return FeedbackOut.model_validate(svc.ops.feedback.store.for_ticket(ticket_id, caller.scope),
                                      from_attributes=True)


@api.post("/tickets/{ticket_id}/feedback", response_model=FeedbackOut, tags=["tickets"])
async def answer_feedback(ticket_id: str, body: FeedbackIn, svc: ServicesDep, caller: CallerDep) -> FeedbackOut:
    """Record the end user's answer to "did it work?" (from a chat bridge, the PSA reply, a phone call).
    "no" reopens the ticket for a technician with the whole history."""
    row = await svc.ops.feedback.answer(ticket_id, body.answer, by=f"{body.answered_by} (via {caller.name})",
                                        comment=body.comment, scope=caller.scope)
    return FeedbackOut.model_validate(row, from_attributes=True)


# -- audit -----------------------------------------------------------------------------------------
@api.get("/audit", response_model=list[AuditOut], tags=["audit"])
def audit(svc: ServicesDep, caller: CallerDep, client: str | None = None, session: str | None = None,
          kind: str | None = None, since: str | None = None,
          after_seq: Annotated[int, Query(ge=0, le=SEQ_MAX)] = 0,
          limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[AuditOut]:
    """Audit events of the caller's clients (an admin of every client also sees events of no client)."""
    ids = None if caller.scope is None else list(caller.scope)
    if client:
        found = svc.registry.client(client)
        if not caller.sees(found.id):
            raise NotFound(f"no client {client!r}")
        ids = [found.id]
    events = svc.audit.query(client_ids=ids, session_id=session, kind=kind, since=parse_since(since),
                             after_seq=after_seq, limit=limit)
    return [AuditOut(seq=e.seq, ts=e.ts, kind=e.kind, actor=e.actor, client_id=e.client_id,
                     session_id=e.session_id, data=e.data, hash=e.hash) for e in events]


# -- API keys --------------------------------------------------------------------------------------
def _key_out(row: ApiKeyRow) -> KeyOut:
    return KeyOut.model_validate(row, from_attributes=True)


@api.post("/keys", response_model=KeyCreated, status_code=201, tags=["keys"])
def create_key(body: KeyIn, svc: ServicesDep, caller: CallerDep) -> KeyCreated:
    """Create a named API key for a role and clients. The key is in this answer only."""
    ids = [svc.registry.client(ref).id for ref in body.clients]
    row, key = svc.ops.keys.create(body.name, role=body.role, clients=ids, all_clients=body.all_clients,
                                   created_by=caller.name)
    svc.audit.append("api_key_created", actor=caller.name,
                     data={"key_id": row.id, "name": row.name, "role": row.role, "clients": row.clients,
                           "all_clients": row.all_clients})
    return KeyCreated(**_key_out(row).model_dump(), key=key)


@api.get("/keys", response_model=list[KeyOut], tags=["keys"])
def list_keys(svc: ServicesDep) -> list[KeyOut]:
    return [_key_out(r) for r in svc.ops.keys.list()]


@api.post("/keys/{ref}/revoke", response_model=KeyOut, tags=["keys"])
def revoke_key(ref: str, svc: ServicesDep, caller: CallerDep) -> KeyOut:
    row = svc.ops.keys.revoke(ref)
    svc.audit.append("api_key_revoked", actor=caller.name, data={"key_id": row.id, "name": row.name})
    return _key_out(row)


# -- technicians -----------------------------------------------------------------------------------
@api.get("/techs", response_model=list[TechOut], tags=["techs"])
def list_techs(svc: ServicesDep) -> list[TechOut]:
    now = utcnow()
    return [TechOut(**t.model_dump(), on_duty_now=t.on_duty_at(now),
                    has_password=svc.ops.logins.has_password(t.email)) for t in svc.ops.techs.techs()]


@api.post("/techs/{ref}/login-link", response_model=LinkOut, status_code=201, tags=["techs"])
def login_link(ref: str, svc: ServicesDep, caller: CallerDep) -> LinkOut:
    """A one-time login link for a technician, to send them out of band."""
    token = svc.ops.access.issue_link(ref, actor=caller.name)
    base = (svc.settings.public_url or svc.settings.server_url).rstrip("/")
    return LinkOut(url=f"{base}/auth/link/{token}", expires_in=int(svc.ops.access.link_ttl_s))
