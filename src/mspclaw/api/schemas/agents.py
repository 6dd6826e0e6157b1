"""Enrolled agents, and which agents would act on a client's ticket."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class AgentOut(BaseModel):
    id: str
    client_id: str
    role: str
    hostname: str
    os: str
    os_version: str
    agent_version: str
    tools: list[Any]
    online: bool
    revoked: bool
    last_seen_at: datetime | None


class LookupOut(BaseModel):
    client_id: str
    device_id: str | None
    hostname: str | None
    agent_id: str | None
    online: bool
    reason: str
    site_agent_id: str | None = Field(None, description="The client's site agent that runs account and directory "
                                      "tools (password, lockout, MFA, joiners, leavers, access): those tickets "
                                      "need no device.")
    site_hostname: str | None = None
    site_reason: str = ""
