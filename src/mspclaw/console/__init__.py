"""The technicians' console: server-rendered pages at ``/`` with their assets in the package (no CDN).

:func:`install` mounts the pages and ``/static/console/`` on the API's app; the console signs
technicians in with a password or a one-time link and a TOTP second factor
(:mod:`mspclaw.console.signin`), and reads and decides through the same services as the API.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from mspclaw.console import admin, builder, escalations, psa_accounts, records, routes, signin_routes, sso
from mspclaw.console.http import install_refusals
from mspclaw.console.signin import ConsoleSignIn
from mspclaw.store.console_logins import ConsoleSessions, SecondFactors
from mspclaw.wiring import Services, secret_box

STATIC_DIR = Path(__file__).with_name("static")


def install(app: FastAPI) -> None:
    """Serve the console on ``app`` (whose ``state.services`` is set)."""
    services: Services = app.state.services
    db = services.db
    access = services.staff.access
    app.state.console = ConsoleSignIn(access=access, sessions=ConsoleSessions(db),
                                      factors=SecondFactors(db, secret_box(services.settings)),
                                      audit=services.audit,
                                      csrf_key=services.settings.load_jwt_secret().encode())
    install_refusals(app)
    app.mount("/static/console", StaticFiles(directory=STATIC_DIR), name="console-static")
    for module in (signin_routes, sso, routes, escalations, records, admin, psa_accounts, builder):
        app.include_router(module.router)
