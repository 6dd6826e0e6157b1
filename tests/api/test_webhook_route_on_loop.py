"""The webhook route, which every PSA delivery takes, does its work on the event loop: FastAPI runs a plain
function dependency on its thread pool (a thread hop per request), a coroutine dependency in place."""

from __future__ import annotations

import inspect

from fastapi.routing import APIRoute

from mspclaw.api.routes.webhooks import WEBHOOK_PREFIX, open_router


def test_the_webhook_routes_dependencies_are_coroutines() -> None:
    routes = [r for r in open_router.routes if isinstance(r, APIRoute) and r.path.startswith(WEBHOOK_PREFIX)]
    assert routes
    for route in routes:
        assert inspect.iscoroutinefunction(route.endpoint), route.path
        calls = [d.call for d in route.dependant.dependencies]
        assert calls, route.path  # the app's services
        for call in calls:
            assert inspect.iscoroutinefunction(call), (route.path, call)
