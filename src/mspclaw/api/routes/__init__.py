"""The HTTP routes, one module per domain. :mod:`mspclaw.api.app` includes :data:`ROUTERS`.

Each module has at most two routers: ``api`` for ``/api/...`` (every route authenticated by
:func:`~mspclaw.api.auth.require_caller`, its role rule in :mod:`mspclaw.api.rbac`, its queries scoped to
the caller's clients) and ``open_router`` for what needs no bearer (enrollment, PSA webhooks, logins,
the pages behind links). The bodies are in :mod:`mspclaw.api.schemas`, one module per domain.
"""

from __future__ import annotations

from fastapi import APIRouter

from mspclaw.api.routes import (
    agents,
    approvals,
    audit,
    auth,
    clients,
    devices,
    enrollment,
    escalations,
    feedback,
    handover,
    integrations,
    jobs,
    keys,
    playbooks,
    psa_accounts,
    questions,
    stats,
    techs,
    tickets,
    webhooks,
)

OPEN_ROUTERS: tuple[APIRouter, ...] = (
    enrollment.open_router,
    webhooks.open_router,
    auth.open_router,
    approvals.open_router,
    handover.open_router,
    integrations.open_router,
)
"""Routes that need no bearer: each proves its caller another way (a code, a signature, a password, a link)."""

API_ROUTERS: tuple[APIRouter, ...] = (
    clients.api,
    enrollment.api,
    agents.api,
    tickets.api,
    feedback.api,
    approvals.api,
    questions.api,
    jobs.api,
    auth.api,
    devices.api,
    stats.api,
    escalations.api,
    audit.api,
    keys.api,
    techs.api,
    psa_accounts.api,
    playbooks.api,
)
"""The ``/api`` routes: every one needs a bearer credential and passes its role rule."""

ROUTERS: tuple[APIRouter, ...] = (*OPEN_ROUTERS, *API_ROUTERS)
