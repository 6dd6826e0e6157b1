"""The administration pages' HTML: clients, agents, enrollment codes, technicians and API keys.

Every value is escaped; a secret (an enrollment code, an API key, a login link) is rendered only on the one
page that answers the form which made it, and never again. Revocations and removals go through a confirmation
page (a plain form: it works with JavaScript off).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from mspclaw import __version__
from mspclaw.console.pages import e, layout
from mspclaw.pipeline.access import Principal
from mspclaw.pipeline.techs import Tech
from mspclaw.store.tables import Agent, ApiKeyRow, Client, Enrollment, utcnow

ENROLL_HOURS = (1, 4, 24, 72, 168)
"""The expiries offered for an enrollment code (the API takes up to 30 days)."""


@dataclass(frozen=True)
class ClientLine:
    client: Client
    online: int
    offline: int


@dataclass(frozen=True)
class AgentLine:
    agent: Agent
    client: Client
    online: bool


@dataclass(frozen=True)
class TechLine:
    tech: Tech
    has_password: bool
    second_factor: bool
    on_duty_now: bool


@dataclass(frozen=True)
class Landing:
    clients: int
    agents_online: int
    agents_offline: int
    open_codes: int | None
    """``None``: not the caller's to see (a technician)."""
    techs: int | None
    keys: int | None


@dataclass(frozen=True)
class Confirm:
    title: str
    question: str
    effect: str
    action: str
    button: str
    back: str


def _when(moment: datetime | None, never: str = "never") -> str:
    return never if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


def _ago(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    seconds = int((utcnow() - moment).total_seconds())
    if seconds < 120:
        return f"{max(seconds, 0)} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    if seconds < 172800:
        return f"{seconds // 3600} h ago"
    return _when(moment)


def _error(message: str) -> str:
    return f'<p class="error" role="alert" id="error">{e(message)}</p>' if message else ""


def _csrf(csrf: str) -> str:
    return f'<input type="hidden" name="csrf" value="{e(csrf)}">'


def _admin_nav(current: str, user: Principal) -> str:
    links = [("/admin", "Overview"), ("/admin/clients", "Clients"), ("/admin/agents", "Agents")]
    if user.at_least("admin"):
        links.append(("/admin/enrollment", "Enrollment codes"))
    if user.at_least("admin") and user.scope is None:
        links += [("/admin/techs", "Technicians"), ("/admin/keys", "API keys"), ("/admin/psa", "PSA accounts")]
    items = " ".join(f'<a href="{href}"' + (' aria-current="page"' if href == current else "") + f">{e(text)}</a>"
                     for href, text in links)
    return f'<nav class="admin-nav" aria-label="Administration">{items}</nav>'


def _page(title: str, current: str, body: str, *, user: Principal, csrf: str, page: str) -> str:
    return layout(title, _admin_nav(current, user) + body, user=user, csrf=csrf, page=page)


def _client_options(clients: list[Client], selected: str = "") -> str:
    return "".join(f'<option value="{e(c.id)}"' + (" selected" if c.id == selected else "") + f">{e(c.name)}</option>"
                   for c in clients)


# -- overview --------------------------------------------------------------------------------------------
def landing_page(counts: Landing, *, user: Principal, csrf: str) -> str:
    rows = [("/admin/clients", "Clients", str(counts.clients)),
            ("/admin/agents", "Agents online", str(counts.agents_online)),
            ("/admin/agents", "Agents offline", str(counts.agents_offline))]
    for href, label, value in (("/admin/enrollment", "Open enrollment codes", counts.open_codes),
                               ("/admin/techs", "Technicians", counts.techs), ("/admin/keys", "API keys", counts.keys)):
        if value is not None:
            rows.append((href, label, str(value)))
    table = "".join(f'<tr><th scope="row"><a href="{href}">{e(label)}</a></th><td class="count">{e(value)}</td></tr>'
                    for href, label, value in rows)
    scope = "every client" if user.scope is None else f"{len(user.scope)} client(s)"
    note = "" if user.at_least("admin") else (
        '<p class="hint" id="read-only">You see your clients and their agents read-only; an admin enrolls and '
        "revokes agents.</p>")
    body = (f'<section class="card" id="admin-overview"><h1>Administration</h1>'
            f'<p class="hint">You are {e(user.role)} of {e(scope)}.</p>{note}'
            f'<table id="admin-counts"><tbody>{table}</tbody></table></section>')
    return _page("Administration", "/admin", body, user=user, csrf=csrf, page="admin")


# -- clients ---------------------------------------------------------------------------------------------
def clients_page(lines: list[ClientLine], *, user: Principal, csrf: str, may_create: bool, message: str = "",
                 name: str = "", psa: str = "", company: str = "") -> str:
    rows = "".join(
        f'<tr><th scope="row"><a href="/admin/agents?client={e(c.client.id)}">{e(c.client.name)}</a></th>'
        f'<td class="online">{c.online}</td><td class="offline">{c.offline}</td>'
        f"<td>{e(', '.join(f'{k}: {v}' for k, v in sorted(c.client.psa_refs.items())) or '—')}</td>"
        f"<td>{e(_when(c.client.created_at))}</td></tr>" for c in lines) \
        or ('<tr><td colspan="5" class="empty">No clients yet.'
            + (" Add the first one below." if may_create else " An admin of every client adds them.") + "</td></tr>")
    create = ""
    if may_create:
        create = (f'<section class="card" id="new-client"><h2>Add a client</h2>{_error(message)}'
                  f'<form method="post" action="/admin/clients" id="client-form">{_csrf(csrf)}'
                  f'<label>Name <input id="client-name" name="name" required maxlength="200" value="{e(name)}">'
                  f"</label><label>PSA account <span class=\"hint\">(optional: the PSA whose tickets belong to this "
                  f'client, e.g. superops)</span><input id="client-psa" name="psa" maxlength="100" value="{e(psa)}">'
                  f'</label><label>Company id in that PSA <input id="client-company" name="company" maxlength="200" '
                  f'value="{e(company)}"></label><button type="submit" id="add-client">Add the client</button>'
                  f"</form></section>")
    body = (f'<section class="card" id="clients"><h1>Clients</h1><table><thead><tr><th>Client</th><th>Agents '
            f"online</th><th>Offline</th><th>PSA mapping</th><th>Added</th></tr></thead><tbody>{rows}</tbody>"
            f"</table></section>{create}")
    return _page("Clients", "/admin/clients", body, user=user, csrf=csrf, page="admin-clients")


# -- agents ----------------------------------------------------------------------------------------------
def agents_page(lines: list[AgentLine], clients: list[Client], *, user: Principal, csrf: str, client: Client | None,
                may_revoke: bool) -> str:
    def state(line: AgentLine) -> str:
        if line.agent.revoked_at is not None:
            return f'<span class="status revoked">revoked {e(_when(line.agent.revoked_at))}</span>'
        return '<span class="status online">online</span>' if line.online else \
            '<span class="status offline">offline</span>'

    def action(line: AgentLine) -> str:
        if not may_revoke or line.agent.revoked_at is not None:
            return ""
        return f'<a class="button" href="/admin/agents/{e(line.agent.id)}/revoke">Revoke…</a>'

    rows = "".join(
        f'<tr data-agent="{e(a.agent.id)}"><th scope="row">{e(a.agent.hostname)}</th><td>{e(a.client.name)}</td>'
        f"<td>{e(a.agent.role)}</td><td>{state(a)}</td><td>{e(_ago(a.agent.last_seen_at))}</td>"
        f"<td>{e(a.agent.os)} {e(a.agent.os_version[:40])}</td><td>{e(a.agent.agent_version or '—')}</td>"
        f"<td><code>{e(a.agent.id)}</code></td><td>{action(a)}</td></tr>" for a in lines)
    if not rows:
        hint = ' <a href="/admin/enrollment">Create an enrollment code</a> and install the agent with it.' \
            if user.at_least("admin") else " An admin enrolls them."
        whose = f" for {e(client.name)}" if client else ""
        rows = f'<tr><td colspan="9" class="empty">No agents{whose}.{hint}</td></tr>'
    picker = (f'<form method="get" action="/admin/agents" class="inline" id="agent-filter"><label>Client '
              f'<select name="client" id="agent-client"><option value="">every client</option>'
              f'{_client_options(clients, client.id if client else "")}</select></label>'
              f'<button type="submit">Show</button></form>')
    title = f"Agents of {client.name}" if client else "Agents"
    body = (f'<section class="card" id="agents"><h1>{e(title)}</h1>{picker}<table><thead><tr><th>Host</th>'
            f"<th>Client</th><th>Kind</th><th>State</th><th>Last seen</th><th>OS</th><th>Version</th><th>Id</th>"
            f"<th></th></tr></thead><tbody>{rows}</tbody></table>"
            '<p class="hint">A device agent acts on its own computer; a site agent acts on the client\'s directory '
            "and cloud accounts.</p></section>")
    return _page(title, "/admin/agents", body, user=user, csrf=csrf, page="admin-agents")


def confirm_page(c: Confirm, *, user: Principal, csrf: str) -> str:
    body = (f'<section class="card narrow" id="confirm"><h1>{e(c.title)}</h1><p id="question">{e(c.question)}</p>'
            f'<p class="hint" id="effect">{e(c.effect)}</p>'
            f'<form method="post" action="{e(c.action)}" id="confirm-form">'
            f'{_csrf(csrf)}<input type="hidden" name="confirm" value="yes"><div class="buttons">'
            f'<button type="submit" class="deny" id="confirm-button">{e(c.button)}</button>'
            f'<a class="button" href="{e(c.back)}" id="cancel">Cancel</a></div></form></section>')
    return layout(c.title, body, user=user, csrf=csrf, page="admin-confirm")


def done_page(message: str, *, user: Principal, csrf: str) -> str:
    body = (f'<section class="card narrow"><h1>Nothing to do</h1><p id="error-message">{e(message)}</p>'
            f'<p><a href="/admin">Back to the administration</a></p></section>')
    return layout("Nothing to do", body, user=user, csrf=csrf, page="error")


# -- enrollment codes --------------------------------------------------------------------------------------
def enrollment_page(clients: list[Client], codes: list[tuple[Enrollment, Client]], *, user: Principal, csrf: str,
                    message: str = "", client_id: str = "", role: str = "device", hours: int = 24) -> str:
    rows = "".join(
        f'<tr data-code="{e(c.id)}"><td><code>{e(c.id)}</code></td><th scope="row">{e(cl.name)}</th>'
        f"<td>{e(c.role)}</td><td>{e(_when(c.created_at))}</td><td>{e(_when(c.expires_at))}</td>"
        f'<td><a class="button" href="/admin/enrollment/{e(c.id)}/revoke">Revoke…</a></td></tr>'
        for c, cl in codes) or '<tr><td colspan="6" class="empty">No open enrollment codes.</td></tr>'
    hour_options = "".join(f'<option value="{h}"' + (" selected" if h == hours else "") + f">{h} h</option>"
                           for h in ENROLL_HOURS)
    if clients:
        form = (f'<form method="post" action="/admin/enrollment" id="code-form">{_csrf(csrf)}'
                f'<label>Client <select name="client" id="code-client" required>{_client_options(clients, client_id)}'
                f'</select></label><label>Kind <select name="role" id="code-role">'
                f'<option value="device"{" selected" if role == "device" else ""}>device: an agent on one computer'
                f'</option><option value="site"{" selected" if role == "site" else ""}>site: the client\'s directory '
                f"and cloud accounts</option></select></label>"
                f'<label>Valid for <select name="hours" id="code-hours">{hour_options}</select></label>'
                f'<p class="hint">A code enrolls one agent, once; it is shown once, on the next page.</p>'
                f'<button type="submit" id="create-code">Create the code</button></form>')
    else:
        form = '<p class="empty">Add a client first: a code enrolls an agent for one client.</p>'
    body = (f'<section class="card" id="new-code"><h1>Enrollment codes</h1>{_error(message)}{form}</section>'
            f'<section class="card" id="codes"><h2>Open codes</h2><table><thead><tr><th>Id</th><th>Client</th>'
            f"<th>Kind</th><th>Created</th><th>Expires</th><th></th></tr></thead><tbody>{rows}</tbody></table>"
            f'<p class="hint">The codes themselves are not kept (only a digest): a lost code is revoked and a new one '
            f"made.</p></section>")
    return _page("Enrollment codes", "/admin/enrollment", body, user=user, csrf=csrf, page="admin-enrollment")


def code_issued_page(*, code: str, code_id: str, client: Client, role: str, expires_at: datetime, server: str,
                     user: Principal, csrf: str) -> str:
    if role == "site":  # docs/deploy.md: the site agent image, one per client network
        commands: tuple[tuple[str, str], ...] = (
            ("The site agent container (the code in a file, read on the first start only)",
             f"printf '%s' '{code}' > enroll_code\n"
             f"podman run -d --name mspclaw-site -v mspclaw-site:/var/lib/mspclaw-agent \\\n"
             f"    -e MSPCLAW_AGENT_SERVER={server} \\\n"
             f"    -v ./enroll_code:/run/secrets/enroll_code:ro -e MSPCLAW_AGENT_ENROLL_CODE_FILE=/run/secrets/"
             f"enroll_code \\\n    mspclaw-site-agent:{__version__}"),
            ("Or the agent installed with pip", f"mspclaw agent --server {server} --enroll {code}"),
        )
    else:
        commands = (
            ("Linux (pip install, or the systemd unit's MSPCLAW_AGENT_ENROLL_CODE)",
             f"mspclaw agent --server {server} --enroll {code}"),
            ("macOS (install-agent.sh, as root)", f"sudo ./install-agent.sh --server {server} --enroll-code {code}"),
            ("Windows (Install-MSPclawAgent.ps1, as an administrator)",
             f"powershell.exe -NoProfile -ExecutionPolicy AllSigned -File Install-MSPclawAgent.ps1 -ServerUrl "
             f"{server} -EnrollmentCode {code}"),
        )
    shown = "".join(f"<h3>{e(label)}</h3><pre class=\"command\">{e(cmd)}</pre>" for label, cmd in commands)
    body = (f'<section class="card" id="code-issued"><h1>Enrollment code for {e(client.name)}</h1>'
            f'<p class="state pending">Copy it now: it is shown only on this page. Only its digest is stored.</p>'
            f'<dl class="facts"><dt>Code</dt><dd><code id="enrollment-code">{e(code)}</code></dd>'
            f'<dt>Id</dt><dd><code id="code-id">{e(code_id)}</code></dd><dt>Kind</dt><dd>{e(role)}</dd>'
            f"<dt>Expires</dt><dd>{e(_when(expires_at))} (single use)</dd></dl>"
            f"<h2>Install the agent with it</h2>{shown}"
            f'<p><a class="button" href="/admin/enrollment" id="done">Done</a></p></section>')
    return _page("Enrollment code", "/admin/enrollment", body, user=user, csrf=csrf, page="admin-code")


# -- technicians ---------------------------------------------------------------------------------------------
def tech_path(email: str) -> str:
    """The technician's page, ``/admin/techs/<e-mail>`` (quoted: an address may hold ``?``, ``#`` or ``/``)."""
    return "/admin/techs/" + quote(email, safe="@+")


def _yes(flag: bool) -> str:
    return '<span class="status yes">yes</span>' if flag else '<span class="status no">no</span>'


def tech_fields(tech: Tech | None, *, with_email: bool) -> str:
    """The technician form's fields (name, e-mail when adding, role, clients, shifts, time zone, chat ids)."""
    role = tech.role if tech else "tech"
    roles = "".join(f'<option value="{r}"' + (" selected" if r == role else "") + f">{r}</option>"
                    for r in ("viewer", "tech", "admin"))
    email = (f'<label>E-mail <input id="tech-email" name="email" type="email" required maxlength="255" '
             f'value="{e(tech.email if tech else "")}"></label>') if with_email else ""
    return (f'<label>Name <input id="tech-name" name="name" required maxlength="200" '
            f'value="{e(tech.name if tech else "")}"></label>{email}'
            f'<label>Role <select name="role" id="tech-role">{roles}</select></label>'
            f'<label>Clients <span class="hint">(names or ids, comma-separated; * is every client)</span>'
            f'<input id="tech-clients" name="clients" required maxlength="2000" '
            f'value="{e(", ".join(tech.clients) if tech else "")}"></label>'
            f'<label>On duty <span class="hint">(shifts separated by ";", like mon-fri 08:00-18:00; empty is always)'
            f'</span><input id="tech-on-duty" name="on_duty" maxlength="500" '
            f'value="{e("; ".join(tech.on_duty) if tech else "")}"></label>'
            f'<label>Time zone <input id="tech-timezone" name="timezone" maxlength="100" '
            f'value="{e(tech.timezone if tech else "UTC")}"></label>'
            f'<label>Slack member id <span class="hint">(optional)</span><input id="tech-slack" name="slack_id" '
            f'maxlength="50" value="{e((tech.slack_id if tech else None) or "")}"></label>'
            f'<label>Teams user <span class="hint">(optional)</span><input id="tech-teams" name="teams_id" '
            f'maxlength="255" value="{e((tech.teams_id if tech else None) or "")}"></label>')


def techs_page(lines: list[TechLine], *, user: Principal, csrf: str, message: str = "", notice: str = "",
               draft: Tech | None = None) -> str:
    def actions(t: TechLine) -> str:
        path = e(tech_path(t.tech.email))
        reset = (f'<form method="post" action="{path}/reset-2fa" class="inline">{_csrf(csrf)}'
                 f'<button type="submit">Reset second factor</button></form>') if t.second_factor else ""
        return (f'<form method="post" action="{path}/link" class="inline">{_csrf(csrf)}'
                f'<button type="submit">Login link</button></form>{reset}'
                f'<a class="button" href="{path}">Edit…</a>')

    rows = "".join(
        f'<tr data-tech="{e(t.tech.email)}"><th scope="row">{e(t.tech.name)}</th><td>{e(t.tech.email)}</td>'
        f"<td>{e(t.tech.role)}</td><td>{e(', '.join(t.tech.clients)[:300])}</td>"
        f"<td>{_yes(t.on_duty_now)}</td><td>{_yes(t.has_password)}</td><td>{_yes(t.second_factor)}</td>"
        f'<td class="actions">{actions(t)}</td></tr>' for t in lines) \
        or '<tr><td colspan="8" class="empty">No technicians yet: add the first one below.</td></tr>'
    done = f'<p class="state approved" role="status" id="notice">{e(notice)}</p>' if notice else ""
    body = (f'<section class="card" id="techs"><h1>Technicians</h1>{done}<table><thead><tr><th>Name</th>'
            f"<th>E-mail</th><th>Role</th><th>Clients</th><th>On duty</th><th>Password</th><th>Second factor</th>"
            f"<th></th></tr></thead><tbody>{rows}</tbody></table>"
            f'<p class="hint">They live in the database, one roster for every server; changes here are validated, '
            f"written in one locked transaction and apply at once everywhere, as <code>mspclaw tech add|remove</code>. "
            f"A new technician signs "
            f"in with a login link, or a password set with <code>mspclaw tech passwd</code>.</p></section>"
            f'<section class="card" id="new-tech"><h2>Add a technician</h2>{_error(message)}'
            f'<form method="post" action="/admin/techs" id="tech-form">{_csrf(csrf)}'
            f"{tech_fields(draft, with_email=True)}"
            f'<button type="submit" id="add-tech">Add the technician</button></form></section>')
    return _page("Technicians", "/admin/techs", body, user=user, csrf=csrf, page="admin-techs")


def tech_page(line: TechLine, *, user: Principal, csrf: str, message: str = "", draft: Tech | None = None) -> str:
    t = line.tech
    path = e(tech_path(t.email))
    body = (f'<section class="card narrow" id="tech"><h1>{e(t.name)}</h1>{_error(message)}'
            f'<p class="hint">{e(t.email)} · the e-mail is who they are: to change it, remove them and add them '
            f"again.</p>"
            f'<form method="post" action="{path}/edit" id="tech-edit">{_csrf(csrf)}'
            f'{tech_fields(draft or t, with_email=False)}<button type="submit" id="save-tech">Save</button></form>'
            f'<h2>Remove</h2><p><a class="button" href="{path}/remove" id="remove-tech">'
            f"Remove {e(t.name)}…</a></p></section>")
    return _page(t.name, "/admin/techs", body, user=user, csrf=csrf, page="admin-tech")


def link_issued_page(tech: Tech, url: str, expires_in: int, *, user: Principal, csrf: str) -> str:
    body = (f'<section class="card narrow" id="link-issued"><h1>Login link for {e(tech.name)}</h1>'
            f'<p class="state pending">Send it to them out of band (not by the ticket). It works once, for '
            f"{expires_in // 60} minutes, and is shown only here.</p>"
            f'<pre class="command" id="login-link">{e(url)}</pre>'
            f'<p><a class="button" href="/admin/techs" id="done">Done</a></p></section>')
    return _page("Login link", "/admin/techs", body, user=user, csrf=csrf, page="admin-link")


# -- API keys ---------------------------------------------------------------------------------------------------
def keys_page(rows: list[ApiKeyRow], names: dict[str, str], *, user: Principal, csrf: str, message: str = "",
              name: str = "", role: str = "viewer", clients: str = "", all_clients: bool = False) -> str:
    def scope(r: ApiKeyRow) -> str:
        return "every client" if r.all_clients else ", ".join(names.get(c, c) for c in r.clients)[:300]

    def state(r: ApiKeyRow) -> str:
        if r.revoked_at is not None:
            return f'<span class="status revoked">revoked {e(_when(r.revoked_at))}</span>'
        return f'<a class="button" href="/admin/keys/{e(r.id)}/revoke">Revoke…</a>'

    body_rows = "".join(
        f'<tr data-key="{e(r.id)}"><th scope="row">{e(r.name)}</th><td>{e(r.role)}</td><td>{e(scope(r))}</td>'
        f"<td>{e(r.created_by)} · {e(_when(r.created_at))}</td><td>{e(_ago(r.last_used_at))}</td><td>{state(r)}</td>"
        f"</tr>" for r in rows) or '<tr><td colspan="6" class="empty">No API keys yet: create one below.</td></tr>'
    roles = "".join(f'<option value="{r}"' + (" selected" if r == role else "") + f">{r}</option>"
                    for r in ("viewer", "tech", "admin"))
    body = (f'<section class="card" id="keys"><h1>API keys</h1><table><thead><tr><th>Name</th><th>Role</th>'
            f"<th>Clients</th><th>Created</th><th>Last used</th><th></th></tr></thead><tbody>{body_rows}</tbody>"
            f"</table></section>"
            f'<section class="card" id="new-key"><h2>Create an API key</h2>{_error(message)}'
            f'<form method="post" action="/admin/keys" id="key-form">{_csrf(csrf)}'
            f'<label>Name <input id="key-name" name="name" required maxlength="100" value="{e(name)}" '
            f'placeholder="psa-bridge"></label><label>Role <select name="role" id="key-role">{roles}</select></label>'
            f'<label>Clients <span class="hint">(names or ids, comma-separated)</span><input id="key-clients" '
            f'name="clients" maxlength="2000" value="{e(clients)}"></label>'
            f'<label><input type="checkbox" name="all_clients" value="yes" id="key-all"'
            f'{" checked" if all_clients else ""}> Every client</label>'
            f'<p class="hint">The key is shown once, on the next page; only its digest is stored.</p>'
            f'<button type="submit" id="create-key">Create the key</button></form></section>')
    return _page("API keys", "/admin/keys", body, user=user, csrf=csrf, page="admin-keys")


def key_created_page(row: ApiKeyRow, key: str, *, user: Principal, csrf: str) -> str:
    body = (f'<section class="card narrow" id="key-created"><h1>API key {e(row.name)}</h1>'
            f'<p class="state pending">Copy it now: it is shown only on this page. Only its digest is stored.</p>'
            f'<pre class="command" id="api-key">{e(key)}</pre>'
            f'<p class="hint">Send it as <code>Authorization: Bearer &lt;key&gt;</code>. Role {e(row.role)}.</p>'
            f'<p><a class="button" href="/admin/keys" id="done">Done</a></p></section>')
    return _page("API key", "/admin/keys", body, user=user, csrf=csrf, page="admin-key")
