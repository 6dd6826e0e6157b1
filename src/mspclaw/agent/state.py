"""The agent's enrolled identity on disk: ``agent.json`` in the state directory.

It holds the agent's credential and the server key it pinned at enrollment, so it is written
atomically (a crash mid-write leaves the old file, never half a file) and readable by its owner
only: file 0600 in a directory 0700. Nothing here logs the credential or the key.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mspclaw.errors import ConfigError
from mspclaw.protocol.frames import Role

STATE_FILE = "agent.json"
JOURNAL_FILE = "journal.db"


class NotEnrolled(ConfigError):
    """No ``agent.json`` in the state directory: the agent must enroll before it can connect."""

    code = "not_enrolled"


class AgentState(BaseModel):
    """Who this agent is, as the server told it at enrollment."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    agent_id: str = Field(min_length=1)
    client_id: str = Field(min_length=1)
    role: Role
    credential: str = Field(min_length=1, repr=False)
    server_key: str = Field(pattern=r"^[0-9a-fA-F]{64}$", repr=False)
    """The 32-byte HMAC key, hex: tool calls must carry a signature made with it."""
    approval_key: str = Field("", pattern=r"^([0-9a-fA-F]{64})?$", repr=False)
    """The server's Ed25519 public key, hex: approvals of destructive calls must verify with it."""
    server: str = ""
    """The server URL it enrolled with, to warn when later pointed at another one."""
    agent_url: str = ""
    """Where the server said its agent channel listens (``ws(s)://host:port/ws/agent``); empty for an agent
    enrolled before servers said so, which then connects to ``/ws/agent`` on the server URL's host."""

    @property
    def key(self) -> bytes:
        return bytes.fromhex(self.server_key)

    @property
    def approval_public_key(self) -> bytes | None:
        return bytes.fromhex(self.approval_key) if self.approval_key else None

    @property
    def bearer(self) -> str:
        """The ``Authorization`` header value for the WebSocket upgrade."""
        return f"Bearer {self.agent_id}.{self.credential}"


def default_state_dir() -> Path:
    """``/var/lib/mspclaw-agent`` for root (a system service), else ``~/.local/state/mspclaw-agent``."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/mspclaw-agent")
    return Path.home() / ".local" / "state" / "mspclaw-agent"


def ensure_state_dir(state_dir: Path) -> Path:
    """Create the state directory if needed and make it private (0700)."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(state_dir, 0o700)
    except OSError as exc:
        raise ConfigError(f"cannot use state directory {state_dir}: {exc.strerror or exc}") from exc
    return state_dir


def save_state(state_dir: Path, state: AgentState) -> Path:
    """Write ``agent.json`` atomically with mode 0600; returns its path."""
    ensure_state_dir(state_dir)
    target = state_dir / STATE_FILE
    # mkstemp creates the file 0600 whatever the umask, and os.replace keeps that mode
    fd, tmp = tempfile.mkstemp(prefix=".agent-", suffix=".json.tmp", dir=state_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(state.model_dump_json(indent=2))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ConfigError(f"cannot write {target}: {exc.strerror or exc}") from exc
    return target


def load_state(state_dir: Path) -> AgentState:
    """Read ``agent.json``; :class:`NotEnrolled` when it is missing, :class:`ConfigError` when unreadable."""
    path = state_dir / STATE_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotEnrolled(f"no enrollment found in {state_dir}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return AgentState.model_validate_json(text)
    except ValidationError as exc:
        raise ConfigError(f"{path} is damaged ({exc.error_count()} problems); enroll again") from exc
