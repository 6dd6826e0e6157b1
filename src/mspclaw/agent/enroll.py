"""Enrollment: trade a single-use code from ``mspclaw enroll CLIENT`` for this agent's identity.

One HTTP request with the standard library (the agent carries no HTTP client dependency):
``POST {server}/enroll`` with the code and what this machine is; the server answers with the
agent's id, its client, its role, a credential (stored hashed on the server), the key the agent
pins to verify tool-call signatures, and where the agent channel listens (``agent_url``). The
caller stores the answer with :func:`mspclaw.agent.state.save_state`.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mspclaw.agent.state import AgentState
from mspclaw.agent.tls import verify_failure
from mspclaw.errors import ConfigError, EnrollmentError, MSPClawError, ProtocolError
from mspclaw.protocol.frames import OSName, Role

ENROLL_TIMEOUT_S = 15.0


class EnrollRequest(BaseModel):
    code: str
    hostname: str
    os: OSName
    os_version: str
    agent_version: str
    tools: list[str]


class _EnrollResponse(BaseModel):
    model_config = ConfigDict(extra="ignore")

    agent_id: str = Field(min_length=1)
    client_id: str = Field(min_length=1)
    role: Role
    credential: str = Field(min_length=1)
    server_key: str = Field(pattern=r"^[0-9a-fA-F]{64}$")
    approval_key: str = Field("", pattern=r"^([0-9a-fA-F]{64})?$")
    agent_url: str = Field("", pattern=r"^(wss?://[^\s]+)?$")


def server_base(server: str) -> str:
    """Check ``--server`` is an http(s) URL with a host; return it without a trailing slash."""
    parts = urlsplit(server)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"--server must be an http:// or https:// URL such as http://127.0.0.1:8700, got {server!r}")
    if parts.query or parts.fragment:
        raise ConfigError(f"--server must not carry a query or fragment: {server!r}")
    return server.rstrip("/")


def _server_message(body: bytes, status: int) -> str:
    """The server's ``{"detail": {"code", "message"}}`` message, or the status when the body is not that."""
    try:
        detail = json.loads(body).get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, dict) and isinstance(message := detail.get("message"), str):
        return message
    if isinstance(detail, str):
        return detail
    return f"HTTP {status}"


def enroll(server: str, request: EnrollRequest, *, timeout: float = ENROLL_TIMEOUT_S,
           ssl_context: ssl.SSLContext | None = None) -> AgentState:
    """POST the enrollment and return the identity to store; never logs the credential.

    Raises :class:`EnrollmentError` when the server refuses the code (unknown, expired, used),
    :class:`ConfigError` when the server cannot be reached, :class:`ProtocolError` when the
    answer is not an enrollment. ``ssl_context``: how an ``https://`` server's certificate is verified
    (default: the system's trust store; ``agent/tls.py``); one that does not verify is a :class:`ConfigError`.
    """
    url = server_base(server) + "/enroll"  # http(s) only: server_base refuses file: and other schemes
    http_request = urllib.request.Request(  # noqa: S310
        url,
        data=request.model_dump_json().encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(http_request, timeout=timeout, context=ssl_context) as response:  # noqa: S310
            body = response.read()
    except urllib.error.HTTPError as exc:
        message = _server_message(exc.read(), exc.code)
        if exc.code in (400, 401, 403, 404, 409, 410, 422):
            raise EnrollmentError(f"enrollment refused by {url}: {message}") from exc
        raise MSPClawError(f"enrollment failed at {url}: HTTP {exc.code}: {message}") from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ssl.SSLCertVerificationError):
            raise ConfigError(verify_failure(exc.reason, url)) from exc
        reason = getattr(exc.reason, "strerror", None) or str(exc.reason)
        raise ConfigError(f"cannot reach the MSPclaw server at {url}: {reason}; check --server") from exc
    except (TimeoutError, OSError) as exc:
        raise ConfigError(f"cannot reach the MSPclaw server at {url}: {exc}; check --server") from exc
    try:
        answer = _EnrollResponse.model_validate_json(body)
    except ValidationError as exc:
        raise ProtocolError(
            f"{url} answered 200 but not with an enrollment ({exc.error_count()} problems); "
            "is --server the MSPclaw server?"
        ) from exc
    return AgentState(
        agent_id=answer.agent_id,
        client_id=answer.client_id,
        role=answer.role,
        credential=answer.credential,
        server_key=answer.server_key.lower(),
        approval_key=answer.approval_key.lower(),
        server=server_base(server),
        agent_url=answer.agent_url,
    )
