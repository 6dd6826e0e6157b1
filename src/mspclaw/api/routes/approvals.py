"""Approvals of destructive steps: ``/api/approvals`` (list, approve, deny) and the page at
``/ui/approvals/{id}`` that a Slack/Teams button opens (no bearer: the page logs the technician in)."""

from __future__ import annotations

import html
import json

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse

from mspclaw.api.auth import CallerDep, ServicesDep, require_caller
from mspclaw.api.schemas.approvals import ApprovalOut, DecisionIn
from mspclaw.store.tables import ApprovalRow

open_router = APIRouter()
api = APIRouter(prefix="/api", dependencies=[Depends(require_caller)])


def _approval_out(row: ApprovalRow) -> ApprovalOut:
    return ApprovalOut.model_validate(row, from_attributes=True)


@api.get("/approvals", response_model=list[ApprovalOut], tags=["approvals"])
def list_approvals(svc: ServicesDep, caller: CallerDep, status: str | None = "pending") -> list[ApprovalOut]:
    return [_approval_out(a) for a in svc.store.approvals(caller.scope, status=status or None)]


@api.post("/approvals/{approval_id}/approve", response_model=ApprovalOut, tags=["approvals"])
def approve(approval_id: str, body: DecisionIn, svc: ServicesDep, caller: CallerDep) -> ApprovalOut:
    return _approval_out(svc.approvals.decide(approval_id, approve=True, approver=body.approver,
                                              reason=body.reason, scope=caller.scope, principal=caller))


@api.post("/approvals/{approval_id}/deny", response_model=ApprovalOut, tags=["approvals"])
def deny(approval_id: str, body: DecisionIn, svc: ServicesDep, caller: CallerDep) -> ApprovalOut:
    return _approval_out(svc.approvals.decide(approval_id, approve=False, approver=body.approver,
                                              reason=body.reason, scope=caller.scope, principal=caller))


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
