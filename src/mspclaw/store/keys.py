"""Named API keys: stored as digests, scoped to a role and clients, revocable.

A key reads ``mck_<id>_<secret>``: the id finds the row, the secret is compared in constant
time against its SHA-256 digest. The secret is shown once, when the key is created.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from mspclaw.errors import AuthError, Conflict, NotFound
from mspclaw.store.database import Database
from mspclaw.store.registry import digest
from mspclaw.store.tables import ApiKeyRow, new_id, utcnow

KEY_PREFIX = "mck_"
ROLES = ("admin", "tech", "viewer")
_TOUCH_EVERY = timedelta(minutes=1)


class ApiKeys:
    def __init__(self, db: Database) -> None:
        self._sessions = db.sessions

    def create(self, name: str, *, role: str, clients: Sequence[str], all_clients: bool,
               created_by: str) -> tuple[ApiKeyRow, str]:
        """Create a key; returns the row and the full key, which is never stored or shown again."""
        name = name.strip()
        if not name:
            raise Conflict("an API key needs a name, e.g. 'psa-bridge'")
        if role not in ROLES:
            raise Conflict(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        if all_clients and clients:
            raise Conflict("give either clients or all_clients, not both")
        if not all_clients and not clients:
            raise Conflict("a key needs at least one client, or all_clients")
        key_id = new_id("key").removeprefix("key_")
        secret = secrets.token_urlsafe(32)
        row = ApiKeyRow(id=key_id, name=name, secret_hash=digest(secret), role=role, all_clients=all_clients,
                        clients=sorted(set(clients)), created_by=created_by)
        try:
            with self._sessions.begin() as db:
                db.add(row)
        except IntegrityError as exc:
            raise Conflict(f"an API key named {name!r} already exists; revoke it or pick another name") from exc
        return row, f"{KEY_PREFIX}{key_id}_{secret}"

    def authenticate(self, token: str) -> ApiKeyRow:
        """The live key this token is; :class:`AuthError` if unknown, wrong or revoked."""
        key_id, sep, secret = token.removeprefix(KEY_PREFIX).partition("_")
        with self._sessions() as db:
            row = db.get(ApiKeyRow, key_id) if sep and key_id and secret else None
        if row is None or not hmac.compare_digest(row.secret_hash, digest(secret)):
            raise AuthError("unknown or wrong API key")
        if row.revoked_at is not None:
            raise AuthError(f"API key {row.name!r} was revoked")
        now = utcnow()
        if row.last_used_at is None or now - row.last_used_at > _TOUCH_EVERY:
            with self._sessions.begin() as db:
                db.execute(update(ApiKeyRow).where(ApiKeyRow.id == row.id).values(last_used_at=now))
        return row

    def list(self) -> list[ApiKeyRow]:
        with self._sessions() as db:
            return list(db.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at)))

    def get(self, ref: str) -> ApiKeyRow:
        with self._sessions() as db:
            row = db.scalars(select(ApiKeyRow).where((ApiKeyRow.id == ref) | (ApiKeyRow.name == ref))).first()
        if row is None:
            raise NotFound(f"no API key {ref!r}; list them with `mspclaw keys list`")
        return row

    def revoke(self, ref: str) -> ApiKeyRow:
        row = self.get(ref)
        if row.revoked_at is not None:
            raise Conflict(f"API key {row.name!r} is already revoked")
        with self._sessions.begin() as db:
            db.execute(update(ApiKeyRow).where(ApiKeyRow.id == row.id).values(revoked_at=utcnow()))
        return self.get(row.id)
