"""Tickets opened by hand and what happened to them: steps, approvals, note and reply."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from mspclaw.api.schemas.approvals import ApprovalOut
from mspclaw.protocol.limits import BODY_MAX, CLIENT_REF_MAX, DEVICE_MAX, REQUESTER_MAX, SUBJECT_MAX


class TicketIn(BaseModel):
    """A ticket's fields have the same limits here, on the session socket and (clipped) from a PSA."""

    client: str = Field(max_length=CLIENT_REF_MAX, description="Client id or exact name.")
    subject: str = Field(min_length=1, max_length=SUBJECT_MAX)
    body: str = Field("", max_length=BODY_MAX)
    requester: str = Field("", max_length=REQUESTER_MAX)
    device: str | None = Field(None, max_length=DEVICE_MAX,
                               description="Device id or host name; default: routed (DESIGN section 3).")


class TicketCreated(BaseModel):
    ticket_id: str
    session_id: str
    status: str


class StepOut(BaseModel):
    index: int
    title: str
    tool: str | None
    ok: bool | None
    summary: str
    args: dict[str, Any]
    observation: dict[str, Any]


class TicketOut(BaseModel):
    id: str
    client_id: str
    psa: str | None
    external_id: str | None
    subject: str
    body: str
    requester: str
    device_id: str | None
    status: str
    session_id: str | None
    playbook: str | None
    outcome: str | None
    reason: str | None
    note: str | None
    reply: str | None
    steps: list[StepOut]
    approvals: list[ApprovalOut]
    created_at: datetime
    updated_at: datetime
    model: str = Field("playbook", description="The model (chain) that worked the ticket.")
    prompt_tokens: int = 0
    completion_tokens: int = 0
