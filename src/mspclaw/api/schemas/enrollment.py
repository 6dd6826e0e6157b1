"""Enrollment codes (issued by a technician) and the agent's enrollment with one."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class EnrollmentIn(BaseModel):
    client: str = Field(description="Client id or exact name.")
    role: Literal["device", "site"] = "device"
    ttl_hours: float = Field(24.0, gt=0, le=24 * 30)


class EnrollmentOut(BaseModel):
    id: str = Field("", description="The code's id: lists and revokes it.")
    code: str = Field(description="Single-use; give it to `mspclaw agent --enroll`.")
    client_id: str
    role: str
    expires_at: datetime


class EnrollmentCodeOut(BaseModel):
    """An enrollment code that can still be spent: never the code itself (only its digest is stored)."""

    id: str
    client_id: str
    role: str
    expires_at: datetime
    created_at: datetime


class EnrollRequest(BaseModel):
    code: str = Field(min_length=1, max_length=200)
    hostname: str = Field(min_length=1, max_length=255)
    os: Literal["linux", "macos", "windows"]
    os_version: str = Field("", max_length=200)
    agent_version: str = Field("", max_length=50)
    tools: list[str] = Field(default_factory=list, max_length=500)


class EnrollResponse(BaseModel):
    agent_id: str
    client_id: str
    role: str
    credential: str
    server_key: str
    approval_key: str = Field("", description="The server's Ed25519 public key (hex) that signs approvals.")
    agent_url: str = Field(description="Where the agent opens its WebSocket: ws(s)://host:port/ws/agent.")
