"""Signing in to the console against the real server on loopback: password, TOTP enrolment with a QR code and
recovery codes, the second factor, one-time links, sign-out, expiry, cookies and CSRF."""

from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update
from tests.conftest import live_server
from tests.console.signing_in import (
    DANA,
    USED,
    csrf_of,
    enrol,
    next_code,
    password_step,
    register,
    second_step,
    signed_in,
)

from mspclaw.console import totp
from mspclaw.store.database import Database
from mspclaw.store.tables import AuthToken, TechSecondFactor, utcnow

pytestmark = pytest.mark.anyio


def test_codes_are_rfc_6238_codes() -> None:
    """RFC 6238's SHA-1 test vectors (its 8-digit values, of which a 6-digit code is the last six)."""
    secret = base64.b32encode(b"12345678901234567890").decode()
    for now, eight in [(59, "94287082"), (1111111109, "07081804"), (1234567890, "89005924"),
                       (2000000000, "69279037")]:
        assert totp.code_at(secret, now) == eight[-6:]
    assert totp.matching_step(secret, "287082", 59 + 30) == 1  # the step before is still accepted
    assert totp.matching_step(secret, "287082", 59 + 61) is None
    assert totp.matching_step(secret, "28708", 59) is None
    assert totp.provisioning_uri(secret, account="dana@msp.example").startswith(
        "otpauth://totp/MSPclaw:dana@msp.example?secret=")


async def test_password_then_enrolment_then_code(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live:
        register(live, DANA)
        await live.client("Acme Dental")
        async with httpx.AsyncClient(base_url=live.url) as anon:
            assert (await anon.get("/")).headers["location"] == "/login"
            assert (await anon.get("/tickets/tk_x")).headers["location"] == "/login"
            refused = await password_step(anon, DANA["email"], "not the password")
            assert refused.status_code == 401 and "wrong e-mail or password" in refused.text
            assert "mspclaw_console_2fa" not in refused.headers.get("set-cookie", "")
            # a code page without a password step first goes back to the password
            assert (await anon.get("/login/code")).headers["location"] == "/login"

        first = httpx.AsyncClient(base_url=live.url)
        first.cookies.set("mspclaw_console", "planted-by-an-attacker")  # session fixation attempt
        r = await password_step(first, DANA["email"])
        assert r.status_code == 303 and r.headers["location"] == "/login/enrol"
        enrol_page = await first.get("/login/enrol")
        assert "<svg" in enrol_page.text and "segno" in enrol_page.text  # the QR code, inline, no image URL
        wrong = await first.post("/login/enrol", data={"csrf": csrf_of(enrol_page.text), "code": "000000"})
        assert wrong.status_code == 401 and "wrong" in wrong.text
        assert not live.services.staff.logins.has_password("nobody@x.example")
        await first.aclose()

        client = httpx.AsyncClient(base_url=live.url)
        secret, codes = await enrol(client, DANA["email"])
        cookie = next(h for h in client.cookies.jar if h.name == "mspclaw_console")
        assert cookie.value != "planted-by-an-attacker"
        async with httpx.AsyncClient(base_url=live.url) as fresh:
            raw = (await password_step(fresh, DANA["email"])).headers.get_list("set-cookie")
        assert raw and all("HttpOnly" in h and "SameSite=lax" in h and "Secure" not in h for h in raw)
        home = await client.get("/")
        assert home.status_code == 200 and "Dana Scully" in home.text and 'id="waiting"' in home.text
        # stored: the secret sealed, the recovery codes hashed
        with Database(live.services.engine).sessions() as db:  # the row as stored
            row = db.get(TechSecondFactor, DANA["email"])
            assert row is not None and secret not in row.secret and row.secret.startswith("v1:")
            assert all(c.replace("-", "") not in str(row.recovery_hashes) for c in codes)

        # a second sign-in asks for the code: the enrolment's code (same step) is not accepted twice
        again = httpx.AsyncClient(base_url=live.url)
        r = await password_step(again, DANA["email"])
        assert r.headers["location"] == "/login/code"
        reused = await second_step(again, USED[secret])
        assert reused.status_code == 401
        ok = await second_step(again, next_code(secret))
        assert ok.status_code == 303 and ok.headers["location"] == "/"
        assert (await again.get("/")).status_code == 200

        # a recovery code signs in once
        rec = httpx.AsyncClient(base_url=live.url)
        await password_step(rec, DANA["email"])
        assert (await second_step(rec, codes[0])).status_code == 303
        rec2 = httpx.AsyncClient(base_url=live.url)
        await password_step(rec2, DANA["email"])
        assert (await second_step(rec2, codes[0])).status_code == 401

        # sign-out: refused without the CSRF token; then the old cookie is worth nothing
        stolen = client.cookies.get("mspclaw_console")
        assert (await client.post("/logout", data={})).status_code == 403
        assert (await client.get("/")).status_code == 200
        out = await client.post("/logout", data={"csrf": csrf_of(home.text)})
        assert out.status_code == 303 and out.headers["location"] == "/login"
        replay = httpx.AsyncClient(base_url=live.url, cookies={"mspclaw_console": stolen or ""})
        assert (await replay.get("/")).headers["location"] == "/login"

        # expiry: a session past its end is signed out
        assert (await again.get("/")).status_code == 200
        with Database(live.services.engine).sessions.begin() as db:
            db.execute(update(AuthToken).where(AuthToken.kind == "console")
                       .values(expires_at=utcnow() - timedelta(seconds=1)))
        assert (await again.get("/")).headers["location"] == "/login"
        for c in (client, again, rec, rec2, replay):
            await c.aclose()


async def test_five_wrong_codes_end_the_sign_in(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live:
        register(live, DANA)
        client, _ = await signed_in(live, DANA["email"])
        await client.aclose()
        async with httpx.AsyncClient(base_url=live.url) as c:
            await password_step(c, DANA["email"])
            for _ in range(4):
                assert (await second_step(c, "000001")).status_code == 401
            page = await c.get("/login/code")
            last = await c.post("/login/code", data={"csrf": csrf_of(page.text), "code": "000001"})
            assert last.status_code == 401 and "sign in again" in last.text
            assert (await c.get("/login/code")).headers["location"] == "/login"


async def test_one_time_link_lands_in_the_console_once(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live:
        register(live, DANA)
        made = await live.http.post(f"/api/techs/{DANA['email']}/login-link")
        assert made.status_code == 201, made.text
        path = httpx.URL(made.json()["url"]).path
        token = path.rsplit("/", 1)[1]
        async with httpx.AsyncClient(base_url=live.url) as browser:
            page = await browser.get(path)  # a mail scanner's GET spends nothing
            assert page.status_code == 200 and 'action="/login/link"' in page.text
            assert "access_token" not in page.text
            bare = await browser.post("/login/link", data={"token": token})  # not from the link's page
            assert bare.status_code == 403 and "mspclaw_console_2fa" not in bare.headers.get("set-cookie", "")
            landed = await browser.post("/login/link", data={"token": token, "csrf": csrf_of(page.text)})
            assert landed.status_code == 303 and landed.headers["location"] == "/login/enrol"
            assert (await browser.get("/login/enrol")).status_code == 200
        async with httpx.AsyncClient(base_url=live.url) as replayer:
            again = await replayer.get(path)
            replayed = await replayer.post("/login/link", data={"token": token, "csrf": csrf_of(again.text)})
            assert replayed.status_code == 401 and "already used" in replayed.text
            assert "mspclaw_console_2fa" not in replayed.headers.get("set-cookie", "")
        async with httpx.AsyncClient(base_url=live.url) as forged:
            r = await forged.post("/login/link", data={"token": token}, headers={"Origin": "https://evil.example"})
            assert r.status_code == 403


async def test_forms_without_their_csrf_token_are_refused(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live:
        register(live, DANA)
        async with httpx.AsyncClient(base_url=live.url) as c:
            await c.get("/login")
            r = await c.post("/login", data={"email": DANA["email"], "password": "x" * 12})
            assert r.status_code == 403 and "sign-in form expired" in r.text
            r = await c.post("/login", data={"csrf": "forged", "email": DANA["email"], "password": "x" * 12})
            assert r.status_code == 403
            # a right token, sent from another site's page, is refused too
            page = await c.get("/login")
            r = await c.post("/login", data={"csrf": csrf_of(page.text), "email": DANA["email"], "password": "x"},
                             headers={"Origin": "https://evil.example"})
            assert r.status_code == 403
            await password_step(c, DANA["email"])
            r = await c.post("/login/enrol", data={"code": "123456"})
            assert r.status_code == 403


async def test_console_assets_and_docs_work_offline(tmp_path: Path) -> None:
    """Every page and asset comes from this server: no URL of another host in any of them."""
    static = Path(__file__).parents[2] / "src/mspclaw/console/static"
    async with live_server(tmp_path) as live:
        register(live, DANA)
        client, _ = await signed_in(live, DANA["email"])
        pages = [await client.get(p) for p in ("/", "/docs")]
        async with httpx.AsyncClient(base_url=live.url) as anon:
            pages.append(await anon.get("/login"))
            assert (await client.get("/login")).headers["location"] == "/"  # signed in already
        assets = [await client.get(f"/static/console/{f.name}") for f in sorted(static.iterdir())]
        assert all(r.status_code == 200 for r in pages + assets)
        for r in pages + assets:
            text = r.text.replace('xmlns="http://www.w3.org/2000/svg"', "")  # a namespace name, never fetched
            assert "http://" not in text and "https://" not in text and "//cdn" not in text, r.url
        assert pages[0].headers["content-security-policy"].startswith("default-src 'self'")
        docs = pages[1]
        assert 'data-src="/openapi.json"' in docs.text and "swagger" not in docs.text.lower()
        assert (await client.get("/openapi.json")).json()["paths"]
        assert (await client.get("/redoc")).status_code == 404
        await client.aclose()


def test_the_wheel_carries_the_console_assets() -> None:
    """pyproject.toml's package data names every file of console/static (what a wheel then holds)."""
    import fnmatch
    import tomllib

    root = Path(__file__).parents[2]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["mspclaw"]
    static = root / "src/mspclaw/console/static"
    files = [p.relative_to(root / "src/mspclaw").as_posix() for p in static.rglob("*") if p.is_file()]
    assert files
    for name in files:
        assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns), name
