"""``deploy/compose.yaml`` holds together: every secret the server reads is declared and mounted, the
database password is one secret shared by PostgreSQL and the server, the server waits for a healthy
database and runs hardened, it shares its agents through the stack's own Redis, and the image it names is
the one ``deploy/build.sh`` tags.

No compose tool runs here (``podman compose`` needs a provider this machine lacks); the server image
itself is started with PostgreSQL by ``test_containers.py``.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "deploy" / "compose.yaml"


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def test_every_secret_file_variable_names_a_mounted_secret() -> None:
    spec = compose()
    declared = spec["secrets"]
    for name, service in spec["services"].items():
        mounted = set(service.get("secrets", []))
        assert mounted <= set(declared), f"{name} mounts an undeclared secret"
        for key, value in service.get("environment", {}).items():
            if key.endswith("_FILE"):
                secret = value.removeprefix("/run/secrets/")
                assert value.startswith("/run/secrets/") and secret in mounted, f"{name}: {key}"
    assert all(s["file"].startswith("./secrets/") for s in declared.values())
    entrypoint = (REPO / "deploy" / "entrypoint.sh").read_text()
    server_env = spec["services"]["server"]["environment"]
    for key in server_env:
        if key.endswith("_FILE"):
            assert key.startswith("MSPCLAW_") or key == "PGPASSWORD_FILE"
    assert "PGPASSWORD_FILE" in entrypoint and "MSPCLAW_[A-Z0-9_]*_FILE" in entrypoint


def test_the_database_password_is_one_secret_and_never_in_the_url() -> None:
    services = compose()["services"]
    assert services["db"]["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/db_password"
    assert services["server"]["environment"]["PGPASSWORD_FILE"] == "/run/secrets/db_password"
    url = services["server"]["environment"]["MSPCLAW_DATABASE_URL"]
    assert re.fullmatch(r"postgresql\+psycopg://mspclaw@db:5432/mspclaw", url), "no password in the URL"


def test_the_server_waits_for_the_database_and_runs_hardened() -> None:
    services = compose()["services"]
    server = services["server"]
    assert server["depends_on"]["db"]["condition"] == "service_healthy" and "healthcheck" in services["db"]
    assert server["read_only"] is True and server["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in server["security_opt"]
    assert server["volumes"] == ["mspclaw-data:/var/lib/mspclaw"]


def test_the_server_shares_its_agents_through_the_composed_redis() -> None:
    services = compose()["services"]
    server, redis = services["server"], services["redis"]
    assert "profiles" not in redis, "Redis starts with the stack"
    assert server["environment"]["MSPCLAW_REDIS_URL"] == "redis://redis:6379/0"
    assert server["depends_on"]["redis"]["condition"] == "service_healthy" and "healthcheck" in redis
    assert "ports" not in redis, "Redis stays on the compose network"


def test_the_image_is_the_one_build_sh_tags() -> None:
    version = re.search(r'^version = "(.+)"$', (REPO / "pyproject.toml").read_text(), re.M)
    assert version is not None
    image = compose()["services"]["server"]["image"]
    assert image == f"${{MSPCLAW_SERVER_IMAGE:-mspclaw-server:{version.group(1)}}}"
    build = (REPO / "deploy" / "build.sh").read_text()
    assert 'tag=${TAG:-mspclaw-$image:$version}' in build
    subprocess.run(["sh", "-n", str(REPO / "deploy" / "build.sh")], check=True, timeout=30)
    subprocess.run(["sh", "-n", str(REPO / "deploy" / "entrypoint.sh")], check=True, timeout=30)
