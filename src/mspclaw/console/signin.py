"""Signing in to the console: a password or a one-time login link, then a TOTP code (or a recovery code).

The first factor goes through :class:`~mspclaw.pipeline.access.Access` (its throttles, audit and
password hashes); it yields a short-lived *second-factor-due* token, never a session. Only a right
code (or an enrolment confirmed with one) yields a session token, a new random value each time,
so a session id planted before sign-in is never the one signed in (no fixation). A technician
without a confirmed second factor enrols first: a new secret, shown as a QR code, confirmed by
its first code; then ten recovery codes are shown once.

Every form carries a CSRF token derived from the cookie it goes with (HMAC-SHA256 under the
server's secret): a page of another site cannot read it, so it cannot post the form.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta

from mspclaw.console import totp
from mspclaw.errors import AuthError
from mspclaw.pipeline.access import Access, Principal
from mspclaw.pipeline.techs import Tech
from mspclaw.store.audit import AuditLog
from mspclaw.store.console_logins import SECOND_FACTOR_DUE, SESSION, ConsoleSessions, SecondFactors, recovery_digest

SESSION_TTL = timedelta(hours=12)
"""A console session ends this long after sign-in, whatever is done in it."""
SECOND_FACTOR_TTL = timedelta(minutes=5)
MAX_CODE_FAILURES = 5
"""Wrong codes in one second-factor stage before it is revoked (the password is asked again)."""
RECOVERY_CODES = 10
MAX_PENDING_FAILURES = 10_000
"""Second-factor stages whose wrong codes are counted in memory at once (bounded)."""


@dataclass(frozen=True)
class SignedIn:
    token: str
    recovery_codes: tuple[str, ...] = ()
    """Shown once, right after enrolment."""


class ConsoleSignIn:
    def __init__(self, *, access: Access, sessions: ConsoleSessions, factors: SecondFactors, audit: AuditLog,
                 csrf_key: bytes, session_ttl: timedelta = SESSION_TTL) -> None:
        self._access, self.sessions, self.factors, self._audit = access, sessions, factors, audit
        self._csrf_key = csrf_key
        self.session_ttl = session_ttl
        self._failures: dict[str, int] = {}

    # -- first factor ---------------------------------------------------------------------------
    def password(self, email: str, password: str, *, remote: str) -> str:
        """A second-factor-due token for a right password (AuthError, TooManyAttempts otherwise)."""
        self._access.login(email[:320], password[:1000], remote=remote)
        return self.sessions.issue(SECOND_FACTOR_DUE, email.strip().lower(), SECOND_FACTOR_TTL)

    def link(self, token: str, *, remote: str) -> str:
        """Spend a one-time login link (once: a replay is refused); a second-factor-due token."""
        tokens = self._access.redeem_link(token[:200], remote=remote)
        owner = self._access.authenticate(tokens.access_token)  # the technician the link was made for
        if owner.email is None:
            raise AuthError("this link belongs to no technician")
        return self.sessions.issue(SECOND_FACTOR_DUE, owner.email, SECOND_FACTOR_TTL)

    def due(self, token: str) -> Tech | None:
        """The technician whose second factor is due under ``token``."""
        row = self.sessions.find(SECOND_FACTOR_DUE, token)
        return None if row is None else self._access.techs.find(row.email)

    # -- second factor --------------------------------------------------------------------------
    def enrolment_secret(self, tech: Tech) -> str:
        """The secret being enrolled (a new one unless an unconfirmed one waits)."""
        existing = self.factors.secret(tech.email)
        if existing is not None and not self.factors.confirmed(tech.email):
            return existing
        secret = totp.new_secret()
        self.factors.begin(tech.email, secret)
        return secret

    def enrolled(self, tech: Tech) -> bool:
        return self.factors.confirmed(tech.email)

    def confirm_enrolment(self, token: str, code: str, *, remote: str, now: float | None = None) -> SignedIn:
        tech = self._due_or_refuse(token)
        secret = self.factors.secret(tech.email)
        if secret is None or self.factors.confirmed(tech.email):
            raise AuthError("start the enrolment again")
        step = totp.matching_step(secret, code[:20], time.time() if now is None else now)
        codes = tuple(f"{c[:5]}-{c[5:]}" for c in (secrets.token_hex(5) for _ in range(RECOVERY_CODES)))
        if step is None or not self.factors.accept_step(tech.email, step,
                                                        confirm_with=[recovery_digest(c) for c in codes]):
            self._failed(token, tech, remote, "enrolment code")
        self._audit.append("second_factor_enrolled", actor=tech.email, data={"remote": remote})
        return SignedIn(self._open_session(token, tech, remote, "totp"), codes)

    def verify(self, token: str, code: str, *, remote: str, now: float | None = None) -> SignedIn:
        """A session for a right TOTP code (each accepted once) or an unused recovery code."""
        tech = self._due_or_refuse(token)
        code = code.strip()[:40]
        if len(code.replace(" ", "")) == totp.DIGITS:
            secret = self.factors.secret(tech.email) if self.factors.confirmed(tech.email) else None
            step = totp.matching_step(secret, code, time.time() if now is None else now) if secret else None
            if step is None or not self.factors.accept_step(tech.email, step):
                self._failed(token, tech, remote, "code")
            method = "totp"
        else:
            if not self.factors.spend_recovery(tech.email, code):
                self._failed(token, tech, remote, "recovery code")
            method = "recovery_code"
        return SignedIn(self._open_session(token, tech, remote, method))

    def _due_or_refuse(self, token: str) -> Tech:
        tech = self.due(token)
        if tech is None:
            raise AuthError("your sign-in has expired; sign in again")
        return tech

    def _failed(self, token: str, tech: Tech, remote: str, what: str) -> None:
        if len(self._failures) >= MAX_PENDING_FAILURES:  # stages that expired with a wrong code or two
            self._failures.clear()
        count = self._failures.get(token, 0) + 1
        self._failures[token] = count
        self._audit.append("second_factor_failed", actor=tech.email, data={"remote": remote, "what": what})
        if count >= MAX_CODE_FAILURES:
            self._failures.pop(token, None)
            self.sessions.revoke(SECOND_FACTOR_DUE, token)
            raise AuthError(f"{MAX_CODE_FAILURES} wrong codes: sign in again")
        raise AuthError(f"wrong {what}; try again")

    def _open_session(self, token: str, tech: Tech, remote: str, method: str) -> str:
        if self.sessions.spend(SECOND_FACTOR_DUE, token) is None:
            raise AuthError("your sign-in has expired; sign in again")
        self._failures.pop(token, None)
        self._audit.append("console_signed_in", actor=tech.email, data={"remote": remote, "second_factor": method})
        return self.sessions.issue(SESSION, tech.email, self.session_ttl)

    # -- single sign-on (console/sso.py) --------------------------------------------------------
    def single_sign_on(self, email: str, *, provider: str, remote: str) -> str:
        """A session for a technician whose identity an OpenID Connect provider proved (signature, audience,
        nonce checked by :mod:`mspclaw.console.oidc`); the provider's own MFA stands for the second factor.
        Only a technician of the roster under exactly this e-mail: never created here."""
        email = email.strip().lower()[:320]
        tech = next((t for t in self._access.techs.techs() if t.email == email), None)
        if tech is None:
            self._audit.append("console_signin_refused", actor=email,
                               data={"remote": remote, "method": "oidc", "provider": provider,
                                     "reason": "no technician with this e-mail"})
            raise AuthError(f"{email} is not a registered technician of this MSPclaw; ask an admin to add you "
                            "(`mspclaw tech add`) with exactly this e-mail address")
        self._audit.append("console_signed_in", actor=tech.email,
                           data={"remote": remote, "method": "oidc", "provider": provider, "second_factor": "oidc"})
        return self.sessions.issue(SESSION, tech.email, self.session_ttl)

    # -- sessions -------------------------------------------------------------------------------
    def principal(self, token: str) -> Principal | None:
        """The signed-in technician's role and clients as the roster says now; ``None``: not signed in."""
        row = self.sessions.find(SESSION, token)
        tech = None if row is None else self._access.techs.find(row.email)
        return None if tech is None else self._access.principal_for(tech)

    def sign_out(self, token: str, principal: Principal) -> None:
        self.sessions.revoke(SESSION, token)
        self._audit.append("console_signed_out", actor=principal.email or principal.name)

    # -- CSRF -----------------------------------------------------------------------------------
    def csrf(self, cookie: str) -> str:
        mac = hmac.new(self._csrf_key, b"console-csrf:" + cookie.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode("ascii").rstrip("=")

    def csrf_ok(self, cookie: str, submitted: str) -> bool:
        return bool(cookie) and bool(submitted) and hmac.compare_digest(self.csrf(cookie), submitted[:100])
