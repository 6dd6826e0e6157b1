"""One audit event, made before it is written, so a decision can be taken in both colours.

A service whose decision may come from a worker thread (a synchronous API route) or from the event
loop (the session socket, the ticket pipeline) computes the decision once and gets back the event
to write: :meth:`AuditEntry.append` on a thread, ``await`` :meth:`AuditEntry.record` on the loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mspclaw.store.audit import AuditLog


@dataclass(frozen=True)
class AuditEntry:
    kind: str
    actor: str = "system"
    client_id: str | None = None
    session_id: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    def append(self, audit: AuditLog) -> None:
        """Write it from a thread that runs no event loop (blocks until it is durable)."""
        audit.append(self.kind, actor=self.actor, client_id=self.client_id, session_id=self.session_id,
                     data=self.data)

    async def record(self, audit: AuditLog) -> None:
        """Write it from the event loop (the loop runs while it is made durable)."""
        await audit.record(self.kind, actor=self.actor, client_id=self.client_id, session_id=self.session_id,
                           data=self.data)
