"""Technician credentials: password hashes, refresh tokens and one-time login links.

Passwords are hashed with Argon2id (argon2-cffi's defaults: 64 MiB, 3 passes, PHC string with
its own salt). Refresh tokens and login links are 256-bit random values stored as SHA-256
digests, each spent once by a conditional update, so two requests racing on one token cannot
both win.
"""

from __future__ import annotations

import secrets
import threading
from datetime import datetime, timedelta
from typing import Any, cast

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import CursorResult, delete, select, update

from mspclaw.errors import AuthError, Conflict
from mspclaw.store.database import Database
from mspclaw.store.registry import digest
from mspclaw.store.tables import AuthToken, TechCredential, new_id, utcnow

MIN_PASSWORD = 12
_hasher = PasswordHasher()


class _DummyHash:
    """The hash an unknown e-mail's password is verified against, so that it takes as long as a known one's.

    Hashing costs 0.1-0.25 s, so it is made at the first password check of the process, not at import (every
    server process and CLI command imports this module), once, under a lock: threads checking at the same time
    wait for the one hash. Every first check makes it, a known e-mail's too, so even the first sign-in of a
    process does not tell whether the e-mail exists."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hash: str | None = None

    def get(self) -> str:
        made = self._hash
        if made is None:
            with self._lock:
                made = self._hash
                if made is None:
                    made = self._hash = _hasher.hash("not a password of anyone: equalises the time of unknown e-mails")
        return made


_DUMMY = _DummyHash()


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise Conflict(f"a password needs at least {MIN_PASSWORD} characters")
    return _hasher.hash(password)


class Logins:
    def __init__(self, db: Database) -> None:
        self._sessions = db.sessions

    # -- passwords ------------------------------------------------------------------------------
    def set_password(self, email: str, password: str) -> None:
        hashed = hash_password(password)
        email = email.lower()
        with self._sessions.begin() as db:
            row = db.get(TechCredential, email)
            if row is None:
                db.add(TechCredential(email=email, password_hash=hashed))
            else:
                row.password_hash, row.updated_at = hashed, utcnow()

    def check_password(self, email: str, password: str) -> None:
        """Raise :class:`AuthError` unless the password is right; as slow for unknown e-mails."""
        dummy = _DUMMY.get()  # for every e-mail, known or not: the first check's cost is the same for both
        with self._sessions() as db:
            row = db.get(TechCredential, email.lower())
        try:
            _hasher.verify(row.password_hash if row else dummy, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            raise AuthError("wrong e-mail or password") from None
        if row is None:
            raise AuthError("wrong e-mail or password")
        if _hasher.check_needs_rehash(row.password_hash):
            self.set_password(email, password)

    def remove(self, email: str) -> None:
        """Forget a technician's password and every token (when they leave the registry)."""
        with self._sessions.begin() as db:
            db.execute(delete(TechCredential).where(TechCredential.email == email.lower()))
            db.execute(update(AuthToken).where(AuthToken.email == email.lower(), AuthToken.revoked_at.is_(None))
                       .values(revoked_at=utcnow()))

    # -- refresh tokens and login links ---------------------------------------------------------
    def issue(self, kind: str, email: str, ttl: timedelta, *, family: str | None = None) -> tuple[str, datetime]:
        token = secrets.token_urlsafe(32)
        expires = utcnow() + ttl
        with self._sessions.begin() as db:
            db.add(AuthToken(id=new_id("at"), kind=kind, email=email.lower(), token_hash=digest(token),
                             family=family or new_id("fam"), expires_at=expires))
        return token, expires

    def spend(self, kind: str, token: str) -> AuthToken:
        """Use a token once. A refresh token presented twice revokes its whole family (stolen token)."""
        now = utcnow()
        with self._sessions.begin() as db:
            row = db.scalars(select(AuthToken).where(AuthToken.token_hash == digest(token),
                                                     AuthToken.kind == kind)).first()
            if row is None:
                raise AuthError(f"unknown {kind.replace('_', ' ')}")
            if row.revoked_at is not None:
                raise AuthError(f"this {kind.replace('_', ' ')} was revoked; log in again")
            if row.expires_at <= now:
                raise AuthError(f"this {kind.replace('_', ' ')} has expired; log in again")
            spent = cast("CursorResult[Any]", db.execute(
                update(AuthToken).where(AuthToken.id == row.id, AuthToken.used_at.is_(None)).values(used_at=now)))
            if spent.rowcount != 1:
                db.execute(update(AuthToken).where(AuthToken.family == row.family, AuthToken.revoked_at.is_(None))
                           .values(revoked_at=now))
                reused = True
            else:
                reused = False
        if reused:
            raise AuthError(f"this {kind.replace('_', ' ')} was already used; every session of that login "
                            "is now revoked, log in again")
        return row

    def revoke_all(self, email: str) -> int:
        with self._sessions.begin() as db:
            result = cast("CursorResult[Any]", db.execute(
                update(AuthToken).where(AuthToken.email == email.lower(), AuthToken.revoked_at.is_(None))
                .values(revoked_at=utcnow())))
        return int(result.rowcount)

    def has_password(self, email: str) -> bool:
        with self._sessions() as db:
            return db.get(TechCredential, email.lower()) is not None
