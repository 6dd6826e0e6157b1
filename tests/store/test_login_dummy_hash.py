"""The Argon2 hash an unknown e-mail's password is checked against is made at the first password check, not
when ``mspclaw.store.logins`` is imported (every server process and CLI command imports it), once however many
threads check at the same time; and a wrong e-mail still takes as long as a wrong password."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mspclaw.errors import AuthError
from mspclaw.store.database import Database
from mspclaw.store.db import sqlite_url
from mspclaw.store.logins import Logins

# A fresh process (this one imported the module long ago) that counts argon2's hash calls.
PROBE = """
import json, sys, threading
from pathlib import Path
import argon2

hashed = []
real_hash = argon2.PasswordHasher.hash
def counting_hash(self, password, *args, **kwargs):
    hashed.append(password)
    return real_hash(self, password, *args, **kwargs)
argon2.PasswordHasher.hash = counting_hash

from mspclaw.errors import AuthError
from mspclaw.store.database import Database
from mspclaw.store.db import sqlite_url
from mspclaw.store.logins import Logins

seen = {"import": len(hashed)}
db = Database.open(sqlite_url(Path(sys.argv[1])))
try:
    logins = Logins(db)
    logins.set_password("dana@msp.example", "correct horse battery")
    seen["set_password"] = len(hashed)
    if sys.argv[2] == "known":
        logins.check_password("dana@msp.example", "correct horse battery")
        seen["first check"] = len(hashed)
    refused = []
    def unknown():
        try:
            logins.check_password("nobody@msp.example", "correct horse battery")
        except AuthError:
            refused.append(1)
    threads = [threading.Thread(target=unknown) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seen["unknown checks"] = len(hashed)
    seen["refused"] = len(refused)
finally:
    db.dispose()
print(json.dumps(seen))
"""


def _probe(tmp_path: Path, first: str) -> dict[str, int]:
    done = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path), first], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    seen: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
    return seen


def test_importing_makes_no_hash_and_concurrent_unknown_emails_share_one(tmp_path: Path) -> None:
    seen = _probe(tmp_path, "unknown")
    assert seen == {"import": 0, "set_password": 1, "unknown checks": 2, "refused": 6}, seen


def test_the_first_check_of_a_known_email_makes_it_too(tmp_path: Path) -> None:
    """Otherwise a process's first sign-in would be slower for an e-mail nobody has."""
    seen = _probe(tmp_path, "known")
    assert seen == {"import": 0, "set_password": 1, "first check": 2, "unknown checks": 2, "refused": 6}, seen


@pytest.fixture
def logins(tmp_path: Path) -> Iterator[Logins]:
    db = Database.open(sqlite_url(tmp_path))
    yield Logins(db)
    db.dispose()


def test_an_unknown_email_takes_as_long_as_a_wrong_password(logins: Logins) -> None:
    logins.set_password("dana@msp.example", "correct horse battery")

    def took(email: str) -> float:
        started = time.perf_counter()
        with pytest.raises(AuthError, match="wrong e-mail or password"):
            logins.check_password(email, "a wrong password, long enough")
        return time.perf_counter() - started

    took("nobody@msp.example")
    # the fastest of a few (the machine is shared): a verify of a 64 MiB Argon2id hash either way
    known = min(took("dana@msp.example") for _ in range(3))
    unknown = min(took("nobody@msp.example") for _ in range(3))
    assert unknown > 0.5 * known, (unknown, known)
