"""Every /api route and both sockets refuse a caller without the right credential."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute
from tests.conftest import live_server
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from mspclaw.api.routes import API_ROUTERS

pytestmark = pytest.mark.anyio


async def test_every_api_route_needs_the_key(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live:
        routes = [r for router in API_ROUTERS for r in router.routes if isinstance(r, APIRoute)]
        assert len(routes) >= 12
        async with httpx.AsyncClient(base_url=live.url) as anon:
            for route in routes:
                path = route.path.replace("{", "").replace("}", "")
                assert route.methods, path
                for method in route.methods:
                    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": live.api_key}):
                        r = await anon.request(method, path, headers=headers, json={})
                        assert r.status_code == 401, (method, path, headers, r.status_code)
                        assert r.json()["detail"]["code"] == "unauthorized"
            health = await anon.get("/healthz")
            assert health.status_code == 200 and health.json()["status"] == "ok"
            assert (await anon.get("/docs")).status_code == 200
            assert "/api/tickets" in (await anon.get("/openapi.json")).json()["paths"]
        refused = live.services.audit.query(kind="api_refused")
        assert refused and all(live.api_key not in json.dumps(e.data) for e in refused)


async def test_session_socket_closes_4401_without_credential(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live:
        for headers in ({}, {"Authorization": "Bearer ag_nobody.secret"}):
            async with connect(live.ws_url + "/ws/sessions", additional_headers=headers) as ws:
                with pytest.raises(ConnectionClosed) as info:
                    await ws.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 4401


async def test_agent_channel_refuses_the_upgrade_401_without_credential(tmp_path: Path) -> None:
    """The agent listener authenticates before upgrading: no WebSocket, a 401 with the reason."""
    async with live_server(tmp_path) as live:
        for headers, reason in (({}, b"AGENT_ID.CREDENTIAL"), ({"Authorization": "Bearer ag_nobody.secret"}, b"")):
            with pytest.raises(InvalidStatus) as info:
                await connect(live.agent_url, additional_headers=headers)
            assert info.value.response.status_code == 401 and reason in info.value.response.body
        refused = live.services.audit.query(kind="agent_refused")
        assert refused and all("secret" not in json.dumps(e.data) for e in refused)
