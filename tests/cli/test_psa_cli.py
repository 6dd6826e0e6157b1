"""``mspclaw psa add|list|register-webhook`` for every PSA and the accounts built into their connectors;
secrets never printed nor audited. The commands run in-process through Typer's runner (the same code
as the ``mspclaw`` process, without a Python start-up per call; ``test_cli.py`` runs real processes)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.connectors.autotask_server import run_autotask
from tests.connectors.connectwise_server import run_connectwise
from typer.testing import CliRunner

from mspclaw.cli.app import app
from mspclaw.connectors.autotask import AutotaskConnector
from mspclaw.connectors.connectwise import ConnectWiseConnector
from mspclaw.connectors.freshdesk import FreshdeskConnector
from mspclaw.connectors.halo import HaloConnector
from mspclaw.errors import MSPClawError
from mspclaw.settings import Settings
from mspclaw.wiring import build

pytestmark = pytest.mark.anyio


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def mspclaw(*args: str, env: dict[str, str] | None = None) -> Result:
    """Run one command in-process; errors are printed and exit 1 as ``mspclaw.cli.app.run`` does."""
    result = CliRunner().invoke(app, list(args), env=env, catch_exceptions=True)
    if isinstance(result.exception, MSPClawError):
        return Result(1, result.stdout, f"error: {result.exception.message}")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Result(result.exit_code, result.stdout, result.stderr)

ACCOUNTS = {
    "connectwise": (["--site", "api-na.myconnectwise.net", "--company", "acmemsp", "--public-key", "pubKEY123",
                     "--private-key", "priv_secret_cw_1", "--client-id", "0b3a7c1e-6a0e-4f5a-9d44-1f1d2c3b4a5e"],
                    ConnectWiseConnector, "priv_secret_cw_1"),
    "halo": (["--host", "acme.halopsa.com", "--tenant", "acme", "--client-id", "halo-app",
              "--client-secret", "halo_secret_2"], HaloConnector, "halo_secret_2"),
    "autotask": (["--username", "api@acme.example", "--integration-code", "TRACKINGCODE", "--secret",
                  "at_secret_3"], AutotaskConnector, "at_secret_3"),
    "freshdesk": (["--domain", "acme", "--webhook-secret", "fd_hook_secret_4"], FreshdeskConnector,
                  "fd_hook_secret_4"),
}


def test_every_psa_is_added_listed_without_secrets_and_built_into_its_connector(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    env = {"MSPCLAW_PSA_TOKEN": "fd_api_key_from_env_5"}
    for kind, (args, _, _) in ACCOUNTS.items():
        added = mspclaw("--data-dir", data, "psa", "add", kind, *args, env=env)
        assert added.returncode == 0, added.stderr
    listed = mspclaw("--data-dir", data, "psa", "list", "--json")
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["connectwise"]["config"]["site"] == "api-na.myconnectwise.net"
    assert rows["halo"]["config"]["tenant"] == "acme"
    everything = listed.stdout + "".join(p.read_text() for p in (tmp_path / "data" / "audit").glob("*.jsonl"))
    for _, _, hidden in ACCOUNTS.values():
        assert hidden not in everything
    assert "fd_api_key_from_env_5" not in everything and "pubKEY123" not in everything
    services = build(Settings(data_dir=tmp_path / "data", api_key="k"))
    try:
        for kind, (_, cls, _) in ACCOUNTS.items():
            assert isinstance(services.intake.connector(kind), cls)
    finally:
        services.close()


@pytest.mark.parametrize(("kind", "args", "words"), [
    ("connectwise", ["--site", "h"], "--company, --public-key, --client-id"),
    ("halo", ["--host", "h"], "--client-id"),
    ("autotask", [], "--username, --integration-code"),
    ("freshdesk", [], "--domain"),
    ("zendesk", [], "unknown PSA kind 'zendesk'"),
])
def test_a_psa_added_without_what_it_needs_says_what_is_missing(tmp_path: Path, kind: str, args: list[str],
                                                                 words: str) -> None:
    result = mspclaw("--data-dir", str(tmp_path / "data"), "psa", "add", kind, *args,
                     env={"MSPCLAW_PSA_TOKEN": "x"})
    assert result.returncode == 1 and words in result.stderr


async def test_register_webhook_subscribes_through_the_psa_api(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    async with run_connectwise() as cw, run_autotask() as at:
        added = await asyncio.to_thread(
            mspclaw, "--data-dir", data, "psa", "add", "connectwise", "--site", cw.url, "--company", cw.company,
            "--public-key", cw.public_key, "--private-key", cw.private_key, "--client-id", cw.client_id)
        assert added.returncode == 0, added.stderr
        added = await asyncio.to_thread(
            mspclaw, "--data-dir", data, "psa", "add", "autotask", "--username", at.username,
            "--integration-code", at.integration_code, "--secret", at.secret, "--zone-url", f"{at.url}/atservicesrest/")
        assert added.returncode == 0, added.stderr
        url = "https://msp.example:8700/webhooks/connectwise"
        result = await asyncio.to_thread(mspclaw, "--data-dir", data, "psa", "register-webhook", "connectwise",
                                         "--url", url)
        assert result.returncode == 0, result.stderr
        assert "created" in result.stdout and cw.callbacks[0]["url"] == url
        result = await asyncio.to_thread(mspclaw, "--data-dir", data, "psa", "register-webhook", "autotask",
                                         "--url", "https://msp.example:8700/webhooks/autotask")
        assert result.returncode == 0, result.stderr
        (hook,) = at.webhooks
        assert len(hook["SecretKey"]) >= 32  # generated at `psa add`, handed to Autotask, never printed
        assert hook["SecretKey"] not in result.stdout
        assert cw.violations == [] and at.violations == []
    bad = await asyncio.to_thread(mspclaw, "--data-dir", data, "psa", "register-webhook", "connectwise", "--url",
                                  "https://msp.example/webhooks/other")
    assert bad.returncode == 1 and "/webhooks/connectwise" in bad.stderr


def test_register_webhook_for_freshdesk_says_how_to_do_it_by_hand(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    assert mspclaw("--data-dir", data, "psa", "add", "freshdesk", "--domain", "acme", "--api-key", "k").returncode == 0
    result = mspclaw("--data-dir", data, "psa", "register-webhook", "freshdesk", "--url",
                     "https://msp.example/webhooks/freshdesk")
    assert result.returncode == 1 and "docs/psa/freshdesk.md" in result.stderr
