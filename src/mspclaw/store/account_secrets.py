"""The PSA accounts' secrets as a whole: encrypting rows written in clear, re-encrypting on key rotation.

:class:`~mspclaw.store.jobs.PSAAccounts` seals and opens one account at a time; this works on all of
them in one transaction, and decrypts every row before it writes any, so a missing or wrong key
raises :class:`~mspclaw.store.secretbox.SecretKeyError` with nothing changed.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Connection, Table, select, update
from sqlalchemy.exc import SQLAlchemyError

from mspclaw.errors import StoreError
from mspclaw.store.database import Database
from mspclaw.store.jobs import PSAAccount, PSAAccounts, account_context
from mspclaw.store.secretbox import SEALED, SecretBox, is_sealed, open_map, seal_map
from mspclaw.store.tables import PSAAccountRow

_ACCOUNTS = cast("Table", PSAAccountRow.__table__)


class AccountSecrets:
    """Encrypts, re-encrypts and counts the stored secrets of every PSA account."""

    def __init__(self, db: Database, box: SecretBox) -> None:
        self._db, self._box = db, box

    def _opened(self, conn: Connection) -> list[tuple[str, bool, dict[str, Any]]]:
        """Every account's (id, whether stored in clear, secrets in clear): all decrypted before any write."""
        rows = conn.execute(select(_ACCOUNTS.c.id, _ACCOUNTS.c.secrets)).all()
        return [(row.id, not is_sealed(row.secrets or {}),
                 open_map(self._box, row.secrets or {}, context=account_context(row.id))) for row in rows]

    def _write(self, what: str, *, only_clear: bool) -> int:
        try:
            with self._db.transaction(immediate=True) as conn:
                todo = [(i, secrets) for i, clear, secrets in self._opened(conn) if clear or not only_clear]
                for account_id, secrets in todo:
                    conn.execute(update(_ACCOUNTS).where(_ACCOUNTS.c.id == account_id).values(
                        secrets=seal_map(self._box, secrets, context=account_context(account_id))))
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot {what}: {exc}") from exc
        return len(todo)

    def seal_plaintext(self) -> int:
        """Encrypt the secrets of accounts stored in clear (written before secrets were encrypted); how many."""
        return self._write("encrypt PSA account secrets", only_clear=True)

    def reencrypt(self) -> int:
        """Encrypt every account's secrets again under the box's current key, in one transaction; how many."""
        return self._write("re-encrypt PSA account secrets", only_clear=False)

    def seal_and_list(self) -> list[PSAAccount]:
        """At start: encrypt the accounts stored in clear, then every account with its secrets opened."""
        self.seal_plaintext()
        return PSAAccounts(self._db, self._box).list()

    def key_ids(self) -> dict[str, int]:
        """How many accounts are sealed under each key id (``"plaintext"``: stored in clear)."""
        try:
            with self._db.engine.connect() as conn:
                stored = conn.execute(select(_ACCOUNTS.c.secrets)).scalars().all()
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read PSA accounts: {exc}") from exc
        counts: dict[str, int] = {}
        for value in stored:
            sealed = (value or {}).get(SEALED)
            kid = SecretBox.key_id_of(sealed) if isinstance(sealed, str) and SecretBox.is_ciphertext(sealed) \
                else "plaintext"
            counts[kid] = counts.get(kid, 0) + 1
        return counts
