"""Site tools for the services a client's site agent reaches: Jamf Pro, a CUPS print server, an OpenVPN server.

The site agent offers only the tools of the integrations its ``site.json`` configures
(``agent/site/services.py``); the adapters are ``agent/site/jamf.py``, ``printserver.py`` and
``openvpn.py``. Restarting a Mac, redeploying its management framework, cancelling a queue's jobs
and ending a VPN session change something a person notices, so they wait for a technician's approval.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mspclaw.tools.spec import OS, ToolSpec

_SERIAL = r"^[A-Z0-9]{8,20}$"
_USER = r"^[A-Za-z0-9][A-Za-z0-9._'@-]{0,127}$"
_QUEUE = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,126}$"
"""A CUPS queue name: printable, without space, slash, '#' or quotes (``lpadmin`` refuses those)."""
_CN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"
"""A VPN user's certificate common name (OpenVPN's ``--verify-x509-name`` style; no spaces or quotes)."""


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MacLookupArgs(_Args):
    serial: str | None = Field(None, pattern=_SERIAL, description="The Mac's serial number, e.g. C02XK1ZQJGH5.")
    username: str | None = Field(None, pattern=_USER, description="The user the Mac is assigned to in Jamf.")

    @model_validator(mode="after")
    def _one_key(self) -> MacLookupArgs:
        if (self.serial is None) == (self.username is None):
            raise ValueError("give exactly one of serial or username")
        return self


class MacArgs(_Args):
    serial: str = Field(pattern=_SERIAL, description="The Mac's serial number, e.g. C02XK1ZQJGH5.")


class NoArgs(_Args):
    pass


class PrintQueueArgs(_Args):
    queue: str = Field(pattern=_QUEUE, description="The print server's queue name, e.g. Office-2F.")


class VpnSessionsArgs(_Args):
    username: str | None = Field(None, pattern=_CN, description="Only this user's sessions (their certificate "
                                 "common name); everyone's when omitted.")


class VpnUserArgs(_Args):
    username: str = Field(pattern=_CN, description="The user's certificate common name on the VPN server.")


_ALL: frozenset[OS] = frozenset({"linux", "macos", "windows"})

SITE_SERVICE_TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec("mac_lookup", "Find a Mac in Jamf Pro by serial number or by its user: name, serial, model, macOS "
             "version, last check-in and inventory, whether it is managed, its user and free disk space.",
             MacLookupArgs, _ALL, runs_on="site", timeout_s=30),
    ToolSpec("mac_update_inventory", "Ask a Mac (through Jamf Pro MDM) to send a fresh inventory report.",
             MacArgs, _ALL, runs_on="site", idempotent=True, timeout_s=30),
    ToolSpec("mac_restart", "Restart a Mac through Jamf Pro MDM; the user is notified and unsaved work may be lost.",
             MacArgs, _ALL, runs_on="site", destructive=True, idempotent=False, timeout_s=30),
    ToolSpec("mac_redeploy_framework", "Reinstall the Jamf management framework on a Mac whose jamf binary is broken "
             "or not checking in (through MDM).", MacArgs, _ALL, runs_on="site", destructive=True,
             idempotent=True, timeout_s=30),
    ToolSpec("print_server_queues", "Every queue of the site's print server: state, accepting jobs, the reason "
             "it is stopped, and its pending jobs with their age (stuck ones flagged).", NoArgs, _ALL,
             runs_on="site", timeout_s=30),
    ToolSpec("print_server_clear_queue", "Cancel every job waiting on one print-server queue, then enable it and "
             "let it accept jobs again.", PrintQueueArgs, _ALL, runs_on="site", destructive=True,
             idempotent=True, timeout_s=60),
    ToolSpec("vpn_sessions", "Who is connected to the site's OpenVPN server: since when, from which address, "
             "bytes in and out; with username, whether that user is connected.", VpnSessionsArgs, _ALL,
             runs_on="site", timeout_s=20),
    ToolSpec("vpn_disconnect", "End a user's VPN session on the server so their client reconnects afresh.",
             VpnUserArgs, _ALL, runs_on="site", destructive=True, idempotent=True, timeout_s=20),
)
