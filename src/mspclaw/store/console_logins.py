"""The console's sign-ins: browser sessions and the technicians' TOTP second factor.

A browser session is an :class:`~mspclaw.store.tables.AuthToken` row of kind ``console`` (signed
in) or ``console_mfa`` (password or login link accepted, second factor still due): a 256-bit random
value of which only the SHA-256 digest is stored, with its expiry, revoked at sign-out or when the
technician logs out everywhere (:meth:`~mspclaw.store.logins.Logins.revoke_all`).

The TOTP secret is sealed by the :class:`~mspclaw.store.secretbox.SecretBox` (context names the
technician, so a sealed secret copied to another row does not open); recovery codes are stored as
SHA-256 digests (each is 80 random bits, so a slow KDF adds nothing). Accepting a code moves
``last_step`` forward by a conditional update, so one code is never accepted twice, even by two
requests racing.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, select, update

from mspclaw.store.database import Database
from mspclaw.store.registry import digest
from mspclaw.store.secretbox import SecretBox
from mspclaw.store.tables import AuthToken, TechSecondFactor, new_id, utcnow

SESSION = "console"
SECOND_FACTOR_DUE = "console_mfa"


def _context(email: str) -> str:
    return f"totp secret of {email}"


class ConsoleSessions:
    """Browser sessions as digests of random tokens; valid until they expire or are revoked."""

    def __init__(self, db: Database) -> None:
        self._sessions = db.sessions

    def issue(self, kind: str, email: str, ttl: timedelta) -> str:
        token = secrets.token_urlsafe(32)
        with self._sessions.begin() as db:
            db.add(AuthToken(id=new_id("cs"), kind=kind, email=email.lower(), token_hash=digest(token),
                             family=new_id("fam"), expires_at=utcnow() + ttl))
        return token

    def find(self, kind: str, token: str) -> AuthToken | None:
        """The live row of ``token``: not expired, revoked or spent; ``None`` otherwise."""
        if not token or len(token) > 200:
            return None
        with self._sessions() as db:
            row = db.scalars(select(AuthToken).where(AuthToken.token_hash == digest(token),
                                                     AuthToken.kind == kind)).first()
        if row is None or row.revoked_at is not None or row.used_at is not None or row.expires_at <= utcnow():
            return None
        return row

    def spend(self, kind: str, token: str) -> AuthToken | None:
        """Use ``token`` once (the second-factor stage ends in a new session); ``None`` if it is not live."""
        row = self.find(kind, token)
        if row is None:
            return None
        with self._sessions.begin() as db:
            spent = cast("CursorResult[Any]", db.execute(
                update(AuthToken).where(AuthToken.id == row.id, AuthToken.used_at.is_(None))
                .values(used_at=utcnow())))
        return row if spent.rowcount == 1 else None

    def revoke(self, kind: str, token: str) -> None:
        if not token or len(token) > 200:
            return
        with self._sessions.begin() as db:
            db.execute(update(AuthToken).where(AuthToken.token_hash == digest(token), AuthToken.kind == kind,
                                               AuthToken.revoked_at.is_(None)).values(revoked_at=utcnow()))


class SecondFactors:
    """Each technician's TOTP secret (sealed), recovery code digests and last accepted time step."""

    def __init__(self, db: Database, box: SecretBox) -> None:
        self._db, self._sessions = db, db.sessions
        self._box = box

    def confirmed(self, email: str) -> bool:
        with self._sessions() as db:
            row = db.get(TechSecondFactor, email.lower())
        return row is not None and row.confirmed_at is not None

    def begin(self, email: str, secret: str) -> None:
        """Store a new, unconfirmed secret; refused (``ValueError``) once one is confirmed."""
        email = email.lower()
        sealed = self._box.encrypt(secret, context=_context(email))
        with self._sessions.begin() as db:
            row = db.get(TechSecondFactor, email)
            if row is not None and row.confirmed_at is not None:
                raise ValueError(f"{email} already has a confirmed second factor")
            if row is None:
                db.add(TechSecondFactor(email=email, secret=sealed, recovery_hashes=[], last_step=0))
            else:
                row.secret, row.recovery_hashes, row.last_step = sealed, [], 0

    def secret(self, email: str) -> str | None:
        with self._sessions() as db:
            row = db.get(TechSecondFactor, email.lower())
        return None if row is None else self._box.decrypt(row.secret, context=_context(email.lower()))

    def accept_step(self, email: str, step: int, *, confirm_with: list[str] | None = None) -> bool:
        """Record ``step`` as used if it is newer than the last one; with ``confirm_with`` (recovery code
        digests) the enrolment is confirmed in the same update. False: that step (or a later) was used."""
        values: dict[str, Any] = {"last_step": step}
        if confirm_with is not None:
            values.update(confirmed_at=utcnow(), recovery_hashes=confirm_with)
        with self._sessions.begin() as db:
            done = cast("CursorResult[Any]", db.execute(
                update(TechSecondFactor).where(TechSecondFactor.email == email.lower(),
                                               TechSecondFactor.last_step < step).values(**values)))
        return done.rowcount == 1

    def spend_recovery(self, email: str, code: str) -> bool:
        """Use one recovery code; False if it is not (or no longer) one of this technician's."""
        wanted = recovery_digest(code)
        row_of = TechSecondFactor.email == email.lower()
        with self._db.transaction(immediate=True) as conn:  # SQLite: BEGIN IMMEDIATE; PostgreSQL: FOR UPDATE
            row = conn.execute(select(TechSecondFactor.recovery_hashes, TechSecondFactor.confirmed_at)
                               .where(row_of).with_for_update()).first()
            if row is None or row.confirmed_at is None or wanted not in row.recovery_hashes:
                return False
            conn.execute(update(TechSecondFactor).where(row_of)
                         .values(recovery_hashes=[h for h in row.recovery_hashes if h != wanted]))
        return True

    def recovery_left(self, email: str) -> int:
        with self._sessions() as db:
            row = db.get(TechSecondFactor, email.lower())
        return 0 if row is None else len(row.recovery_hashes)

    def confirmed_at(self, email: str) -> datetime | None:
        with self._sessions() as db:
            row = db.get(TechSecondFactor, email.lower())
        return None if row is None else row.confirmed_at


    def reset(self, email: str) -> bool:
        """Forget a technician's second factor (a lost phone and no recovery code): they enrol again at their
        next sign-in. False if they had none."""
        with self._sessions.begin() as db:
            row = db.get(TechSecondFactor, email.lower())
            if row is None:
                return False
            db.delete(row)
        return True

    def reencrypt(self) -> int:
        """Seal every stored secret again under the box's current key (key rotation); how many."""
        with self._sessions.begin() as db:
            rows = list(db.scalars(select(TechSecondFactor).with_for_update()))
            for row in rows:
                plain = self._box.decrypt(row.secret, context=_context(row.email))
                row.secret = self._box.encrypt(plain, context=_context(row.email))
        return len(rows)


def recovery_digest(code: str) -> str:
    return digest(code.strip().replace("-", "").lower())
