"""The end user's answer to "did it work?"."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class FeedbackIn(BaseModel):
    answer: Literal["yes", "no", "partial"]
    comment: str = Field("", max_length=2000)
    answered_by: str = Field("end user", max_length=255, description="Who gave the answer (recorded).")


class FeedbackOut(BaseModel):
    id: str
    ticket_id: str
    client_id: str
    status: str
    channel: str
    comment: str
    resolved_at: datetime
    deadline: datetime
    answered_by: str | None
    answered_at: datetime | None
