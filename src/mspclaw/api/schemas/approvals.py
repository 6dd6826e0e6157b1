"""Approvals of destructive steps and a technician's decision."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, computed_field

from mspclaw.pipeline.approval_view import ApprovalFacts, approval_facts
from mspclaw.protocol.limits import APPROVER_MAX, REASON_MAX


class ApprovalOut(BaseModel):
    id: str
    session_id: str
    client_id: str
    tool: str
    args: dict[str, Any]
    target: str
    reason: str = Field(description="The server's verification sentence, then the latest finding and the "
                        "assistant's note, each labelled; the assistant's note is unverified model text.")
    status: str
    approver: str | None
    decision_reason: str | None
    deadline: datetime
    created_at: datetime
    decided_at: datetime | None

    @computed_field(  # type: ignore[prop-decorator]
        description="What the server states about this call: tool, catalogue description, the "
                    "effect of these exact arguments, each argument's meaning, where it runs, and how the "
                    "requester was verified. Nothing in it comes from the model.")
    @property
    def facts(self) -> ApprovalFacts:
        return approval_facts(self.tool, self.args, self.target)


class DecisionIn(BaseModel):
    approver: str = Field("", max_length=APPROVER_MAX,
                          description="The registered technician deciding (name or e-mail); "
                          "a logged-in technician decides as themselves and may leave it empty.")
    reason: str = Field("", max_length=REASON_MAX)
