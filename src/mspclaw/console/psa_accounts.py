"""PSA accounts: add, test the credentials, enable or disable, applied without a server restart."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
