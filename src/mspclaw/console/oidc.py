"""An OpenID Connect relying party for the console's single sign-on: discovery, the authorization request,
the code exchange and the ID token's verification (OpenID Connect Core 1.0, Discovery 1.0; PKCE, RFC 7636).

* **Discovery**: ``<issuer>/.well-known/openid-configuration``; its ``issuer`` must be exactly the configured
  one (Discovery 1.0 section 4.3), and its endpoints https (http only on loopback, for tests).
* **Authorization**: the code flow with ``state``, ``nonce`` and a PKCE ``S256`` challenge.
* **Token**: the code and its verifier exchanged at the token endpoint, the client authenticated with
  ``client_secret_basic`` (``client_secret_post`` when that is the only one the provider lists).
* **ID token** (Core 3.1.3.7): signed with an asymmetric algorithm of :data:`ALGORITHMS` by a key of the
  provider's JWKS (fetched again once when an unknown ``kid`` appears: key rotation); ``iss`` the issuer, ``aud``
  the client id (``azp`` too when there are several audiences), ``exp`` not passed and ``iat`` not in the future,
  both within :data:`LEEWAY_S`, ``iat`` no older than :data:`MAX_AGE_S`, ``nonce`` the one sent.

Every call to the provider goes through one ``httpx.Client`` (timeouts, :data:`MAX_RESPONSE_BYTES`); the
client is synchronous, so the console calls it in a worker thread, never on the event loop. Failures are
:class:`ProviderUnavailable` (the provider did not answer as it should: try later) or :class:`TokenRejected`
(what came back does not prove who signed in), both :class:`~mspclaw.errors.AuthError`.
"""

from __future__ import annotations

import base64
import hmac
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx
import jwt

from mspclaw.errors import AuthError
from mspclaw.store.registry import digest
from mspclaw.store.sso import LOOPBACK, Provider

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384")
"""Signature algorithms an ID token may use: asymmetric only (never ``none``, never an HMAC keyed by the secret)."""
LEEWAY_S = 60
"""Clock skew allowed between this server and the provider for ``exp`` and ``iat``."""
MAX_AGE_S = 600
"""An ID token issued longer ago than this is refused (a code is exchanged within seconds of consent)."""
MAX_RESPONSE_BYTES = 256 * 1024
MAX_TOKEN_CHARS = 16 * 1024
CACHE_S = 3600.0
"""Discovery documents and key sets are fetched again after this long."""
REFETCH_S = 60.0
"""An unknown ``kid`` fetches the key set again at most this often (a forged token cannot make us hammer the
provider)."""
TIMEOUT_S = 10.0


class ProviderUnavailable(AuthError):
    """The identity provider did not answer, or not as the OpenID Connect specifications say; try again later."""

    code = "sso_provider_unavailable"


class TokenRejected(AuthError):
    """The provider's answer does not prove who signed in (signature, issuer, audience, time or nonce wrong)."""

    code = "sso_token_rejected"


@dataclass(frozen=True)
class Discovery:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    auth_methods: tuple[str, ...]


@dataclass(frozen=True)
class Identity:
    """Who the provider says signed in: the subject, the e-mail address chosen (see :func:`email_of`)."""

    subject: str
    email: str
    claims: dict[str, Any]


def _endpoint(url: object, what: str, issuer: str) -> str:
    if not isinstance(url, str) or len(url) > 1000:
        raise ProviderUnavailable(f"the discovery document of {issuer} has no usable {what}")
    parts = urlsplit(url)
    if not parts.hostname or not (parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK)):
        raise ProviderUnavailable(f"the {what} of {issuer} is not an https URL: {url[:100]}")
    return url


def email_of(claims: dict[str, Any]) -> str:
    """The address a technician is known by: ``email``, refused when ``email_verified`` is present and not
    true (Google); without ``email``, Entra ID's ``preferred_username`` when it is an address. Lower-cased."""
    email = claims.get("email")
    verified = claims.get("email_verified", True)
    if email is not None and verified not in (True, "true"):
        raise TokenRejected("the provider has not verified this account's e-mail address")
    if email is None:
        email = claims.get("preferred_username")
    if not isinstance(email, str) or "@" not in email or len(email) > 320 or any(c.isspace() for c in email):
        raise TokenRejected("the provider gave no e-mail address for this account (claim 'email' or "
                            "'preferred_username'); ask the admin to add the e-mail claim to the app registration")
    return email.strip().lower()


class OIDCClient:
    """A relying party of one provider; discovery and keys cached (:data:`CACHE_S`). Thread-safe."""

    def __init__(self, provider: Provider, *, http: httpx.Client | None = None, timeout_s: float = TIMEOUT_S,
                 clock: Callable[[], float] = time.time) -> None:
        self.provider = provider
        # no keep-alive: sign-ins are rare, and a client cached for the server's life then holds no socket
        self._http = http or httpx.Client(timeout=httpx.Timeout(timeout_s), follow_redirects=False,
                                          limits=httpx.Limits(max_keepalive_connections=0),
                                          headers={"Accept": "application/json"})
        self._owns_http = http is None
        self._clock = clock
        self._lock = threading.Lock()
        self._discovery: tuple[float, Discovery] | None = None
        self._keys: tuple[float, jwt.PyJWKSet] | None = None

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    # -- HTTP ---------------------------------------------------------------------------------------
    def _json(self, method: str, url: str, what: str, **kwargs: Any) -> dict[str, Any]:
        try:
            with self._http.stream(method, url, **kwargs) as response:
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_RESPONSE_BYTES:
                        raise ProviderUnavailable(f"the {what} of {self.provider.issuer} is larger than "
                                                  f"{MAX_RESPONSE_BYTES // 1024} KiB")
                status = response.status_code
        except httpx.TimeoutException as exc:
            raise ProviderUnavailable(f"{self.provider.label} did not answer in time ({what}); try again in a "
                                      "minute, or sign in with your password") from exc
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"{self.provider.label} cannot be reached ({what}: {type(exc).__name__}); "
                                      "try again in a minute, or sign in with your password") from exc
        try:
            doc = json.loads(bytes(body))
        except ValueError:
            doc = None
        if status >= 400 and isinstance(doc, dict) and isinstance(doc.get("error"), str):
            detail = str(doc.get("error_description") or "")[:200]
            raise TokenRejected(f"{self.provider.label} refused the {what}: {doc['error'][:60]} {detail}".strip())
        if status != 200 or not isinstance(doc, dict):
            raise ProviderUnavailable(f"{self.provider.label} answered the {what} with HTTP {status} and no JSON "
                                      "object; try again later")
        return doc

    # -- discovery ----------------------------------------------------------------------------------
    def discovery(self) -> Discovery:
        now = self._clock()
        cached = self._discovery
        if cached is not None and now - cached[0] < CACHE_S:
            return cached[1]
        issuer = self.provider.issuer
        doc = self._json("GET", f"{issuer}/.well-known/openid-configuration", "discovery document")
        if doc.get("issuer") != issuer:
            raise ProviderUnavailable(f"the discovery document at {issuer} names another issuer "
                                      f"({str(doc.get('issuer'))[:100]}); check the issuer URL (`mspclaw sso list`)")
        methods = doc.get("token_endpoint_auth_methods_supported", ["client_secret_basic"])
        found = Discovery(issuer, _endpoint(doc.get("authorization_endpoint"), "authorization endpoint", issuer),
                          _endpoint(doc.get("token_endpoint"), "token endpoint", issuer),
                          _endpoint(doc.get("jwks_uri"), "key set URL (jwks_uri)", issuer),
                          tuple(m for m in methods if isinstance(m, str)) if isinstance(methods, list) else ())
        self._discovery = (now, found)
        return found

    def authorization_url(self, *, redirect_uri: str, state: str, nonce: str, challenge: str) -> str:
        endpoint = self.discovery().authorization_endpoint
        query = urlencode({"response_type": "code", "client_id": self.provider.client_id,
                           "redirect_uri": redirect_uri, "scope": "openid email profile", "state": state,
                           "nonce": nonce, "code_challenge": challenge, "code_challenge_method": "S256",
                           "prompt": "select_account"})
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"

    # -- the code exchange --------------------------------------------------------------------------
    def exchange(self, code: str, *, redirect_uri: str, verifier: str) -> str:
        """The ID token the token endpoint gives for ``code`` (not yet verified)."""
        found = self.discovery()
        form = {"grant_type": "authorization_code", "code": code[:2000], "redirect_uri": redirect_uri,
                "code_verifier": verifier}
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if "client_secret_basic" in found.auth_methods or "client_secret_post" not in found.auth_methods:
            # RFC 6749 section 2.3.1: each part form-urlencoded before the Basic encoding
            pair = f"{quote(self.provider.client_id, safe='')}:{quote(self.provider.client_secret, safe='')}"
            headers["Authorization"] = "Basic " + _b64(pair)
        else:
            form |= {"client_id": self.provider.client_id, "client_secret": self.provider.client_secret}
        doc = self._json("POST", found.token_endpoint, "token request", content=urlencode(form), headers=headers)
        token = doc.get("id_token")
        if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_CHARS:
            raise TokenRejected(f"{self.provider.label} returned no ID token; is 'openid' an allowed scope of the app?")
        return token

    # -- the ID token -------------------------------------------------------------------------------
    def _key_set(self, *, fresh: bool) -> jwt.PyJWKSet:
        now = self._clock()
        with self._lock:
            cached = self._keys
            if cached is not None and (now - cached[0] < (REFETCH_S if fresh else CACHE_S)):
                return cached[1]
        doc = self._json("GET", self.discovery().jwks_uri, "key set")
        try:
            keys = jwt.PyJWKSet.from_dict(doc)
        except (jwt.PyJWTError, KeyError, TypeError, ValueError) as exc:
            raise ProviderUnavailable(f"the key set of {self.provider.issuer} holds no usable key: {exc}") from exc
        with self._lock:
            self._keys = (now, keys)
        return keys

    def _key(self, kid: str | None) -> jwt.PyJWK:
        for fresh in (False, True):
            keys = self._key_set(fresh=fresh)
            matching = [k for k in keys.keys if (k.key_id == kid or kid is None) and k.public_key_use in (None, "sig")
                        and k.key_type in ("RSA", "EC")]  # public keys only: never a symmetric "oct" key
            if len(matching) == 1:
                return matching[0]
            if len(matching) > 1:
                raise TokenRejected("the ID token names no key id and the provider has several keys")
        raise TokenRejected("the ID token is signed with a key the provider does not publish")

    def verify(self, token: str, *, nonce_hash: str) -> Identity:
        """The identity an ID token proves, or :class:`TokenRejected` saying which check failed."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenRejected(f"the ID token is malformed: {exc}") from exc
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise TokenRejected(f"the ID token is signed with {str(alg)[:20]}, not one of {', '.join(ALGORITHMS)}")
        kid = header.get("kid")
        key = self._key(kid if isinstance(kid, str) else None)
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=[alg], audience=self.provider.client_id, issuer=self.provider.issuer,
                leeway=LEEWAY_S, options={"require": ["iss", "aud", "exp", "iat", "sub"]})
        except jwt.InvalidSignatureError as exc:
            raise TokenRejected("the ID token's signature does not verify with the provider's key") from exc
        except jwt.ExpiredSignatureError as exc:
            raise TokenRejected("the ID token has expired (or this server's clock is wrong)") from exc
        except jwt.InvalidAudienceError as exc:
            raise TokenRejected("the ID token was issued to another application (aud)") from exc
        except jwt.InvalidIssuerError as exc:
            raise TokenRejected("the ID token was issued by another issuer (iss)") from exc
        except jwt.ImmatureSignatureError as exc:
            raise TokenRejected("the ID token is dated in the future (or this server's clock is wrong)") from exc
        except jwt.PyJWTError as exc:
            raise TokenRejected(f"the ID token is not valid: {exc}") from exc
        aud = claims["aud"]
        if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != self.provider.client_id:
            raise TokenRejected("the ID token has several audiences and was not issued for this application (azp)")
        iat = claims["iat"]
        if not isinstance(iat, int | float) or iat < self._clock() - MAX_AGE_S - LEEWAY_S:
            raise TokenRejected(f"the ID token was issued more than {MAX_AGE_S // 60} minutes ago")
        nonce = claims.get("nonce")
        if not isinstance(nonce, str) or not hmac.compare_digest(digest(nonce), nonce_hash):
            raise TokenRejected("the ID token does not answer this sign-in (nonce); start the sign-in again")
        subject = claims["sub"]
        if not isinstance(subject, str) or not 0 < len(subject) <= 255:
            raise TokenRejected("the ID token names no subject (sub)")
        return Identity(subject, email_of(claims), claims)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode("ascii")
