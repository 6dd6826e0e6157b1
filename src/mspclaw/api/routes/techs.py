"""``/api/techs``: the technician registry (read, add, change, remove), who is on duty, one-time login links and
second-factor resets."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from mspclaw.api.auth import CallerDep, ServicesDep, require_caller
from mspclaw.api.schemas.techs import LinkOut, SecondFactorReset, TechChange, TechIn, TechOut
from mspclaw.pipeline.roster import Roster
from mspclaw.pipeline.techs import Tech
from mspclaw.store.tables import utcnow
from mspclaw.wiring import Services

api = APIRouter(prefix="/api", dependencies=[Depends(require_caller)])


def _out(svc: Services, t: Tech) -> TechOut:
    return TechOut(**t.model_dump(), on_duty_now=t.on_duty_at(utcnow()),
                   has_password=svc.staff.logins.has_password(t.email))


def roster(request: Request, svc: Services) -> Roster:
    """The roster over the console's second factors (the console is installed on every app)."""
    return Roster(svc.staff.techs, svc.staff.logins, request.app.state.console.factors, svc.audit)


@api.get("/techs", response_model=list[TechOut], tags=["techs"])
def list_techs(svc: ServicesDep) -> list[TechOut]:
    return [_out(svc, t) for t in svc.staff.techs.techs()]


@api.post("/techs", response_model=TechOut, status_code=201, tags=["techs"])
def add_tech(body: TechIn, request: Request, svc: ServicesDep, caller: CallerDep) -> TechOut:
    """Add a technician to the roster (one locked transaction, as `mspclaw tech add`); set a password with
    `mspclaw tech passwd` or send them a login link."""
    return _out(svc, roster(request, svc).add(body.model_dump(), actor=caller.name))


@api.patch("/techs/{ref}", response_model=TechOut, tags=["techs"])
def change_tech(ref: str, body: TechChange, request: Request, svc: ServicesDep, caller: CallerDep) -> TechOut:
    """Change a technician's name, role, clients, shifts or chat ids (not their e-mail)."""
    values = body.model_dump(exclude_unset=True)
    return _out(svc, roster(request, svc).change(ref[:320], values, actor=caller.name, actor_email=caller.email))


@api.delete("/techs/{ref}", status_code=204, tags=["techs"])
def remove_tech(ref: str, request: Request, svc: ServicesDep, caller: CallerDep) -> Response:
    """Remove a technician; their password, login tokens and second factor go too."""
    roster(request, svc).remove(ref[:320], actor=caller.name, actor_email=caller.email)
    return Response(status_code=204)


@api.post("/techs/{ref}/reset-2fa", response_model=SecondFactorReset, tags=["techs"])
def reset_second_factor(ref: str, request: Request, svc: ServicesDep, caller: CallerDep) -> SecondFactorReset:
    """Forget a technician's console second factor (as `mspclaw tech reset-2fa`): they enrol a new one at
    their next sign-in."""
    r = roster(request, svc)
    tech = r.get(ref[:320])
    return SecondFactorReset(email=tech.email, had_one=r.reset_second_factor(tech.email, actor=caller.name))


@api.post("/techs/{ref}/login-link", response_model=LinkOut, status_code=201, tags=["techs"])
def login_link(ref: str, svc: ServicesDep, caller: CallerDep) -> LinkOut:
    """A one-time login link for a technician, to send them out of band."""
    token = svc.staff.access.issue_link(ref, actor=caller.name)
    base = (svc.settings.public_url or svc.settings.server_url).rstrip("/")
    return LinkOut(url=f"{base}/auth/link/{token}", expires_in=int(svc.staff.access.link_ttl_s))
