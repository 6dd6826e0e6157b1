"""Request and response bodies of the operator routes: logins, keys, technicians, devices, escalations, feedback."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class LoginIn(BaseModel):
    email: str = Field(min_length=3, max_length=255)
    password: str = Field(min_length=1, max_length=1024)


class RefreshIn(BaseModel):
    refresh_token: str = Field(min_length=10, max_length=200)


class TokensOut(BaseModel):
    access_token: str = Field(description="A JWT for `Authorization: Bearer`; short-lived.")
    refresh_token: str = Field(description="Single use: trade it at /auth/refresh for a new pair.")
    expires_in: int
    token_type: str = "bearer"  # noqa: S105 (the OAuth token type, not a secret)


class MeOut(BaseModel):
    name: str
    kind: str
    role: str
    email: str | None
    clients: list[str] | None = Field(description="Client ids this caller sees; null is every client.")


class FactOut(BaseModel):
    key: str
    value: str
    source: str
    updated_at: datetime


class DeviceOut(BaseModel):
    id: str
    client_id: str
    hostname: str
    os: str
    agent_id: str | None
    primary_user: str | None
    facts: int


class DeviceDetail(DeviceOut):
    known: list[FactOut]


class ForgetOut(BaseModel):
    device_id: str
    forgotten: list[str]


class StatsRowOut(BaseModel):
    key: str
    tickets: int
    confirmed: int
    partial: int
    failed: int
    unconfirmed: int
    escalated: int
    open: int
    median_ttr_s: float | None
    tokens: int
    cost_usd: float


class DailyOut(BaseModel):
    day: str
    tickets: int
    resolved_rate: float
    confirmed_rate: float


class StatsOut(BaseModel):
    by: str
    rows: list[StatsRowOut]
    total: StatsRowOut
    daily: list[DailyOut]


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


class AuditOut(BaseModel):
    seq: int
    ts: datetime
    kind: str
    actor: str
    client_id: str | None
    session_id: str | None
    data: dict[str, Any]
    hash: str


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


class TechOut(BaseModel):
    name: str
    email: str
    role: str
    slack_id: str | None
    teams_id: str | None
    clients: list[str]
    on_duty: list[str]
    timezone: str
    on_duty_now: bool
    has_password: bool


class LinkOut(BaseModel):
    url: str
    expires_in: int
