"""Request and response bodies of the REST API (they make the OpenAPI document at /docs)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, computed_field

from mspclaw.pipeline.approval_view import ApprovalFacts, approval_facts
from mspclaw.protocol.limits import (
    ANSWER_MAX,
    APPROVER_MAX,
    BODY_MAX,
    CLIENT_REF_MAX,
    DEVICE_MAX,
    REASON_MAX,
    REQUESTER_MAX,
    SUBJECT_MAX,
)


class ErrorBody(BaseModel):
    code: str
    message: str


class ClientIn(BaseModel):
    name: str = Field(min_length=1, max_length=200, examples=["Acme Dental"])
    psa_refs: dict[str, str] = Field(default_factory=dict, examples=[{"superops": "4521"}])


class ClientOut(BaseModel):
    id: str
    name: str
    psa_refs: dict[str, Any]
    created_at: datetime


class EnrollmentIn(BaseModel):
    client: str = Field(description="Client id or exact name.")
    role: Literal["device", "site"] = "device"
    ttl_hours: float = Field(24.0, gt=0, le=24 * 30)


class EnrollmentOut(BaseModel):
    code: str = Field(description="Single-use; give it to `mspclaw agent --enroll`.")
    client_id: str
    role: str
    expires_at: datetime


class EnrollRequest(BaseModel):
    code: str = Field(min_length=1, max_length=200)
    hostname: str = Field(min_length=1, max_length=255)
    os: Literal["linux", "macos", "windows"]
    os_version: str = Field("", max_length=200)
    agent_version: str = Field("", max_length=50)
    tools: list[str] = Field(default_factory=list, max_length=500)


class EnrollResponse(BaseModel):
    agent_id: str
    client_id: str
    role: str
    credential: str
    server_key: str
    approval_key: str = Field("", description="The server's Ed25519 public key (hex) that signs approvals.")
    agent_url: str = Field(description="Where the agent opens its WebSocket: ws(s)://host:port/ws/agent.")


class AgentOut(BaseModel):
    id: str
    client_id: str
    role: str
    hostname: str
    os: str
    os_version: str
    agent_version: str
    tools: list[Any]
    online: bool
    revoked: bool
    last_seen_at: datetime | None


class LookupOut(BaseModel):
    client_id: str
    device_id: str | None
    hostname: str | None
    agent_id: str | None
    online: bool
    reason: str
    site_agent_id: str | None = Field(None, description="The client's site agent that runs account and directory "
                                      "tools (password, lockout, MFA, joiners, leavers, access): those tickets "
                                      "need no device.")
    site_hostname: str | None = None
    site_reason: str = ""


class TicketIn(BaseModel):
    """A ticket's fields have the same limits here, on the session socket and (clipped) from a PSA."""

    client: str = Field(max_length=CLIENT_REF_MAX, description="Client id or exact name.")
    subject: str = Field(min_length=1, max_length=SUBJECT_MAX)
    body: str = Field("", max_length=BODY_MAX)
    requester: str = Field("", max_length=REQUESTER_MAX)
    device: str | None = Field(None, max_length=DEVICE_MAX,
                               description="Device id or host name; default: routed (DESIGN section 3).")


class TicketCreated(BaseModel):
    ticket_id: str
    session_id: str
    status: str


class StepOut(BaseModel):
    index: int
    title: str
    tool: str | None
    ok: bool | None
    summary: str
    args: dict[str, Any]
    observation: dict[str, Any]


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


class TicketOut(BaseModel):
    id: str
    client_id: str
    psa: str | None
    external_id: str | None
    subject: str
    body: str
    requester: str
    device_id: str | None
    status: str
    session_id: str | None
    playbook: str | None
    outcome: str | None
    reason: str | None
    note: str | None
    reply: str | None
    steps: list[StepOut]
    approvals: list[ApprovalOut]
    created_at: datetime
    updated_at: datetime
    model: str = Field("playbook", description="The model (chain) that worked the ticket.")
    prompt_tokens: int = 0
    completion_tokens: int = 0


class DecisionIn(BaseModel):
    approver: str = Field("", max_length=APPROVER_MAX,
                          description="The registered technician deciding (name or e-mail); "
                          "a logged-in technician decides as themselves and may leave it empty.")
    reason: str = Field("", max_length=REASON_MAX)


class JobOut(BaseModel):
    id: str
    kind: str
    payload: dict[str, Any]
    status: str
    attempts: int
    max_attempts: int
    run_after: datetime
    worker: str | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime


class QuestionOut(BaseModel):
    id: str
    session_id: str
    client_id: str
    text: str
    choices: list[str] | None
    channel: str
    status: str
    answer: str | None
    answered_by: str | None
    deadline: datetime
    created_at: datetime


class AnswerIn(BaseModel):
    answer: str = Field(min_length=1, max_length=ANSWER_MAX, description="The end user's answer, as they gave it.")
    by: str = Field("end user", min_length=1, max_length=255, description="Who relayed the answer (audited).")


class ErrorOut(BaseModel):
    """Every error answer of the API, 422 included (``api/app.py``'s exception handlers)."""

    detail: ErrorBody
