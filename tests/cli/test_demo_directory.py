"""``mspclaw demo``'s account tickets: a lockout and a password reset resolved by a site agent against a
throwaway Samba AD DC the demo starts itself, proven by signing in, or one plain line saying why not.

Both run the demo as a user does (``mspclaw demo --once``, a real process)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from tests.cli.test_cli import mspclaw

from mspclaw.cli.demo_directory import LOCK_FILE, SAMBA, SAMBA_ENV

SUMMARY = re.compile(r"demo: (\d+) tickets, (\d+) resolved, (\d+) escalated")
SKIPPED = "skipped the lockout and password-reset tickets: "
HINT = "; install Samba (`make demo` does it as root with apt) to see them"


def _lock_holders() -> set[int]:
    """Processes holding the machine's Samba DC lock (flock), from /proc/locks."""
    try:
        inode = LOCK_FILE.stat().st_ino
    except FileNotFoundError:
        return set()
    holders = set()
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "->" in fields or len(fields) < 6 or fields[1] != "FLOCK":
            continue  # "->" marks a process waiting for the lock, not holding it
        if fields[5].rsplit(":", 1)[-1] == str(inode):
            holders.add(int(fields[4]))
    return holders


def _outcome(stdout: str, subject: str) -> str:
    """The outcome row of the results table titled ``subject``."""
    title = re.search(rf"^PSA #\d+: {re.escape(subject)}", stdout, re.M)
    assert title, stdout
    block = stdout[title.end():].split("\nPSA #", 1)[0]
    match = re.search(r"│ outcome\s+│ (\w+)", block)
    assert match, block
    return match.group(1)


@pytest.mark.own_samba_dc
@pytest.mark.timeout(420)
def test_demo_resolves_a_lockout_and_a_password_reset_against_a_real_directory() -> None:
    if not SAMBA.exists():
        pytest.skip(f"Samba is not installed ({SAMBA} missing): `make demo` or `make services` installs it")
    if os.geteuid() != 0:
        pytest.skip("the demo's Samba AD DC needs root")
    if os.getpid() in _lock_holders():
        pytest.skip("this test session already runs the Samba DC (tests/site/samba.py) on the fixed ports the demo's "
                    "DC needs; run tests/cli/test_demo_directory.py in a session of its own")
    result = mspclaw("demo", "--once", timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    if SKIPPED in out and "another run" in out:
        pytest.skip(out.split(SKIPPED, 1)[1].splitlines()[0])
    assert SKIPPED not in out, out
    assert _outcome(out, "Locked out of my account") == "resolved", out
    assert _outcome(out, "Forgot my password / password expired") == "resolved", out
    assert "unlock_account: approved by Dana Whitfield (demo technician)" in out
    assert "reset_password: approved by Dana Whitfield (demo technician)" in out
    assert "proof: sam.novak@acme-dental.example signs in again with their own password" in out
    assert "opens the view-once link from the reply" in out and "(pressed again: HTTP 410)" in out
    assert ("temporary password: delivered by view-once link, works, must be changed at first sign-in "
            "(AD data code 773); the old password no longer works") in out
    assert "FAILED" not in out
    assert "/s/" not in out and 'class="secret"' not in out, "neither the link nor the password is printed"
    summary = SUMMARY.fullmatch(out.strip().splitlines()[-1])
    assert summary, out
    total, resolved, escalated = map(int, summary.groups())
    assert total == 8 and resolved + escalated == total and resolved >= 2


def test_demo_says_plainly_why_it_skipped_the_account_tickets(tmp_path: Path) -> None:
    missing = tmp_path / "no-samba" / "samba"
    result = mspclaw("demo", "--once", env={SAMBA_ENV: str(missing)}, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert f"{SKIPPED}Samba is not installed ({missing} is missing){HINT}" in lines, result.stdout
    assert "Locked out of my account" not in result.stdout
    match = SUMMARY.fullmatch(lines[-1].strip())
    assert match and int(match.group(1)) == 6
