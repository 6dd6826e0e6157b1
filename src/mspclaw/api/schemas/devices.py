"""Devices and what MSPclaw remembers about each (device memory)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


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
