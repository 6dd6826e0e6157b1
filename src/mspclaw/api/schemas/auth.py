"""Logins, token pairs and who the caller is."""

from __future__ import annotations

from pydantic import BaseModel, Field


class LoginIn(BaseModel):
    email: str = Field(min_length=3, max_length=255)
    password: str = Field(min_length=1, max_length=1024)


class RefreshIn(BaseModel):
    refresh_token: str = Field(min_length=10, max_length=200)


class TokensOut(BaseModel):
    access_token: str = Field(description="A JWT for `Authorization: Bearer`; short-lived.")
    refresh_token: str = Field(description="Single use: trade it at /auth/refresh for a new pair.")
    expires_in: int
    token_type: str = "bearer"  # noqa: S105 (the OAuth token type, not a secret)


class MeOut(BaseModel):
    name: str
    kind: str
    role: str
    email: str | None
    clients: list[str] | None = Field(description="Client ids this caller sees; null is every client.")
