"""The agent's enrolled identity on disk: ``agent.json`` in the state directory.

It holds the agent's credential and the server key it pinned at enrollment, so it is written
atomically (a crash mid-write leaves the old file, never half a file) and readable by its owner
only: on POSIX file 0600 in a directory 0700; on Windows the directory's ACL grants SYSTEM and the
Administrators (plus the user, for an agent run by a user) and nobody else, inherited by its files.
Nothing here logs the credential or the key.

Where it lives follows each system's convention (``platformdirs``): an agent run as a system service
(root, or an elevated Windows process) keeps it in ``/var/lib/mspclaw-agent`` on Linux,
``/Library/Application Support/mspclaw-agent`` on macOS and ``%ProgramData%\\mspclaw-agent`` on Windows;
an agent run by a user in that user's state folder (``~/.local/state/mspclaw-agent`` on Linux,
``~/Library/Application Support/mspclaw-agent`` on macOS, ``%LOCALAPPDATA%\\mspclaw-agent`` on Windows).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mspclaw.errors import ConfigError
from mspclaw.protocol.frames import Role

STATE_FILE = "agent.json"
JOURNAL_FILE = "journal.db"
APP_NAME = "mspclaw-agent"
LINUX_SERVICE_STATE_DIR = Path("/var/lib") / APP_NAME

# Well-known SIDs, the same in every Windows language: LocalSystem and the built-in Administrators group.
SYSTEM_SID = "*S-1-5-18"
ADMINISTRATORS_SID = "*S-1-5-32-544"

CommandRunner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]
"""Runs a command and returns its completed process; injected so the Windows ACL path can be tested anywhere."""


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


def is_elevated() -> bool:
    """Whether this process runs as a system service would: root on POSIX, an administrator on Windows."""
    if sys.platform == "win32":
        import ctypes

        try:
            return bool(ctypes.windll.shell32.IsUserAnAdmin())
        except OSError:
            return False
    return os.geteuid() == 0


def default_state_dir(*, elevated: bool | None = None) -> Path:
    """The system's conventional state folder of the agent: the service's when elevated, else the user's."""
    system = is_elevated() if elevated is None else elevated
    if system and sys.platform.startswith("linux"):
        return LINUX_SERVICE_STATE_DIR  # the FHS place of a service's state; platformdirs has none
    if system:  # macOS: /Library/Application Support/...; Windows: %ProgramData%\\...
        return Path(platformdirs.site_data_dir(APP_NAME, appauthor=False))
    return Path(platformdirs.user_state_dir(APP_NAME, appauthor=False))


def _run(command: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(command), capture_output=True, text=True, timeout=60, check=False)


def windows_acl_command(state_dir: Path, *, user: str | None) -> list[str]:
    """``icacls`` arguments that leave ``state_dir`` to SYSTEM, the Administrators and ``user`` only.

    Inherited entries are removed (``/inheritance:r``) and full control is granted, inherited by every
    file and folder created inside (``(OI)(CI)``), to exactly these accounts.
    """
    grants = [SYSTEM_SID, ADMINISTRATORS_SID] + ([user] if user else [])
    command = ["icacls", str(state_dir), "/inheritance:r"]
    for who in grants:
        command += ["/grant:r", f"{who}:(OI)(CI)F"]
    return command


def restrict_windows_acl(state_dir: Path, *, user: str | None, run: CommandRunner = _run) -> None:
    """Apply :func:`windows_acl_command`; :class:`ConfigError` when ``icacls`` fails or is missing."""
    try:
        done = run(windows_acl_command(state_dir, user=user))
    except (OSError, subprocess.SubprocessError) as exc:
        raise ConfigError(f"cannot restrict access to {state_dir}: icacls did not run ({exc})") from exc
    if done.returncode != 0:
        detail = (done.stderr or done.stdout or "").strip()[:300]
        raise ConfigError(f"cannot restrict access to {state_dir}: icacls exited {done.returncode}: {detail}")


def ensure_state_dir(state_dir: Path, *, platform: str = sys.platform, elevated: bool | None = None,
                     run: CommandRunner = _run) -> Path:
    """Create the state directory if needed and make it private.

    POSIX: mode 0700. Windows: an ACL for SYSTEM and the Administrators only, plus the current user
    when the agent is not elevated (an agent run by hand must still read its own credential).
    """
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if platform != "win32":
            os.chmod(state_dir, 0o700)
    except OSError as exc:
        raise ConfigError(f"cannot use state directory {state_dir}: {exc.strerror or exc}") from exc
    if platform == "win32":
        system = is_elevated() if elevated is None else elevated
        user = None if system else _windows_user()
        restrict_windows_acl(state_dir, user=user, run=run)
    return state_dir


def _windows_user() -> str | None:
    name = os.environ.get("USERNAME", "")
    if not name:
        return None
    domain = os.environ.get("USERDOMAIN", "")
    return f"{domain}\\{name}" if domain else name


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
