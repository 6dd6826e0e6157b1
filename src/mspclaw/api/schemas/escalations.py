"""Structured hand-offs to technicians and the Slack/Teams deliveries that announced them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from mspclaw.pipeline.escalation_handling import NOTE_MAX, RESOLUTION_MAX


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
    state: str = Field(description="open, taken, handed_over (held by whom it was handed to) or closed")
    held_by: str | None = Field(None, description="Who holds it: a technician's e-mail, or the API key that took it")
    held_by_name: str | None = None
    taken_at: datetime | None = Field(None, description="Since when its holder holds it")
    handed_over_by: str | None = None
    handed_over_at: datetime | None = None
    handover_note: str | None = None
    closed_by: str | None = None
    closed_at: datetime | None = None
    resolution: str | None = None


class HandOverIn(BaseModel):
    to: str = Field(min_length=1, max_length=320, description="The technician's e-mail or name; they must serve "
                                                              "the escalation's client")
    note: str = Field(min_length=1, max_length=NOTE_MAX, description="What they need to know to go on")


class CloseIn(BaseModel):
    resolution: str = Field(min_length=1, max_length=RESOLUTION_MAX,
                            description="How it was resolved; written to the PSA ticket as an internal note")


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
