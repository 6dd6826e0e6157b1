"""Outcomes per playbook, client or model, and the resolution rate per day."""

from __future__ import annotations

from pydantic import BaseModel


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
