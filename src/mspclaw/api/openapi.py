"""The OpenAPI document at ``/openapi.json``, made true to what the app answers.

FastAPI documents each route's success and a 422 in its own shape; MSPclaw's error handlers
(``api/app.py``) answer every error, 422 included, as :class:`~mspclaw.api.schemas.errors.ErrorOut`.
:func:`document` starts from FastAPI's document and adds what the routes' code decides:

* the bearer scheme, required by every ``/api`` operation (the open routes are ``/healthz``,
  ``/enroll``, ``/webhooks/{psa}``, ``/auth/*``, ``/ui/*`` and the undocumented ``/s/{token}``);
* 401 on every ``/api`` operation, 403 where the route's rule in :mod:`mspclaw.api.rbac` asks more
  than a viewer, 404 where an ``/api`` path names a record, 422 where there is a parameter or a
  body, 400 (not JSON) and 413 (over the size limit, ``api/body_limit.py``) where there is a body;
* the statuses a route's services raise (:data:`RAISES`), kept true by
  ``tests/api/test_api_conformance.py``, which fuzzes every operation and fails on a status or a
  body the document does not describe.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from mspclaw.api.rbac import POLICY
from mspclaw.api.schemas.errors import ErrorOut

SCHEME = "bearer"

DESCRIPTIONS: dict[int, str] = {
    400: "The body is not JSON, or the request cannot be carried out; `detail.message` says why.",
    401: "Missing, wrong, expired or revoked credential.",
    403: "The caller's role or client scope does not allow this.",
    404: "No such record for this caller (another client's records are not found either).",
    409: "The request contradicts stored state or a rule: a name taken, already decided, a bad value.",
    413: "The body is over the route's size limit (enforced while it is read, before authentication).",
    422: "The path, query or body does not match this document; `detail.message` lists the fields.",
    429: "Too many attempts or deliveries from this source; wait and try again.",
    503: "A store the request needs (a directory, the recorded snapshots) cannot be used now; `detail.message` "
         "says which.",
}

RAISES: dict[tuple[str, str], tuple[int, ...]] = {
    # open routes
    ("POST", "/enroll"): (401,),
    ("POST", "/webhooks/{psa}"): (400, 401, 404, 409, 413, 429),
    ("POST", "/auth/login"): (401, 429),
    ("POST", "/auth/refresh"): (401,),
    ("POST", "/auth/link/{token}"): (401,),
    # /api: statuses beyond 401, 403 by rule, 404 by path and 422
    ("POST", "/api/clients"): (409,),
    ("POST", "/api/enrollments"): (404, 409),
    ("GET", "/api/enrollments"): (404,),
    ("POST", "/api/enrollments/{code_id}/revoke"): (409,),
    ("GET", "/api/agents"): (404,),
    ("GET", "/api/agents/lookup"): (404,),
    ("POST", "/api/agents/{agent_id}/revoke"): (409,),
    ("POST", "/api/tickets"): (404, 409),
    ("POST", "/api/approvals/{approval_id}/approve"): (409,),
    ("POST", "/api/approvals/{approval_id}/deny"): (409,),
    ("POST", "/api/questions/{question_id}/answer"): (409,),
    ("POST", "/api/escalations/{escalation_id}/take"): (409,),
    ("POST", "/api/escalations/{escalation_id}/hand-over"): (409,),
    ("POST", "/api/escalations/{escalation_id}/close"): (409,),
    ("POST", "/api/psa/{psa}/tickets/{ticket_id}/run"): (409,),
    ("POST", "/api/jobs/{job_id}/retry"): (409,),
    ("POST", "/api/jobs/{job_id}/cancel"): (409,),
    ("GET", "/api/devices"): (404,),
    ("GET", "/api/stats"): (409,),
    ("POST", "/api/tickets/{ticket_id}/feedback"): (409,),
    ("GET", "/api/audit"): (404, 409),
    ("POST", "/api/keys"): (404, 409),
    ("POST", "/api/keys/{ref}/revoke"): (409,),
    ("POST", "/api/techs"): (409,),
    ("PATCH", "/api/techs/{ref}"): (409,),
    ("DELETE", "/api/techs/{ref}"): (409,),
    ("POST", "/api/psa-accounts"): (409,),
    ("POST", "/api/psa-accounts/{name}/enable"): (409,),
    ("PUT", "/api/playbooks/{book_id}"): (409, 503),
    ("POST", "/api/playbooks/{book_id}/match"): (400,),
    ("POST", "/api/playbooks/{book_id}/dry-run"): (400, 503),
}
"""Statuses a route's services raise that the generic rules do not cover."""

_PAGES = {("GET", "/auth/link/{token}"), ("GET", "/ui/approvals/{approval_id}")}
"""HTML pages that answer 200 whatever the path holds (but a NUL character, refused by ``RefuseNul``)."""


def _statuses(method: str, path: str, operation: dict[str, Any]) -> set[int]:
    found = set(RAISES.get((method, path), ()))
    if "422" in operation["responses"] or "{" in path:  # a NUL in the address is refused with 422 (nul_refusal)
        found.add(422)
    if (method, path) in _PAGES:
        return found
    if "requestBody" in operation:
        found |= {400, 413}
    if path.startswith("/api/"):
        found.add(401)
        if "{" in path:
            found.add(404)
        rule = POLICY.get((method, path))
        if rule is None or rule.role != "viewer" or rule.every_client:
            found.add(403)
    return found


def _error(status: int, described: dict[str, Any] | None) -> dict[str, Any]:
    """The error answer: the route's own description if it gave one, the app's body and headers."""
    own = (described or {}).get("description")
    response: dict[str, Any] = {
        "description": own if own and status != 422 else DESCRIPTIONS[status],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}},
    }
    if status == 401:
        response["headers"] = {"WWW-Authenticate": {"description": "Always `Bearer`.", "required": True,
                                                    "schema": {"type": "string"}}}
    if status == 429:
        response["headers"] = {"Retry-After": {"description": "Seconds to wait (webhook deliveries).",
                                               "schema": {"type": "string"}}}
    return response


def document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document for ``app`` with the security scheme and the real error responses."""
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    error_schema = ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(error_schema.pop("$defs", {}))
    schemas["ErrorOut"] = error_schema
    components["securitySchemes"] = {SCHEME: {
        "type": "http", "scheme": "bearer",
        "description": "The bootstrap `MSPCLAW_API_KEY`, a named API key (`mspclaw keys create`) or a "
                       "technician's access token (`POST /auth/login`)."}}
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            responses: dict[str, Any] = operation["responses"]
            statuses = _statuses(method.upper(), path, operation)
            if 422 not in statuses:
                responses.pop("422", None)
            for status in sorted(statuses):
                responses[str(status)] = _error(status, responses.get(str(status)))
            if path.startswith("/api/"):
                operation["security"] = [{SCHEME: []}]
    if "HTTPValidationError" not in str(doc["paths"]):
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
    return doc


def install(app: FastAPI) -> None:
    """Serve :func:`document` at ``/openapi.json`` and ``/docs`` (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
