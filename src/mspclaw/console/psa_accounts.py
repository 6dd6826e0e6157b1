"""PSA accounts: add, test the credentials, enable or disable, applied without a server restart.

``/admin/psa`` is for admins of every client, like ``/api/psa-accounts``: a viewer, a technician or an admin
of some clients is refused (403). Every change goes through
:class:`~mspclaw.pipeline.psa_accounts.PSAAccountService`, the API's service, which audits it with the
account's config and never its secrets. Each form carries the CSRF token; each change answers with a
redirect back to the list (reloading the page repeats nothing).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from mspclaw.console import psa_pages
from mspclaw.console.http import Posted, Svc, Viewer, html, page, redirect, sent_form
from mspclaw.errors import ConfigError, Conflict, NotFound
from mspclaw.pipeline.access import Principal
from mspclaw.pipeline.psa_account_fields import FORM_FIELDS, AccountFieldsError, options_from
from mspclaw.wiring import Services

router = APIRouter(include_in_schema=False)
EXPIRED = "The form expired or did not come from this console; open the page again."
NAME_CHARS = 100


def _refusal(principal: Principal) -> str | None:
    if not principal.at_least("admin"):
        return f"PSA accounts are managed by admins; your role is {principal.role}."
    if principal.scope is not None:
        return "Only an admin of every client manages PSA accounts; you are an admin of some clients."
    return None


AdminPage = Annotated[Viewer, Depends(page(_refusal))]
AdminForm = Annotated[Posted, Depends(sent_form(EXPIRED, _refusal))]


def _list(svc: Services, principal: Principal, csrf: str, *, tested: str = "", notice: str = "") -> str:
    views = svc.psa_accounts.list()
    polling = {v.name for v in views if svc.psa_accounts.polling(v.name)}
    shown = next((v for v in views if v.name == tested), None)
    return psa_pages.accounts_page(views, polling, user=principal, csrf=csrf, tested=shown, notice=notice)


@router.get("/admin/psa")
def accounts(me: AdminPage, svc: Svc, tested: str = "", added: str = "") -> Response:
    notice = ""
    if added:
        notice = (f"{added[:NAME_CHARS]} is added. Paste its webhook URL into the PSA, then test the credentials.")
    return html(_list(svc, me.principal, me.csrf, tested=tested[:NAME_CHARS], notice=notice))


@router.get("/admin/psa/new")
def new_account(me: AdminPage, kind: str = "") -> Response:
    if kind not in FORM_FIELDS:
        return me.error(404, f"no PSA kind {kind[:32]!r}; choose one on the PSA accounts page")
    return html(psa_pages.add_page(kind, user=me.principal, csrf=me.csrf))


@router.post("/admin/psa")
async def add_account(sent: AdminForm, svc: Svc) -> Response:
    form, principal, csrf = sent.form, sent.principal, sent.csrf
    kind = form.get("kind", "")
    if kind not in FORM_FIELDS:
        return sent.error(400, "Choose the PSA kind on the PSA accounts page, then fill in its form.")
    known = {f.name for f in FORM_FIELDS[kind]}
    values = {k: v for k, v in form.items() if k in known}
    secret = {f.name for f in FORM_FIELDS[kind] if f.secret}
    name, poll, start = (form.get("name", "").strip()[:NAME_CHARS], form.get("poll_interval_s", "60").strip()[:20],
                         form.get("start", "enabled"))
    draft = psa_pages.Draft(name=name, poll_interval_s=poll, start=start,
                            values={k: v[:4000] for k, v in values.items() if k not in secret})
    try:
        try:
            interval = float(poll or "0")
        except ValueError:
            raise AccountFieldsError("Seconds between polls must be a number, 0 for webhooks only.") from None
        await svc.psa_accounts.add(name, kind, options_from(kind, values), poll_interval_s=interval,
                                   actor=principal.name, enabled=start != "disabled")
    except (AccountFieldsError, Conflict, ConfigError) as exc:
        return html(psa_pages.add_page(kind, user=principal, csrf=csrf, message=exc.message, draft=draft), 400)
    return redirect(f"/admin/psa?added={name}")


@router.post("/admin/psa/{name}/test")
async def test_account(name: str, sent: AdminForm, svc: Svc) -> Response:
    with sent.not_found_page():
        await svc.psa_accounts.test(name[:NAME_CHARS], actor=sent.principal.name)
    return redirect(f"/admin/psa?tested={name[:NAME_CHARS]}")


@router.post("/admin/psa/{name}/{change}")
async def change_account(name: str, change: str, sent: AdminForm, svc: Svc) -> Response:
    """``enable``, ``disable`` or ``remove`` (with ``confirm=yes``, after the confirmation page)."""
    form, principal = sent.form, sent.principal
    name = name[:NAME_CHARS]
    try:
        match change:
            case "enable":
                await svc.psa_accounts.enable(name, actor=principal.name)
            case "disable":
                await svc.psa_accounts.disable(name, actor=principal.name)
            case "remove" if form.get("confirm") == "yes":
                await svc.psa_accounts.remove(name, actor=principal.name)
            case "remove":
                return redirect(f"/admin/psa/{name}/remove")
            case _:
                return sent.error(404, f"no action {change[:20]!r} on a PSA account")
    except NotFound as exc:
        return sent.error(404, exc.message)
    except Conflict as exc:
        return sent.error(409, exc.message)
    return redirect("/admin/psa")


@router.get("/admin/psa/{name}/remove")
def confirm_remove(name: str, me: AdminPage, svc: Svc) -> Response:
    with me.not_found_page():
        view = svc.psa_accounts.view(name[:NAME_CHARS])
    return html(psa_pages.remove_page(view, user=me.principal, csrf=me.csrf))
