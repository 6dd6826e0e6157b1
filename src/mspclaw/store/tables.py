"""SQLAlchemy tables. Rows are data only; behaviour lives in the repositories and services.

Every table that holds a client's data carries ``client_id`` so each query can be scoped
to the caller's clients. Times are timezone-aware UTC.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    """A short random id with a readable prefix (``cl_``, ``ag_``, ``tk_``...)."""
    return f"{prefix}_{secrets.token_hex(6)}"


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes; SQLite hands back naive ones, which are UTC by construction."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Client(Base):
    __tablename__ = "clients"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    psa_refs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Enrollment(Base):
    __tablename__ = "enrollments"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16), default="device")
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None] = mapped_column(default=None)
    agent_id: Mapped[str | None] = mapped_column(String(32), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Agent(Base):
    __tablename__ = "agents"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    hostname: Mapped[str] = mapped_column(String(255))
    os: Mapped[str] = mapped_column(String(16))
    os_version: Mapped[str] = mapped_column(String(200), default="")
    agent_version: Mapped[str] = mapped_column(String(50), default="")
    tools: Mapped[list[Any]] = mapped_column(default=list)
    credential_hash: Mapped[str] = mapped_column(String(64))
    signing_key: Mapped[str] = mapped_column(String(64))
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    last_seen_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Device(Base):
    __tablename__ = "devices"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id"), index=True)
    agent_id: Mapped[str | None] = mapped_column(ForeignKey("agents.id"), default=None, index=True)
    hostname: Mapped[str] = mapped_column(String(255))
    os: Mapped[str] = mapped_column(String(16))
    primary_user: Mapped[str | None] = mapped_column(String(255), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DeviceFact(Base):
    __tablename__ = "device_facts"
    __table_args__ = (UniqueConstraint("device_id", "key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    key: Mapped[str] = mapped_column(String(100))
    value: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (UniqueConstraint("psa", "external_id"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id"), index=True)
    psa: Mapped[str | None] = mapped_column(String(32), default=None)
    external_id: Mapped[str | None] = mapped_column(String(100), default=None)
    subject: Mapped[str] = mapped_column(String(500))
    body: Mapped[str] = mapped_column(Text, default="")
    requester: Mapped[str] = mapped_column(String(255), default="")
    requester_name: Mapped[str | None] = mapped_column(String(255), default=None)
    """The contact's name as the PSA holds it (the reply greets them by it); "" when the PSA gives none,
    None when not read (a ticket from the API, or one opened before this column)."""
    device_id: Mapped[str | None] = mapped_column(ForeignKey("devices.id"), default=None)
    status: Mapped[str] = mapped_column(String(32), default="new")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Session(Base):
    """One run of the engine on one ticket."""

    __tablename__ = "sessions"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    ticket_id: Mapped[str] = mapped_column(ForeignKey("tickets.id"), index=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id"), index=True)
    agent_id: Mapped[str | None] = mapped_column(String(32), default=None)
    playbook: Mapped[str | None] = mapped_column(String(100), default=None)
    model: Mapped[str] = mapped_column(String(100), default="playbook")
    status: Mapped[str] = mapped_column(String(32), default="running")
    outcome: Mapped[str | None] = mapped_column(String(32), default=None)
    note: Mapped[str | None] = mapped_column(Text, default=None)
    reply: Mapped[str | None] = mapped_column(Text, default=None)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SessionEvent(Base):
    __tablename__ = "session_events"
    __table_args__ = (UniqueConstraint("session_id", "seq"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    event: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Step(Base):
    __tablename__ = "steps"
    __table_args__ = (UniqueConstraint("session_id", "index"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(300), default="")
    tool: Mapped[str | None] = mapped_column(String(100), default=None)
    args: Mapped[dict[str, Any]] = mapped_column(default=dict)
    ok: Mapped[bool | None] = mapped_column(Boolean, default=None)
    observation: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ToolCallRow(Base):
    __tablename__ = "tool_calls"
    call_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    session_id: Mapped[str | None] = mapped_column(ForeignKey("sessions.id"), default=None, index=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id"), index=True)
    agent_id: Mapped[str] = mapped_column(String(32))
    tool: Mapped[str] = mapped_column(String(100))
    args: Mapped[dict[str, Any]] = mapped_column(default=dict)
    approval_id: Mapped[str | None] = mapped_column(String(32), default=None)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    output: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    error_code: Mapped[str | None] = mapped_column(String(50), default=None)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    duration_ms: Mapped[int | None] = mapped_column(Integer, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class ApprovalRow(Base):
    __tablename__ = "approvals"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id"), index=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id"), index=True)
    tool: Mapped[str] = mapped_column(String(100))
    args: Mapped[dict[str, Any]] = mapped_column(default=dict)
    target: Mapped[str] = mapped_column(String(255), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    approver: Mapped[str | None] = mapped_column(String(255), default=None)
    decision_reason: Mapped[str | None] = mapped_column(Text, default=None)
    deadline: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(default=None)
    call_id: Mapped[str | None] = mapped_column(String(40), default=None, index=True)
    """The tool call this approval is for: after a restart the same call finds its approval again."""


class AuditEvent(Base):
    """One line of the append-only audit trail; ``hash`` chains it to the line before."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_client_ts", "client_id", "ts"),)
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    ts: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(64), index=True)
    actor: Mapped[str] = mapped_column(String(255), default="system")
    client_id: Mapped[str | None] = mapped_column(String(32), default=None)
    session_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class JobRow(Base):
    """One unit of background work (a PSA ticket to process), claimed by one worker at a time.

    ``status`` is queued, running, done, dead or cancelled. A running job belongs to ``worker``
    until ``lease_until``; past it, any worker may take the job over. ``dedupe_key`` makes one
    event one job, however often it is delivered.
    """

    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(50), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True, default=None)
    client_id: Mapped[str | None] = mapped_column(String(32), default=None)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    run_after: Mapped[datetime] = mapped_column(index=True)
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    worker: Mapped[str | None] = mapped_column(String(100), default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class PSACursor(Base):
    """How far a poller has read a PSA account's tickets (``value``: its "since", as text)."""

    __tablename__ = "psa_cursors"
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class PSAAccountRow(Base):
    """A PSA account MSPclaw takes tickets from.

    ``config`` holds settings that are not secret (sub-domain, region, base URL, poll interval);
    ``secrets`` holds API tokens and webhook secrets. Secrets live only in this table: they never
    enter the audit trail, logs or the models' ``repr``.
    """

    __tablename__ = "psa_accounts"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    secrets: Mapped[dict[str, Any]] = mapped_column(default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_test_at: Mapped[datetime | None] = mapped_column(default=None)
    """When an admin last tested the credentials (``POST /api/psa-accounts/{name}/test``)."""
    last_test_ok: Mapped[bool | None] = mapped_column(Boolean, default=None)
    last_test_message: Mapped[str | None] = mapped_column(String(500), default=None)
    """What the PSA answered, in plain words (never a secret)."""


class ModelTurn(Base):
    """One answer of the model in a session, as it was given: replayed, not asked again, after a restart."""

    __tablename__ = "model_turns"
    __table_args__ = (UniqueConstraint("session_id", "seq"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    model: Mapped[str] = mapped_column(String(200), default="")
    response: Mapped[dict[str, Any]] = mapped_column(default=dict)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class QuestionRow(Base):
    """A question to the end user. ``status``: pending, answered, expired, or reused (a known answer)."""

    __tablename__ = "questions"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id"), index=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id"), index=True)
    call_id: Mapped[str | None] = mapped_column(String(40), default=None, unique=True)
    text: Mapped[str] = mapped_column(Text)
    choices: Mapped[list[Any] | None] = mapped_column(JSON, default=None)
    channel: Mapped[str] = mapped_column(String(16), default="agent")
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    answer: Mapped[str | None] = mapped_column(Text, default=None)
    answered_by: Mapped[str | None] = mapped_column(String(255), default=None)
    deadline: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    answered_at: Mapped[datetime | None] = mapped_column(default=None)


# -- operator features: keys, technician logins, escalations, notifications, feedback ----
class ApiKeyRow(Base):
    """A named API key. Only the SHA-256 digest of its secret is stored (the secret is 256 random
    bits, so a slow KDF adds nothing); ``clients`` empty with ``all_clients`` means every client."""

    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    all_clients: Mapped[bool] = mapped_column(Boolean, default=False)
    clients: Mapped[list[Any]] = mapped_column(default=list)
    created_by: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class TechCredential(Base):
    """A technician's password hash (Argon2id, PHC string). Who the technician is lives in ``technicians``."""

    __tablename__ = "tech_credentials"
    email: Mapped[str] = mapped_column(String(255), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuthToken(Base):
    """A refresh token or a one-time login link, stored as a digest; each is spent once.

    Refresh tokens of one login share a ``family``: presenting a spent one again revokes the family.
    """

    __tablename__ = "auth_tokens"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    email: Mapped[str] = mapped_column(String(255), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    family: Mapped[str] = mapped_column(String(32), index=True)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EscalationRow(Base):
    """A structured hand-off to a technician: what was tried, why it failed, what to do next."""

    __tablename__ = "escalations"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    ticket_id: Mapped[str] = mapped_column(ForeignKey("tickets.id"), index=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id"), index=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    body: Mapped[dict[str, Any]] = mapped_column(default=dict)
    assigned_to: Mapped[str | None] = mapped_column(String(255), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # handling (pipeline/escalation_handling.py): open -> taken -> handed_over ... -> closed
    state: Mapped[str] = mapped_column(String(16), default="open", index=True)
    """``open``, ``taken``, ``handed_over`` (held by the technician it was handed to) or ``closed``."""
    version: Mapped[int] = mapped_column(Integer, default=0)
    """Bumped by every change of hands, so two technicians acting at once cannot both win."""
    held_by: Mapped[str | None] = mapped_column(String(255), default=None, index=True)
    """Who holds it now: a technician's e-mail, or the name of the API key that took it."""
    held_by_name: Mapped[str | None] = mapped_column(String(200), default=None)
    taken_at: Mapped[datetime | None] = mapped_column(default=None)
    handed_over_by: Mapped[str | None] = mapped_column(String(255), default=None)
    handed_over_at: Mapped[datetime | None] = mapped_column(default=None)
    handover_note: Mapped[str | None] = mapped_column(Text, default=None)
    closed_by: Mapped[str | None] = mapped_column(String(255), default=None)
    closed_at: Mapped[datetime | None] = mapped_column(default=None)
    resolution: Mapped[str | None] = mapped_column(Text, default=None)


class NotificationRow(Base):
    """One message to a Slack or Teams channel, with every delivery attempt's outcome."""

    __tablename__ = "notifications"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    client_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    channel: Mapped[str] = mapped_column(String(100))
    channel_kind: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(32))
    ref_id: Mapped[str] = mapped_column(String(32), index=True)
    recipient: Mapped[str | None] = mapped_column(String(255), default=None)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)


class FeedbackRow(Base):
    """Whether the fix worked, asked of the end user after a ticket was resolved.

    ``status``: pending, confirmed (yes), partial, failed (no), unconfirmed (no answer in time).
    """

    __tablename__ = "feedback"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    ticket_id: Mapped[str] = mapped_column(ForeignKey("tickets.id"), unique=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id"))
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    channel: Mapped[str] = mapped_column(String(16), default="")
    comment: Mapped[str] = mapped_column(Text, default="")
    resolved_at: Mapped[datetime]
    deadline: Mapped[datetime]
    answered_by: Mapped[str | None] = mapped_column(String(255), default=None)
    answered_at: Mapped[datetime | None] = mapped_column(default=None)


class SessionUsage(Base):
    """Tokens and cost a session's model spent (the playbook runner spends none)."""

    __tablename__ = "session_usage"
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id"), primary_key=True)
    model: Mapped[str] = mapped_column(String(100), default="playbook")
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(default=0.0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class TechSecondFactor(Base):
    """A technician's TOTP second factor for the console: the shared secret sealed by the secret box,
    recovery codes as SHA-256 digests (each spent once), the last time step a code was accepted for
    (a code is never accepted twice). ``confirmed_at`` is empty until the first code proves the enrolment."""

    __tablename__ = "tech_second_factors"
    email: Mapped[str] = mapped_column(String(255), primary_key=True)
    secret: Mapped[str] = mapped_column(Text)
    recovery_hashes: Mapped[list[Any]] = mapped_column(default=list)
    last_step: Mapped[int] = mapped_column(BigInteger, default=0)
    confirmed_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SSOProviderRow(Base):
    """An OpenID Connect provider technicians may sign in to the console with (Entra ID, Google Workspace...):
    its issuer, this MSP's client id there, the client secret sealed by the secret box, and the e-mail domains
    whose technicians it may sign in (docs/sso.md)."""

    __tablename__ = "sso_providers"
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    label: Mapped[str] = mapped_column(String(100))
    issuer: Mapped[str] = mapped_column(String(500))
    client_id: Mapped[str] = mapped_column(String(255))
    client_secret: Mapped[str] = mapped_column(Text)
    domains: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SSOPendingRow(Base):
    """A single sign-on started in one browser and not yet finished: the digest of its ``state``, the digest of
    the browser's binding cookie, the digest of the ``nonce`` and the sealed PKCE verifier; spent once."""

    __tablename__ = "sso_pending"
    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    provider: Mapped[str] = mapped_column(String(40))
    browser_hash: Mapped[str] = mapped_column(String(64))
    nonce_hash: Mapped[str] = mapped_column(String(64))
    verifier: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    used_at: Mapped[datetime | None] = mapped_column(default=None)


class OwnershipLease(Base):
    """Which replica owns a named piece of background work (a PSA poller, a timer loop) until ``expires_at``.

    ``token`` (the fencing token) goes up by one each time the lease changes hands; a released lease
    keeps its row with no ``holder``, so the next holder's token is higher still (``store/leases.py``)."""

    __tablename__ = "ownership_leases"
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(100), default=None)
    token: Mapped[int] = mapped_column(BigInteger, default=0)
    expires_at: Mapped[datetime]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class TechnicianRow(Base):
    """A technician of the roster: who they are, their role, the clients they serve, their on-duty shifts and
    chat ids (validated by ``pipeline/techs.py`` before they are written). ``position`` keeps the roster's order:
    escalations go to the first technician on duty."""

    __tablename__ = "technicians"
    email: Mapped[str] = mapped_column(String(255), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    slack_id: Mapped[str | None] = mapped_column(String(64), default=None)
    teams_id: Mapped[str | None] = mapped_column(String(255), default=None)
    clients: Mapped[list[Any]] = mapped_column(default=list)
    on_duty: Mapped[list[Any]] = mapped_column(default=list)
    timezone: Mapped[str] = mapped_column(String(64))
    aliases: Mapped[list[Any]] = mapped_column(default=list)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class NotificationChannelRow(Base):
    """A Slack or Teams channel of the roster, global or for some clients; its webhook URL (a secret) sealed by the
    secret box."""

    __tablename__ = "notification_channels"
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    url: Mapped[str] = mapped_column(Text)
    clients: Mapped[list[Any]] = mapped_column(default=list)
    events: Mapped[list[Any]] = mapped_column(default=list)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class RosterStateRow(Base):
    """The roster's one row: ``version`` goes up with every change (each server reads the roster again when it
    differs from the one it holds), when it was last changed, and the ``techs.yaml`` it was imported from."""

    __tablename__ = "roster_state"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)
    edited_at: Mapped[datetime | None] = mapped_column(default=None)
    imported_from: Mapped[str | None] = mapped_column(String(500), default=None)
