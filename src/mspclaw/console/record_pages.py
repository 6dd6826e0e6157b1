"""The HTML of the audit trail, stats and devices pages (every value escaped; charts from :mod:`.charts`)."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlencode

from mspclaw.console import charts
from mspclaw.console.pages import e, layout
from mspclaw.console.record_views import (
    WINDOWS,
    AuditView,
    ChainStatus,
    DevicePage,
    DevicesView,
    StatsView,
    resolved,
)
from mspclaw.pipeline.access import Principal
from mspclaw.store.redact import redact
from mspclaw.store.stats import StatsRow
from mspclaw.store.tables import Client

HALF = 460
"""The drawing width of a chart in half a card."""


def _when(moment: datetime | None) -> str:
    return "never" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _time(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    return f'<time datetime="{e(moment.isoformat())}">{e(_when(moment))}</time>'


def _errors(errors: list[str]) -> str:
    if not errors:
        return ""
    items = "".join(f"<li>{e(m)}</li>" for m in errors)
    return f'<div class="error" role="alert" id="error"><p>The filter was not applied:</p><ul>{items}</ul></div>'


def _client_options(clients: list[Client], chosen: str, everyone: str) -> str:
    options = [f'<option value="">{e(everyone)}</option>']
    for c in clients:
        selected = " selected" if chosen in (c.id, c.name) else ""
        options.append(f'<option value="{e(c.id)}"{selected}>{e(c.name)}</option>')
    return "".join(options)


# -- audit ----------------------------------------------------------------------------------------------
def chain_block(chain: ChainStatus) -> str:
    if chain.ok:
        through = f" through {_time(chain.through)}" if chain.through else ""
        return (f'<p class="chain ok" id="chain" data-ok="true">Hash chain verified{through}, '
                f"{chain.events} events.</p>")
    return (f'<div class="chain broken" id="chain" data-ok="false" role="alert"><p><b>The audit trail failed its '
            f"check</b> at <code>{e(chain.location)}</code>: {e(chain.problem)}</p>"
            "<p>What to do: leave the database and the audit files exactly as they are (do not repair them), "
            "run <code>mspclaw audit verify</code> on the server to confirm, compare the named line with your "
            "backup of the audit directory, and treat it as a security incident until you know who changed it."
            "</p></div>")


def audit_page(view: AuditView, *, user: Principal, csrf: str) -> str:
    q = view.query
    kinds = "".join(f'<option value="{e(k)}"></option>' for k in view.kinds)
    form = (f'<form method="get" action="/audit" id="audit-filter" class="filters">'
            f'<label>Client <select name="client" id="f-client">{_client_options(view.clients, q.client, "All")}'
            f"</select></label>"
            f'<label>Kind <input name="kind" id="f-kind" list="kinds" maxlength="64" value="{e(q.kind)}" '
            f'placeholder="approval_decided"></label><datalist id="kinds">{kinds}</datalist>'
            f'<label>Ticket or session <input name="ticket" id="f-ticket" maxlength="64" value="{e(q.ticket)}">'
            f"</label>"
            f'<label>Actor <input name="actor" id="f-actor" maxlength="255" value="{e(q.actor)}" '
            f'placeholder="dana@msp.example"></label>'
            f'<label>From <input type="date" name="since" id="f-since" value="{e(q.since)}"></label>'
            f'<label>To <input type="date" name="until" id="f-until" value="{e(q.until)}"></label>'
            f'<div class="buttons"><button type="submit">Filter</button> <a class="button secondary" href="/audit">'
            f"Clear</a></div></form>")
    rows = []
    for line in view.lines:
        r = line.record
        ticket = (f'<a href="/tickets/{e(line.ticket_id)}">{e(line.ticket_id)}</a>' if line.ticket_id
                  else e(r.session_id or ""))
        rows.append(f'<tr data-seq="{r.seq}"><td class="num">{r.seq}</td><td>{_time(r.ts)}</td>'
                    f'<td><span class="tag">{e(r.kind)}</span></td><td>{e(r.actor)}</td><td>{e(line.client)}</td>'
                    f'<td>{ticket}</td><td class="summary">{e(line.summary)}</td></tr>')
    if rows:
        table = ('<table id="events"><thead><tr><th>#</th><th>When</th><th>Kind</th><th>Actor</th><th>Client</th>'
                 f'<th>Ticket</th><th>What</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')
    elif view.errors:
        table = '<p class="empty" id="no-events">Correct the filter above to see events.</p>'
    elif q.before:
        table = '<p class="empty" id="no-events">No older event. <a href="/audit">Back to the newest</a>.</p>'
    elif any(q.params(before="").values()):
        table = ('<p class="empty" id="no-events">No event matches this filter. Widen the dates or clear a field '
                 '(<a href="/audit">show everything</a>).</p>')
    else:
        table = '<p class="empty" id="no-events">The audit trail is empty: events appear as MSPclaw works.</p>'
    pager = ""
    if q.before:
        pager += f'<a class="button secondary" href="/audit?{e(urlencode(q.params(before="")))}">Newest</a> '
    if view.older is not None:
        pager += (f'<a class="button" id="older" rel="next" href="/audit?'
                  f'{e(urlencode(q.params(before=str(view.older))))}">Older events</a>')
    body = (f'<section class="card" id="audit-trail"><h1>Audit trail</h1>{chain_block(view.chain)}'
            f"{_errors(view.errors)}{form}</section>"
            f'<section class="card"><h2>Events <span class="hint">newest first</span></h2>{table}'
            f'<nav class="pager" aria-label="pages">{pager}</nav></section>')
    return layout("Audit trail", body, user=user, csrf=csrf, page="audit")


# -- stats ----------------------------------------------------------------------------------------------
def _rate(part: int, whole: int) -> str:
    return "–" if whole == 0 else f"{100 * part / whole:.0f} %"


def _ttr(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes = seconds / 60
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def _stats_table(table_id: str, what: str, rows: list[StatsRow]) -> str:
    lines = "".join(
        f'<tr><th scope="row">{e(r.key)}</th><td class="num">{r.tickets}</td>'
        f'<td class="num">{resolved(r)}</td><td class="num rate">{_rate(resolved(r), r.tickets)}</td>'
        f'<td class="num rate">{_rate(r.confirmed, r.tickets)}</td><td class="num">{r.escalated}</td>'
        f'<td class="num">{r.failed}</td><td class="num">{_ttr(r.median_ttr_s)}</td></tr>' for r in rows)
    if not lines:
        lines = '<tr><td colspan="8" class="empty">No tickets in this window.</td></tr>'
    return (f'<table id="{e(table_id)}"><thead><tr><th>{e(what)}</th><th class="num">Tickets</th>'
            '<th class="num">Resolved</th><th class="num">Resolution rate</th><th class="num">Confirmation rate</th>'
            '<th class="num">Escalated</th><th class="num">User said no</th><th class="num">Median time</th></tr>'
            f"</thead><tbody>{lines}</tbody></table>")


def stats_page(view: StatsView, *, user: Principal, csrf: str, error: str = "") -> str:
    windows = " ".join(
        f'<a href="/stats?days={d}"' + (' aria-current="page" class="button"' if d == view.days
                                        else ' class="button secondary"') + f">{d} days</a>" for d in WINDOWS)
    t = view.total
    labels = [d.day.strftime("%m-%d") for d in view.per_day]
    per_day = charts.stacked_bars(
        "tickets-per-day", f"Tickets per day, the last {view.days} days", labels,
        [charts.Series("resolved", [d.resolved for d in view.per_day]),
         charts.Series("escalated", [d.escalated for d in view.per_day]),
         charts.Series("user said no or open", [d.other for d in view.per_day])],
        x_label="day (UTC)", y_label="tickets")
    busy = [d for d in view.per_day if d.tickets]
    rate_line = charts.line(
        "resolution-per-day", "Resolution rate per day (days with tickets)", [d.day.strftime("%m-%d") for d in busy],
        [round(100 * d.resolved / d.tickets, 1) for d in busy], x_label="day (UTC)", y_label="resolved",
        unit="%", top=100, width=HALF)
    playbooks = view.by_playbook[: charts.MAX_POINTS]
    confirm = charts.bars(
        "confirmation-per-playbook", "Confirmation rate per playbook", [r.key for r in playbooks],
        [round(100 * r.confirmed / r.tickets, 1) if r.tickets else 0 for r in playbooks],
        x_label="playbook", y_label="confirmed by the user", unit="%", name="confirmed",
        top=100, width=HALF)
    hint = ("" if t.tickets else '<p class="empty" id="no-tickets">No ticket arrived in this window: try a longer '
            "one, or check that the PSA connector is polling (<code>mspclaw tickets list</code>).</p>")
    body = ('<section class="card" id="stats"><h1>Stats</h1>'
            + (f'<p class="error" role="alert" id="error">{e(error)}</p>' if error else "")
            + f'<nav class="windows" aria-label="window">{windows}</nav>{hint}'
            f'<dl class="summary-figures"><dt>Tickets</dt><dd id="total-tickets">{t.tickets}</dd>'
            f'<dt>Resolved</dt><dd id="resolution-rate">{_rate(resolved(t), t.tickets)}</dd>'
            f'<dt>Confirmed by the user</dt><dd id="confirmation-rate">{_rate(t.confirmed, t.tickets)}</dd>'
            f'<dt>Escalated</dt><dd id="escalated">{t.escalated}</dd></dl></section>'
            f'<section class="card chart-card"><h2>Tickets per day</h2>{per_day}</section>'
            f'<div class="grid"><section class="card chart-card"><h2>Confirmation rate per playbook</h2>{confirm}'
            f'</section><section class="card chart-card"><h2>Resolution rate per day</h2>{rate_line}</section></div>'
            f'<section class="card"><h2>Per client</h2>{_stats_table("per-client", "Client", view.by_client)}</section>'
            f'<section class="card"><h2>Per playbook</h2>{_stats_table("per-playbook", "Playbook", view.by_playbook)}'
            f'</section><p class="hint">Resolved counts every ticket the run fixed unless the user said it was not '
            f"fixed; confirmed counts those the user confirmed. The same numbers as <code>GET /api/stats</code>."
            f"</p>")
    return layout("Stats", body, user=user, csrf=csrf, page="stats")


# -- devices --------------------------------------------------------------------------------------------
def _agent_cell(online: bool, has_agent: bool) -> str:
    if not has_agent:
        return '<td class="offline">no agent</td>'
    return '<td class="online">online</td>' if online else '<td class="offline">offline</td>'


def devices_page(view: DevicesView, *, user: Principal, csrf: str) -> str:
    chosen = view.client.id if view.client else ""
    form = (f'<form method="get" action="/devices" class="filters" id="devices-filter"><label>Client '
            f'<select name="client" id="f-client">{_client_options(view.clients, chosen, "All your clients")}'
            f'</select></label><div class="buttons"><button type="submit">Show</button></div></form>')
    rows = "".join(
        f'<tr><th scope="row"><a href="/devices/{e(d.device.id)}">{e(d.device.hostname)}</a></th>'
        f"<td>{e(d.client)}</td><td>{e(d.device.os)}"
        + (f' <span class="hint">{e(d.agent.os_version)}</span>' if d.agent and d.agent.os_version else "")
        + f"</td><td>{e(d.device.primary_user or '')}</td>{_agent_cell(d.online, d.agent is not None)}"
        f"<td>{_time(d.agent.last_seen_at if d.agent else None)}</td><td class=\"num\">{d.facts}</td></tr>"
        for d in view.lines)
    if not rows:
        rows = ('<tr><td colspan="7" class="empty">No device yet. A device appears when an agent enrols on it: '
                "make a code with <code>mspclaw enroll CLIENT</code> and run the agent with it.</td></tr>")
    body = (f'<section class="card" id="devices"><h1>Devices</h1>{form}<table id="device-list"><thead><tr>'
            "<th>Device</th><th>Client</th><th>OS</th><th>Primary user</th><th>Agent</th><th>Last seen</th>"
            f'<th class="num">Facts</th></tr></thead><tbody>{rows}</tbody></table></section>')
    return layout("Devices", body, user=user, csrf=csrf, page="devices")


def device_page(page: DevicePage, *, user: Principal, csrf: str) -> str:
    d = page.line.device
    agent = page.line.agent
    facts = (f'<dl class="facts"><dt>Client</dt><dd id="client">{e(page.line.client)}</dd>'
             f'<dt>OS</dt><dd id="os">{e(d.os)}' + (f" {e(agent.os_version)}" if agent and agent.os_version else "")
             + f'</dd><dt>Primary user</dt><dd id="primary-user">{e(d.primary_user or "not known")}</dd>'
             f'<dt>Agent</dt><dd id="agent">'
             + ("none" if agent is None else f"{e(agent.hostname)} ({e(agent.role)}, version "
                f"{e(agent.agent_version or '?')}) · " + ("<b class=\"online\">online</b>" if page.line.online
                                                          else "offline")
                + (" · revoked" if agent.revoked_at else ""))
             + f'</dd><dt>Last seen</dt><dd id="last-seen">{_time(agent.last_seen_at if agent else None)}</dd>'
             f'<dt>Known since</dt><dd>{_time(d.created_at)}</dd></dl>')
    known = "".join(f'<tr><th scope="row">{e(f.key)}</th><td>{e(redact(f.value))}</td><td>{e(f.source)}</td>'
                    f"<td>{_time(f.updated_at)}</td></tr>" for f in page.facts)
    if not known:
        known = ('<tr><td colspan="4" class="empty">Nothing remembered yet: MSPclaw learns from tool results and '
                 "the user's answers while it works this device's tickets.</td></tr>")
    forget = ""
    if user.at_least("tech") and (page.facts or d.primary_user):
        forget = (f'<form method="post" action="/devices/{e(d.id)}/forget" id="forget">'
                  f'<input type="hidden" name="csrf" value="{e(csrf)}"><input type="hidden" name="back" '
                  f'value="/devices/{e(d.id)}"><button type="submit" id="forget-device">Forget what MSPclaw '
                  f"remembers about {e(d.hostname)}</button></form>"
                  '<p class="hint">Removes every fact and the primary user (audited). MSPclaw learns them again '
                  "from the next tickets.</p>")
    tickets = "".join(f'<tr><td>{_time(t.created_at)}</td><td><a href="/tickets/{e(t.id)}">{e(t.subject[:120])}</a>'
                      f"</td><td>{e(t.requester)}</td><td>{e(t.status)}</td></tr>" for t in page.tickets)
    if not tickets:
        tickets = '<tr><td colspan="4" class="empty">No ticket for this device yet.</td></tr>'
    body = (f'<p><a href="/devices">← All devices</a></p><section class="card" id="device" data-device="{e(d.id)}">'
            f'<h1 id="hostname">{e(d.hostname)}</h1>{facts}</section>'
            f'<section class="card" id="memory"><h2>What MSPclaw remembers</h2><table id="remembered"><thead><tr>'
            f"<th>Fact</th><th>Value</th><th>Learned from</th><th>When</th></tr></thead><tbody>{known}</tbody>"
            f"</table>{forget}</section>"
            f'<section class="card" id="device-tickets"><h2>Recent tickets</h2><table><thead><tr><th>Opened</th>'
            f"<th>Subject</th><th>Requester</th><th>Status</th></tr></thead><tbody>{tickets}</tbody></table>"
            f"</section>")
    return layout(d.hostname, body, user=user, csrf=csrf, page="device")
