"""Single sign-on's stored state: the OpenID Connect providers an admin configured, and the sign-ins started
in a browser and not yet finished.

**Providers.** One row per provider (``mspclaw sso add``): a short name (in the URL ``/login/sso/<name>``),
the label of its button, the issuer URL, the client id registered there, the client secret sealed by the
:class:`~mspclaw.store.secretbox.SecretBox` (the context names the provider, so a sealed secret copied to
another row does not open) and the e-mail domains whose technicians it may sign in.

**Pending sign-ins.** Starting a sign-in draws a ``state``, a ``nonce`` and a PKCE ``code_verifier``
(RFC 7636, 256 random bits each). Only digests of the state and nonce are stored, the verifier is sealed,
and the row is bound to the digest of a random cookie of the browser that started it. :meth:`Pending.spend`
uses a row once (a conditional update, so two requests racing with one state cannot both win), only from
that browser, and only within :data:`PENDING_TTL`.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast
from urllib.parse import urlsplit

from sqlalchemy import CursorResult, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from mspclaw.errors import AuthError, ConfigError, Conflict, NotFound, TooManyAttempts
from mspclaw.store.database import Database
from mspclaw.store.registry import digest
from mspclaw.store.secretbox import SecretBox
from mspclaw.store.tables import SSOPendingRow, SSOProviderRow, utcnow

PENDING_TTL = timedelta(minutes=10)
"""A sign-in not finished at the provider within this long is refused (start again)."""
MAX_PENDING = 10_000
"""Sign-ins in progress at once (started, not finished, not expired); more are refused until some expire: the
start page needs no account, so this bounds what it can make the database hold."""
MAX_PROVIDERS = 20
MAX_DOMAINS = 50
MAX_SECRET = 4096
NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
RESERVED = frozenset({"callback"})
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def secret_context(name: str) -> str:
    return f"client secret of single sign-on provider {name}"


def _verifier_context(state_hash: str) -> str:
    return f"PKCE verifier of sign-in {state_hash}"


@dataclass(frozen=True)
class Provider:
    name: str
    label: str
    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    domains: tuple[str, ...]

    def allows(self, email: str) -> bool:
        """Whether ``email``'s domain is one this provider may sign in (exactly, not a subdomain)."""
        return email.rpartition("@")[2].lower() in self.domains


def checked(*, name: str, label: str, issuer: str, client_id: str, client_secret: str,
            domains: list[str] | tuple[str, ...]) -> Provider:
    """A provider's configuration, or :class:`ConfigError` saying which field is wrong and how to fix it."""
    name = name.strip().lower()
    if not NAME.match(name) or name in RESERVED:
        raise ConfigError(f"provider name {name[:60]!r}: use 1-40 lower-case letters, digits and '-' (it appears in "
                          "the URL /login/sso/<name>), and not 'callback'; e.g. 'entra' or 'google'")
    label = label.strip()
    if not 1 <= len(label) <= 100:
        raise ConfigError("label: 1-100 characters, shown as 'Sign in with <label>', e.g. 'Microsoft'")
    issuer = issuer.strip().rstrip("/")
    parts = urlsplit(issuer)
    if len(issuer) > 500 or parts.query or parts.fragment or not parts.hostname or not (
            parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK)):
        raise ConfigError(f"issuer {issuer[:100]!r}: an https URL without query or fragment, as the provider's "
                          "discovery document names it, e.g. https://login.microsoftonline.com/<tenant id>/v2.0 "
                          "or https://accounts.google.com")
    if "{" in issuer or parts.path.rstrip("/").split("/")[-2:-1] in (["common"], ["organizations"], ["consumers"]):
        raise ConfigError(f"issuer {issuer[:100]!r}: name your Entra ID tenant (its id), not common, organizations "
                          "or consumers: a multi-tenant issuer would let any tenant's user vouch for an address")
    client_id = client_id.strip()
    if not 1 <= len(client_id) <= 255:
        raise ConfigError("client id: 1-255 characters, as the provider shows it for the app registration")
    if not 1 <= len(client_secret) <= MAX_SECRET:
        raise ConfigError(f"client secret: 1-{MAX_SECRET} characters, as the provider issued it")
    cleaned = tuple(dict.fromkeys(d.strip().lower().lstrip("@") for d in domains if d.strip()))
    if not 1 <= len(cleaned) <= MAX_DOMAINS:
        raise ConfigError(f"allowed e-mail domains: give 1-{MAX_DOMAINS}, e.g. --domain msp.example")
    for d in cleaned:
        if not DOMAIN.match(d):
            raise ConfigError(f"allowed e-mail domain {d[:100]!r}: a domain name like msp.example")
    return Provider(name, label, issuer, client_id, client_secret, cleaned)


class Providers:
    """The configured OpenID Connect providers, their client secrets sealed."""

    def __init__(self, db: Database, box: SecretBox) -> None:
        self._sessions = db.sessions
        self._box = box

    def add(self, provider: Provider) -> None:
        """Store a new provider (:class:`Conflict` if the name is taken)."""
        with self._sessions.begin() as db:
            count = len(db.scalars(select(SSOProviderRow.name)).all())
            if count >= MAX_PROVIDERS:
                raise Conflict(f"{MAX_PROVIDERS} single sign-on providers are configured already; remove one first")
            if db.get(SSOProviderRow, provider.name) is not None:
                raise Conflict(f"a single sign-on provider named {provider.name!r} exists; remove it first or "
                               "choose another name")
            db.add(SSOProviderRow(name=provider.name, label=provider.label, issuer=provider.issuer,
                                  client_id=provider.client_id, domains=list(provider.domains),
                                  client_secret=self._box.encrypt(provider.client_secret,
                                                                  context=secret_context(provider.name))))
            try:
                db.flush()
            except IntegrityError as exc:
                raise Conflict(f"a single sign-on provider named {provider.name!r} exists") from exc

    def buttons(self) -> list[tuple[str, str]]:
        """``(name, label)`` of every provider, for the sign-in page (nothing decrypted)."""
        with self._sessions() as db:
            rows = db.execute(select(SSOProviderRow.name, SSOProviderRow.label).order_by(SSOProviderRow.name)).all()
        return [(r.name, r.label) for r in rows]

    def list(self) -> list[Provider]:
        with self._sessions() as db:
            rows = list(db.scalars(select(SSOProviderRow).order_by(SSOProviderRow.name)))
        return [self._open(r) for r in rows]

    def get(self, name: str) -> Provider:
        """The provider named ``name``; :class:`NotFound` if none is."""
        row = None
        if NAME.match(name):
            with self._sessions() as db:
                row = db.get(SSOProviderRow, name)
        if row is None:
            raise NotFound(f"no single sign-on provider named {name[:60]!r}; see `mspclaw sso list`")
        return self._open(row)

    def remove(self, name: str) -> None:
        with self._sessions.begin() as db:
            row = db.get(SSOProviderRow, name.strip().lower())
            if row is None:
                raise NotFound(f"no single sign-on provider named {name[:60]!r}; see `mspclaw sso list`")
            db.delete(row)
            db.execute(delete(SSOPendingRow).where(SSOPendingRow.provider == row.name))

    def reencrypt(self) -> int:
        """Seal every client secret again under the box's current key (key rotation); how many."""
        with self._sessions.begin() as db:
            rows = list(db.scalars(select(SSOProviderRow).with_for_update()))
            plain = [self._box.decrypt(r.client_secret, context=secret_context(r.name)) for r in rows]
            for row, secret in zip(rows, plain, strict=True):
                row.client_secret = self._box.encrypt(secret, context=secret_context(row.name))
        return len(rows)

    def _open(self, row: SSOProviderRow) -> Provider:
        return Provider(row.name, row.label, row.issuer, row.client_id,
                        self._box.decrypt(row.client_secret, context=secret_context(row.name)),
                        tuple(str(d) for d in row.domains))


@dataclass(frozen=True)
class Started:
    """What a new sign-in sends to the provider (state, nonce, the S256 challenge of the verifier)."""

    state: str
    nonce: str = field(repr=False)
    challenge: str


@dataclass(frozen=True)
class Spent:
    """What the callback needs of a pending sign-in: its provider, the nonce's digest, the PKCE verifier."""

    provider: str
    nonce_hash: str
    verifier: str = field(repr=False)


def s256(verifier: str) -> str:
    """The PKCE ``S256`` code challenge of ``verifier`` (RFC 7636 section 4.2)."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).decode("ascii").rstrip("=")


class Pending:
    """Sign-ins started and not finished: single use, bound to one browser, :data:`PENDING_TTL` long."""

    def __init__(self, db: Database, box: SecretBox, *, ttl: timedelta = PENDING_TTL,
                 max_pending: int = MAX_PENDING) -> None:
        self._sessions = db.sessions
        self._box = box
        self.ttl, self.max_pending = ttl, max_pending

    def begin(self, provider: str, browser: str) -> Started:
        """A new pending sign-in with ``provider`` for the browser whose binding cookie is ``browser``."""
        if not browser or len(browser) > 200:
            raise AuthError("this browser's sign-in cookie is missing; open the sign-in page again")
        state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
        state_hash = digest(state)
        now = utcnow()
        with self._sessions.begin() as db:
            db.execute(delete(SSOPendingRow).where(SSOPendingRow.expires_at <= now))  # keeps the table small
            if (db.scalar(select(func.count()).select_from(SSOPendingRow)) or 0) >= self.max_pending:
                raise TooManyAttempts("too many single sign-ons are in progress right now; try again in a few "
                                      "minutes, or sign in with your password")
            db.add(SSOPendingRow(state_hash=state_hash, provider=provider, browser_hash=digest(browser),
                                 nonce_hash=digest(nonce), expires_at=now + self.ttl,
                                 verifier=self._box.encrypt(verifier, context=_verifier_context(state_hash))))
        return Started(state, nonce, s256(verifier))

    def spend(self, state: str, browser: str) -> Spent:
        """Use the pending sign-in of ``state`` once, from the browser that started it; :class:`AuthError`
        (saying what to do) if it is unknown, expired, already used or was started in another browser."""
        if not state or len(state) > 200:
            raise AuthError("the provider sent no sign-in state back; start the sign-in again")
        state_hash = digest(state)
        with self._sessions() as db:
            row = db.get(SSOPendingRow, state_hash)
        if row is None:
            raise AuthError("this sign-in is unknown or was finished already; start the sign-in again")
        if row.used_at is not None:
            raise AuthError("this sign-in was finished already; start the sign-in again")
        if not browser or len(browser) > 200 or not secrets.compare_digest(row.browser_hash, digest(browser)):
            raise AuthError("this sign-in was started in another browser (or this browser's cookies were cleared); "
                            "start the sign-in again here")
        if row.expires_at <= utcnow():
            raise AuthError(f"this sign-in took longer than {int(self.ttl.total_seconds() // 60)} minutes; "
                            "start it again")
        with self._sessions.begin() as db:
            done = cast("CursorResult[Any]", db.execute(
                update(SSOPendingRow).where(SSOPendingRow.state_hash == state_hash, SSOPendingRow.used_at.is_(None))
                .values(used_at=utcnow())))
        if done.rowcount != 1:
            raise AuthError("this sign-in was finished already; start the sign-in again")
        return Spent(row.provider, row.nonce_hash,
                     self._box.decrypt(row.verifier, context=_verifier_context(state_hash)))
