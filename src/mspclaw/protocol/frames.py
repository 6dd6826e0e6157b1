"""Every frame of the agent and session channels, as pydantic models in ``kind``-tagged unions.

The agent channel (``/ws/agent``) carries :data:`AgentFrame`; the session channel
(``/ws/sessions``) carries :data:`SessionFrame`. Both are JSON text frames. Field names
follow DESIGN section 4 and are part of the public surface.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from mspclaw.protocol.limits import (
    ANSWER_MAX,
    APPROVER_MAX,
    BODY_MAX,
    CLIENT_REF_MAX,
    DEVICE_MAX,
    ID_MAX,
    REASON_MAX,
    REQUESTER_MAX,
    SEQ_MAX,
    SUBJECT_MAX,
)

PROTOCOL_VERSION = 1
"""Bumped on any change an older peer could not read. ``hello`` carries it."""

MAX_FRAME_BYTES = 1024 * 1024
"""Frames over this many bytes are refused before they are parsed."""

Role = Literal["device", "site"]
OSName = Literal["linux", "macos", "windows"]


class _Frame(BaseModel):
    """Frames are decoded from JSON text, so ``Any`` fields hold JSON values by construction; they
    are not re-checked value by value, which is the hot path of every tool call."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --- agent channel -----------------------------------------------------------------------------


class Hello(_Frame):
    """First frame an agent sends after the upgrade."""

    kind: Literal["hello"] = "hello"
    protocol: int
    agent_id: str
    client_id: str
    role: Role
    hostname: str
    os: OSName
    os_version: str = ""
    agent_version: str = Field("", max_length=50)
    """The agent's ``mspclaw --version``; optional, so a hello from an agent that predates it still decodes."""
    tools: list[str] = Field(default_factory=list)


class Welcome(_Frame):
    """The server's answer to a valid ``hello``."""

    kind: Literal["welcome"] = "welcome"
    protocol: int = PROTOCOL_VERSION
    heartbeat_interval: float
    server_time: float


class Approval(_Frame):
    """A technician's decision that lets one destructive call run.

    It is bound to the exact tool, arguments (``args_sha256`` of their canonical JSON), agent and
    expiry, and signed by the server with Ed25519 (``signature``, hex); the agent verifies it with
    the public key it pinned at enrollment and refuses anything else (``protocol/signing.py``).
    """

    approval_id: str
    approver: str
    decided_at: float
    tool: str = ""
    args_sha256: str = ""
    agent_id: str = ""
    expires_at: float = 0.0
    signature: str = ""


class ToolCall(_Frame):
    """Run one tool. ``call_id`` is the idempotency key; ``deadline`` is a Unix time."""

    kind: Literal["tool_call"] = "tool_call"
    call_id: str
    tool: str
    args: dict[str, Any] = Field(default_factory=dict)
    deadline: float
    approval: Approval | None = None
    signature: str = ""


class ErrorInfo(_Frame):
    code: str
    message: str


class Secret(_Frame):
    """A temporary password or access pass meant for one person's eyes only.

    A site tool that sets one returns it beside its result, never inside the output: the agent's
    journal, the server's step records, notes, audit and logs only ever see the output. The server
    hands it straight on to the user (:class:`ShowSecret` on their own device, or a view-once link)
    and keeps no copy. ``repr`` hides the value.
    """

    type: Literal["temporary_password", "temporary_access_pass"]
    account: str = Field(max_length=256)
    """The account it opens (UPN or sAMAccountName), shown with it so the user knows which one."""
    value: str = Field(min_length=1, max_length=256, repr=False)
    expires_at: float | None = None
    must_change: bool = True


class ToolResult(_Frame):
    kind: Literal["tool_result"] = "tool_result"
    call_id: str
    ok: bool
    output: Any = None
    error: ErrorInfo | None = None
    duration_ms: int = 0
    replayed: bool = False
    secret: Secret | None = Field(None, repr=False)
    """For the user only: see :class:`Secret`. Never journaled; absent on a replayed result."""


class AskUser(_Frame):
    kind: Literal["ask_user"] = "ask_user"
    question_id: str
    text: str
    choices: list[str] | None = None


class UserAnswer(_Frame):
    kind: Literal["user_answer"] = "user_answer"
    question_id: str
    answer: str


class NotifyUser(_Frame):
    kind: Literal["notify_user"] = "notify_user"
    text: str


class ShowSecret(_Frame):
    """Show a :class:`Secret` to the user on this device (a dialog they dismiss); answered by :class:`SecretShown`."""

    kind: Literal["show_secret"] = "show_secret"
    delivery_id: str = Field(max_length=64)
    text: str = Field(max_length=2000)
    secret: Secret = Field(repr=False)


class SecretShown(_Frame):
    """Whether the device could show the secret (``False``: no desktop session, dismissed unseen)."""

    kind: Literal["secret_shown"] = "secret_shown"
    delivery_id: str = Field(max_length=64)
    shown: bool


class Ping(_Frame):
    kind: Literal["ping"] = "ping"
    seq: int


class Pong(_Frame):
    kind: Literal["pong"] = "pong"
    seq: int


class Error(_Frame):
    """A protocol-level complaint. ``ref`` names the call or question it is about, if any."""

    kind: Literal["error"] = "error"
    code: str
    message: str
    ref: str | None = None


AgentFrame = Annotated[
    Hello | Welcome | ToolCall | ToolResult | AskUser | UserAnswer | NotifyUser | ShowSecret | SecretShown
    | Ping | Pong | Error,
    Field(discriminator="kind"),
]

# --- session channel ---------------------------------------------------------------------------


class Start(_Frame):
    """Open a ticket from a chat front end or bridge and follow its session."""

    kind: Literal["start"] = "start"
    client_id: str = Field(max_length=CLIENT_REF_MAX)
    subject: str = Field(min_length=1, max_length=SUBJECT_MAX)
    body: str = Field("", max_length=BODY_MAX)
    requester: str = Field("", max_length=REQUESTER_MAX)
    device: str | None = Field(None, max_length=DEVICE_MAX)


class Watch(_Frame):
    """Follow an existing session from after event ``after_seq`` (0 = from the start)."""

    kind: Literal["watch"] = "watch"
    session_id: str = Field(max_length=ID_MAX)
    after_seq: int = Field(0, ge=0, le=SEQ_MAX)


class Decide(_Frame):
    """Approve or deny a pending approval from the socket."""

    kind: Literal["decide"] = "decide"
    approval_id: str = Field(max_length=ID_MAX)
    approve: bool
    approver: str = Field(max_length=APPROVER_MAX)
    reason: str = Field("", max_length=REASON_MAX)


class Answer(_Frame):
    kind: Literal["answer"] = "answer"
    question_id: str = Field(max_length=ID_MAX)
    answer: str = Field(min_length=1, max_length=ANSWER_MAX)


class Event(_Frame):
    """One event of a session, in order. ``event`` is one of :data:`SESSION_EVENTS`."""

    kind: Literal["event"] = "event"
    session_id: str
    seq: int
    event: str
    data: dict[str, JsonValue] = Field(default_factory=dict)


SESSION_EVENTS = (
    "started",
    "resumed",
    "matched",
    "step",
    "approval_request",
    "approval_decision",
    "question",
    "final_answer",
    "escalation",
    "error",
)

SessionFrame = Annotated[
    Start | Watch | Decide | Answer | Event | Error | Ping | Pong,
    Field(discriminator="kind"),
]
