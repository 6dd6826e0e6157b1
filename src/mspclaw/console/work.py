"""The technicians' daily work beyond one ticket: escalations (take, hand over, close), the audit trail with its chain's status, stats with charts."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
