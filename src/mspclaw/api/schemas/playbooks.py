"""Playbooks as the MSP writes them: listed, read, saved, matched against a ticket, dry-run."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from mspclaw.playbooks.canonical import MAX_FILE_BYTES


class PlaybookListed(BaseModel):
    id: str
    name: str
    category: str
    os: list[str]
    version: str
    library: bool = Field(description="Shipped with MSPclaw: read-only (save a copy under another id).")
    own: bool = Field(description="In one of the MSP's playbook directories (MSPCLAW_PLAYBOOK_DIRS).")
    file: str
    loaded: bool = Field(description="Loaded by the running server: matched against tickets now.")
    refused: str = Field("", description="Why the server does not trust the file (unsigned, altered since it was "
                         "signed, revoked, or signed by a key not trusted) and the command that fixes it; under "
                         "MSPCLAW_PLAYBOOK_TRUST=enforce such a file is not loaded. Empty: trusted, or not checked.")


class PlaybookOut(BaseModel):
    id: str
    library: bool
    file: str
    loaded: bool
    yaml: str = Field(description="The file's text, comments included.")
    parsed: dict[str, Any] | None = Field(description="The playbook as the loader reads it; null with problems.")
    problems: list[str] = Field(description="What `mspclaw playbooks validate` says of the file (FILE:LINE: FIELD: "
                                            "MESSAGE); empty when it loads.")


class PlaybookIn(BaseModel):
    yaml: str = Field(min_length=1, max_length=MAX_FILE_BYTES,
                      description="The whole playbook file as YAML; its `id` must be the path's.")


class PlaybookSaved(BaseModel):
    id: str
    version: str
    file: str
    created: bool = Field(description="A new file (otherwise the existing one was replaced).")
    signed: bool
    note: str = Field(description="Why the file could not be signed with the MSP's key, or empty.")


class MatchIn(BaseModel):
    subject: str = Field("", max_length=500)
    body: str = Field("", max_length=4000)
    os: Literal["linux", "macos", "windows"] | None = Field(None, description="The ticket's device OS, if known.")


class MatchOut(BaseModel):
    matched: bool = Field(description="The ticket would get this playbook.")
    playbook: str | None = Field(description="The playbook the ticket would get among those loaded (none: null).")
    score: float
    confidence: float
    why: str


class DryRunIn(BaseModel):
    snapshot: str = Field("", max_length=20, description="A recorded device by OS (linux, macos, windows); "
                                                          "default: the playbook's first OS.")
    site: str = Field("", max_length=40, description="A recorded site by identity system, or empty for none.")


class DryStepOut(BaseModel):
    title: str
    tool: str
    args: dict[str, Any]
    result: Literal["ok", "failed", "skipped"]
    summary: str
    error: str | None
    approval: bool = Field(description="A technician's approval would be asked before it runs.")


class DryRunOut(BaseModel):
    snapshot: str
    site: str
    outcome: str
    reason: str
    reply: str = Field(description="What the end user would be told.")
    steps: list[DryStepOut]
    questions: list[str]
    problems: list[str]
