"""The server image built from ``deploy/Containerfile.server`` and run the way an MSP runs it.

Built by ``deploy/build.sh`` on a Debian base made with ``debootstrap`` (no image can be pulled here;
see ``podman.py``), started with its API key as a secret file and PostgreSQL, then used: an agent
enrolls, a ticket is resolved through it with a technician's approval, and the container stops
cleanly. Also: two replicas starting together on one database, and a container started without its
secret. Select with ``-m containers``; without podman, runc or debootstrap the tests skip and say why.

The containers use ``--network host``: with ``--network none`` a container cannot reach the host's
PostgreSQL on 127.0.0.1:5432, nor an agent on the host the server.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from tests.deploy.podman import LIMITS, base_image, build, podman, unavailable
from tests.deploy.postgres import postgres_url

from mspclaw.store.db import make_engine

pytestmark = [pytest.mark.containers, pytest.mark.postgres, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
DISK = {"subject": "disk almost full", "body": "I cannot save files, it says the disk is full",
        "requester": "maria@acme.example"}


@pytest.fixture(scope="module")
def server_image() -> str:
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    base_image()
    return build("server", REPO, sys.executable)


@pytest.fixture(scope="module")
def site_agent_image(server_image: str) -> str:
    return build("site-agent", REPO, sys.executable)


@pytest.fixture
def database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for the server, dropped afterwards."""
    name = f"deploy_{secrets.token_hex(5)}"
    admin = make_engine(postgres_url()).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(postgres_url()).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """One server container on the host network, its API key mounted as a secret file."""

    def __init__(self, image: str, database_url: str, secret: Path, name: str) -> None:
        self.name = name
        self.port, self.agent_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # as deploy/compose.yaml runs it: read-only root, no capabilities, no privilege gain
        podman("run", "--detach", "--name", name, "--network", "host", *LIMITS, "--read-only", "--tmpfs", "/tmp",
               "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
               "--volume", f"{secret}:/run/secrets/api_key:ro",
               "--env", "MSPCLAW_API_KEY_FILE=/run/secrets/api_key",
               "--env", f"MSPCLAW_DATABASE_URL={database_url}",
               "--env", "MSPCLAW_HOST=127.0.0.1", "--env", f"MSPCLAW_PORT={self.port}",
               "--env", f"MSPCLAW_AGENT_PORT={self.agent_port}", "--env", f"MSPCLAW_SERVER_URL={self.url}",
               image)

    def wait_healthy(self, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            # the image's own HEALTHCHECK, run on demand (no systemd timers here)
            if podman("healthcheck", "run", self.name, check=False).returncode == 0:
                return
            state = podman("inspect", "--format", "{{.State.Status}}", self.name).stdout.strip()
            assert state == "running", f"{self.name} is {state}:\n{self.logs()}"
            time.sleep(0.5)
        raise AssertionError(f"{self.name} never became healthy:\n{self.logs()}")

    def logs(self) -> str:
        done = podman("logs", self.name, check=False)
        return (done.stdout + done.stderr)[-4000:]

    def stop(self) -> int:
        podman("stop", "--time", "20", self.name, timeout=60)
        return int(podman("inspect", "--format", "{{.State.ExitCode}}", self.name).stdout.strip())

    def remove(self) -> None:
        podman("rm", "--force", "--volumes", self.name, check=False)


@pytest.fixture
def secret(tmp_path: Path) -> tuple[Path, str]:
    key = "msp_" + secrets.token_urlsafe(24)
    path = tmp_path / "api_key"
    path.write_text(key + "\n")
    path.chmod(0o644)  # readable by the container's own user (uid 10001)
    return path, key


def make_old_files(root: Path, count: int) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    old = time.time() - 30 * 86400
    paths = []
    for i in range(count):
        path = root / f"old-{i}.tmp"
        path.write_bytes(os.urandom(4096))
        os.utime(path, (old, old))
        paths.append(path)
    return paths


def wait_for(http: httpx.Client, path: str, done: Callable[[Any], bool], seconds: float = 60) -> Any:
    """Poll ``GET path`` until ``done(body)``; return that body."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        body = http.get(path).json()
        if done(body):
            return body
        time.sleep(0.2)
    raise AssertionError(f"{path}: not done within {seconds} s; last answer {body!r}")


def test_the_server_image_enrolls_an_agent_and_resolves_a_ticket(
        server_image: str, database: str, secret: tuple[Path, str], tmp_path: Path) -> None:
    server = Server(server_image, database, secret[0], f"mspclaw-test-{secrets.token_hex(4)}")
    agent: subprocess.Popen[bytes] | None = None
    try:
        server.wait_healthy()
        user = podman("exec", server.name, "id", "-u").stdout.strip()
        assert user == "10001", "the server runs as its own non-root user"
        tools = podman("exec", server.name, "sh", "-c",
                       "ls /opt/mspclaw/bin; command -v gcc cc make pip pip3 || true").stdout.split()
        assert not {"pip", "pip3", "gcc", "cc", "make"} & {Path(t).name for t in tools}, tools

        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {secret[1]}"},
                          timeout=30) as http:
            assert http.get("/api/clients").status_code == 200, "the API key came from the secret file"
            client = http.post("/api/clients", json={"name": "Acme Dental"}).json()["id"]
            # the CLI inside the container, through the launcher so it reads the same secret file
            listed = podman("exec", server.name, "mspclaw-entrypoint", "clients", "list", "--json").stdout
            assert [c["name"] for c in json.loads(listed)] == ["Acme Dental"]
            code = http.post("/api/enrollments", json={"client": client}).json()["code"]
            temp = tmp_path / "temp"
            old = make_old_files(temp, 4)
            agent = subprocess.Popen([sys.executable, "-m", "mspclaw", "agent", "--server", server.url,
                                      "--enroll", code, "--state-dir", str(tmp_path / "agent"),
                                      "--temp-root", str(temp), "--log-level", "warning"])
            wait_for(http, "/api/agents", lambda body: any(a.get("online") for a in body), 30)
            created = http.post("/api/tickets", json={"client": client, **DISK}).json()
            approvals = wait_for(http, "/api/approvals", lambda body: len(body) > 0)
            assert approvals[0]["tool"] == "clear_temp_files" and all(p.exists() for p in old)
            r = http.post(f"/api/approvals/{approvals[0]['id']}/approve", json={"approver": "Dana"})
            assert r.status_code == 200, r.text
            ticket = wait_for(http, f"/api/tickets/{created['ticket_id']}",
                              lambda body: body["status"] in ("resolved", "escalated"))
            assert ticket["status"] == "resolved", ticket.get("reason")
            assert not any(p.exists() for p in old), "the agent deleted the old files after the approval"
        assert server.stop() == 0, f"the server did not stop cleanly:\n{server.logs()}"
    finally:
        if agent is not None:
            agent.terminate()
            agent.wait(15)
        server.remove()


def test_replicas_starting_together_share_one_migrated_database(
        server_image: str, database: str, secret: tuple[Path, str]) -> None:
    replicas = [Server(server_image, database, secret[0], f"mspclaw-test-{secrets.token_hex(4)}")
                for _ in range(3)]
    try:
        for replica in replicas:
            replica.wait_healthy()
        engine = make_engine(database)
        try:
            with engine.connect() as conn:
                assert len(conn.execute(text("SELECT version_num FROM alembic_version")).all()) == 1
        finally:
            engine.dispose()
        with httpx.Client(headers={"Authorization": f"Bearer {secret[1]}"}, timeout=30) as http:
            made = http.post(f"{replicas[0].url}/api/clients", json={"name": "Acme Dental"})
            assert made.status_code == 201, made.text
            seen = http.get(f"{replicas[2].url}/api/clients").json()
            assert [c["name"] for c in seen] == ["Acme Dental"], "the replicas share one database"
    finally:
        for replica in replicas:
            replica.remove()


def test_a_container_started_without_its_secret_stops_and_says_which(server_image: str) -> None:
    done = podman("run", "--rm", "--network", "none", *LIMITS, "--env",
                  "MSPCLAW_API_KEY_FILE=/run/secrets/api_key", server_image, check=False, timeout=60)
    assert done.returncode == 78, done.stderr
    assert "MSPCLAW_API_KEY_FILE names /run/secrets/api_key, which is missing or unreadable" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_site_agent_image_enrolls_once_and_reconnects_after_a_restart(
        server_image: str, site_agent_image: str, database: str, secret: tuple[Path, str], tmp_path: Path) -> None:
    server = Server(server_image, database, secret[0], f"mspclaw-test-{secrets.token_hex(4)}")
    volume = f"mspclaw-test-agent-{secrets.token_hex(4)}"
    agent_name = f"mspclaw-test-site-{secrets.token_hex(4)}"

    def start_agent(*extra: str) -> None:
        podman("run", "--detach", "--name", agent_name, "--network", "host", *LIMITS, "--read-only",
               "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
               "--volume", f"{volume}:/var/lib/mspclaw-agent", "--env", f"MSPCLAW_AGENT_SERVER={server.url}",
               *extra, site_agent_image)

    try:
        server.wait_healthy()
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {secret[1]}"},
                          timeout=30) as http:
            client = http.post("/api/clients", json={"name": "Acme Dental"}).json()["id"]
            code_file = tmp_path / "enroll_code"
            code_file.write_text(http.post("/api/enrollments", json={"client": client, "role": "site"}).json()["code"])
            code_file.chmod(0o644)
            start_agent("--volume", f"{code_file}:/run/secrets/enroll_code:ro",
                        "--env", "MSPCLAW_AGENT_ENROLL_CODE_FILE=/run/secrets/enroll_code")
            agents = wait_for(http, "/api/agents", lambda body: any(a["online"] for a in body), 60)
            assert [(a["role"], a["online"]) for a in agents] == [("site", True)]
            assert podman("healthcheck", "run", agent_name, check=False).returncode == 0, "enrolled: healthy"
            assert podman("exec", agent_name, "id", "-u").stdout.strip() == "10002"
            podman("stop", "--time", "20", agent_name, timeout=60)
            assert podman("inspect", "--format", "{{.State.ExitCode}}", agent_name).stdout.strip() == "0"
            wait_for(http, "/api/agents", lambda body: not any(a["online"] for a in body), 30)
            podman("rm", "--volumes", agent_name)
            start_agent()  # no code the second time: the credential is in the volume
            again = wait_for(http, "/api/agents", lambda body: any(a["online"] for a in body), 60)
            assert [a["id"] for a in again] == [a["id"] for a in agents], "the same agent, not a new enrollment"
    finally:
        podman("rm", "--force", "--volumes", agent_name, check=False)
        podman("volume", "rm", "--force", volume, check=False)
        server.remove()


def test_a_site_agent_without_an_enrollment_code_says_what_it_needs(site_agent_image: str) -> None:
    done = podman("run", "--rm", "--network", "none", *LIMITS, "--env", "MSPCLAW_AGENT_SERVER=http://127.0.0.1:9",
                  site_agent_image, check=False, timeout=60)
    assert done.returncode == 78, done.stderr
    assert "not enrolled yet" in done.stderr and "MSPCLAW_AGENT_ENROLL_CODE_FILE" in done.stderr
