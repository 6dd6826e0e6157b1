"""The agent as a Windows service: what the Service Control Manager starts (``mspclaw-agent.exe service``).

The service (pywin32's ``win32serviceutil.ServiceFramework``, the documented way to write one in
Python) runs the agent as a child process, ``mspclaw-agent.exe agent --server URL --state-dir DIR``,
with the server URL from ``service.json`` in the state directory (written by
``deploy/windows/Install-MSPclawAgent.ps1``), and stops it when Windows stops the service. An agent
that exits on its own ends the service with an error, so the recovery actions the install script sets
restart it; one the server refused (exit 3) or that is not enrolled (exit 2) is left stopped, with the
reason in the Application event log.

Everything but the service class runs on any system and is tested on Linux; the class is defined on
Windows only, where pywin32 is installed with the single-file build.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mspclaw.errors import ConfigError

SERVICE_NAME = "MSPclawAgent"
SERVICE_DISPLAY_NAME = "MSPclaw Agent"
SERVICE_DESCRIPTION = "Runs the MSPclaw server's signed, approved diagnostic and repair tool calls on this PC."
SERVICE_CONFIG = "service.json"
MAX_CONFIG_BYTES = 16 * 1024
STOP_WAIT_S = 20.0
NO_RESTART_EXITS = frozenset({2, 3})
"""The agent's exit codes that restarting cannot fix: not enrolled or usage (2), refused by the server (3)."""


class ServiceConfig(BaseModel):
    """``service.json``: what the service passes to the agent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    server: str = Field(pattern=r"^https?://[^\s]+$", max_length=2000)
    log_level: str = Field("info", pattern=r"^(debug|info|warning|error)$")


def load_service_config(state_dir: Path) -> ServiceConfig:
    """Read ``service.json``; :class:`ConfigError` naming the file when it is missing, too big or invalid."""
    path = state_dir / SERVICE_CONFIG
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}; run Install-MSPclawAgent.ps1") from exc
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        return ServiceConfig.model_validate_json(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path} is not a valid service configuration ({exc.error_count()} problems)") from exc


def agent_command(executable: str, config: ServiceConfig, state_dir: Path) -> list[str]:
    """The agent process the service runs: the same executable, in ``agent`` mode."""
    return [executable, "agent", "--server", config.server, "--state-dir", str(state_dir),
            "--log-level", config.log_level]


def service_state_dir() -> Path:
    """The state directory of the agent run as a service (``%ProgramData%\\\\mspclaw-agent``)."""
    from mspclaw.agent.state import default_state_dir

    return default_state_dir(elevated=True)


if sys.platform == "win32":  # the service itself: pywin32 exists on Windows only
    import subprocess

    import servicemanager
    import win32event
    import win32service
    import win32serviceutil

    class AgentService(win32serviceutil.ServiceFramework):
        _svc_name_ = SERVICE_NAME
        _svc_display_name_ = SERVICE_DISPLAY_NAME
        _svc_description_ = SERVICE_DESCRIPTION

        def __init__(self, args: list[str]) -> None:
            super().__init__(args)
            self._stop_event = win32event.CreateEvent(None, 0, 0, None)
            self._child: subprocess.Popen[bytes] | None = None

        def SvcStop(self) -> None:
            self.ReportServiceStatus(win32service.SERVICE_STOP_PENDING)
            win32event.SetEvent(self._stop_event)

        def SvcDoRun(self) -> None:
            state_dir = service_state_dir()
            try:
                config = load_service_config(state_dir)
            except ConfigError as exc:
                servicemanager.LogErrorMsg(f"{SERVICE_NAME}: {exc.message}")
                return
            command = agent_command(sys.executable, config, state_dir)
            self._child = subprocess.Popen(command, creationflags=subprocess.CREATE_NEW_PROCESS_GROUP)
            servicemanager.LogInfoMsg(f"{SERVICE_NAME}: agent started for {config.server}")
            while self._child.poll() is None:
                if win32event.WaitForSingleObject(self._stop_event, 1000) == win32event.WAIT_OBJECT_0:
                    break
            if self._child.poll() is None:
                self._child.terminate()  # the call journal is durable: a stop mid-call never repeats it
                try:
                    self._child.wait(STOP_WAIT_S)
                except subprocess.TimeoutExpired:
                    self._child.kill()
                return
            code = self._child.returncode
            if code in NO_RESTART_EXITS:
                servicemanager.LogErrorMsg(f"{SERVICE_NAME}: the agent exited with {code} (not enrolled, or "
                                           "refused by the server): enroll again with Install-MSPclawAgent.ps1")
                return
            # any other exit is a failure: the service's recovery actions restart it
            raise SystemExit(f"{SERVICE_NAME}: the agent exited with {code}")

    def main(argv: list[str]) -> int:
        """``mspclaw-agent.exe service``: hand the process to the Service Control Manager."""
        if argv:
            win32serviceutil.HandleCommandLine(AgentService, argv=[sys.argv[0], *argv])
            return 0
        servicemanager.Initialize()
        servicemanager.PrepareToHostSingle(AgentService)
        servicemanager.StartServiceCtrlDispatcher()
        return 0

else:

    def main(argv: list[str]) -> int:
        """The Windows service exists on Windows only."""
        print("mspclaw-agent service: Windows services exist on Windows only; on Linux use the systemd unit, "
              "on macOS the launch daemon (docs/deploy.md)", file=sys.stderr)
        return 2
