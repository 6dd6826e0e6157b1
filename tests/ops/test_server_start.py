"""``mspclaw server`` started while its database is down: it stays up, says why on ``/readyz``, keeps trying,
and serves once the database answers; its log lines on stderr are JSON with time, level and logger."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.exc import OperationalError
from tests.ops.conftest import PrivateSchema
from tests.ops.tcp_proxy import ProxyThread, free_port

from mspclaw import __version__
from mspclaw.api.server import Launcher, serve
from mspclaw.errors import ConfigError, StoreError
from mspclaw.wiring import Services

pytestmark = pytest.mark.anyio


async def answer(http: httpx.AsyncClient, path: str) -> httpx.Response | None:
    try:
        return await http.get(path)
    except httpx.TransportError:
        return None


async def wait_for(http: httpx.AsyncClient, path: str, status: int, seconds: float = 60) -> httpx.Response:
    deadline = asyncio.get_running_loop().time() + seconds
    last: httpx.Response | None = None
    while asyncio.get_running_loop().time() < deadline:
        last = await answer(http, path)
        if last is not None and last.status_code == status:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"{path} never answered {status}; last: {last and last.text}")


def json_lines(path: Path) -> list[dict[str, Any]]:
    found = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            found.append(json.loads(line))
    return found


@pytest.mark.postgres
async def test_started_without_its_database_it_waits_then_serves(tmp_path: Path, pg_schema: PrivateSchema) -> None:
    proxy = ProxyThread("127.0.0.1", pg_schema.url.port or 5432)  # not listening yet: the database is "down"
    port, key = free_port(), "test_" + secrets.token_urlsafe(12)
    env = {**os.environ, "MSPCLAW_DATA_DIR": str(tmp_path / "data"), "MSPCLAW_API_KEY": key,
           "MSPCLAW_DATABASE_URL": pg_schema.via(proxy.port), "MSPCLAW_PORT": str(port),
           "MSPCLAW_AGENT_PORT": str(free_port()), "MSPCLAW_DATABASE_RETRY_S": "1", "MSPCLAW_LOG_LEVEL": "INFO",
           "MSPCLAW_LOG_FORMAT": "auto"}
    stderr = tmp_path / "server.log"
    with stderr.open("w") as err:
        server = subprocess.Popen([sys.executable, "-m", "mspclaw", "server"], env=env, stdout=err, stderr=err)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10,
                                     headers={"Authorization": f"Bearer {key}"}) as http:
            alive = await wait_for(http, "/healthz", 200)
            assert alive.json()["status"] == "starting" and alive.json()["version"] == __version__
            waiting = await wait_for(http, "/readyz", 503)
            assert waiting.json()["reasons"][0].startswith("database: database unreachable")
            busy = await http.get("/api/clients")
            assert busy.status_code == 503 and busy.json()["detail"]["code"] == "starting"
            await asyncio.sleep(2.5)  # a few attempts
            assert server.poll() is None, "the server must not exit while the database is down"

            proxy.up()
            ready = await wait_for(http, "/readyz", 200)
            assert ready.json()["status"] == "ready"
            assert (await http.get("/healthz")).json()["status"] == "ok"
            assert (await http.post("/api/clients", json={"name": "Acme"})).status_code == 201
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
        proxy.close()

    lines = json_lines(stderr)
    assert lines, stderr.read_text()[-2000:]
    assert all({"ts", "level", "logger", "msg"} <= set(line) for line in lines)
    retries = [line for line in lines if line["logger"] == "mspclaw.api.server" and line["level"] == "WARNING"]
    assert len(retries) >= 2 and all("database unreachable" in str(line["msg"]) for line in retries)
    assert any(line["level"] == "INFO" and "ready" in str(line["msg"]) for line in lines), "INFO lines are kept"
    assert any(line["logger"] == "uvicorn.access" for line in lines), "uvicorn's access lines, as JSON too"
    assert key not in stderr.read_text(), "the API key never reaches the log"


async def test_a_start_up_failure_other_than_the_database_stops_the_server() -> None:
    attempts: list[int] = []

    def build() -> Services:
        attempts.append(1)
        if len(attempts) < 3:
            refused = OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))
            raise StoreError("database migration failed") from refused
        raise ConfigError("techs.yaml: line 3: not a mapping")

    port = free_port()
    launched: list[Launcher] = []
    with pytest.raises(ConfigError, match=r"techs\.yaml"):
        await asyncio.wait_for(serve(build, host="127.0.0.1", port=port, agent_port=0, retry_max_s=0.05,
                                     launched=launched.append), 30)
    assert len(attempts) == 3, "the database was tried again; the other failure ended the start"
    assert launched and not launched[0].ready
