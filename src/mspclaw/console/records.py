"""What the console shows across tickets: the audit trail with filters and the chain's status, stats with
charts per client and playbook, devices and what MSPclaw remembers about them.

Pages answer HTML; a filter that cannot be read answers 400 with the form and what is wrong; a client, ticket or
device of another client answers 404, exactly as the API. Reading blocks (the database, the chain's
verification), so it runs off the event loop.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from mspclaw.console import record_pages, record_views
from mspclaw.console.http import Svc, Viewer, ViewerPage, html, needs, page
from mspclaw.console.presence import online_agents

router = APIRouter(include_in_schema=False)
MAX_QUERY = 2000
"""The longest query string a page reads."""
StaffPage = Annotated[Viewer, Depends(page(needs("tech", "The audit trail is for technicians and admins (viewers do "
                                                         "not read it, as with GET /api/audit).")))]


def _too_long(request: Request) -> bool:
    return len(request.url.query) > MAX_QUERY


@router.get("/audit")
async def audit(request: Request, me: StaffPage, svc: Svc) -> Response:
    """The audit trail of the technician's clients, newest first, filtered; the chain's status on top."""
    principal, csrf = me.principal, me.csrf
    if _too_long(request):
        return me.error(400, f"The address is too long (at most {MAX_QUERY} characters of filter).")
    query, problems = record_views.audit_query(request.query_params)
    chain = await run_in_threadpool(record_views.chain_status, svc)
    if problems:
        view = await run_in_threadpool(record_views.empty_audit_view, svc, principal, query, chain, problems)
        return html(record_pages.audit_page(view, user=principal, csrf=csrf), 400)
    with me.not_found_page():
        view = await run_in_threadpool(record_views.audit_view, svc, principal, query, chain)
    return html(record_pages.audit_page(view, user=principal, csrf=csrf))


@router.get("/stats")
async def stats(request: Request, me: ViewerPage, svc: Svc) -> Response:
    """Resolution and confirmation rates per client and playbook over 7, 30 or 90 days, with charts."""
    principal, csrf = me.principal, me.csrf
    raw = request.query_params.get("days", "30")[:10]
    days = int(raw) if raw.isascii() and raw.isdigit() else 0
    if days not in record_views.WINDOWS:
        view = await run_in_threadpool(record_views.stats_view, svc, principal, 30)
        message = (f"days={raw!r}: choose a window of " + ", ".join(map(str, record_views.WINDOWS))
                   + " days; showing 30.")
        return html(record_pages.stats_page(view, user=principal, csrf=csrf, error=message), 400)
    view = await run_in_threadpool(record_views.stats_view, svc, principal, days)
    return html(record_pages.stats_page(view, user=principal, csrf=csrf))


@router.get("/devices")
async def devices(request: Request, me: ViewerPage, svc: Svc) -> Response:
    """The devices of the technician's clients: OS, primary user, agent online, last seen."""
    client = request.query_params.get("client", "").strip()
    if len(client) > 200:
        return me.error(400, "client: at most 200 characters (choose one from the list).")
    with me.not_found_page():
        online = await online_agents(svc, me.principal)
        view = await run_in_threadpool(record_views.devices_view, svc, me.principal, online, client)
    return html(record_pages.devices_page(view, user=me.principal, csrf=me.csrf))


@router.get("/devices/{device_id}")
async def device(device_id: str, me: ViewerPage, svc: Svc) -> Response:
    """What MSPclaw remembers about one device (with the form to forget it) and its recent tickets."""
    with me.not_found_page():
        online = await online_agents(svc, me.principal)
        found = await run_in_threadpool(record_views.device_page, svc, me.principal, device_id, online)
    return html(record_pages.device_page(found, user=me.principal, csrf=me.csrf))
