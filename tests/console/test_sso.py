"""Single sign-on to the console through OpenID Connect, against the real server on loopback and a local OpenID
Connect provider (tests/console/oidc_provider.py: a Starlette app on loopback following OpenID Connect Core 1.0,
Discovery 1.0 and PKCE, RFC 7636), driven over plain HTTP as a browser follows redirects.

Entra-like (``preferred_username``, no ``email``; ``client_secret_basic``; a tenant path in the issuer) and
Google-like (``email`` + ``email_verified``; ``client_secret_post``) claims sign a registered technician in; each
relying-party check is made to fail once by the provider (audience, expiry, signature, nonce, issuer), and the
state's single use and its binding to the browser, the allowed domains, an unknown e-mail and a provider that
does not answer are refused with a message saying what to do.
"""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx
import jwt
import pytest
from sqlalchemy import select
from tests.conftest import Live, listening_socket, live_server
from tests.console.oidc_provider import (
    CLIENT_ID,
    CLIENT_SECRET,
    ENTRA_LIKE,
    GOOGLE_LIKE,
    LocalProvider,
    running_provider,
)
from tests.console.signing_in import DANA, EVE, register

from mspclaw.console.oidc import OIDCClient, ProviderUnavailable, TokenRejected
from mspclaw.errors import AuthError, ConfigError, Conflict, TooManyAttempts
from mspclaw.store.database import Database
from mspclaw.store.registry import digest
from mspclaw.store.sso import Pending, Providers, checked, s256
from mspclaw.store.tables import SSOPendingRow, SSOProviderRow
from mspclaw.wiring import secret_box

pytestmark = pytest.mark.anyio
CALLBACK = "/login/sso/callback"


def providers_of(live: Live) -> Providers:
    return Providers(Database(live.services.engine), secret_box(live.services.settings))


def configure(live: Live, provider: LocalProvider, name: str, label: str, domains: list[str]) -> None:
    """As `mspclaw sso add` does; the provider learns the console's redirect URI."""
    providers_of(live).add(checked(name=name, label=label, issuer=provider.issuer, client_id=CLIENT_ID,
                                   client_secret=CLIENT_SECRET, domains=domains))
    provider.redirect_uris.append(live.url + CALLBACK)


def browser(live: Live) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=live.url, timeout=30)


async def to_callback(client: httpx.AsyncClient, name: str) -> str:
    """Press "Sign in with ..." and consent at the provider: the callback URL the provider sends the browser to."""
    start = await client.get(f"/login/sso/{name}")
    assert start.status_code == 303, start.text
    authorize = start.headers["location"]
    assert "code_challenge_method=S256" in authorize and "nonce=" in authorize and "state=" in authorize
    consent = await client.get(authorize)
    assert consent.status_code == 302, consent.text
    callback = consent.headers["location"]
    assert callback.startswith(client.base_url.join(CALLBACK).__str__()), callback
    return callback


async def sso_sign_in(client: httpx.AsyncClient, name: str) -> httpx.Response:
    return await client.get(await to_callback(client, name))


def refused_with(response: httpx.Response, status: int, words: str) -> None:
    assert response.status_code == status, response.text[:500]
    message = re.search(r'class="error"[^>]*>([^<]+)<', response.text)
    assert message, response.text[:1000]
    assert words in message.group(1).replace("&#x27;", "'"), message.group(1)
    assert "mspclaw_console=" not in response.headers.get("set-cookie", "")


async def signed_in_as(client: httpx.AsyncClient, email: str) -> None:
    home = await client.get("/")
    assert home.status_code == 200 and "/login" not in str(home.url), home.text[:300]
    assert email in home.text or "Sign out" in home.text, home.text[:1000]


def audit(live: Live, kind: str) -> list[Any]:
    return live.services.audit.query(kind=kind)


async def test_entra_and_google_sign_in_scoped_to_their_clients(tmp_path: Path) -> None:
    async with (live_server(tmp_path) as live,
                running_provider(ENTRA_LIKE, path="/tenant-1/v2.0") as entra,
                running_provider(GOOGLE_LIKE | {"email": "eve@beta.example", "hd": "beta.example"},
                                 auth_method="client_secret_post") as google):
        register(live, DANA, EVE)
        configure(live, entra, "entra", "Microsoft", ["msp.example"])
        configure(live, google, "google", "Google", ["beta.example"])
        acme = await live.client("Acme Dental")
        await live.client("Beta Law")
        created = await live.http.post("/api/tickets", json={"client": acme, "subject": "printer offline",
                                                             "body": "the printer says offline",
                                                             "requester": "maria@acme.example"})
        assert created.status_code in (200, 201, 202), created.text
        ticket_id = created.json()["ticket_id"]

        # the secret is sealed in the database, never in clear
        with Database(live.services.engine).sessions() as db:
            stored = db.scalars(select(SSOProviderRow.client_secret)).all()
        assert stored and all(CLIENT_SECRET not in s and s.startswith("v1:") for s in stored)

        async with browser(live) as dana, browser(live) as eve:
            page = (await dana.get("/login")).text
            assert 'href="/login/sso/entra"' in page and "Sign in with Microsoft" in page
            assert 'href="/login/sso/google"' in page and "Sign in with Google" in page

            # Entra-like: preferred_username, client_secret_basic, a tenant path in the issuer
            done = await sso_sign_in(dana, "entra")
            assert done.status_code == 303 and done.headers["location"] == "/", done.text
            assert "mspclaw_console=" in done.headers["set-cookie"]
            await signed_in_as(dana, DANA["email"])
            assert (await dana.get(f"/tickets/{ticket_id}")).status_code == 200

            # Google-like: email + email_verified, client_secret_post; Eve serves Beta Law only
            done = await sso_sign_in(eve, "google")
            assert done.status_code == 303, done.text
            await signed_in_as(eve, EVE["email"])
            for path in (f"/tickets/{ticket_id}", f"/tickets/{ticket_id}/events"):
                assert (await eve.get(path)).status_code == 404, path
            assert "printer offline" not in (await eve.get("/")).text

        signed = [(r.actor, r.data) for r in audit(live, "console_signed_in")]
        assert (DANA["email"], {"remote": "127.0.0.1", "method": "oidc", "provider": "entra",
                                "second_factor": "oidc"}) in signed
        assert any(actor == EVE["email"] and data["provider"] == "google" for actor, data in signed)
        assert entra.tokens_issued == 1 and google.tokens_issued == 1
        # no secret of the flow in the audit trail
        everything = str([(r.kind, r.data) for r in live.services.audit.query()])
        assert CLIENT_SECRET not in everything and "code_verifier" not in everything


async def test_each_id_token_check_refuses(tmp_path: Path) -> None:
    """The provider signs tokens that are wrong in one way each; every one is refused, nobody is signed in."""
    async with live_server(tmp_path) as live, running_provider(GOOGLE_LIKE) as google:
        register(live, DANA)
        configure(live, google, "google", "Google", ["msp.example"])
        now = int(time.time())
        cases: list[tuple[dict[str, Any], bool, str]] = [
            ({"aud": "another-app"}, False, "issued to another application"),
            ({"exp": now - 3600, "iat": now - 3900}, False, "expired"),
            ({}, True, "signature does not verify"),
            ({"nonce": "not-the-nonce-we-sent"}, False, "nonce"),
            ({"iss": "https://evil.example"}, False, "another issuer"),
            ({"iat": now - 3600}, False, "issued more than 10 minutes ago"),
            ({"iat": now + 3600}, False, "dated in the future"),
            ({"email_verified": False}, False, "not verified this account's e-mail"),
            ({"aud": [CLIENT_ID, "other"], "azp": "other"}, False, "several audiences"),
        ]
        for tamper, other_key, words in cases:
            google.tamper, google.other_key = tamper, other_key
            async with browser(live) as client:
                refused_with(await sso_sign_in(client, "google"), 401, words)
                assert (await client.get("/", follow_redirects=False)).status_code == 303
        assert audit(live, "console_signed_in") == []
        assert len(audit(live, "console_signin_refused")) == len(cases)

        # the same provider, nothing tampered: signed in
        google.tamper, google.other_key = {}, False
        async with browser(live) as client:
            assert (await sso_sign_in(client, "google")).status_code == 303
            await signed_in_as(client, DANA["email"])


async def test_state_single_use_browser_bound_domains_and_unknown_technicians(tmp_path: Path) -> None:
    async with live_server(tmp_path) as live, running_provider(GOOGLE_LIKE) as google:
        register(live, DANA, EVE)
        configure(live, google, "google", "Google", ["msp.example"])
        async with browser(live) as dana, browser(live) as attacker:
            # a callback followed in another browser (no binding cookie): refused, and spends nothing
            callback = await to_callback(dana, "google")
            refused_with(await attacker.get(callback), 401, "started in another browser")
            # the browser that started it: signed in; the same callback again: refused (single use)
            assert (await dana.get(callback)).status_code == 303
            refused_with(await dana.get(callback), 401, "finished already")
            refused_with(await attacker.get(callback), 401, "finished already")

        # a state the console never issued
        async with browser(live) as client:
            await client.get("/login")
            refused_with(await client.get(CALLBACK, params={"state": "x" * 40, "code": "abc"}), 401, "unknown")
            refused_with(await client.get(CALLBACK), 401, "no sign-in state")

        # an address of a domain this provider may not sign in (Eve is registered, beta.example is not allowed)
        google.user = GOOGLE_LIKE | {"email": "eve@beta.example"}
        async with browser(live) as client:
            refused_with(await sso_sign_in(client, "google"), 401, "is not in a domain Google may sign in")

        # an allowed domain, but no such technician: refused, never created
        google.user = GOOGLE_LIKE | {"email": "mallory@msp.example"}
        async with browser(live) as client:
            refused_with(await sso_sign_in(client, "google"), 401, "not a registered technician")
        assert live.services.staff.techs.find("mallory@msp.example") is None
        refusals = audit(live, "console_signin_refused")
        assert any(r.actor == "mallory@msp.example" and r.data["method"] == "oidc" for r in refusals)

        # the user declines at the provider
        google.user, google.deny = GOOGLE_LIKE, True
        async with browser(live) as client:
            start = await client.get("/login/sso/google")
            consent = await client.get(start.headers["location"])
            refused_with(await client.get(consent.headers["location"]), 401, "access_denied")

        # an expired pending sign-in
        google.deny = False
        async with browser(live) as client:
            callback = await to_callback(client, "google")
            with Database(live.services.engine).sessions.begin() as db:
                for row in db.scalars(select(SSOPendingRow).where(SSOPendingRow.used_at.is_(None))):
                    row.expires_at = row.expires_at.replace(year=2000)
            refused_with(await client.get(callback), 401, "took longer than 10 minutes")

        async with browser(live) as client:
            assert (await client.get("/login/sso/nope")).status_code == 404


async def test_provider_down_says_so(tmp_path: Path) -> None:
    """A provider that does not answer within MSPCLAW_SSO_TIMEOUT_S, and one whose port is closed."""
    closed = listening_socket()
    closed_port = closed.getsockname()[1]
    closed.close()
    async with (live_server(tmp_path, sso_timeout_s=1.0) as live,
                running_provider(GOOGLE_LIKE, hang_s=3.0) as slow):
        register(live, DANA)
        configure(live, slow, "slow", "Slow IdP", ["msp.example"])
        providers_of(live).add(checked(name="gone", label="Gone IdP", issuer=f"http://127.0.0.1:{closed_port}",
                                       client_id=CLIENT_ID, client_secret=CLIENT_SECRET, domains=["msp.example"]))
        async with browser(live) as client:
            started = time.monotonic()
            r = await client.get("/login/sso/slow")
            assert time.monotonic() - started < 2.9
            refused_with(r, 502, "Slow IdP did not answer in time")
            assert 'href="/login/sso/slow"' in r.text  # the sign-in page again, buttons and password form
            refused_with(await client.get("/login/sso/gone"), 502, "Gone IdP cannot be reached")
        with Database(live.services.engine).sessions() as db:
            assert db.scalars(select(SSOPendingRow)).all() == []  # nothing started


def test_configuration_is_checked() -> None:
    good: dict[str, Any] = {"name": "entra", "label": "Microsoft", "client_id": "abc", "client_secret": "s",
                            "issuer": "https://login.microsoftonline.com/3f1c/v2.0", "domains": ["MSP.example"]}
    provider = checked(**good)
    assert provider.domains == ("msp.example",) and provider.allows("Dana@MSP.example")
    assert not provider.allows("dana@sub.msp.example") and not provider.allows("dana@msp.example.evil")
    changes: list[tuple[dict[str, Any], str]] = [
        ({"name": "callback"}, "not 'callback'"), ({"name": "Bad Name!"}, "lower-case"),
        ({"issuer": "http://idp.example"}, "https URL"),
        ({"issuer": "https://login.microsoftonline.com/common/v2.0"}, "name your Entra ID tenant"),
        ({"issuer": "https://idp.example/?x=1"}, "without query"),
        ({"domains": []}, "give 1-50"), ({"domains": ["not a domain"]}, "a domain name"),
        ({"client_secret": ""}, "client secret"), ({"client_id": "x" * 300}, "client id")]
    for change, words in changes:
        with pytest.raises(ConfigError, match=re.escape(words)):
            checked(**(good | change))
    assert "client_secret" not in repr(provider) and "'s'" not in repr(provider)


def test_providers_store(tmp_path: Path) -> None:
    from mspclaw.settings import Settings
    from mspclaw.wiring import open_store

    settings = Settings(data_dir=tmp_path / "data")
    db, log = open_store(settings)
    try:
        providers = Providers(db, secret_box(settings))
        provider = checked(name="google", label="Google", issuer="https://accounts.google.com", client_id="id",
                           client_secret="the-secret", domains=["msp.example"])
        providers.add(provider)
        with pytest.raises(Conflict):
            providers.add(provider)
        assert providers.get("google") == provider and providers.buttons() == [("google", "Google")]
        assert providers.reencrypt() == 1 and providers.get("google").client_secret == "the-secret"
        providers.remove("google")
        assert providers.list() == []

        # pending sign-ins: bounded, bound to the browser, spent once
        pending = Pending(db, secret_box(settings), max_pending=2)
        first = pending.begin("google", "browser-cookie-1")
        pending.begin("google", "browser-cookie-1")
        with pytest.raises(TooManyAttempts, match="too many single sign-ons"):
            pending.begin("google", "browser-cookie-2")
        with pytest.raises(AuthError, match="another browser"):
            pending.spend(first.state, "browser-cookie-2")
        spent = pending.spend(first.state, "browser-cookie-1")
        assert s256(spent.verifier) == first.challenge and spent.provider == "google"
        with pytest.raises(AuthError, match="finished already"):
            pending.spend(first.state, "browser-cookie-1")
    finally:
        log.close()
        db.dispose()


async def test_relying_party_keys_algorithms_and_discovery(tmp_path: Path) -> None:
    """The relying party alone (mspclaw.console.oidc) against the local provider: a rotated signing key is fetched
    again (at most once a minute), an HMAC token keyed by the client secret and an unsigned one are refused,
    and a discovery document naming another issuer is refused."""
    async with running_provider(GOOGLE_LIKE) as idp:
        idp.redirect_uris.append("http://127.0.0.1:1/cb")
        now = [time.time()]
        provider = checked(name="google", label="Google", issuer=idp.issuer, client_id=CLIENT_ID,
                           client_secret=CLIENT_SECRET, domains=["msp.example"])
        client = OIDCClient(provider, timeout_s=5, clock=lambda: now[0])

        def sign_in() -> str:
            """Authorize (automatic consent), exchange the code, verify the token: the e-mail."""
            nonce, verifier = "n-" + str(time.monotonic_ns()), "v" * 50
            url = client.authorization_url(redirect_uri="http://127.0.0.1:1/cb", state="s", nonce=nonce,
                                           challenge=s256(verifier))
            location = httpx.get(url).headers["location"]
            code = parse_qs(urlsplit(location).query)["code"][0]
            token = client.exchange(code, redirect_uri="http://127.0.0.1:1/cb", verifier=verifier)
            return client.verify(token, nonce_hash=digest(nonce)).email

        try:
            assert await anyio.to_thread.run_sync(sign_in) == "dana@msp.example"
            idp.rotate()
            with pytest.raises(TokenRejected, match="key the provider does not publish"):
                await anyio.to_thread.run_sync(sign_in)  # the key set was fetched less than a minute ago
            now[0] += 61
            assert await anyio.to_thread.run_sync(sign_in) == "dana@msp.example"

            claims = {"iss": idp.issuer, "aud": CLIENT_ID, "sub": "x", "iat": int(time.time()),
                      "exp": int(time.time()) + 300, "nonce": "n", "email": "dana@msp.example"}
            forged = jwt.encode(claims, CLIENT_SECRET, algorithm="HS256", headers={"kid": idp.kid})
            with pytest.raises(TokenRejected, match="signed with HS256"):
                client.verify(forged, nonce_hash=digest("n"))
            unsigned = ".".join(base64.urlsafe_b64encode(json.dumps(part).encode()).decode().rstrip("=")
                                for part in ({"alg": "none", "typ": "JWT"}, claims)) + "."
            with pytest.raises(TokenRejected, match="signed with none"):
                client.verify(unsigned, nonce_hash=digest("n"))
        finally:
            client.close()

        idp.advertised_issuer = "https://login.evil.example"
        other = OIDCClient(provider, timeout_s=5)
        try:
            with pytest.raises(ProviderUnavailable, match="names another issuer"):
                await anyio.to_thread.run_sync(other.discovery)
        finally:
            other.close()
