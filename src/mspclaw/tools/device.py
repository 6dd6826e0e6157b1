"""Device tools beyond the first six: what the playbook library needs on macOS, Windows and Linux.

Each tool is described once here (name, description for the model, argument model, OSes,
destructive, idempotent, timeout); the agent implements it per OS in ``agent/tools/``. Names the
tools take from a call (a process, a printer, a package, an application) are checked against a
strict pattern, so a call can never smuggle an option or a shell word into a command line.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mspclaw.tools.spec import OS, ToolSpec

_NAME = r"^[A-Za-z0-9][A-Za-z0-9 ._()+-]{0,127}$"
"""A printer, application, VPN connection or Wi-Fi interface name: no leading dash, no shell syntax."""
_PACKAGE = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$"
"""A package id (apt, brew, winget): letters, digits and ``._+-``; never starts with a dash."""


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LargeFilesArgs(_Args):
    min_size_mb: int = Field(500, ge=10, le=1_000_000, description="Only files at least this large (MiB).")
    limit: int = Field(20, ge=1, le=100, description="How many files to return, largest first.")


class EndProcessArgs(_Args):
    pid: int = Field(ge=2, le=2**31, description="Process id, as top_processes reported it.")
    name: str = Field(pattern=_NAME, description="The process name top_processes reported; the call is "
                      "refused if the pid now belongs to another program.")


class InterfaceArgs(_Args):
    interface: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._:-]{0,63}$",
                                  description="Network interface; default: the one with the default route "
                                              "(Wi-Fi for Wi-Fi tools).")


class RenewDhcpArgs(InterfaceArgs):
    pass


class VpnArgs(_Args):
    name: str = Field(pattern=_NAME, description="The VPN connection's name, as vpn_status reported it.")


class PrinterArgs(_Args):
    printer: str = Field(pattern=_NAME, description="Printer (queue) name, as printer_queues reported it.")


class InstalledSoftwareArgs(_Args):
    name_contains: str = Field("", pattern=r"^[A-Za-z0-9 ._+-]{0,64}$",
                               description="Only software whose name contains this (case-insensitive).")
    limit: int = Field(200, ge=1, le=2000)


class InstallPackageArgs(_Args):
    package: str = Field(pattern=_PACKAGE, description="Package id for the OS's package manager "
                         "(apt package, Homebrew formula or cask, winget id).")


class BrowserCacheArgs(_Args):
    browser: Literal["chrome", "edge", "firefox", "safari", "all"] = "all"
    dry_run: bool = Field(True, description="Only report how much cache there is; delete nothing.")


class AppArgs(_Args):
    name: str = Field(pattern=_NAME, description="Application (process) name, e.g. 'Microsoft Outlook'.")


class CrashReportsArgs(_Args):
    app: str = Field("", pattern=r"^[A-Za-z0-9 ._()+-]{0,128}$", description="Only this application's.")
    days: int = Field(7, ge=1, le=90)
    limit: int = Field(20, ge=1, le=100)


class RebootArgs(_Args):
    delay_minutes: int = Field(1, ge=0, le=60, description="Minutes of warning the user gets first.")


class NoArgs(_Args):
    pass


_ALL: frozenset[OS] = frozenset({"linux", "macos", "windows"})

DEVICE_TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec("uptime", "When the machine last booted and how long it has been up.", NoArgs, _ALL, timeout_s=10),
    ToolSpec("large_files", "The largest files in the user's home folder (read only).", LargeFilesArgs, _ALL,
             timeout_s=60),
    ToolSpec("end_process", "End one process by pid; refused if the pid now belongs to another program.",
             EndProcessArgs, _ALL, destructive=True, idempotent=True, timeout_s=15),
    ToolSpec("wifi_status", "Wi-Fi interface, whether it is on and connected, the network name, signal and "
             "channel.", NoArgs, _ALL, timeout_s=15),
    ToolSpec("wifi_networks", "The Wi-Fi networks this machine remembers (preferred networks), in order.",
             InterfaceArgs, _ALL, timeout_s=15),
    ToolSpec("renew_dhcp", "Ask the DHCP server for a new address on an interface; the connection drops for "
             "a few seconds.", RenewDhcpArgs, _ALL, destructive=True, idempotent=True, timeout_s=30),
    ToolSpec("flush_dns", "Empty the DNS resolver cache so names are looked up again.", NoArgs, _ALL,
             timeout_s=15),
    ToolSpec("vpn_status", "VPN connections configured on this machine and whether each is connected.",
             NoArgs, _ALL, timeout_s=15),
    ToolSpec("restart_vpn", "Disconnect and reconnect one VPN connection.", VpnArgs, _ALL, destructive=True,
             idempotent=True, timeout_s=60),
    ToolSpec("printer_queues", "Printers with their state (idle, printing, paused), whether they accept "
             "jobs, and the jobs waiting in each queue.", NoArgs, _ALL, timeout_s=15),
    ToolSpec("clear_print_queue", "Cancel every job waiting in one printer's queue.", PrinterArgs, _ALL,
             destructive=True, idempotent=True, timeout_s=30),
    ToolSpec("resume_printer", "Resume a paused printer and let its queue accept jobs again.", PrinterArgs, _ALL,
             timeout_s=30),
    ToolSpec("restart_print_spooler", "Start or restart the print service: the Print Spooler on Windows (clears a "
             "hung spooler), CUPS on Linux and macOS (when its scheduler is stopped).",
             NoArgs, _ALL, destructive=True, idempotent=True, timeout_s=60),
    ToolSpec("installed_software", "Installed applications and packages with their versions.",
             InstalledSoftwareArgs, _ALL, timeout_s=60),
    ToolSpec("install_package", "Install one package with the OS's package manager (apt, Homebrew, winget).",
             InstallPackageArgs, _ALL, destructive=True, idempotent=True, timeout_s=900),
    ToolSpec("pending_updates", "Operating system updates available but not installed yet.", NoArgs, _ALL,
             timeout_s=120),
    ToolSpec("clear_browser_cache", "Delete the cache folders of the user's browsers (never history, "
             "passwords or cookies). With dry_run it only reports their size.", BrowserCacheArgs, _ALL,
             destructive=True, idempotent=True, timeout_s=120, preview_flag="dry_run"),
    ToolSpec("mail_client_status", "Which mail clients are installed and running, with their versions.",
             NoArgs, _ALL, timeout_s=30),
    ToolSpec("restart_app", "Quit an application and start it again.", AppArgs, _ALL, destructive=True,
             idempotent=False, timeout_s=60),
    ToolSpec("crash_reports", "Recent application crash reports (name, time, what failed).", CrashReportsArgs,
             _ALL, timeout_s=60),
    ToolSpec("reboot", "Restart the computer after a short warning to the user.", RebootArgs, _ALL,
             destructive=True, idempotent=False, timeout_s=30),
)
