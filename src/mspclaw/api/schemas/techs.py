"""Technicians of the registry and their one-time login links."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


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


class TechIn(BaseModel):
    """A technician to add to the roster (validated as `mspclaw tech import` validates a techs.yaml)."""

    name: str = Field(min_length=1, max_length=200)
    email: str = Field(min_length=3, max_length=255)
    role: Literal["admin", "tech", "viewer"] = "tech"
    clients: list[str] = Field(min_length=1, max_length=500, description="Client names or ids; '*' is every client.")
    on_duty: list[str] = Field(default_factory=list, max_length=50, description="Shifts like 'mon-fri 08:00-18:00'.")
    timezone: str = Field("UTC", max_length=100)
    slack_id: str | None = Field(None, max_length=50)
    teams_id: str | None = Field(None, max_length=255)


class TechChange(BaseModel):
    """What to change of a technician; what is left out stays. The e-mail never changes."""

    name: str | None = Field(None, min_length=1, max_length=200)
    role: Literal["admin", "tech", "viewer"] | None = None
    clients: list[str] | None = Field(None, min_length=1, max_length=500)
    on_duty: list[str] | None = Field(None, max_length=50)
    timezone: str | None = Field(None, max_length=100)
    slack_id: str | None = Field(None, max_length=50)
    teams_id: str | None = Field(None, max_length=255)


class SecondFactorReset(BaseModel):
    email: str
    had_one: bool
