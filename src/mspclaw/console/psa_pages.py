"""The HTML of ``/admin/psa``: the PSA accounts (kind, name, enabled, last credential test, webhook URL), the
add form of each kind, and the confirmation before removing one. Secrets are never rendered, not even back
into a form that was refused."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from mspclaw.console.pages import e, layout
from mspclaw.pipeline.access import Principal
from mspclaw.pipeline.psa_account_fields import FORM_FIELDS, KINDS
from mspclaw.pipeline.psa_accounts import AccountView

KIND_NAMES = {"superops": "SuperOps", "connectwise": "ConnectWise PSA", "halo": "HaloPSA", "autotask": "Autotask",
              "freshdesk": "Freshdesk", "local": "Local PSA (simulator)"}


@dataclass(frozen=True)
class Draft:
    """What a refused add form said, shown again (secret fields left empty)."""

    name: str = ""
    poll_interval_s: str = "60"
    start: str = "enabled"
    values: Mapping[str, str] | None = None


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


def _csrf(csrf: str) -> str:
    return f'<input type="hidden" name="csrf" value="{e(csrf)}">'


def _error(message: str) -> str:
    return f'<p class="error" role="alert" id="error">{e(message)}</p>' if message else ""


def _page(title: str, body: str, *, user: Principal, csrf: str, page: str) -> str:
    back = '<p class="hint"><a href="/admin">Administration</a> › PSA accounts</p>'
    return layout(title, back + body, user=user, csrf=csrf, page=page)


def _test_cell(view: AccountView) -> str:
    test = view.last_test
    if test is None:
        return '<td class="test untested">not tested yet</td>'
    state = "ok" if test.ok else "failed"
    word = "Accepted" if test.ok else "Failed"
    return (f'<td class="test {state}"><span class="state {state}">{word}</span> '
            f'<span class="hint">{e(_when(test.at))}</span><br>{e(test.message)}</td>')


def _row(view: AccountView, csrf: str, polling: bool) -> str:
    toggle = "disable" if view.enabled else "enable"
    enabled = ("enabled" + (", polling" if polling else "")) if view.enabled else "disabled"
    return (f'<tr id="account-{e(view.name)}" data-account="{e(view.name)}">'
            f'<th scope="row">{e(view.name)}</th><td>{e(KIND_NAMES.get(view.kind, view.kind))}</td>'
            f'<td class="{"online" if view.enabled else "offline"}">{e(enabled)}</td>{_test_cell(view)}'
            f'<td><code class="webhook-url">{e(view.webhook_url)}</code></td>'
            f'<td class="actions"><div class="buttons">'
            f'<form method="post" action="/admin/psa/{e(view.name)}/test" class="inline">{_csrf(csrf)}'
            f'<button type="submit" id="test-{e(view.name)}">Test credentials</button></form>'
            f'<form method="post" action="/admin/psa/{e(view.name)}/{toggle}" class="inline">{_csrf(csrf)}'
            f'<button type="submit" class="button secondary" id="{toggle}-{e(view.name)}">{toggle.title()}</button>'
            f'</form><a class="button secondary" href="/admin/psa/{e(view.name)}/remove" '
            f'id="remove-{e(view.name)}">Remove…</a></div></td></tr>')


def accounts_page(views: list[AccountView], polling: set[str], *, user: Principal, csrf: str,
                  tested: AccountView | None = None, notice: str = "") -> str:
    """The list; ``tested``: the account whose credential test just ran (its answer shown on top)."""
    rows = "".join(_row(v, csrf, v.name in polling) for v in views) or (
        '<tr><td colspan="6" class="empty">No PSA accounts yet: add one below, then paste its webhook URL into '
        "the PSA.</td></tr>")
    result = ""
    if tested is not None and tested.last_test is not None:
        test = tested.last_test
        kind = "chain ok" if test.ok else "chain broken"
        words = "The PSA accepted the credentials" if test.ok else "The credential test failed"
        result = (f'<p class="{kind}" role="status" id="test-result">{e(words)} ({e(tested.name)}): '
                  f"{e(test.message)}</p>")
    shown = f'<p class="chain ok" role="status" id="notice">{e(notice)}</p>' if notice else ""
    kinds = " ".join(f'<a class="button secondary" href="/admin/psa/new?kind={k}" id="add-{k}">{e(KIND_NAMES[k])}</a>'
                     for k in KINDS)
    body = (f'<section class="card" id="psa-accounts"><h1>PSA accounts</h1>{result}{shown}'
            f'<p class="hint">Changes apply at once, without a restart: an enabled account\'s webhooks are accepted '
            f"and its poller runs; a disabled one's webhooks are refused.</p>"
            f'<table><thead><tr><th>Name</th><th>Kind</th><th>State</th><th>Last credential test</th>'
            f"<th>Webhook URL (paste into the PSA)</th><th></th></tr></thead><tbody>{rows}</tbody></table></section>"
            f'<section class="card" id="add-account"><h2>Add a PSA account</h2>'
            f'<p class="hint">Choose the PSA; the next page asks for what it needs (docs/psa/KIND.md says where to '
            f'find each value).</p><div class="buttons">{kinds}</div></section>')
    return _page("PSA accounts", body, user=user, csrf=csrf, page="admin-psa")


def _field(name: str, label: str, *, secret: bool, required: bool, choices: tuple[str, ...],
           value: str) -> str:
    ident = f"field-{name}"
    star = ' <span class="hint">(required)</span>' if required else ""
    if choices:
        options = "".join(f'<option value="{e(c)}"' + (" selected" if c == value else "") + f">{e(c)}</option>"
                          for c in choices)
        return f'<label>{e(label)}{star}<select id="{ident}" name="{e(name)}">{options}</select></label>'
    kind_attr = 'type="password" autocomplete="new-password"' if secret else 'type="text" autocomplete="off"'
    shown = "" if secret else f' value="{e(value)}"'
    need = " required" if required else ""
    return (f'<label>{e(label)}{star}<input id="{ident}" name="{e(name)}" {kind_attr} maxlength="4000"'
            f"{shown}{need}></label>")


def add_page(kind: str, *, user: Principal, csrf: str, message: str = "", draft: Draft = Draft()) -> str:
    values = dict(draft.values or {})
    fields = "".join(_field(f.name, f.label, secret=f.secret, required=f.required, choices=f.choices,
                            value=values.get(f.name, "")) for f in FORM_FIELDS[kind])
    start = "".join(f'<option value="{v}"' + (" selected" if v == draft.start else "") + f">{label}</option>"
                    for v, label in (("enabled", "enabled: take tickets at once"),
                                     ("disabled", "disabled: test the credentials first")))
    secret_note = ("Secrets are stored encrypted and never shown again; after a refused form, type them again."
                   if any(f.secret for f in FORM_FIELDS[kind]) else "")
    body = (f'<section class="card" id="add-form"><h1>Add a {e(KIND_NAMES[kind])} account</h1>{_error(message)}'
            f'<form method="post" action="/admin/psa" id="psa-form">{_csrf(csrf)}'
            f'<input type="hidden" name="kind" value="{e(kind)}">'
            f'<label>Account name <span class="hint">(ends its webhook URL /webhooks/NAME; letters, digits, - '
            f'and _)</span><input id="field-name" name="name" required maxlength="100" '
            f'pattern="[A-Za-z0-9][A-Za-z0-9_-]*" value="{e(draft.name or kind)}"></label>{fields}'
            f'<label>Seconds between polls <span class="hint">(0: webhooks only)</span><input id="field-poll" '
            f'name="poll_interval_s" type="number" min="0" max="86400" step="any" value="{e(draft.poll_interval_s)}">'
            f'</label><label>After adding<select id="field-start" name="start">{start}</select></label>'
            f'<p class="hint">{e(secret_note)}</p><div class="buttons">'
            f'<button type="submit" id="add-account-button">Add the account</button>'
            f'<a class="button secondary" href="/admin/psa" id="cancel">Cancel</a></div></form></section>')
    return _page(f"Add a {KIND_NAMES[kind]} account", body, user=user, csrf=csrf, page="admin-psa-add")


def remove_page(view: AccountView, *, user: Principal, csrf: str) -> str:
    body = (f'<section class="card narrow" id="confirm"><h1>Remove {e(view.name)}?</h1>'
            f'<p id="question">Remove the {e(KIND_NAMES.get(view.kind, view.kind))} account {e(view.name)}?</p>'
            f'<p class="hint" id="effect">Its credentials are deleted; from now on its webhooks are unknown '
            f"(404) and it is not polled. Tickets already taken from it go on. To take tickets from it again, "
            f"add it again.</p>"
            f'<form method="post" action="/admin/psa/{e(view.name)}/remove" id="confirm-form">{_csrf(csrf)}'
            f'<input type="hidden" name="confirm" value="yes"><div class="buttons">'
            f'<button type="submit" class="deny" id="confirm-button">Remove the account</button>'
            f'<a class="button" href="/admin/psa" id="cancel">Cancel</a></div></form></section>')
    return _page(f"Remove {view.name}?", body, user=user, csrf=csrf, page="admin-psa-remove")
