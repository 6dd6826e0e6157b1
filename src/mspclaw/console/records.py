"""What the console shows across tickets: the audit trail with filters and the chain's status, stats with
charts per client and playbook, devices and what MSPclaw remembers about them."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
