"""Signing technicians in to the console over plain HTTP, as a browser's forms would."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
from tests.conftest import Live
from tests.roster import put_roster

from mspclaw.console import totp

PASSWORD = "correct horse battery staple"
DANA: dict[str, Any] = {"name": "Dana Scully", "email": "dana@msp.example", "role": "tech", "clients": ["Acme Dental"]}
EVE: dict[str, Any] = {"name": "Eve Other", "email": "eve@beta.example", "role": "tech", "clients": ["Beta Law"]}
VIC: dict[str, Any] = {"name": "Vic Viewer", "email": "vic@msp.example", "role": "viewer", "clients": ["Acme Dental"]}


USED: dict[str, str] = {}
"""The code each enrolment was confirmed with, by secret."""


def register(live: Live, *techs: dict[str, Any]) -> None:
    """Make the roster these technicians and give each :data:`PASSWORD` (as `mspclaw tech import` and `mspclaw tech
    passwd`)."""
    put_roster(live.services, {"techs": list(techs)})
    for tech in techs:
        live.services.staff.logins.set_password(tech["email"], PASSWORD)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, f"no CSRF field in {html[:500]!r}"
    return found.group(1)


def secret_of(html: str) -> str:
    found = re.search(r'<code id="secret">([^<]+)</code>', html)
    assert found, html[:500]
    return found.group(1).replace(" ", "")


async def password_step(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    page = await client.get("/login")
    return await client.post("/login", data={"csrf": csrf_of(page.text), "email": email, "password": password})


async def enrol(client: httpx.AsyncClient, email: str) -> tuple[str, list[str]]:
    """Password, then the enrolment page and its first code: the TOTP secret and the recovery codes.
    The code used is kept in :data:`USED` (by secret)."""
    r = await password_step(client, email)
    assert r.status_code == 303 and r.headers["location"] == "/login/enrol", r.text
    page = await client.get("/login/enrol")
    secret = secret_of(page.text)
    USED[secret] = totp.code_at(secret, time.time())
    done = await client.post("/login/enrol", data={"csrf": csrf_of(page.text), "code": USED[secret]})
    assert done.status_code == 200, done.text
    codes = re.findall(r"<li><code>([0-9a-f]{5}-[0-9a-f]{5})</code></li>", done.text)
    assert len(codes) == 10
    return secret, codes


def next_code(secret: str, ahead: int = 1) -> str:
    """The code of the time step ``ahead`` steps from now (within the accepted window of one): codes are
    accepted once, and only for a step later than the last one used, so a second sign-in uses a later one."""
    return totp.code_at(secret, time.time() + ahead * totp.STEP_S)


async def second_step(client: httpx.AsyncClient, code: str) -> httpx.Response:
    page = await client.get("/login/code")
    assert page.status_code == 200, page.text
    return await client.post("/login/code", data={"csrf": csrf_of(page.text), "code": code})


async def signed_in(live: Live, email: str, secret: str | None = None,
                    ahead: int = 1) -> tuple[httpx.AsyncClient, str]:
    """A client signed in as ``email`` (enrolled first unless ``secret`` is given); and the secret."""
    client = httpx.AsyncClient(base_url=live.url, timeout=30)
    if secret is None:
        secret, _ = await enrol(client, email)
        return client, secret
    r = await password_step(client, email)
    assert r.headers["location"] == "/login/code", r.text
    r = await second_step(client, next_code(secret, ahead))
    assert r.status_code == 303, r.text
    return client, secret
