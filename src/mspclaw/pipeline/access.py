"""Who is calling, and what they may see: the bootstrap key, named API keys, technician logins.

Three kinds of bearer token reach the API and the session socket:

* the bootstrap admin key (``MSPCLAW_API_KEY``): role ``admin`` on every client;
* a named API key (``mck_...``, :mod:`mspclaw.store.keys`): its stored role and clients;
* a technician's access token: a short-lived JWT (HS256) from a password login, a one-time
  login link or a refresh. Its role and clients are taken from the roster on every
  request, so removing a technician or narrowing their clients takes effect at once.

Refresh tokens rotate: each is spent once; presenting a spent one again revokes the login.
Failed logins are throttled per e-mail.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import defaultdict, deque
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import timedelta

import jwt

from mspclaw.errors import AuthError, ConfigError, NotFound, TooManyAttempts
from mspclaw.pipeline.refusals import Refusals
from mspclaw.pipeline.techs import Tech, TechRegistry
from mspclaw.store.audit import AuditLog
from mspclaw.store.keys import KEY_PREFIX, ApiKeys
from mspclaw.store.logins import Logins
from mspclaw.store.registry import Registry

ROLE_RANK = {"viewer": 0, "tech": 1, "admin": 2}
ISSUER = "mspclaw"
_ALGORITHM = "HS256"
MAX_FAILURES = 5
"""Failed logins per account in the window before that account is refused."""
MAX_FAILURES_PER_REMOTE = 20
"""Failed logins per remote address (any accounts) in the window before that address is refused."""
FAILURE_WINDOW_S = 900.0


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. ``scope`` is the client ids it may see; ``None`` is every client."""

    name: str
    scope: Collection[str] | None
    role: str = "admin"
    kind: str = "bootstrap"
    """``bootstrap``, ``key`` or ``tech``."""
    email: str | None = None

    def at_least(self, role: str) -> bool:
        return ROLE_RANK.get(self.role, -1) >= ROLE_RANK[role]

    def sees(self, client_id: str) -> bool:
        return self.scope is None or client_id in self.scope


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "bearer"  # noqa: S105 (the OAuth token type, not a secret)


@dataclass
class _Throttle:
    limit: int = MAX_FAILURES
    what: str = "this account"
    failures: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))

    def check(self, key: str) -> None:
        recent = self.failures.get(key)
        now = time.monotonic()
        while recent and now - recent[0] > FAILURE_WINDOW_S:
            recent.popleft()
        if recent is not None and len(recent) >= self.limit:
            wait = int(FAILURE_WINDOW_S - (now - recent[0])) + 1
            raise TooManyAttempts(f"too many failed logins for {self.what}; try again in {wait} s")

    def fail(self, key: str) -> None:
        self.failures[key].append(time.monotonic())

    def clear(self, key: str) -> None:
        self.failures.pop(key, None)


class Access:
    def __init__(self, *, bootstrap_key: str, keys: ApiKeys, logins: Logins, techs: TechRegistry,
                 registry: Registry, audit: AuditLog, jwt_secret: str, access_ttl_s: float = 900.0,
                 refresh_ttl_s: float = 7 * 86400.0, link_ttl_s: float = 900.0,
                 max_failures_per_remote: int = MAX_FAILURES_PER_REMOTE, refusals: Refusals | None = None) -> None:
        if len(jwt_secret.encode()) < 32:
            raise ConfigError("the JWT secret (MSPCLAW_JWT_SECRET) needs at least 32 bytes; unset it to let MSPclaw "
                              "generate one in the data directory")
        self._bootstrap = bootstrap_key
        self.keys, self.logins, self.techs, self._registry, self._audit = keys, logins, techs, registry, audit
        self._refusals = refusals or Refusals(audit)
        """Failed logins: counted, and only sampled into the audit trail (a guessing run costs no fsync each)."""
        self._secret = jwt_secret
        self.access_ttl_s, self.refresh_ttl_s, self.link_ttl_s = access_ttl_s, refresh_ttl_s, link_ttl_s
        self._throttle = _Throttle()
        self._remote_throttle = _Throttle(max_failures_per_remote, "this address")

    # -- authenticating a request ---------------------------------------------------------------
    def authenticate(self, token: str | None) -> Principal:
        if not token:
            raise AuthError("missing 'Authorization: Bearer <key or token>' header")
        if self._bootstrap and hmac.compare_digest(token.encode(), self._bootstrap.encode()):
            return Principal("admin", None)
        if token.startswith(KEY_PREFIX):
            row = self.keys.authenticate(token)
            return Principal(f"key:{row.name}", None if row.all_clients else frozenset(row.clients), row.role, "key")
        if token.count(".") == 2:
            return self._from_jwt(token)
        raise AuthError("wrong API key")

    def _from_jwt(self, token: str) -> Principal:
        try:
            claims = jwt.decode(token, self._secret, algorithms=[_ALGORITHM], issuer=ISSUER,
                                options={"require": ["exp", "iat", "sub", "iss"]})
        except jwt.ExpiredSignatureError:
            raise AuthError("your session token has expired; refresh it at /auth/refresh or log in again") from None
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"invalid token: {exc}") from None
        if claims.get("typ") != "access":
            raise AuthError("this is not an access token")
        tech = self.techs.find(str(claims["sub"]))
        if tech is None:
            raise AuthError("this technician is no longer in the roster")
        return self.principal_for(tech)

    def principal_for(self, tech: Tech) -> Principal:
        """The technician's role and clients as the roster says now."""
        if tech.all_clients:
            scope: frozenset[str] | None = None
        else:
            scope = frozenset(c.id for c in self._registry.clients() if tech.serves(c.id, c.name))
        return Principal(tech.name, scope, tech.role, "tech", tech.email)

    # -- logging in -----------------------------------------------------------------------------
    def _tokens(self, tech: Tech, *, family: str | None = None) -> Tokens:
        now = int(time.time())
        access = jwt.encode({"iss": ISSUER, "sub": tech.email, "name": tech.name, "role": tech.role,
                             "clients": tech.clients, "typ": "access", "iat": now,
                             "exp": now + int(self.access_ttl_s), "jti": secrets.token_hex(8)},
                            self._secret, algorithm=_ALGORITHM)
        refresh, _ = self.logins.issue("refresh", tech.email, timedelta(seconds=self.refresh_ttl_s), family=family)
        return Tokens(access, refresh, int(self.access_ttl_s))

    def login(self, email: str, password: str, *, remote: str) -> Tokens:
        key = email.strip().lower()
        self._remote_throttle.check(remote)
        self._throttle.check(key)
        try:
            self.logins.check_password(key, password)
            tech = self.techs.find(key)
            if tech is None:
                raise AuthError("wrong e-mail or password")
        except AuthError:
            self._throttle.fail(key)
            self._remote_throttle.fail(remote)
            self._refusals.note("login_failed", remote, code="password",
                                data={"email": key[:320], "method": "password"})
            raise
        self._throttle.clear(key)
        self._audit.append("login", actor=tech.email, data={"method": "password", "remote": remote})
        return self._tokens(tech)

    def refresh(self, refresh_token: str, *, remote: str) -> Tokens:
        try:
            row = self.logins.spend("refresh", refresh_token)
        except AuthError as exc:
            self._audit.append("refresh_refused", actor=remote, data={"reason": exc.message})
            raise
        tech = self.techs.find(row.email)
        if tech is None:
            raise AuthError("this technician is no longer in the roster")
        return self._tokens(tech, family=row.family)

    def issue_link(self, ref: str, *, actor: str) -> str:
        """A one-time login link token for a technician (valid ``link_ttl_s``)."""
        tech = self.techs.find(ref)
        if tech is None:
            raise NotFound(f"no technician {ref!r} in the roster; add one with `mspclaw tech add`")
        token, _ = self.logins.issue("login_link", tech.email, timedelta(seconds=self.link_ttl_s))
        self._audit.append("login_link_issued", actor=actor, data={"email": tech.email})
        return token

    def redeem_link(self, token: str, *, remote: str) -> Tokens:
        try:
            row = self.logins.spend("login_link", token)
        except AuthError as exc:
            self._refusals.note("login_failed", remote, code="link", data={"method": "link", "reason": exc.message})
            raise
        tech = self.techs.find(row.email)
        if tech is None:
            raise AuthError("this technician is no longer in the roster")
        self._audit.append("login", actor=tech.email, data={"method": "link", "remote": remote})
        return self._tokens(tech)

    def logout(self, principal: Principal) -> int:
        if principal.email is None:
            return 0
        self._audit.append("logout", actor=principal.email)
        return self.logins.revoke_all(principal.email)
