"""The console's HTML, rendered on the server from plain string templates: every value escaped, no inline
script (the page's behaviour is ``static/console.js``), every asset from ``/static/console/``."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from html import escape
from typing import Any

from mspclaw.console.views import ApprovalPage, Home, TicketPage
from mspclaw.pipeline.access import Principal
from mspclaw.store.redact import redact
from mspclaw.store.tables import QuestionRow, Ticket, utcnow

STATIC = "/static/console"
DENY_EFFECT = ("The step is not run. MSPclaw stops this fix, writes what it found into the ticket's note and "
               "escalates the ticket to a technician; the user is told a technician will follow up.")


BIDI_CONTROLS = {c: f"<U+{c:04X}>" for c in (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))}
"""Invisible direction controls a PSA, an agent or a user may slip into text (``invoice\u202efdp.exe`` reads as
``invoiceexe.pdf``): shown as their code point, so what a technician approves is what runs."""


def e(value: object) -> str:
    return escape(("" if value is None else str(value)).translate(BIDI_CONTROLS), quote=True)


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def countdown(deadline: datetime, now: datetime | None = None) -> str:
    left = int((deadline - (now or utcnow())).total_seconds())
    text = "past the deadline" if left <= 0 else f"{left // 60}:{left % 60:02d} left"
    return f'<time class="countdown" datetime="{e(deadline.isoformat())}">{e(text)}</time>'


def layout(title: str, body: str, *, user: Principal | None = None, csrf: str = "", page: str = "") -> str:
    nav = ""
    if user is not None:
        staff = user.at_least("tech")  # a viewer reads; the audit trail and administration are for staff
        audit = ' <a href="/audit">Audit</a>' if staff else ""
        admin = ' <a href="/admin">Admin</a>' if staff else ""
        nav = (f'<nav><a href="/">Home</a> <a href="/escalations">Escalations</a> <a href="/questions">Questions</a>'
               f'{audit} <a href="/stats">Stats</a> <a href="/devices">Devices</a> '
               f'<a href="/playbooks">Playbooks</a>{admin} <a href="/docs">API</a> '
               f'<span class="who">{e(user.name)} '
               f'({e(user.role)})</span> <form method="post" action="/logout" class="inline">'
               f'<input type="hidden" name="csrf" value="{e(csrf)}"><button type="submit" id="sign-out">Sign out'
               f"</button></form></nav>")
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{e(title)} · MSPclaw</title>"
            f'<link rel="stylesheet" href="{STATIC}/console.css">'
            f'<link rel="icon" href="{STATIC}/favicon.svg" type="image/svg+xml">'
            f'<script src="{STATIC}/console.js" defer></script></head>'
            f'<body data-page="{e(page)}"><header><a class="brand" href="/">MSPclaw</a>{nav}</header>'
            f"<main>{body}</main></body></html>")


def _error(message: str) -> str:
    return f'<p class="error" role="alert" id="error">{e(message)}</p>' if message else ""


def login_page(csrf: str, *, error: str = "", email: str = "", providers: Sequence[tuple[str, str]] = ()) -> str:
    """``providers``: ``(name, label)`` of the single sign-on providers (docs/sso.md), one button each."""
    sso = "".join(f'<a class="button sso" id="sso-{e(name)}" href="/login/sso/{e(name)}">Sign in with {e(label)}</a>'
                  for name, label in providers)
    sso = f'<div class="buttons" id="sso">{sso}</div><p class="hint">Or with your password:</p>' if sso else ""
    body = (f'<section class="card narrow"><h1>Sign in</h1>{_error(error)}{sso}'
            f'<form method="post" action="/login" id="login"><input type="hidden" name="csrf" value="{e(csrf)}">'
            f'<label>E-mail <input id="email" name="email" type="email" autocomplete="username" required '
            f'maxlength="320" value="{e(email)}" autofocus></label>'
            f'<label>Password <input id="password" name="password" type="password" required maxlength="1000" '
            f'autocomplete="current-password"></label><button type="submit">Continue</button></form>'
            f'<p class="hint">A one-time login link from your admin also works: open it and press the button.'
            f"</p></section>")
    return layout("Sign in", body, page="login")


def link_page(csrf: str, token: str, *, error: str = "") -> str:
    body = (f'<section class="card narrow"><h1>Sign in with a one-time link</h1>{_error(error)}'
            f"<p>The link signs you in once; a second factor follows.</p>"
            f'<form method="post" action="/login/link"><input type="hidden" name="csrf" value="{e(csrf)}">'
            f'<input type="hidden" name="token" value="{e(token)}">'
            f'<button type="submit" id="use-link">Sign in</button></form></section>')
    return layout("Sign in", body, page="link")


def code_page(csrf: str, *, error: str = "") -> str:
    body = (f'<section class="card narrow"><h1>Second factor</h1>{_error(error)}'
            f"<p>Enter the 6-digit code of your authenticator app, or one of your recovery codes.</p>"
            f'<form method="post" action="/login/code" id="code-form"><input type="hidden" name="csrf" '
            f'value="{e(csrf)}"><label>Code <input id="code" name="code" inputmode="numeric" maxlength="40" '
            f'autocomplete="one-time-code" required autofocus></label><button type="submit">Sign in</button>'
            f'</form><p><a href="/login">Start again</a></p></section>')
    return layout("Second factor", body, page="code")


def enrol_page(csrf: str, *, qr_svg: str, secret: str, error: str = "") -> str:
    grouped = " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))
    body = (f'<section class="card narrow"><h1>Set up your second factor</h1>{_error(error)}'
            f"<p>Scan this code with an authenticator app (any app that reads TOTP codes), then enter the "
            f"6-digit code it shows.</p><div class=\"qr\">{qr_svg}</div>"
            f'<p class="hint">Cannot scan? Enter this key by hand: <code id="secret">{e(grouped)}</code></p>'
            f'<form method="post" action="/login/enrol" id="enrol-form"><input type="hidden" name="csrf" '
            f'value="{e(csrf)}"><label>Code <input id="code" name="code" inputmode="numeric" maxlength="10" '
            f'autocomplete="one-time-code" required autofocus></label><button type="submit">Confirm</button>'
            f"</form></section>")
    return layout("Second factor", body, page="enrol")


def recovery_page(codes: Iterable[str]) -> str:
    items = "".join(f"<li><code>{e(c)}</code></li>" for c in codes)
    body = ('<section class="card narrow"><h1>Your recovery codes</h1>'
            "<p>Each code signs you in once instead of the app's code. Keep them somewhere safe: they are shown "
            f'only now, and stored only as hashes.</p><ol id="recovery-codes">{items}</ol>'
            '<p><a class="button" href="/" id="continue">Continue to the console</a></p></section>')
    return layout("Recovery codes", body, page="recovery")


def error_page(status: int, message: str, *, user: Principal | None = None, csrf: str = "") -> str:
    titles = {403: "Refused", 404: "Not found", 409: "Already answered"}
    body = (f'<section class="card narrow"><h1>{e(titles.get(status, "Something went wrong"))}</h1>'
            f'<p id="error-message">{e(message)}</p><p><a href="/">Back to the console</a></p></section>')
    return layout(titles.get(status, "Error"), body, user=user, csrf=csrf, page="error")


# -- home ------------------------------------------------------------------------------------------
def _ticket_link(t: Ticket) -> str:
    return f'<a href="/tickets/{e(t.id)}">{e(t.subject[:120])}</a>'


def _percent(part: int, whole: int) -> str:
    return "–" if whole == 0 else f"{100 * part / whole:.0f} %"


def home_page(home: Home, *, user: Principal, csrf: str) -> str:
    waiting = "".join(
        f'<li class="waiting {e(w.kind)}"><span class="tag">{e(w.kind)}</span> '
        f'<a href="{"/approvals/" + e(w.id) if w.kind == "approval" else "/tickets/" + e(w.ticket.id)}">'
        f"{e(w.what)}</a> · {_ticket_link(w.ticket)} · {e(w.ticket.requester)} · {countdown(w.deadline)}</li>"
        for w in home.waiting) or '<li class="empty">Nothing waits for a decision.</li>'
    running = "".join(f"<li>{_ticket_link(t)} <span class=\"status\">{e(status)}</span></li>"
                      for t, status in home.running) or '<li class="empty">None.</li>'
    escalated = "".join(f"<li>{_ticket_link(t)} · {e(t.requester)}</li>"
                        for t in home.escalated) or '<li class="empty">None.</li>'
    resolved = "".join(f"<li>{_ticket_link(t)}</li>" for t in home.resolved_today) or '<li class="empty">None.</li>'
    agents = "".join(
        f'<tr><th scope="row">{e(line.client.name)}</th><td class="online">{len(line.online)}</td>'
        f'<td class="offline">{len(line.offline)}</td>'
        f"<td>{e(', '.join(line.online + [a + ' (offline)' for a in line.offline])[:500])}</td></tr>"
        for line in home.agents) or '<tr><td colspan="4" class="empty">No clients.</td></tr>'
    w = home.week
    resolved_n = w.confirmed + w.partial + w.unconfirmed
    body = (f'<section class="card" id="waiting"><h1>Waiting for a decision</h1><ul>{waiting}</ul></section>'
            f'<div class="grid"><section class="card" id="running"><h2>Running</h2><ul>{running}</ul></section>'
            f'<section class="card" id="escalated"><h2>Escalated</h2><ul>{escalated}</ul></section>'
            f'<section class="card" id="resolved"><h2>Resolved today</h2><ul>{resolved}</ul></section></div>'
            f'<div class="grid"><section class="card" id="agents"><h2>Agents</h2><table><thead><tr><th>Client</th>'
            f"<th>Online</th><th>Offline</th><th>Agents</th></tr></thead><tbody>{agents}</tbody></table></section>"
            f'<section class="card" id="week"><h2>The last 7 days</h2><dl>'
            f"<dt>Tickets</dt><dd>{w.tickets}</dd>"
            f'<dt>Resolved</dt><dd id="resolution-rate">{_percent(resolved_n, w.tickets)}</dd>'
            f'<dt>Confirmed by the user</dt><dd id="confirmation-rate">{_percent(w.confirmed, w.tickets)}</dd>'
            f"<dt>Escalated</dt><dd>{w.escalated}</dd></dl></section></div>")
    return layout("Home", body, user=user, csrf=csrf, page="home")


# -- ticket ------------------------------------------------------------------------------------------
def _json(value: Any, limit: int = 2000) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return e(text if len(text) <= limit else text[: limit - 1] + "…")


def event_line(seq: int, event: str, data: dict[str, Any]) -> str:
    """One line of the live timeline (the same words console.js writes for pushed events)."""
    match event:
        case "matched":
            detail = f"matched playbook {data.get('playbook') or '(none)'}"
        case "step":
            ok = data.get("ok")
            result = data.get("summary") or ("ok" if ok is True else "failed" if ok is False else "")
            detail = f"{data.get('title') or data.get('tool') or 'step'}: {result}"
        case "approval_request":
            detail = f"waiting for approval of {data.get('tool')}"
        case "approval_decision":
            detail = f"approval {data.get('status')} by {data.get('approver')}"
        case "question":
            detail = f"asked the user: {data.get('text', '')}"
        case "final_answer":
            detail = "resolved"
        case "escalation":
            detail = f"escalated: {data.get('reason', '')}"
        case _:
            detail = event
    return (f'<li data-seq="{seq}" class="ev {e(event)}"><span class="tag">{e(event)}</span> '
            f"{e(str(detail)[:300])}</li>")


def _question(q: QuestionRow, ticket_id: str, user: Principal, csrf: str) -> str:
    """A question to the user: its answer, or (pending, for a technician) a form to relay the answer given
    another way (a phone call, a chat)."""
    if q.status != "pending":
        by = f" ({e(q.answered_by)})" if q.answered_by else ""
        return f"<li>{e(q.text)} → <b>{e(q.answer or q.status)}</b>{by}</li>"
    relay = ""
    if user.at_least("tech"):
        relay = (f'<form method="post" action="/questions/{e(q.id)}/answer" class="relay">'
                 f'<input type="hidden" name="csrf" value="{e(csrf)}">'
                 f'<input type="hidden" name="back" value="/tickets/{e(ticket_id)}">'
                 f'<label>The user\'s answer <input name="answer" maxlength="1000" required></label>'
                 f'<label>Given by <input name="by" maxlength="200" value="the user, by phone"></label>'
                 f'<button type="submit">Relay the answer</button></form>')
    return f'<li class="pending-question">{e(q.text)} · {countdown(q.deadline)}{relay}</li>'


def ticket_page(tp: TicketPage, *, user: Principal, csrf: str) -> str:
    t, s = tp.ticket, tp.session
    matched = tp.matched
    why = e(matched.get("explanation") or s.reason or "")
    facts = (f'<dl class="facts"><dt>Requester</dt><dd id="requester">{e(t.requester)}</dd>'
             f'<dt>Client</dt><dd id="client">{e(tp.client.name)}</dd>'
             f'<dt>Device</dt><dd id="device">{e(tp.device.hostname if tp.device else "none")}</dd>'
             f'<dt>Playbook</dt><dd id="playbook">{e(s.playbook or "none")}'
             + (f" (score {e(matched.get('score'))}, {e(matched.get('confidence'))})" if matched else "")
             + f'</dd><dt>Why</dt><dd id="why">{why}</dd>'
             f'<dt>Status</dt><dd id="status">{e(t.status)} · session {e(s.status)}'
             + (f" · {e(s.outcome)}" if s.outcome else "") + "</dd></dl>")
    approvals = "".join(
        f'<li><a href="/approvals/{e(a.id)}">{e(a.tool)}</a> <span class="status">{e(a.status)}</span>'
        + (f" by {e(a.approver)}" if a.approver else "") + (f": {e(a.decision_reason)}" if a.decision_reason else "")
        + (f" · {countdown(a.deadline)}" if a.status == "pending" else "") + "</li>"
        for a in tp.approvals) or '<li class="empty">None.</li>'
    steps = "".join(
        f'<li class="{"ok" if st.ok else "failed" if st.ok is False else ""}"><b>{e(st.title)}</b> '
        + (f"<code>{e(st.tool)}</code> " if st.tool else "") + f"{e(summary)}</li>"
        for st, summary in tp.steps) or '<li class="empty">No step yet.</li>'
    calls = "".join(
        f"<tr><td><code>{e(c.call.tool)}</code></td><td><code>{_json(c.args)}</code></td>"
        f"<td>{e(c.call.status)}</td><td>{e(c.result)}</td></tr>" for c in tp.calls) \
        or '<tr><td colspan="4" class="empty">No tool call yet.</td></tr>'
    timeline = "".join(event_line(ev.seq, ev.event, ev.data) for ev in tp.events)
    last = tp.events[-1].seq if tp.events else 0
    questions = "".join(_question(q, tp.ticket.id, user, csrf) for q in tp.questions)
    audit = ""
    if tp.audit is not None:
        rows = "".join(f"<tr><td>{e(_when(a.ts))}</td><td>{e(a.kind)}</td><td>{e(a.actor)}</td>"
                       f"<td><code>{_json(redact(a.data), 400)}</code></td></tr>" for a in tp.audit)
        audit = (f'<section class="card" id="audit"><h2>Audit events</h2><table><thead><tr><th>When</th><th>Event'
                 f"</th><th>Actor</th><th>Data</th></tr></thead><tbody>{rows}</tbody></table></section>")
    memory = ""
    if tp.device is not None:
        known = "".join(f"<tr><th scope=\"row\">{e(f.key)}</th><td>{e(redact(f.value))}</td><td>{e(f.source)}</td></tr>"
                        for f in tp.remembered) or '<tr><td colspan="3" class="empty">Nothing remembered.</td></tr>'
        forget = ""
        if user.at_least("tech") and (tp.remembered or tp.device.primary_user):
            forget = (f'<form method="post" action="/devices/{e(tp.device.id)}/forget" id="forget">'
                      f'<input type="hidden" name="csrf" value="{e(csrf)}"><input type="hidden" name="back" '
                      f'value="/tickets/{e(t.id)}"><button type="submit" id="forget-device">Forget what MSPclaw '
                      f"remembers about {e(tp.device.hostname)}</button></form>")
        memory = (f'<section class="card" id="memory"><h2>What MSPclaw remembers about {e(tp.device.hostname)}</h2>'
                  f"<table><tbody>{known}</tbody></table>{forget}</section>")
    finished = t.status in ("resolved", "escalated", "closed")
    body = (f'<section class="card" id="ticket" data-ticket="{e(t.id)}" data-finished="{str(finished).lower()}">'
            f'<h1 id="subject">{e(t.subject)}</h1>{facts}<details><summary>The ticket\'s text</summary>'
            f'<pre class="body">{e(t.body[:5000])}</pre></details></section>'
            f'<div class="grid"><section class="card" id="timeline-card"><h2>Timeline <span id="live" class="live">'
            f'{"finished" if finished else "live"}</span></h2><ol id="timeline" data-after="{last}">{timeline}'
            f"</ol></section>"
            f'<section class="card" id="approvals"><h2>Approvals</h2><ul>{approvals}</ul></section></div>'
            f'<section class="card" id="steps"><h2>Steps</h2><ol>{steps}</ol></section>'
            f'<section class="card" id="calls"><h2>Tool calls</h2><table><thead><tr><th>Tool</th><th>Arguments'
            f"</th><th>Status</th><th>Result</th></tr></thead><tbody>{calls}</tbody></table></section>"
            f'<div class="grid"><section class="card" id="note"><h2>Note to the PSA</h2>'
            f'<pre>{e(s.note or "not written yet")}</pre></section>'
            f'<section class="card" id="reply"><h2>Reply to the user</h2><pre>{e(s.reply or "not sent yet")}</pre>'
            + (f"<h3>Questions to the user</h3><ul>{questions}</ul>" if questions else "")
            + f"</section></div>{memory}{audit}")
    return layout(t.subject[:80], body, user=user, csrf=csrf, page="ticket")


# -- approval -------------------------------------------------------------------------------------------
def approval_page(ap: ApprovalPage, *, user: Principal, csrf: str, message: str = "") -> str:
    a, f, t = ap.approval, ap.facts, ap.ticket
    args = "".join(f"<tr><th scope=\"row\"><code>{e(arg.name)}</code></th><td><code>{_json(arg.value, 500)}</code>"
                   f"</td><td>{e(arg.meaning)}</td></tr>" for arg in f.arguments)
    verified = (", ".join(f.requester.verified_by) or "not verified") if f.requester else "no requester binding"
    reason = "".join(f"<p>{e(line)}</p>" for line in a.reason.splitlines()) or "<p>none given</p>"
    if a.status == "pending":
        if ap.may_decide:
            decide = (f'<form method="post" action="/approvals/{e(a.id)}/decide" id="decide">'
                      f'<input type="hidden" name="csrf" value="{e(csrf)}">'
                      f'<label>Reason <span class="hint">(needed to deny; recorded in the audit trail)</span>'
                      f'<textarea id="reason" name="reason" maxlength="500" rows="2"></textarea></label>'
                      f'<div class="buttons"><button type="submit" name="decision" value="approve" id="approve" '
                      f'class="approve">Approve <kbd>a</kbd></button>'
                      f'<button type="submit" name="decision" value="deny" id="deny" class="deny">Deny <kbd>d</kbd>'
                      f"</button></div></form>")
        else:
            decide = '<p class="hint">Your role (viewer) does not decide approvals.</p>'
        state = f'<p class="state pending" id="state">Waiting for a decision · {countdown(a.deadline)}</p>'
    else:
        decide = ""
        state = (f'<p class="state {e(a.status)}" id="state">{e(a.status.capitalize())}'
                 + (f" by <b id=\"decided-by\">{e(a.approver)}</b>" if a.approver else "")
                 + (f" at {e(_when(a.decided_at))}" if a.decided_at else "")
                 + (f": {e(a.decision_reason)}" if a.decision_reason else "") + "</p>")
    body = (f'<section class="card" id="approval" data-status="{e(a.status)}"><h1>Approve <code>{e(f.tool)}</code>?'
            f"</h1>{_error(message)}{state}"
            f'<dl class="facts"><dt>Ticket</dt><dd><a href="/tickets/{e(t.id)}" id="ticket-link">{e(t.subject)}</a>'
            f'</dd><dt>Who asked</dt><dd id="asked-by">{e(t.requester or "unknown")}</dd>'
            f'<dt>How verified</dt><dd id="verified">{e(verified)}</dd>'
            f'<dt>Client</dt><dd>{e(ap.client.name)}</dd>'
            f'<dt>Account or device</dt><dd id="target">{e(f.target or "the device")}'
            + (f" · device {e(ap.device.hostname)}" if ap.device else "")
            + f' ({e(f.runs_on)} agent)</dd><dt>Effect</dt><dd id="effect">{e(f.effect)}</dd>'
            f'<dt>On deny</dt><dd id="on-deny">{e(DENY_EFFECT)}</dd>'
            f'<dt>Deadline</dt><dd>{e(_when(a.deadline))} · {countdown(a.deadline)} (no decision by then is a deny)'
            f'</dd></dl><h2>Exact arguments</h2><table id="arguments"><tbody>{args}</tbody></table>'
            f'<h2>Why it is asked</h2><div id="reason-text">{reason}</div>{decide}</section>')
    return layout(f"Approve {f.tool}", body, user=user, csrf=csrf, page="approval")


def docs_page() -> str:
    body = ('<section class="card"><h1>API</h1><p>Every <code>/api</code> route needs <code>Authorization: Bearer '
            '&lt;key or token&gt;</code>. The machine-readable description is <a href="/openapi.json">'
            '/openapi.json</a> (OpenAPI 3.1); this page lists it without loading anything from the internet.</p>'
            '<div id="operations" data-src="/openapi.json"><p class="hint">Loading /openapi.json…</p></div>'
            "</section>")
    return layout("API", body, page="docs")
