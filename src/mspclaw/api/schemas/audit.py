"""Events of the audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class AuditOut(BaseModel):
    seq: int
    ts: datetime
    kind: str
    actor: str
    client_id: str | None
    session_id: str | None
    data: dict[str, Any]
    hash: str
