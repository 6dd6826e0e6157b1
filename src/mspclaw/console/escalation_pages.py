"""The console's escalation pages: the list (open first, who holds each), one escalation's structured hand-off
with its Take / Hand over / Close forms, and the questions waiting for the end user's answer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mspclaw.console.pages import countdown, e, layout
from mspclaw.pipeline.access import Principal
from mspclaw.pipeline.escalation import Escalation
from mspclaw.pipeline.escalation_handling import HELD, NOTE_MAX, RESOLUTION_MAX, holder_label
from mspclaw.pipeline.techs import Tech
from mspclaw.store.tables import Client, EscalationRow, QuestionRow, Ticket, utcnow

FILTERS = {"open": "Not closed", "mine": "Mine", "all": "All"}
STATE_WORDS = {"open": "open", "taken": "taken", "handed_over": "handed over", "closed": "closed"}


@dataclass(frozen=True)
class EscalationLine:
    row: EscalationRow
    ticket: Ticket
    client: Client


@dataclass(frozen=True)
class EscalationView:
    row: EscalationRow
    ticket: Ticket
    client: Client
    handoff: Escalation | None
    """The structured hand-off as it was recorded (``None`` if the stored body no longer reads as one)."""
    technicians: list[Tech]
    """Who it may be handed to."""


@dataclass(frozen=True)
class QuestionLine:
    question: QuestionRow
    ticket: Ticket
    client: Client


def _age(since: datetime, now: datetime | None = None) -> str:
    minutes = max(0, int(((now or utcnow()) - since).total_seconds() // 60))
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h {minutes % 60} min"
    return f"{minutes // 1440} d"


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


def _state(row: EscalationRow) -> str:
    return f'<span class="tag state-{e(row.state)}">{e(STATE_WORDS.get(row.state, row.state))}</span>'


def _message(text: str) -> str:
    return f'<p class="error" role="alert" id="error">{e(text)}</p>' if text else ""


def _holder(row: EscalationRow) -> str:
    if row.state == "closed":
        return f"closed by {e(row.closed_by)}"
    return e(holder_label(row)) if row.held_by else '<span class="hint">nobody yet</span>'


# -- the list ------------------------------------------------------------------------------------------
def escalations_page(lines: list[EscalationLine], *, show: str, user: Principal, csrf: str) -> str:
    tabs = " ".join(
        f'<a href="/escalations?show={key}" id="show-{key}"'
        + (' aria-current="page" class="current"' if key == show else "") + f">{e(label)}</a>"
        for key, label in FILTERS.items())
    rows = "".join(
        f'<tr class="escalation {e(ln.row.state)}" data-id="{e(ln.row.id)}"><td>{_state(ln.row)}</td>'
        f'<td><a href="/escalations/{e(ln.row.id)}">{e(ln.ticket.subject[:120])}</a></td>'
        f"<td>{e(ln.client.name)}</td><td>{e(ln.row.kind.replace('_', ' '))}</td>"
        f"<td>{e(ln.row.reason[:160])}</td><td>{_holder(ln.row)}</td>"
        f'<td><time datetime="{e(ln.row.created_at.isoformat())}">{e(_age(ln.row.created_at))}</time></td></tr>'
        for ln in lines)
    if not rows:
        empty = {"open": "No open escalation: every ticket MSPclaw could not finish is taken care of.",
                 "mine": "You hold no escalation. Take one from the open ones.",
                 "all": "No escalation yet. When MSPclaw cannot finish a ticket it appears here."}[show]
        rows = f'<tr><td colspan="7" class="empty">{e(empty)}</td></tr>'
    body = (f'<section class="card" id="escalations"><h1>Escalations</h1>'
            f'<nav class="filters" aria-label="Which escalations">{tabs}</nav>'
            f'<table><thead><tr><th>State</th><th>Ticket</th><th>Client</th><th>Kind</th><th>Reason</th>'
            f"<th>Held by</th><th>Age</th></tr></thead><tbody>{rows}</tbody></table>"
            f'<p class="hint">Open ones first, then those being worked on, then the closed ones. '
            f'<a href="/questions">Questions waiting for users</a></p></section>')
    return layout("Escalations", body, user=user, csrf=csrf, page="escalations")


# -- one escalation ------------------------------------------------------------------------------------
def _handoff(h: Escalation | None) -> str:
    if h is None:
        return '<section class="card" id="handoff"><p class="hint">The hand-off could not be read.</p></section>'
    tried = "".join(
        f'<li class="{"ok" if s.ok else "failed" if s.ok is False else ""}"><b>{e(s.title[:200])}</b> '
        + (f"<code>{e(s.tool)}</code> " if s.tool else "") + f"{e(s.result[:500])}</li>"
        for s in h.tried) or '<li class="empty">Nothing was tried on a device.</li>'
    evidence = "".join(f'<li class="{"failed" if ev.failed else ""}"><code>{e(ev.tool)}</code> {e(ev.excerpt)}</li>'
                       for ev in h.evidence) or '<li class="empty">No evidence recorded.</li>'
    next_steps = "".join(f"<li>{e(step)}</li>" for step in h.next_steps) or '<li class="empty">None given.</li>'
    device = "".join(f'<dt>{e(k.replace("_", " "))}</dt><dd>{e(str(v)[:200])}</dd>' for k, v in h.device.items())
    return (f'<div class="grid"><section class="card" id="tried"><h2>What was tried</h2><ol>{tried}</ol></section>'
            f'<section class="card" id="evidence"><h2>Evidence</h2><ul>{evidence}</ul></section></div>'
            f'<div class="grid"><section class="card" id="next-steps"><h2>Next steps</h2><ul>{next_steps}</ul>'
            f'</section><section class="card" id="device-facts"><h2>Device</h2>'
            + (f'<dl class="facts">{device}</dl>' if device else '<p class="hint">No device known.</p>')
            + "</section></div>")


def _forms(v: EscalationView, user: Principal, csrf: str) -> str:
    row = v.row
    if row.state == "closed":
        return ""
    if not user.at_least("tech"):
        return '<p class="hint" id="read-only">Your role (viewer) reads escalations; technicians take them.</p>'
    hidden = f'<input type="hidden" name="csrf" value="{e(csrf)}">'
    held_by_other = row.state in HELD and row.held_by != user.email
    forms = []
    if row.held_by != user.email and not held_by_other:
        forms.append(f'<form method="post" action="/escalations/{e(row.id)}/take" id="take-form">{hidden}'
                     f'<button type="submit" id="take">Take it</button></form>')
    if held_by_other and not user.at_least("admin"):
        forms.append(f'<p class="hint" id="held-note">{e(holder_label(row))} works on it; only they or an admin '
                     "hand it over or close it.</p>")
        return f'<section class="card" id="actions"><h2>Act on it</h2>{"".join(forms)}</section>'
    options = "".join(f'<option value="{e(t.email)}">{e(t.name)} ({e(t.email)})</option>'
                      for t in v.technicians if t.email != row.held_by)
    if options:
        forms.append(
            f'<form method="post" action="/escalations/{e(row.id)}/hand-over" id="hand-over-form">{hidden}'
            f'<label>Hand over to <select name="to" id="hand-over-to" required>{options}</select></label>'
            f'<label>Note for them <span class="hint">(what you found, what is left)</span>'
            f'<textarea name="note" id="hand-over-note" maxlength="{NOTE_MAX}" rows="3" required></textarea></label>'
            f'<button type="submit" id="hand-over">Hand over</button></form>')
    else:
        forms.append('<p class="hint">No other technician serves this client; add one to the roster to hand over.'
                     "</p>")
    forms.append(
        f'<form method="post" action="/escalations/{e(row.id)}/close" id="close-form">{hidden}'
        f'<label>Resolution <span class="hint">(written to the PSA ticket as an internal note)</span>'
        f'<textarea name="resolution" id="resolution" maxlength="{RESOLUTION_MAX}" rows="3" required></textarea>'
        f'</label><button type="submit" id="close" class="approve">Close it</button></form>')
    return f'<section class="card" id="actions"><h2>Act on it</h2>{"".join(forms)}</section>'


def escalation_page(v: EscalationView, *, user: Principal, csrf: str, message: str = "") -> str:
    row, t = v.row, v.ticket
    handling = [f"<dt>State</dt><dd id=\"state\">{_state(row)}</dd>",
                f'<dt>Held by</dt><dd id="held-by">{_holder(row) if row.state != "closed" else e(holder_label(row))}'
                + (f" since {e(_when(row.taken_at))}" if row.held_by and row.taken_at else "") + "</dd>"]
    if row.handed_over_by:
        handling.append(f'<dt>Handed over</dt><dd id="handed-over">by {e(row.handed_over_by)} at '
                        f"{e(_when(row.handed_over_at))}: {e(row.handover_note or '')}</dd>")
    if row.state == "closed":
        handling.append(f'<dt>Closed</dt><dd id="closed">by {e(row.closed_by)} at {e(_when(row.closed_at))}</dd>'
                        f'<dt>Resolution</dt><dd id="resolution-text">{e(row.resolution or "")}</dd>')
    body = (f'<section class="card" id="escalation" data-state="{e(row.state)}"><h1>Escalated: {e(t.subject[:200])}'
            f"</h1>{_message(message)}"
            f'<dl class="facts"><dt>Ticket</dt><dd><a href="/tickets/{e(t.id)}" id="ticket-link">{e(t.subject[:200])}'
            f'</a></dd><dt>Client</dt><dd id="client">{e(v.client.name)}</dd>'
            f'<dt>Requester</dt><dd>{e(t.requester or "unknown")}</dd>'
            f'<dt>Kind</dt><dd id="kind">{e(row.kind.replace("_", " "))}</dd>'
            f'<dt>Why</dt><dd id="reason">{e(row.reason[:1000])}</dd>'
            f'<dt>Escalated</dt><dd>{e(_when(row.created_at))} ({e(_age(row.created_at))} ago)</dd>'
            f'<dt>On duty then</dt><dd>{e(row.assigned_to or "nobody")}</dd>{"".join(handling)}</dl></section>'
            f"{_forms(v, user, csrf)}{_handoff(v.handoff)}")
    return layout(f"Escalated: {t.subject[:60]}", body, user=user, csrf=csrf, page="escalation")


# -- questions -----------------------------------------------------------------------------------------
def questions_page(lines: list[QuestionLine], *, user: Principal, csrf: str) -> str:
    items = []
    for ln in lines:
        q = ln.question
        relay = ""
        if user.at_least("tech"):
            relay = (f'<form method="post" action="/questions/{e(q.id)}/answer" class="relay">'
                     f'<input type="hidden" name="csrf" value="{e(csrf)}">'
                     f'<input type="hidden" name="back" value="/tickets/{e(ln.ticket.id)}">'
                     f'<label>The user\'s answer <input name="answer" maxlength="1000" required></label>'
                     f'<label>Given by <input name="by" maxlength="200" value="the user, by phone"></label>'
                     f'<button type="submit">Relay the answer</button></form>')
        items.append(f'<tr data-id="{e(q.id)}"><td>{e(q.text[:300])}</td>'
                     f'<td><a href="/tickets/{e(ln.ticket.id)}">{e(ln.ticket.subject[:120])}</a></td>'
                     f"<td>{e(ln.client.name)}</td><td>{e(ln.ticket.requester or 'unknown')}</td>"
                     f"<td>{countdown(q.deadline)}</td><td>{relay}</td></tr>")
    rows = "".join(items) or ('<tr><td colspan="6" class="empty">No question waits for a user: nothing to relay.'
                              "</td></tr>")
    body = ('<section class="card" id="questions"><h1>Questions waiting for users</h1>'
            '<p class="hint">MSPclaw asked these users something and waits. If a user answered by phone or chat, '
            "relay it here once; the ticket goes on with it.</p>"
            "<table><thead><tr><th>Question</th><th>Ticket</th><th>Client</th><th>User</th><th>Deadline</th>"
            f"<th>Relay</th></tr></thead><tbody>{rows}</tbody></table></section>")
    return layout("Questions", body, user=user, csrf=csrf, page="questions")
