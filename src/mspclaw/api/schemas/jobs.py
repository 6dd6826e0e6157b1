"""Jobs of the durable intake queue."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class JobOut(BaseModel):
    id: str
    kind: str
    payload: dict[str, Any]
    status: str
    attempts: int
    max_attempts: int
    run_after: datetime
    worker: str | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
