"""What a site agent can do: its configured integrations turned into exactly the tools they perform.

``hello`` lists these and nothing else: a site agent with only Active Directory offers the AD
account tools; one with Jamf adds the Mac tools; one with nothing configured offers nothing and
says so in its log (``mspclaw site add ...``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mspclaw.agent.site.ad import ActiveDirectory
from mspclaw.agent.site.config import SiteConfig
from mspclaw.agent.site.entra import EntraID
from mspclaw.agent.site.identity import Identity
from mspclaw.agent.site.jamf import Jamf
from mspclaw.agent.site.openvpn import OpenVPN
from mspclaw.agent.site.printserver import PrintServer
from mspclaw.agent.site.services import service_tools
from mspclaw.agent.tools import ToolFn


@dataclass
class SiteIntegrations:
    """The live adapters of one site, built from its configuration (secrets read from their files)."""

    ad: ActiveDirectory | None = None
    entra: EntraID | None = None
    jamf: Jamf | None = None
    printserver: PrintServer | None = None
    openvpn: OpenVPN | None = None
    identity: Identity | None = field(default=None, init=False)

    @classmethod
    def from_config(cls, config: SiteConfig) -> SiteIntegrations:
        """Build every configured adapter. Raises :class:`~mspclaw.errors.ConfigError` for a missing or
        unreadable secret file; connecting waits for the first call (a DC that is down does not stop the agent)."""
        ad_cfg, entra_cfg = config.integrations.get("ad"), config.integrations.get("entra")
        jamf_cfg, cups_cfg, vpn_cfg = (config.integrations.get(k) for k in ("jamf", "cups", "openvpn"))
        built = cls(
            ad=ActiveDirectory(ad_cfg) if ad_cfg is not None and ad_cfg.kind == "ad" else None,
            entra=EntraID(entra_cfg) if entra_cfg is not None and entra_cfg.kind == "entra" else None,
            jamf=Jamf(jamf_cfg) if jamf_cfg is not None and jamf_cfg.kind == "jamf" else None,
            printserver=PrintServer(cups_cfg) if cups_cfg is not None and cups_cfg.kind == "cups" else None,
            openvpn=OpenVPN(vpn_cfg) if vpn_cfg is not None and vpn_cfg.kind == "openvpn" else None,
        )
        leavers = ad_cfg.leavers_ou if ad_cfg is not None and ad_cfg.kind == "ad" else None
        if built.ad is not None or built.entra is not None:
            built.identity = Identity(built.ad, built.entra, config.verification, leavers_ou=leavers)
        return built

    def tools(self) -> dict[str, ToolFn]:
        table: dict[str, ToolFn] = {}
        if self.identity is not None:
            table.update(self.identity.tools())
        table.update(service_tools(self.jamf, self.printserver, self.openvpn))
        return table

    def close(self) -> None:
        for adapter in (self.identity, self.jamf, self.printserver, self.openvpn):
            close = getattr(adapter, "close", None)
            if close is not None:
                close()


def site_registry(config: SiteConfig) -> tuple[dict[str, ToolFn], SiteIntegrations]:
    """The tools a site agent with ``config`` offers, and the adapters behind them (close them on exit)."""
    integrations = SiteIntegrations.from_config(config)
    return integrations.tools(), integrations
