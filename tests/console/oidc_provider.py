"""A local OpenID Connect provider for the single sign-on tests: a Starlette app served by uvicorn on loopback.

It follows OpenID Connect Core 1.0 (the authorization code flow, section 3.1), Discovery 1.0 and PKCE
(RFC 7636) as the console's relying party needs them, and checks what a real provider checks:

* ``GET <issuer>/.well-known/openid-configuration``: the discovery document;
* ``GET <issuer>/authorize``: ``response_type=code``, a known ``client_id``, a registered ``redirect_uri``, the
  ``openid`` scope, ``state``, ``nonce`` and an ``S256`` ``code_challenge``; consent is automatic for
  :attr:`LocalProvider.user` (``deny=True``: the user refuses, ``error=access_denied``);
* ``POST <issuer>/token``: ``grant_type=authorization_code``, the client authenticated (``client_secret_basic``,
  or ``client_secret_post`` when :attr:`LocalProvider.auth_method` says so), the code spent once, the same
  ``redirect_uri``, ``S256(code_verifier)`` equal to the challenge; answers an RS256-signed ID token;
* ``GET <issuer>/jwks``: the public key (``kid``, ``use: sig``).

:attr:`LocalProvider.tamper` changes the ID token's claims (``aud``, ``iss``, ``exp``, ``nonce``...) and
``other_key`` signs it with a key the JWKS does not hold, so each relying-party check can be made to fail;
``hang_s`` makes every answer wait that long (a provider that does not answer).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode

import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from tests.conftest import listening_socket

CLIENT_ID = "mspclaw-console"
CLIENT_SECRET = "s3cret-of-the-app-registration-0123456789"
ENTRA_LIKE = {"name": "Dana Scully", "preferred_username": "dana@msp.example", "oid": "0b8e-dana",
              "tid": "tenant-1"}
"""An Entra ID v2 ID token's user claims: no ``email`` unless configured, the UPN in ``preferred_username``."""
GOOGLE_LIKE = {"name": "Dana Scully", "email": "dana@msp.example", "email_verified": True, "hd": "msp.example"}
"""A Google ID token's user claims: ``email`` with ``email_verified``, ``hd`` the Workspace domain."""


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).decode("ascii").rstrip("=")


def _error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


@dataclass
class LocalProvider:
    issuer: str
    user: dict[str, Any]
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    redirect_uris: list[str] = field(default_factory=list)
    auth_method: str = "client_secret_basic"
    tamper: dict[str, Any] = field(default_factory=dict)
    """Claims set (or, with the value ``None``, removed) in the next ID tokens."""
    other_key: bool = False
    deny: bool = False
    hang_s: float = 0.0
    advertised_issuer: str | None = None
    """The ``issuer`` the discovery document names, when not :attr:`issuer` (a misconfigured provider)."""
    kid: str = "key-1"
    key: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(public_exponent=65537,
                                                                                     key_size=2048))
    stranger: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(public_exponent=65537,
                                                                                          key_size=2048))
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens_issued: int = 0

    def rotate(self) -> None:
        """A new signing key under a new ``kid``; the JWKS publishes only the new one."""
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = f"key-{secrets.token_hex(4)}"

    # -- endpoints ---------------------------------------------------------------------------------
    async def discovery(self, request: Request) -> Response:
        await self._hang()
        return JSONResponse({
            "issuer": self.advertised_issuer or self.issuer, "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token", "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"], "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"], "scopes_supported": ["openid", "email", "profile"],
            "token_endpoint_auth_methods_supported": [self.auth_method],
            "code_challenge_methods_supported": ["S256"], "claims_supported": ["sub", "email", "name"]})

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        if q.get("client_id") != self.client_id:
            return _error(400, "invalid_client", "unknown client_id")
        redirect_uri = q.get("redirect_uri", "")
        if redirect_uri not in self.redirect_uris:
            return _error(400, "invalid_request", f"redirect_uri {redirect_uri} is not registered")
        state = q.get("state", "")
        if q.get("response_type") != "code" or "openid" not in q.get("scope", "").split():
            return RedirectResponse(f"{redirect_uri}?{urlencode({'error': 'invalid_request', 'state': state})}", 302)
        if not state or not q.get("nonce") or q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return RedirectResponse(f"{redirect_uri}?{urlencode({'error': 'invalid_request', 'state': state})}", 302)
        if self.deny:
            refusal = urlencode({"error": "access_denied", "error_description": "the user declined", "state": state})
            return RedirectResponse(f"{redirect_uri}?{refusal}", 302)
        code = secrets.token_urlsafe(24)
        self.codes[code] = {"redirect_uri": redirect_uri, "challenge": q["code_challenge"], "nonce": q["nonce"],
                            "user": dict(self.user), "used": False}
        return RedirectResponse(f"{redirect_uri}?{urlencode({'code': code, 'state': state})}", 302)

    def _client_ok(self, request: Request, form: dict[str, str]) -> bool:
        header = request.headers.get("authorization", "")
        if self.auth_method == "client_secret_basic":
            if not header.startswith("Basic "):
                return False
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            return unquote(user) == self.client_id and unquote(password) == self.client_secret
        return (not header and form.get("client_id") == self.client_id
                and form.get("client_secret") == self.client_secret)

    async def token(self, request: Request) -> Response:
        await self._hang()
        if request.headers.get("content-type", "").split(";")[0] != "application/x-www-form-urlencoded":
            return _error(400, "invalid_request", "the token request is form-urlencoded (RFC 6749 section 4.1.3)")
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        if not self._client_ok(request, form):
            return _error(401, "invalid_client", "client authentication failed")
        if form.get("grant_type") != "authorization_code":
            return _error(400, "unsupported_grant_type", "only authorization_code")
        grant = self.codes.get(form.get("code", ""))
        if grant is None or grant["used"]:
            return _error(400, "invalid_grant", "unknown or used code")
        grant["used"] = True
        if form.get("redirect_uri") != grant["redirect_uri"]:
            return _error(400, "invalid_grant", "redirect_uri differs from the authorization request")
        if _s256(form.get("code_verifier", "")) != grant["challenge"]:
            return _error(400, "invalid_grant", "PKCE verification failed")
        now = int(time.time())
        claims: dict[str, Any] = {"iss": self.issuer, "sub": f"sub-{grant['user'].get('name', 'x')}",
                                  "aud": self.client_id, "exp": now + 300, "iat": now, "auth_time": now,
                                  "nonce": grant["nonce"], **grant["user"]}
        for name, value in self.tamper.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        signer = self.stranger if self.other_key else self.key
        id_token = jwt.encode(claims, signer, algorithm="RS256", headers={"kid": self.kid})
        self.tokens_issued += 1
        return JSONResponse({"access_token": secrets.token_urlsafe(16), "token_type": "Bearer", "expires_in": 300,
                             "id_token": id_token}, headers={"Cache-Control": "no-store"})

    async def jwks(self, request: Request) -> Response:
        await self._hang()
        public = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return JSONResponse({"keys": [public | {"kid": self.kid, "use": "sig", "alg": "RS256"}]})

    async def _hang(self) -> None:
        if self.hang_s:
            await asyncio.sleep(self.hang_s)

    def app(self, prefix: str) -> Starlette:
        return Starlette(routes=[
            Route(f"{prefix}/.well-known/openid-configuration", self.discovery),
            Route(f"{prefix}/authorize", self.authorize),
            Route(f"{prefix}/token", self.token, methods=["POST"]),
            Route(f"{prefix}/jwks", self.jwks),
        ])


@contextlib.asynccontextmanager
async def running_provider(user: dict[str, Any], *, path: str = "", host: str = "127.0.0.1",
                           **options: Any) -> AsyncIterator[LocalProvider]:
    """A :class:`LocalProvider` served on a free loopback port; its issuer is ``http://<host>:<port><path>``
    (``host="localhost"``: another site than the console at 127.0.0.1, for a browser)."""
    sock = listening_socket()
    port = int(sock.getsockname()[1])
    provider = LocalProvider(issuer=f"http://{host}:{port}{path}", user=user, **options)
    server = uvicorn.Server(uvicorn.Config(provider.app(path), log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            assert not task.done(), "the local OpenID provider failed to start"
            await asyncio.sleep(0.02)
        yield provider
    finally:
        server.should_exit = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(task, 10)
        sock.close()
