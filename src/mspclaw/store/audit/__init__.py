"""The append-only, hash-chained audit trail.

Each event is stored twice: as a row of ``audit_events`` and as one line of
``<audit_dir>/YYYY-MM-DD.jsonl`` (the UTC day of its timestamp), chained to the event before it by
hash so that tampering is detectable. The rooms:

* :mod:`.chain`: the pure chain: canonical JSON, sealing events into records, hashing,
  verification of lines against rows and against the newest checkpoint. No I/O.
* :mod:`.files`: the day files: appending a batch's lines, undoing them, syncing, reading back.
* :mod:`.batcher`: group commit: concurrent callers' events written in batches, one writer at a
  time, for threads and for coroutines.
* :mod:`.log`: :class:`AuditLog`, the facade the rest of the server uses (``append`` from threads,
  ``await record`` from coroutines, ``query``, ``verify``, ``seal``, ``close``).
"""

from mspclaw.store.audit.chain import GENESIS_HASH, AuditRecord, VerifyReport, canonical_json, chain_hash
from mspclaw.store.audit.log import BLOCKING_ON_LOOP, PG_LOCK_KEY, AuditLog

__all__ = [
    "BLOCKING_ON_LOOP",
    "GENESIS_HASH",
    "PG_LOCK_KEY",
    "AuditLog",
    "AuditRecord",
    "VerifyReport",
    "canonical_json",
    "chain_hash",
]
