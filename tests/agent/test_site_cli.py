"""``mspclaw site``: integrations configured on the site agent, secrets left in their own files.

Runs the real command (``python -m mspclaw site ...``) in a temporary state directory."""

from __future__ import annotations

import json
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mspclaw.agent.site.cli import main
from mspclaw.agent.site.config import SITE_FILE, load_site


def site(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mspclaw", "site", *argv], capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "ad.pw"
    path.write_text("Service-Pa55word!\n")
    path.chmod(0o600)
    return path


def test_add_ad_as_documented_writes_a_private_file_without_the_secret(tmp_path: Path, secret_file: Path) -> None:
    state = tmp_path / "state"
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    done = site("add", "ad", "--state-dir", str(state), "--url", "ldaps://127.0.0.1:636", "--base-dn",
                "DC=test,DC=local", "--bind-user", "Administrator@test.local", "--password-file", str(secret_file),
                "--ca-file", str(ca), "--tls-name", "DC1.test.local")
    assert done.returncode == 0, done.stderr
    assert "added ad" in done.stdout and "mspclaw site test" in done.stdout
    path = state / SITE_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(state.stat().st_mode) == 0o700
    text = path.read_text()
    assert "Service-Pa55word" not in text
    section = json.loads(text)["integrations"]["ad"]
    assert section["password_file"] == str(secret_file) and section["tls_name"] == "DC1.test.local"
    config = load_site(state)
    ad = config.get("ad")
    assert ad is not None and ad.kind == "ad" and ad.base_dn == "DC=test,DC=local"
    listed = site("list", "--state-dir", str(state))
    assert listed.returncode == 0 and "ldaps://127.0.0.1:636" in listed.stdout and "Pa55word" not in listed.stdout


def test_a_secret_file_others_can_read_is_refused_with_the_fix(tmp_path: Path, secret_file: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    secret_file.chmod(0o644)
    code = main(["add", "ad", "--state-dir", str(tmp_path / "s"), "--url", "ldaps://dc1:636", "--base-dn",
                 "DC=x,DC=y", "--bind-user", "svc", "--password-file", str(secret_file)])
    assert code == 2
    err = capsys.readouterr().err
    assert "readable by other users" in err and f"chmod 600 {secret_file}" in err
    assert not (tmp_path / "s" / SITE_FILE).exists()


def test_a_plain_url_or_missing_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["add", "ad", "--state-dir", str(tmp_path), "--url", "http://dc1", "--base-dn", "DC=x",
                 "--bind-user", "svc", "--password-file", str(tmp_path / "missing")])
    assert code == 2 and "--url" in capsys.readouterr().err
    code = main(["add", "ad", "--state-dir", str(tmp_path), "--url", "ldaps://dc1:636", "--base-dn", "DC=x,DC=y",
                 "--bind-user", "svc", "--password-file", str(tmp_path / "missing")])
    assert code == 2 and "does not exist" in capsys.readouterr().err


def test_site_test_reports_an_unreachable_directory_and_exits_1(tmp_path: Path, secret_file: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    state = tmp_path / "state"
    assert main(["add", "ad", "--state-dir", str(state), "--url", f"ldaps://127.0.0.1:{port}", "--base-dn",
                 "DC=test,DC=local", "--bind-user", "svc@test.local", "--password-file", str(secret_file)]) == 0
    done = site("test", "--state-dir", str(state))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "ad" in done.stdout and "FAILED" in done.stdout and f"127.0.0.1:{port}" in done.stdout
    assert "Service-Pa55word" not in done.stdout + done.stderr


def test_remove_and_policy(tmp_path: Path, secret_file: Path) -> None:
    state = tmp_path / "state"
    assert main(["add", "cups", "--state-dir", str(state), "--server", "print01:631"]) == 0
    assert main(["policy", "--state-dir", str(state), "--require-second-factor"]) == 0
    assert load_site(state).verification.require_second_factor
    assert main(["remove", "--state-dir", str(state), "cups"]) == 0
    assert load_site(state).integrations == {}
    assert main(["remove", "--state-dir", str(state), "cups"]) == 2
    assert main(["test", "--state-dir", str(state)]) == 2  # nothing to test: says how to add one


def test_help_lists_every_integration() -> None:
    done = site("add", "--help")
    assert done.returncode == 0
    for kind in ("ad", "entra", "jamf", "cups", "openvpn"):
        assert kind in done.stdout


def test_site_run_bare_lists_like_site_list(tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert main(["add", "cups", "--state-dir", str(state), "--server", "print01:631"]) == 0
    listed = site("list", "--state-dir", str(state))
    for bare in (site("--state-dir", str(state)), site("--state-dir", str(state), "list")):
        assert bare.returncode == 0, bare.stderr
        assert bare.stdout == listed.stdout and "cups: server=print01:631" in bare.stdout
    assert "usage" not in site("--state-dir", str(state)).stderr.lower()
