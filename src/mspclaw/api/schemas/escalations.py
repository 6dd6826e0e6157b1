"""Structured hand-offs to technicians and the Slack/Teams deliveries that announced them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class EscalationOut(BaseModel):
    id: str
    ticket_id: str
    session_id: str
    client_id: str
    kind: str
    reason: str
    body: dict[str, Any]
    assigned_to: str | None
    created_at: datetime


class NotificationOut(BaseModel):
    id: str
    client_id: str | None
    channel: str
    channel_kind: str
    subject: str
    ref_id: str
    recipient: str | None
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
