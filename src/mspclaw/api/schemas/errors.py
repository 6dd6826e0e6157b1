"""The body of every error answer (``api/app.py``'s exception handlers, documented by ``api/openapi.py``)."""

from __future__ import annotations

from pydantic import BaseModel


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    """Every error answer of the API, 422 included (``api/app.py``'s exception handlers)."""

    detail: ErrorBody
