"""PSA accounts: what an admin sends to add one, and what is shown of one (never a secret)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from mspclaw.pipeline.psa_account_fields import MAX_FIELD_CHARS


class PSAAccountIn(BaseModel):
    name: str = Field(min_length=1, max_length=100, description="Ends the webhook URL: /webhooks/NAME.")
    kind: Literal["superops", "connectwise", "halo", "autotask", "freshdesk", "local"]
    fields: dict[str, Annotated[str, Field(max_length=MAX_FIELD_CHARS)]] = Field(
        default_factory=dict, max_length=20,
        description="The kind's settings and secrets by field name, as the console's form names them "
                    "(superops: subdomain, region, token, ...); see docs/psa.md.")
    poll_interval_s: float = Field(60.0, ge=0, le=86_400, description="Seconds between polls; 0 turns polling off.")
    enabled: bool = True


class CredentialTestOut(BaseModel):
    at: datetime
    ok: bool
    message: str = Field(description="What the PSA answered, in plain words.")


class PSAAccountOut(BaseModel):
    name: str
    kind: str
    enabled: bool
    config: dict[str, Any] = Field(description="Settings that are not secret; secrets are never returned.")
    created_at: datetime
    webhook_url: str = Field(description="Paste this into the PSA's webhook settings.")
    last_test: CredentialTestOut | None
