"""The one exception tree of MSPclaw.

Every failure that crosses a module boundary is one of these. Foreign exceptions
(SQLAlchemy, websockets, httpx, OS errors) are translated where they enter with
``raise ... from exc``; nothing returns a sentinel string or ``None`` for failure.

Two families matter to the engine:

* :class:`ToolError` and its children are "tell the model" errors: the run goes on and
  the error becomes an observation.
* Everything else stops the operation that raised it.
"""

from __future__ import annotations


class MSPClawError(Exception):
    """Base of every MSPclaw error. ``code`` is a stable machine-readable name."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(MSPClawError):
    """Settings, a data directory or a file on disk is wrong; the message says how to fix it."""

    code = "config"


# --- wire protocol -----------------------------------------------------------------------------


class ProtocolError(MSPClawError):
    """A frame broke the wire protocol. The connection answers with an ``error`` frame."""

    code = "protocol"


class MalformedFrame(ProtocolError):
    """Not JSON, not an object, or fields that fail the frame's schema."""

    code = "bad_frame"


class UnknownKind(ProtocolError):
    """A JSON object whose ``kind`` names no frame of this protocol."""

    code = "unknown_kind"


class FrameTooLarge(ProtocolError):
    """A frame over the protocol's size limit."""

    code = "frame_too_large"


class VersionMismatch(ProtocolError):
    """The peer speaks a protocol version this side does not."""

    code = "version_mismatch"


class UnexpectedFrame(ProtocolError):
    """A valid frame at the wrong moment (anything before ``hello``, a result nobody awaits)."""

    code = "unexpected_frame"


# --- authentication ----------------------------------------------------------------------------


class AuthError(MSPClawError):
    """Missing, wrong or revoked credential."""

    code = "unauthorized"


class TooManyAttempts(AuthError):
    """Too many failed logins for one account in a short time; wait and try again."""

    code = "too_many_attempts"


class Forbidden(MSPClawError):
    """Authenticated, but this role may not do that (or not for this client)."""

    code = "forbidden"


class EnrollmentError(AuthError):
    """An enrollment code that is unknown, expired or already used."""

    code = "bad_enrollment"


# --- data --------------------------------------------------------------------------------------


class NotFound(MSPClawError):
    """A client, agent, ticket, session or approval that does not exist (for this caller)."""

    code = "not_found"


class Conflict(MSPClawError):
    """The request contradicts the stored state (a name taken, an approval already decided)."""

    code = "conflict"


class InvalidRequest(MSPClawError):
    """A request the service cannot act on as given (an empty or oversized text); the message says what to
    change."""

    code = "invalid_request"


class StoreError(MSPClawError):
    """The database failed or is unreachable."""

    code = "store"


class AuditIntegrityError(MSPClawError):
    """The audit trail was altered: ``location`` names the first bad line."""

    code = "audit_tampered"

    def __init__(self, message: str, location: str) -> None:
        super().__init__(message)
        self.location = location


# --- PSAs --------------------------------------------------------------------------------------


class MalformedWebhook(MSPClawError):
    """A webhook body that cannot be read as an event of that PSA."""

    code = "bad_webhook"


class PSAError(MSPClawError):
    """A PSA's API failed. ``retryable`` says whether the same request may succeed later."""

    code = "psa_error"
    retryable = False


class PSAUnavailable(PSAError):
    """Timeout, connection failure or a 5xx after the retries: try again later."""

    code = "psa_unavailable"
    retryable = True


class PSARateLimited(PSAError):
    """The PSA said slow down and the retries ran out; ``retry_after`` is its hint in seconds."""

    code = "psa_rate_limited"
    retryable = True

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PSAAuthError(PSAError):
    """The PSA refused our credentials (401/403, an invalid token or sub-domain)."""

    code = "psa_auth"


class PSANotFound(PSAError):
    """The ticket (or other record) does not exist in the PSA."""

    code = "psa_not_found"


class PSARejected(PSAError):
    """The PSA refused the request as invalid (validation errors); the message carries its reasons."""

    code = "psa_rejected"


# --- notifications ----------------------------------------------------------------------------


class DeliveryError(MSPClawError):
    """A Slack or Teams webhook refused or did not take a message; ``retryable`` says if trying again may help."""

    code = "notify_failed"

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


# --- tools -------------------------------------------------------------------------------------


class ToolError(MSPClawError):
    """A tool call did not produce a result. Told to the model as an observation."""

    code = "tool_error"


class UnknownTool(ToolError):
    """The tool is not in the catalogue, or not offered by the agent."""

    code = "unknown_tool"


class InvalidArguments(ToolError):
    """Arguments that fail the tool's JSON schema; ``message`` lists each problem."""

    code = "invalid_args"


class ApprovalRequired(ToolError):
    """A destructive call arrived without a valid technician approval."""

    code = "approval_required"


class BadSignature(ToolError):
    """A tool call whose signature does not verify against the pinned server key."""

    code = "bad_signature"


class ToolFailed(ToolError):
    """The tool ran and failed (a command exited non-zero, a path was unreadable)."""

    code = "tool_failed"


class IntegrationError(ToolFailed):
    """A site integration (directory, Graph, Jamf, print server, VPN) failed. The message says what
    failed, where, and what to do; ``changed`` and ``unchanged`` list what the call had and had not
    changed when it stopped, so no partial change goes unreported."""

    code = "integration_failed"

    def __init__(self, message: str, *, changed: tuple[str, ...] = (), unchanged: tuple[str, ...] = ()) -> None:
        if changed or unchanged:
            message = (f"{message} (changed: {', '.join(changed) or 'nothing'}; "
                       f"not changed: {', '.join(unchanged) or 'nothing'})")
        super().__init__(message)
        self.changed, self.unchanged = changed, unchanged


class IntegrationUnreachable(IntegrationError):
    """The service did not answer (down, slow, wrong address) or its TLS certificate did not verify."""

    code = "integration_unreachable"


class IntegrationAuthFailed(IntegrationError):
    """The site's service credentials were refused, expired, or lack a permission the call needs."""

    code = "integration_auth"


class IntegrationThrottled(IntegrationError):
    """The service kept answering 429 / throttling after the retries it allows."""

    code = "integration_throttled"


class AccountNotFound(IntegrationError):
    """No account matches the name."""

    code = "account_not_found"


class AmbiguousAccount(IntegrationError):
    """More than one account matches the name: nothing is changed on a guess."""

    code = "ambiguous_account"


class PrivilegedAccount(IntegrationError):
    """The account is privileged (AD adminCount=1 or a protected group, an Entra directory role):
    automation never changes it."""

    code = "privileged_account"


class NotRequesters(IntegrationError):
    """The account to change is not the verified requester's own (nor one they manage, for a leaver)."""

    code = "not_requesters_account"


class CallInterrupted(ToolError):
    """The agent stopped while this call ran earlier; whether the tool finished is unknown.

    The agent's journal answers a replay of such a call with this instead of running it again.
    """

    code = "interrupted"


class DispatchError(ToolError):
    """The call could not be delivered or answered."""

    code = "dispatch"


class AgentOffline(DispatchError):
    """No live connection to that agent."""

    code = "agent_offline"


class ToolTimeout(DispatchError):
    """No result before the call's deadline."""

    code = "timeout"


class ToolRefused(DispatchError):
    """The agent refused the call; ``refusal_code`` is the agent's reason."""

    code = "refused"

    def __init__(self, message: str, refusal_code: str) -> None:
        super().__init__(message)
        self.refusal_code = refusal_code


TOOL_ERRORS_BY_CODE: dict[str, type[ToolError]] = {
    cls.code: cls
    for cls in (UnknownTool, InvalidArguments, ApprovalRequired, BadSignature, ToolFailed, ToolTimeout,
                IntegrationError, IntegrationUnreachable, IntegrationAuthFailed, IntegrationThrottled,
                AccountNotFound, AmbiguousAccount, PrivilegedAccount, NotRequesters)
}
"""Agent-side error codes that map back to an exception class on the server."""


# --- the run -----------------------------------------------------------------------------------


class ApprovalDenied(MSPClawError):
    """A technician denied a destructive step, or nobody decided before the deadline.

    Stops the run: the ticket is escalated with ``reason``.
    """

    code = "approval_denied"

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


class ConditionError(MSPClawError):
    """A playbook condition that cannot be evaluated (bad syntax, a name that does not exist)."""

    code = "bad_condition"


# --- model providers ---------------------------------------------------------------------------


class ModelError(MSPClawError):
    """A model provider failed. ``retryable`` says whether the same request may succeed later.

    Adapters translate their SDK's exceptions into these at the boundary; the retry policy and
    the fallback chain (``engine/models/chain.py``) read only ``retryable`` and ``retry_after``.
    """

    code = "model_error"
    retryable = False

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class ModelRateLimited(ModelError):
    """429: slow down; ``retry_after`` is the provider's hint in seconds, when it gave one."""

    code = "model_rate_limited"
    retryable = True


class ModelOverloaded(ModelError):
    """5xx or Anthropic's 529 overloaded: the provider may recover in a moment."""

    code = "model_overloaded"
    retryable = True


class ModelTimeout(ModelError):
    """No answer in time, or the connection failed."""

    code = "model_timeout"
    retryable = True


class ModelRejected(ModelError):
    """400 and other 4xx: the request itself is wrong; sending it again cannot help."""

    code = "model_rejected"


class ModelAuthError(ModelError):
    """401/403: the key is missing, wrong or not allowed this model. Never retried."""

    code = "model_auth"


class MalformedModelOutput(ModelError):
    """The model answered, but not in a form the engine can act on (bad tool JSON, no action)."""

    code = "model_malformed"


class LimitExceeded(MSPClawError):
    """A run limit (steps, tokens, spend) was reached; the run escalates with ``message``."""

    code = "limit_exceeded"
