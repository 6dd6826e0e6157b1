"""``/api/stats``: outcomes per playbook, client or model, and the resolution rate per day."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from mspclaw.api.auth import CallerDep, ServicesDep, require_caller
from mspclaw.api.routes.since import parse_since
from mspclaw.api.schemas.stats import DailyOut, StatsOut, StatsRowOut
from mspclaw.store.stats import DIMENSIONS, StatsRow, aggregate, daily_rates

api = APIRouter(prefix="/api", dependencies=[Depends(require_caller)])


def _row(r: StatsRow) -> StatsRowOut:
    return StatsRowOut(**r.as_dict())


@api.get("/stats", response_model=StatsOut, tags=["stats"])
def stats(svc: ServicesDep, caller: CallerDep, by: Annotated[str, Query(pattern="^(playbook|client|model)$")]
          = "playbook", since: str | None = None) -> StatsOut:
    """Outcomes per playbook, client or model: confirmed, partial, failed, unconfirmed, escalated,
    median time to resolution, tokens and cost; and the resolution rate per day."""
    assert by in DIMENSIONS
    outcomes = svc.staff.stats.outcomes(caller.scope, since=parse_since(since))
    return StatsOut(by=by, rows=[_row(r) for r in aggregate(outcomes, by)], total=_row(aggregate(outcomes, None)[0]),
                    daily=[DailyOut(day=d.isoformat(), tickets=n, resolved_rate=rr, confirmed_rate=cr)
                           for d, n, rr, cr in daily_rates(outcomes)])
