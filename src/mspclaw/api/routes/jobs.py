"""``/api/jobs`` and ``/api/psa/{psa}/tickets/{id}/run``: the durable intake queue, and running a PSA ticket by hand."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from mspclaw.api.auth import CallerDep, ServicesDep, require_caller
from mspclaw.api.schemas.jobs import JobOut

api = APIRouter(prefix="/api", dependencies=[Depends(require_caller)])


@api.post("/psa/{psa}/tickets/{ticket_id}/run", response_model=JobOut, status_code=202, tags=["jobs"])
def run_ticket(psa: str, ticket_id: str, svc: ServicesDep, caller: CallerDep) -> JobOut:
    """Process one PSA ticket by hand (again, if it was processed or failed before)."""
    svc.intake.connector(psa)
    job, created = svc.intake.enqueue(psa, ticket_id, source=f"manual:{caller.name}")
    if not created and job.status in ("done", "dead", "cancelled"):
        job = svc.jobs.retry(job.id)
    return JobOut.model_validate(job, from_attributes=True)


@api.get("/jobs", response_model=list[JobOut], tags=["jobs"])
def list_jobs(svc: ServicesDep, status: str | None = None,
              limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[JobOut]:
    return [JobOut.model_validate(j, from_attributes=True) for j in svc.jobs.list(status=status, limit=limit)]


@api.get("/jobs/{job_id}", response_model=JobOut, tags=["jobs"])
def show_job(job_id: str, svc: ServicesDep) -> JobOut:
    return JobOut.model_validate(svc.jobs.get(job_id), from_attributes=True)


@api.post("/jobs/{job_id}/retry", response_model=JobOut, tags=["jobs"])
def retry_job(job_id: str, svc: ServicesDep, caller: CallerDep) -> JobOut:
    job = svc.jobs.retry(job_id)
    svc.audit.append("job_retried", actor=caller.name, data={"job_id": job_id})
    return JobOut.model_validate(job, from_attributes=True)


@api.post("/jobs/{job_id}/cancel", response_model=JobOut, tags=["jobs"])
def cancel_job(job_id: str, svc: ServicesDep, caller: CallerDep) -> JobOut:
    job = svc.jobs.cancel(job_id)
    svc.audit.append("job_cancelled", actor=caller.name, data={"job_id": job_id})
    return JobOut.model_validate(job, from_attributes=True)
