"""Escalations in the console: the list, take one, hand it over to another technician, close it; the questions
waiting for an answer a technician can relay."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
