"""What changes on a PSA account while the server runs: whether it is enabled, and how its last credential
test went. Its config and secrets are written once, by :class:`~mspclaw.store.jobs.PSAAccounts`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, select, update
from sqlalchemy.exc import SQLAlchemyError

from mspclaw.errors import NotFound, StoreError
from mspclaw.store.database import Database
from mspclaw.store.tables import PSAAccountRow

_ACCOUNTS = cast("Table", PSAAccountRow.__table__)

MAX_TEST_MESSAGE = 500
"""Characters kept of what the PSA answered to a credential test."""


@dataclass(frozen=True)
class CredentialTest:
    """The last credential test of an account: when, whether the PSA accepted it, its answer in plain words."""

    at: datetime
    ok: bool
    message: str


class PSAAccountStates:
    """Enable, disable and record credential tests of stored PSA accounts, by name."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def _update(self, name: str, action: str, **values: object) -> None:
        try:
            with self._db.engine.begin() as conn:
                result = conn.execute(update(_ACCOUNTS).where(_ACCOUNTS.c.name == name).values(**values))
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot {action}: {exc}") from exc
        if result.rowcount != 1:
            raise NotFound(f"no PSA account {name!r}; list them at /admin/psa or with `mspclaw psa list`")

    def set_enabled(self, name: str, enabled: bool) -> None:
        """Mark the account enabled or disabled; :class:`NotFound` if there is none of that name."""
        self._update(name, "enable or disable a PSA account", enabled=enabled)

    def record_test(self, name: str, test: CredentialTest) -> None:
        """Keep the outcome of a credential test (its message cut to :data:`MAX_TEST_MESSAGE` characters)."""
        if test.at.tzinfo is None:
            raise ValueError("a credential test's time must be timezone-aware")
        self._update(name, "record a PSA credential test", last_test_at=test.at, last_test_ok=test.ok,
                     last_test_message=test.message[:MAX_TEST_MESSAGE])

    def tests(self) -> dict[str, CredentialTest]:
        """The last credential test of every account that has had one, by account name."""
        columns = (_ACCOUNTS.c.name, _ACCOUNTS.c.last_test_at, _ACCOUNTS.c.last_test_ok,
                   _ACCOUNTS.c.last_test_message)
        try:
            with self._db.engine.connect() as conn:
                rows = conn.execute(select(*columns).where(_ACCOUNTS.c.last_test_at.is_not(None))).all()
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read PSA credential tests: {exc}") from exc
        return {row.name: CredentialTest(row.last_test_at, bool(row.last_test_ok), row.last_test_message or "")
                for row in rows}
