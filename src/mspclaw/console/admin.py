"""Administration: clients, agents and enrollment codes, technicians and API keys."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
