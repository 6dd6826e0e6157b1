"""Named API keys: a role and clients, stored hashed, shown once."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class KeyIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    role: Literal["admin", "tech", "viewer"]
    clients: list[str] = Field(default_factory=list, description="Client ids or names.")
    all_clients: bool = False


class KeyOut(BaseModel):
    id: str
    name: str
    role: str
    all_clients: bool
    clients: list[str]
    created_by: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class KeyCreated(KeyOut):
    key: str = Field(description="Shown once; only its digest is stored.")
