"""Administration: clients, agents and enrollment codes, technicians and API keys.

Who may do what is the API's rule (:mod:`mspclaw.api.rbac`), checked here on the server for every page and form:

* a viewer: nothing here (403);
* a technician: the overview, their clients and those clients' agents, read-only;
* an admin: also enrollment codes for their clients (create, list, revoke) and revoking their clients' agents;
* an admin of every client: also adding clients, the technicians (add, change, remove, login link, second-factor
  reset) and API keys (create, list, revoke).

Another client's agent or code is "not found" (404), as in the API. Every change goes through the service the
API uses and is audited there; a secret made here (an enrollment code, an API key, a login link) is shown once,
on the page that answers the form, and is never written to the audit trail or a log.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from mspclaw.console import admin_pages as ap
from mspclaw.console.http import Check, Posted, Sign, Svc, Viewer, error, html, page, redirect, sent_form
from mspclaw.console.presence import online_agents
from mspclaw.errors import ConfigError, Conflict, NotFound
from mspclaw.pipeline.access import Principal
from mspclaw.pipeline.roster import Roster
from mspclaw.pipeline.techs import Tech
from mspclaw.store.tables import Client, utcnow
from mspclaw.wiring import Services

router = APIRouter(include_in_schema=False)
Need = Literal["tech", "admin", "global"]
EXPIRED = "The form expired or did not come from this console; open the page again."
MAX_LIST = 2000
"""Characters of a comma-separated list (clients) read from a form."""


def _refusal(principal: Principal, need: Need) -> str | None:
    if not principal.at_least("tech"):
        return "The administration pages are for technicians and admins; your role is viewer."
    if need in ("admin", "global") and not principal.at_least("admin"):
        return "Only an admin does this; technicians see clients and agents read-only."
    if need == "global" and principal.scope is not None:
        return "Only an admin of every client does this; you are an admin of some clients."
    return None


def _needs(need: Need) -> Check:
    return lambda principal: _refusal(principal, need)


TechPage = Annotated[Viewer, Depends(page(_needs("tech")))]
AdminPage = Annotated[Viewer, Depends(page(_needs("admin")))]
GlobalPage = Annotated[Viewer, Depends(page(_needs("global")))]
AdminForm = Annotated[Posted, Depends(sent_form(EXPIRED, _needs("admin")))]
GlobalForm = Annotated[Posted, Depends(sent_form(EXPIRED, _needs("global")))]


def _done(message: str, principal: Principal, csrf: str) -> Response:
    """409: what the form would do is already done (a key or code revoked, a code spent)."""
    return html(ap.done_page(message, user=principal, csrf=csrf), 409)


def _clients(svc: Services, principal: Principal) -> list[Client]:
    return [c for c in svc.registry.clients() if principal.sees(c.id)]


def _listed(text: str) -> list[str]:
    return [item.strip() for item in text[:MAX_LIST].split(",") if item.strip()][:500]


def _base(svc: Services) -> str:
    return (svc.settings.public_url or svc.settings.server_url).rstrip("/")


# -- overview ----------------------------------------------------------------------------------------------------
@router.get("/admin")
async def overview(me: TechPage, svc: Svc) -> Response:
    principal, csrf = me.principal, me.csrf
    reachable = await online_agents(svc, principal)
    return await run_in_threadpool(_overview, svc, principal, csrf, reachable)


def _overview(svc: Services, principal: Principal, csrf: str, reachable: frozenset[str]) -> Response:
    clients = {c.id for c in _clients(svc, principal)}
    live = [a for a in svc.registry.agents() if a.client_id in clients and a.revoked_at is None]
    online = sum(1 for a in live if a.id in reachable)
    is_admin, is_global = principal.at_least("admin"), principal.at_least("admin") and principal.scope is None
    codes = len([c for c in svc.fleet.open_codes() if c.client_id in clients]) if is_admin else None
    counts = ap.Landing(clients=len(clients), agents_online=online, agents_offline=len(live) - online,
                        open_codes=codes, techs=len(svc.staff.techs.techs()) if is_global else None,
                        keys=len([k for k in svc.staff.keys.list() if k.revoked_at is None]) if is_global else None)
    return html(ap.landing_page(counts, user=principal, csrf=csrf))


# -- clients ------------------------------------------------------------------------------------------------------
def _client_lines(svc: Services, principal: Principal, online: frozenset[str]) -> list[ap.ClientLine]:
    """``online``: the agents connected to any replica (:func:`console.presence.online_agents`)."""
    counts: dict[str, list[int]] = {}
    for agent in svc.registry.agents():
        if agent.revoked_at is None:
            counts.setdefault(agent.client_id, [0, 0])[0 if agent.id in online else 1] += 1
    return [ap.ClientLine(c, *counts.get(c.id, [0, 0])) for c in _clients(svc, principal)]


@router.get("/admin/clients")
async def clients(me: TechPage, svc: Svc) -> Response:
    principal, csrf = me.principal, me.csrf
    online = await online_agents(svc, principal)
    lines = await run_in_threadpool(_client_lines, svc, principal, online)
    return html(ap.clients_page(lines, user=principal, csrf=csrf, may_create=_refusal(principal, "global") is None))


@router.post("/admin/clients")
async def add_client(sent: GlobalForm, svc: Svc) -> Response:
    form, principal, csrf = sent.form, sent.principal, sent.csrf
    name, psa, company = (form.get(k, "").strip() for k in ("name", "psa", "company"))

    online = await online_agents(svc, principal)

    def again(message: str) -> Response:
        page = ap.clients_page(_client_lines(svc, principal, online), user=principal, csrf=csrf, may_create=True,
                               message=message, name=name[:200], psa=psa[:100], company=company[:200])
        return html(page, 400)

    if not name or len(name) > 200:
        return await run_in_threadpool(again, "Give the client a name of at most 200 characters.")
    if bool(psa) != bool(company) or len(psa) > 100 or len(company) > 200:
        return await run_in_threadpool(again, "A PSA mapping needs both the PSA account (e.g. superops) and the "
                                       "company's id in it; leave both empty for none.")
    try:
        client = await run_in_threadpool(svc.registry.add_client, name, {psa: company} if psa else None)
    except Conflict as exc:
        return await run_in_threadpool(again, exc.message)  # the page lists the clients
    await svc.audit.record("client_created", actor=principal.name, client_id=client.id, data={"name": client.name})
    return redirect("/admin/clients")


# -- agents ----------------------------------------------------------------------------------------------------------
@router.get("/admin/agents")
async def agents(me: TechPage, svc: Svc, client: str = "") -> Response:
    principal, csrf = me.principal, me.csrf
    online = await online_agents(svc, principal)
    return await run_in_threadpool(_agents_page, svc, principal, csrf, client, online)


def _agents_page(svc: Services, principal: Principal, csrf: str, client: str, online: frozenset[str]) -> Response:
    mine = {c.id: c for c in _clients(svc, principal)}
    chosen = mine.get(client[:64]) if client else None
    if client and chosen is None:
        return error(404, f"no client {client[:64]!r}", principal, csrf)
    lines = [ap.AgentLine(a, mine[a.client_id], a.id in online)
             for a in svc.registry.agents(chosen.id if chosen else None) if a.client_id in mine]
    return html(ap.agents_page(lines, list(mine.values()), user=principal, csrf=csrf, client=chosen,
                               may_revoke=_refusal(principal, "admin") is None))


def _agent_in_scope(svc: Services, principal: Principal, agent_id: str) -> tuple[Any, Client]:
    agent = svc.registry.agent(agent_id[:64])
    if not principal.sees(agent.client_id):
        raise NotFound(f"no agent {agent_id[:64]!r}")
    return agent, svc.registry.client(agent.client_id)


@router.get("/admin/agents/{agent_id}/revoke")
def confirm_revoke_agent(agent_id: str, me: AdminPage, svc: Svc) -> Response:
    principal, csrf = me.principal, me.csrf
    with me.not_found_page():
        agent, client = _agent_in_scope(svc, principal, agent_id)
    if agent.revoked_at is not None:
        return _done(f"agent {agent.hostname} ({agent.id}) is already revoked", principal, csrf)
    return html(ap.confirm_page(ap.Confirm(
        f"Revoke {agent.hostname}?", f"Revoke the {agent.role} agent {agent.hostname} ({agent.id}) of {client.name}?",
        "Its credential stops working now and its connection is closed; MSPclaw no longer acts through it. To use "
        "the computer again, install the agent with a new enrollment code.",
        f"/admin/agents/{agent.id}/revoke", "Revoke the agent", f"/admin/agents?client={client.id}"),
        user=principal, csrf=csrf))


@router.post("/admin/agents/{agent_id}/revoke")
async def revoke_agent(agent_id: str, sent: AdminForm, svc: Svc) -> Response:
    form, principal = sent.form, sent.principal
    with sent.not_found_page():
        agent, client = await run_in_threadpool(_agent_in_scope, svc, principal, agent_id)
    if form.get("confirm") != "yes":
        return redirect(f"/admin/agents/{agent.id}/revoke")
    if agent.revoked_at is None:
        await svc.fleet.revoke(agent.id, actor=principal.name)
    return redirect(f"/admin/agents?client={client.id}")


# -- enrollment codes ------------------------------------------------------------------------------------------------
def _enrollment(svc: Services, principal: Principal, csrf: str, **again: Any) -> str:
    mine = {c.id: c for c in _clients(svc, principal)}
    codes = [(c, mine[c.client_id]) for c in svc.fleet.open_codes() if c.client_id in mine]
    return ap.enrollment_page(list(mine.values()), codes, user=principal, csrf=csrf, **again)


@router.get("/admin/enrollment")
def enrollment(me: AdminPage, svc: Svc) -> Response:
    principal, csrf = me.principal, me.csrf
    return html(_enrollment(svc, principal, csrf))


@router.post("/admin/enrollment")
async def create_code(sent: AdminForm, svc: Svc) -> Response:
    form, principal, csrf = sent.form, sent.principal, sent.csrf
    client_id, role, hours = form.get("client", "")[:64], form.get("role", "device"), form.get("hours", "24")
    mine = {c.id: c for c in await run_in_threadpool(_clients, svc, principal)}
    if client_id and client_id not in mine:
        return sent.error(404, f"no client {client_id!r}")
    if not client_id:
        page = await run_in_threadpool(lambda: _enrollment(svc, principal, csrf, message="Choose the client whose "
                                                           "agent will enroll with the code."))
        return html(page, 400)
    if role not in ("device", "site") or not (hours.isascii() and hours.isdigit()) or int(hours) not in ap.ENROLL_HOURS:
        page = await run_in_threadpool(lambda: _enrollment(
            svc, principal, csrf, client_id=client_id, message="Choose a kind (device or site) and one of the "
            f"offered expiries ({', '.join(f'{h} h' for h in ap.ENROLL_HOURS)})."))
        return html(page, 400)
    issued = await run_in_threadpool(lambda: svc.fleet.issue_code(client_id, role=role, ttl_hours=float(hours),
                                                                  actor=principal.name))
    return html(ap.code_issued_page(code=issued.code, code_id=issued.id, client=mine[client_id], role=issued.role,
                                    expires_at=issued.expires_at, server=_base(svc), user=principal, csrf=csrf))


def _code_in_scope(svc: Services, principal: Principal, code_id: str) -> tuple[Any, Client]:
    code = svc.registry.code(code_id[:64])
    if not principal.sees(code.client_id):
        raise NotFound(f"no enrollment code {code_id[:64]!r}")
    return code, svc.registry.client(code.client_id)


@router.get("/admin/enrollment/{code_id}/revoke")
def confirm_revoke_code(code_id: str, me: AdminPage, svc: Svc) -> Response:
    principal, csrf = me.principal, me.csrf
    with me.not_found_page():
        code, client = _code_in_scope(svc, principal, code_id)
    return html(ap.confirm_page(ap.Confirm(
        "Revoke the enrollment code?", f"Revoke the {code.role} enrollment code {code.id} of {client.name}?",
        "It expires now: an agent installed with it is refused. Agents already enrolled are not affected.",
        f"/admin/enrollment/{code.id}/revoke", "Revoke the code", "/admin/enrollment"), user=principal, csrf=csrf))


@router.post("/admin/enrollment/{code_id}/revoke")
async def revoke_code(code_id: str, sent: AdminForm, svc: Svc) -> Response:
    form, principal, csrf = sent.form, sent.principal, sent.csrf
    try:
        code, _ = await run_in_threadpool(_code_in_scope, svc, principal, code_id)
        if form.get("confirm") != "yes":
            return redirect(f"/admin/enrollment/{code.id}/revoke")
        await run_in_threadpool(lambda: svc.fleet.revoke_code(code.id, actor=principal.name))
    except NotFound as exc:
        return sent.error(404, exc.message)
    except Conflict as exc:
        return _done(exc.message, principal, csrf)
    return redirect("/admin/enrollment")


# -- technicians ---------------------------------------------------------------------------------------------------
def _roster(svc: Services, sign: Any) -> Roster:
    return Roster(svc.staff.techs, svc.staff.logins, sign.factors, svc.audit)


def _tech_line(svc: Services, roster: Roster, tech: Tech) -> ap.TechLine:
    return ap.TechLine(tech, svc.staff.logins.has_password(tech.email), roster.has_second_factor(tech.email),
                       tech.on_duty_at(utcnow()))


def _techs(svc: Services, sign: Any, principal: Principal, csrf: str, status: int = 200, **extra: Any) -> Response:
    roster = _roster(svc, sign)
    lines = [_tech_line(svc, roster, t) for t in svc.staff.techs.techs()]
    return html(ap.techs_page(lines, user=principal, csrf=csrf, **extra), status)


def _tech_values(form: dict[str, str], *, with_email: bool) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": form.get("name", "").strip()[:200], "role": form.get("role", "tech")[:16],
        "clients": _listed(form.get("clients", "")),
        "on_duty": [s.strip() for s in form.get("on_duty", "")[:500].split(";") if s.strip()][:50],
        "timezone": form.get("timezone", "").strip()[:100] or "UTC",
        "slack_id": form.get("slack_id", "").strip()[:50] or None,
        "teams_id": form.get("teams_id", "").strip()[:255] or None,
    }
    if with_email:
        values["email"] = form.get("email", "").strip()[:255]
    return values


def _draft(values: dict[str, Any], email: str = "") -> Tech:
    """What the form said, to show it again after a refusal (not validated: only rendered, escaped)."""
    return Tech.model_construct(**({"email": email} | values))


@router.get("/admin/techs")
def techs(me: GlobalPage, svc: Svc, sign: Sign) -> Response:
    principal, csrf = me.principal, me.csrf
    return _techs(svc, sign, principal, csrf)


@router.post("/admin/techs")
async def add_tech(sent: GlobalForm, svc: Svc, sign: Sign) -> Response:
    form, principal, csrf = sent.form, sent.principal, sent.csrf
    values = _tech_values(form, with_email=True)
    try:
        await run_in_threadpool(lambda: _roster(svc, sign).add(values, actor=principal.name))
    except (Conflict, ConfigError) as exc:
        message = exc.message
        return await run_in_threadpool(lambda: _techs(svc, sign, principal, csrf, 400, message=message,
                                                      draft=_draft(values)))
    return redirect("/admin/techs")


@router.get("/admin/techs/{email}")
def tech(email: str, me: GlobalPage, svc: Svc, sign: Sign) -> Response:
    principal, csrf = me.principal, me.csrf
    roster = _roster(svc, sign)
    with me.not_found_page():
        line = _tech_line(svc, roster, roster.get(email[:320]))
    return html(ap.tech_page(line, user=principal, csrf=csrf))


@router.post("/admin/techs/{email}/edit")
async def edit_tech(email: str, sent: GlobalForm, svc: Svc, sign: Sign) -> Response:
    form, principal, csrf = sent.form, sent.principal, sent.csrf
    roster = _roster(svc, sign)
    values = _tech_values(form, with_email=False)
    try:
        await run_in_threadpool(lambda: roster.change(email[:320], values, actor=principal.name,
                                                      actor_email=principal.email))
    except NotFound as exc:
        return sent.error(404, exc.message)
    except (Conflict, ConfigError) as exc:
        line = await run_in_threadpool(lambda: _tech_line(svc, roster, roster.get(email[:320])))
        return html(ap.tech_page(line, user=principal, csrf=csrf, message=exc.message,
                                 draft=_draft(values, line.tech.email)), 400)
    return redirect("/admin/techs")


@router.get("/admin/techs/{email}/remove")
def confirm_remove_tech(email: str, me: GlobalPage, svc: Svc, sign: Sign) -> Response:
    principal, csrf = me.principal, me.csrf
    with me.not_found_page():
        t = _roster(svc, sign).get(email[:320])
    return html(ap.confirm_page(ap.Confirm(
        f"Remove {t.name}?", f"Remove {t.name} ({t.email}, {t.role}) from the technicians?",
        "They are signed out everywhere; their password, login links and second factor are deleted, and they no "
        "longer approve or receive escalations. Their past decisions stay in the audit trail.",
        f"{ap.tech_path(t.email)}/remove", "Remove the technician", ap.tech_path(t.email)),
        user=principal, csrf=csrf))


@router.post("/admin/techs/{email}/remove")
async def remove_tech(email: str, sent: GlobalForm, svc: Svc, sign: Sign) -> Response:
    form, principal, csrf = sent.form, sent.principal, sent.csrf
    if form.get("confirm") != "yes":
        return redirect(f"{ap.tech_path(email[:320])}/remove")
    try:
        await run_in_threadpool(lambda: _roster(svc, sign).remove(email[:320], actor=principal.name,
                                                                  actor_email=principal.email))
    except NotFound as exc:
        return sent.error(404, exc.message)
    except Conflict as exc:
        return _done(exc.message, principal, csrf)
    return redirect("/admin/techs")


@router.post("/admin/techs/{email}/link")
async def login_link(email: str, sent: GlobalForm, svc: Svc, sign: Sign) -> Response:
    principal, csrf = sent.principal, sent.csrf
    with sent.not_found_page():
        t = await run_in_threadpool(_roster(svc, sign).get, email[:320])
        token = await run_in_threadpool(lambda: svc.staff.access.issue_link(t.email, actor=principal.name))
    return html(ap.link_issued_page(t, f"{_base(svc)}/auth/link/{token}", int(svc.staff.access.link_ttl_s),
                                    user=principal, csrf=csrf))


@router.post("/admin/techs/{email}/reset-2fa")
async def reset_second_factor(email: str, sent: GlobalForm, svc: Svc, sign: Sign) -> Response:
    principal, csrf = sent.principal, sent.csrf
    roster = _roster(svc, sign)
    with sent.not_found_page():
        t = await run_in_threadpool(roster.get, email[:320])
        had = await run_in_threadpool(lambda: roster.reset_second_factor(t.email, actor=principal.name))
    notice = (f"{t.name}'s second factor is reset: they enrol a new one at their next sign-in." if had
              else f"{t.name} had no second factor.")
    return await run_in_threadpool(lambda: _techs(svc, sign, principal, csrf, notice=notice))


# -- API keys --------------------------------------------------------------------------------------------------------
def _keys(svc: Services, principal: Principal, csrf: str, status: int = 200, **extra: Any) -> Response:
    names = {c.id: c.name for c in svc.registry.clients()}
    return html(ap.keys_page(svc.staff.keys.list(), names, user=principal, csrf=csrf, **extra), status)


@router.get("/admin/keys")
def keys(me: GlobalPage, svc: Svc) -> Response:
    principal, csrf = me.principal, me.csrf
    return _keys(svc, principal, csrf)


@router.post("/admin/keys")
async def create_key(sent: GlobalForm, svc: Svc) -> Response:
    form, principal, csrf = sent.form, sent.principal, sent.csrf
    name, role = form.get("name", "").strip()[:100], form.get("role", "")[:16]
    listed, every = form.get("clients", "")[:MAX_LIST], form.get("all_clients") == "yes"

    def make() -> Any:
        ids = [svc.registry.client(ref).id for ref in _listed(listed)]
        return svc.staff.keys.create(name, role=role, clients=ids, all_clients=every, created_by=principal.name)

    try:
        row, key = await run_in_threadpool(make)
    except (Conflict, NotFound) as exc:
        message = exc.message
        return await run_in_threadpool(lambda: _keys(svc, principal, csrf, 400, message=message, name=name,
                                                     role=role, clients=listed, all_clients=every))
    await svc.audit.record("api_key_created", actor=principal.name,
                           data={"key_id": row.id, "name": row.name, "role": row.role, "clients": row.clients,
                                 "all_clients": row.all_clients})
    return html(ap.key_created_page(row, key, user=principal, csrf=csrf))


@router.get("/admin/keys/{key_id}/revoke")
def confirm_revoke_key(key_id: str, me: GlobalPage, svc: Svc) -> Response:
    principal, csrf = me.principal, me.csrf
    with me.not_found_page():
        row = svc.staff.keys.get(key_id[:64])
    return html(ap.confirm_page(ap.Confirm(
        f"Revoke {row.name}?", f"Revoke the API key {row.name} ({row.role})?",
        "Every request made with it is refused from now on. This cannot be undone: make a new key instead.",
        f"/admin/keys/{row.id}/revoke", "Revoke the key", "/admin/keys"), user=principal, csrf=csrf))


@router.post("/admin/keys/{key_id}/revoke")
async def revoke_key(key_id: str, sent: GlobalForm, svc: Svc) -> Response:
    form, principal, csrf = sent.form, sent.principal, sent.csrf
    if form.get("confirm") != "yes":
        return redirect(f"/admin/keys/{key_id[:64]}/revoke")
    try:
        row = await run_in_threadpool(svc.staff.keys.revoke, key_id[:64])
    except NotFound as exc:
        return sent.error(404, exc.message)
    except Conflict as exc:
        return _done(exc.message, principal, csrf)
    await svc.audit.record("api_key_revoked", actor=principal.name, data={"key_id": row.id, "name": row.name})
    return redirect("/admin/keys")
