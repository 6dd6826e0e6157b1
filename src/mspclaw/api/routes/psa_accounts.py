"""``/api/psa-accounts``: add, list, test, enable, disable and remove PSA accounts while the server runs.

Admins of every client only; secrets go in once and never come back out; each change is audited with
the account's config, never its secrets.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Response

from mspclaw.api.auth import CallerDep, ServicesDep, require_caller
from mspclaw.api.schemas.psa_accounts import CredentialTestOut, PSAAccountIn, PSAAccountOut
from mspclaw.pipeline.psa_account_fields import options_from
from mspclaw.pipeline.psa_accounts import AccountView

api = APIRouter(prefix="/api", dependencies=[Depends(require_caller)])


def _out(view: AccountView) -> PSAAccountOut:
    test = view.last_test
    return PSAAccountOut(name=view.name, kind=view.kind, enabled=view.enabled, config=view.config,
                         created_at=view.created_at, webhook_url=view.webhook_url,
                         last_test=CredentialTestOut(at=test.at, ok=test.ok, message=test.message) if test else None)


@api.get("/psa-accounts", response_model=list[PSAAccountOut], tags=["psa-accounts"])
async def list_accounts(svc: ServicesDep) -> list[PSAAccountOut]:
    """Every PSA account with its webhook URL and last credential test (no secrets)."""
    return [_out(view) for view in await asyncio.to_thread(svc.psa_accounts.list)]


@api.post("/psa-accounts", response_model=PSAAccountOut, status_code=201, tags=["psa-accounts"])
async def add_account(body: PSAAccountIn, svc: ServicesDep, caller: CallerDep) -> PSAAccountOut:
    """Add an account; when enabled, its webhooks are accepted and its poller runs at once (no restart).
    400 names a field missing or wrong; 409: the name is taken."""
    view = await svc.psa_accounts.add(body.name, body.kind, options_from(body.kind, body.fields),
                                      poll_interval_s=body.poll_interval_s, actor=caller.name, enabled=body.enabled)
    return _out(view)


@api.post("/psa-accounts/{name}/test", response_model=CredentialTestOut, tags=["psa-accounts"])
async def test_account(name: str, svc: ServicesDep, caller: CallerDep) -> CredentialTestOut:
    """One cheap authenticated read against the PSA with the stored credentials; what it answered."""
    result = await svc.psa_accounts.test(name, actor=caller.name)
    return CredentialTestOut(at=result.at, ok=result.ok, message=result.message)


@api.post("/psa-accounts/{name}/enable", response_model=PSAAccountOut, tags=["psa-accounts"])
async def enable_account(name: str, svc: ServicesDep, caller: CallerDep) -> PSAAccountOut:
    return _out(await svc.psa_accounts.enable(name, actor=caller.name))


@api.post("/psa-accounts/{name}/disable", response_model=PSAAccountOut, tags=["psa-accounts"])
async def disable_account(name: str, svc: ServicesDep, caller: CallerDep) -> PSAAccountOut:
    """Its webhooks are refused and its poller stops at once; its tickets already running go on."""
    return _out(await svc.psa_accounts.disable(name, actor=caller.name))


@api.delete("/psa-accounts/{name}", status_code=204, tags=["psa-accounts"])
async def remove_account(name: str, svc: ServicesDep, caller: CallerDep) -> Response:
    """Delete the account and its secrets."""
    await svc.psa_accounts.remove(name, actor=caller.name)
    return Response(status_code=204)
