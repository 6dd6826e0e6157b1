"""What the console shows across tickets: the audit trail with filters and the chain's status, stats with
charts per client and playbook, devices and what MSPclaw remembers about them.

Pages answer HTML; a filter that cannot be read answers 400 with the form and what is wrong; a client, ticket or
device of another client answers 404, exactly as the API. Reading blocks (the database, the chain's
verification), so it runs off the event loop.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from mspclaw.console import record_pages, record_views
from mspclaw.console.http import Sign, Svc, error, html, viewer
from mspclaw.console.presence import online_agents
from mspclaw.errors import NotFound

router = APIRouter(include_in_schema=False)
MAX_QUERY = 2000
"""The longest query string a page reads."""


def _too_long(request: Request) -> bool:
    return len(request.url.query) > MAX_QUERY


@router.get("/audit")
async def audit(request: Request, svc: Svc, sign: Sign) -> Response:
    """The audit trail of the technician's clients, newest first, filtered; the chain's status on top."""
    current = await run_in_threadpool(viewer, request, sign)
    if isinstance(current, Response):
        return current
    principal, csrf = current
    if not principal.at_least("tech"):
        return error(403, "The audit trail is for technicians and admins (viewers do not read it, as with "
                          "GET /api/audit).", principal, csrf)
    if _too_long(request):
        return error(400, f"The address is too long (at most {MAX_QUERY} characters of filter).", principal, csrf)
    query, problems = record_views.audit_query(request.query_params)
    chain = await run_in_threadpool(record_views.chain_status, svc)
    if problems:
        view = await run_in_threadpool(record_views.empty_audit_view, svc, principal, query, chain, problems)
        return html(record_pages.audit_page(view, user=principal, csrf=csrf), 400)
    try:
        view = await run_in_threadpool(record_views.audit_view, svc, principal, query, chain)
    except NotFound as exc:
        return error(404, exc.message, principal, csrf)
    return html(record_pages.audit_page(view, user=principal, csrf=csrf))


@router.get("/stats")
async def stats(request: Request, svc: Svc, sign: Sign) -> Response:
    """Resolution and confirmation rates per client and playbook over 7, 30 or 90 days, with charts."""
    current = await run_in_threadpool(viewer, request, sign)
    if isinstance(current, Response):
        return current
    principal, csrf = current
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
async def devices(request: Request, svc: Svc, sign: Sign) -> Response:
    """The devices of the technician's clients: OS, primary user, agent online, last seen."""
    current = await run_in_threadpool(viewer, request, sign)
    if isinstance(current, Response):
        return current
    principal, csrf = current
    client = request.query_params.get("client", "").strip()
    if len(client) > 200:
        return error(400, "client: at most 200 characters (choose one from the list).", principal, csrf)
    try:
        online = await online_agents(svc, principal)
        view = await run_in_threadpool(record_views.devices_view, svc, principal, online, client)
    except NotFound as exc:
        return error(404, exc.message, principal, csrf)
    return html(record_pages.devices_page(view, user=principal, csrf=csrf))


@router.get("/devices/{device_id}")
async def device(device_id: str, request: Request, svc: Svc, sign: Sign) -> Response:
    """What MSPclaw remembers about one device (with the form to forget it) and its recent tickets."""
    current = await run_in_threadpool(viewer, request, sign)
    if isinstance(current, Response):
        return current
    principal, csrf = current
    try:
        online = await online_agents(svc, principal)
        page = await run_in_threadpool(record_views.device_page, svc, principal, device_id, online)
    except NotFound as exc:
        return error(404, exc.message, principal, csrf)
    return html(record_pages.device_page(page, user=principal, csrf=csrf))
