"""Client companies of the MSP."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class ClientIn(BaseModel):
    name: str = Field(min_length=1, max_length=200, examples=["Acme Dental"])
    psa_refs: dict[str, str] = Field(default_factory=dict, examples=[{"superops": "4521"}])


class ClientOut(BaseModel):
    id: str
    name: str
    psa_refs: dict[str, Any]
    created_at: datetime
