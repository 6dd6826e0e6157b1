"""``/api/techs``: the technician registry, who is on duty, and one-time login links."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from mspclaw.api.auth import CallerDep, ServicesDep, require_caller
from mspclaw.api.schemas.techs import LinkOut, TechOut
from mspclaw.store.tables import utcnow

api = APIRouter(prefix="/api", dependencies=[Depends(require_caller)])


@api.get("/techs", response_model=list[TechOut], tags=["techs"])
def list_techs(svc: ServicesDep) -> list[TechOut]:
    now = utcnow()
    return [TechOut(**t.model_dump(), on_duty_now=t.on_duty_at(now),
                    has_password=svc.staff.logins.has_password(t.email)) for t in svc.staff.techs.techs()]


@api.post("/techs/{ref}/login-link", response_model=LinkOut, status_code=201, tags=["techs"])
def login_link(ref: str, svc: ServicesDep, caller: CallerDep) -> LinkOut:
    """A one-time login link for a technician, to send them out of band."""
    token = svc.staff.access.issue_link(ref, actor=caller.name)
    base = (svc.settings.public_url or svc.settings.server_url).rstrip("/")
    return LinkOut(url=f"{base}/auth/link/{token}", expires_in=int(svc.staff.access.link_ttl_s))
