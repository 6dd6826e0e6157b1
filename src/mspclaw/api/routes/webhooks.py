"""``POST /webhooks/{psa}``: a PSA's ticket events, verified by their signature (no bearer)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from mspclaw.api.auth import ServicesDep

open_router = APIRouter()

WEBHOOK_PREFIX = "/webhooks/"
MAX_WEBHOOK_BYTES = 1024 * 1024
"""Enforced while the body is read, before the signature is checked (:mod:`mspclaw.api.body_limit`)."""


@open_router.post(WEBHOOK_PREFIX + "{psa}", status_code=202, tags=["webhooks"],
                  responses={401: {"description": "bad or missing signature"}, 404: {"description": "unknown PSA"},
                             409: {"description": "the PSA account is disabled"},
                             413: {"description": f"body over {MAX_WEBHOOK_BYTES} bytes"},
                             429: {"description": "too many deliveries from this address; see Retry-After"}})
async def webhook(psa: str, request: Request, svc: ServicesDep) -> dict[str, object]:
    """Verify a PSA's webhook, enqueue the ticket once, and answer at once (the work runs in a worker)."""
    body = await request.body()  # at most MAX_WEBHOOK_BYTES: the app's BodyLimit answered 413 to more
    remote = request.client.host if request.client else "unknown"
    job, created = await svc.intake.accept_webhook(psa, request.headers, body, remote=remote)
    return {"job_id": job.id, "duplicate": not created}
