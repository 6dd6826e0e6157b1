"""Technicians of the registry and their one-time login links."""

from __future__ import annotations

from pydantic import BaseModel


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
