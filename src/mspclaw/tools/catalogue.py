"""The tool catalogue shared by the server (to offer tools and gate them) and the agent (to run them)."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mspclaw.errors import UnknownTool
from mspclaw.tools.device import DEVICE_TOOLS, NoArgs
from mspclaw.tools.site import SITE_TOOLS
from mspclaw.tools.site_services import SITE_SERVICE_TOOLS
from mspclaw.tools.spec import OS, ToolSpec

_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOST = re.compile(rf"^(?=.{{1,253}}$)({_LABEL}\.)*{_LABEL}\.?$")
_IP = re.compile(r"^[0-9a-fA-F:.]{2,45}$")


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DiskUsageArgs(_Args):
    paths: list[str] = Field(
        default_factory=list,
        max_length=32,
        description="Mount points or paths to report; empty reports every local filesystem.",
    )


class TopProcessesArgs(_Args):
    sort_by: str = Field("cpu", pattern="^(cpu|memory)$", description="Order by 'cpu' or 'memory'.")
    limit: int = Field(10, ge=1, le=50, description="How many processes to return.")


class CheckConnectivityArgs(_Args):
    host: str = Field(description="Host name or IP address to resolve and reach.")
    port: int = Field(443, ge=1, le=65535)
    timeout_s: float = Field(3.0, gt=0, le=15)

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if not (_HOST.match(value) or _IP.match(value)):
            raise ValueError("must be a host name or an IP address")
        return value


class ClearTempFilesArgs(_Args):
    older_than_days: int = Field(7, ge=0, le=3650, description="Only files not modified for this many days.")
    dry_run: bool = Field(True, description="Only report what would be deleted and how much space it frees.")


__all__ = ["CATALOGUE", "NoArgs", "get_tool"]

_ALL_OS: frozenset[OS] = frozenset({"linux", "macos", "windows"})

CATALOGUE: dict[str, ToolSpec] = {
    spec.name: spec
    for spec in (
        ToolSpec(
            "system_info",
            "Host name, OS and version, kernel, CPU, memory, uptime and logged-in users.",
            NoArgs,
            _ALL_OS,
            timeout_s=15,
        ),
        ToolSpec(
            "disk_usage",
            "Size, used and free space of each local filesystem (or of the given paths).",
            DiskUsageArgs,
            _ALL_OS,
            timeout_s=15,
        ),
        ToolSpec(
            "top_processes",
            "The processes using the most CPU or memory, with their load and memory.",
            TopProcessesArgs,
            _ALL_OS,
            timeout_s=15,
        ),
        ToolSpec(
            "network_status",
            "Network interfaces with their addresses and state, the default route and DNS servers.",
            NoArgs,
            _ALL_OS,
            timeout_s=15,
        ),
        ToolSpec(
            "check_connectivity",
            "Resolve a host name through DNS and open a TCP connection to host:port.",
            CheckConnectivityArgs,
            _ALL_OS,
            timeout_s=20,
        ),
        ToolSpec(
            "clear_temp_files",
            "Delete temporary files older than N days from the agent's temp folders. With dry_run "
            "it only reports what it would delete and how much space that frees.",
            ClearTempFilesArgs,
            _ALL_OS,
            destructive=True,
            idempotent=True,
            timeout_s=120,
            preview_flag="dry_run",
        ),
    )
}


# The device tools the playbook library needs, the site's account tools and its service tools (Jamf,
# print server, VPN), each described in their own modules.
CATALOGUE.update({spec.name: spec for spec in (*DEVICE_TOOLS, *SITE_TOOLS, *SITE_SERVICE_TOOLS)})


def get_tool(name: str) -> ToolSpec:
    try:
        return CATALOGUE[name]
    except KeyError:
        raise UnknownTool(f"unknown tool {name!r}; known tools: {', '.join(sorted(CATALOGUE))}") from None
