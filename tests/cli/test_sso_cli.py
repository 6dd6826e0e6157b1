"""``mspclaw sso add|list|remove`` offline on a data directory; ``add`` checks the issuer's discovery document
against the local OpenID Connect provider on loopback (tests/console/oidc_provider.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
from tests.console.oidc_provider import CLIENT_SECRET, GOOGLE_LIKE, running_provider
from typer.testing import CliRunner

from mspclaw.cli.app import app
from mspclaw.errors import MSPClawError
from mspclaw.settings import Settings
from mspclaw.wiring import open_store

pytestmark = pytest.mark.anyio


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MSPCLAW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("MSPCLAW_DATABASE_URL", raising=False)
    return tmp_path / "data"


@dataclass(frozen=True)
class Run:
    exit_code: int
    output: str
    """Standard output, then the error ``mspclaw`` prints (as ``mspclaw.cli.app.run`` does)."""


async def run(*args: str, stdin: str = "") -> Run:
    result = await anyio.to_thread.run_sync(lambda: CliRunner().invoke(app, list(args), input=stdin))
    if isinstance(result.exception, MSPClawError):
        return Run(1, f"{result.stdout}error: {result.exception.message}")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Run(result.exit_code, result.stdout)


async def test_add_list_remove(data_dir: Path) -> None:
    async with running_provider(GOOGLE_LIKE) as idp:
        added = await run("sso", "add", "google", "--issuer", idp.issuer, "--client-id", "app-1", "--domain",
                          "msp.example", "--label", "Google", "--client-secret-stdin", stdin=CLIENT_SECRET + "\n")
        assert added.exit_code == 0, added.output
        assert f"{idp.issuer}/token" in added.output and "/login/sso/callback" in added.output
        again = await run("sso", "add", "google", "--issuer", idp.issuer, "--client-id", "app-1", "--domain",
                          "msp.example", "--client-secret-stdin", stdin="x\n")
        assert again.exit_code != 0 and "exists" in again.output

    # the provider is gone now: the check says so, and nothing is stored
    down = await run("sso", "add", "other", "--issuer", idp.issuer, "--client-id", "app-1", "--domain",
                     "msp.example", "--client-secret-stdin", stdin="x\n")
    assert down.exit_code != 0 and "cannot be reached" in down.output and "--no-check" in down.output
    bad = await run("sso", "add", "Bad Name", "--issuer", "https://idp.example", "--client-id", "a", "--domain",
                    "msp.example", "--client-secret-stdin", stdin="x\n")
    assert bad.exit_code != 0 and "lower-case" in bad.output

    listed = await run("sso", "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output) == [{"name": "google", "label": "Google", "issuer": idp.issuer,
                                          "client_id": "app-1", "domains": ["msp.example"]}]
    assert CLIENT_SECRET not in (await run("sso")).output
    removed = await run("sso", "remove", "google")
    assert removed.exit_code == 0, removed.output
    assert "no single sign-on provider" in (await run("sso", "list")).output
    assert (await run("sso", "remove", "google")).exit_code != 0

    db, audit = open_store(Settings(data_dir=data_dir))
    try:
        kinds = [e.kind for e in audit.query() if e.kind.startswith("sso_")]
        assert kinds == ["sso_provider_added", "sso_provider_removed"]
        assert CLIENT_SECRET not in str([e.data for e in audit.query()])
    finally:
        audit.close()
        db.dispose()
