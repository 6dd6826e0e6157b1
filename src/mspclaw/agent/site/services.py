"""The site agent's service tools: what its configured Jamf, print server and OpenVPN integrations can do.

:func:`service_tools` offers a tool only when the adapter behind it is configured, so the site agent
advertises exactly what its integrations can perform. Each tool returns a JSON-safe dict; failures
are the adapters' ``IntegrationError`` family, told to the model as they are.
"""

from __future__ import annotations

from mspclaw.agent.site.jamf import Jamf
from mspclaw.agent.site.openvpn import OpenVPN
from mspclaw.agent.site.printserver import PrintServer
from mspclaw.agent.tools import JsonObject, ToolContext, ToolFn, bind
from mspclaw.tools.site_services import (
    MacArgs,
    MacLookupArgs,
    NoArgs,
    PrintQueueArgs,
    VpnSessionsArgs,
    VpnUserArgs,
)


def _jamf_tools(jamf: Jamf) -> dict[str, ToolFn]:
    def mac_lookup(args: MacLookupArgs, context: ToolContext) -> JsonObject:
        computers = jamf.find(serial=args.serial, username=args.username)
        return {"found": bool(computers), "count": len(computers), "computers": [c.as_json() for c in computers]}

    def mac_update_inventory(args: MacArgs, context: ToolContext) -> JsonObject:
        return jamf.mdm_command(args.serial, "DEVICE_INFORMATION")

    def mac_restart(args: MacArgs, context: ToolContext) -> JsonObject:
        return jamf.mdm_command(args.serial, "RESTART_DEVICE")

    def mac_redeploy_framework(args: MacArgs, context: ToolContext) -> JsonObject:
        return jamf.redeploy_framework(args.serial)

    return {"mac_lookup": bind(MacLookupArgs, mac_lookup),
            "mac_update_inventory": bind(MacArgs, mac_update_inventory),
            "mac_restart": bind(MacArgs, mac_restart),
            "mac_redeploy_framework": bind(MacArgs, mac_redeploy_framework)}


def _print_tools(printserver: PrintServer) -> dict[str, ToolFn]:
    def print_server_queues(args: NoArgs, context: ToolContext) -> JsonObject:
        queues = printserver.queues()
        return {"server": printserver.config.server, "queues": [q.as_json() for q in queues],
                "attention": [q.name for q in queues if q.needs_attention],
                "stuck_jobs": sum(len(q.stuck_jobs) for q in queues)}

    def print_server_clear_queue(args: PrintQueueArgs, context: ToolContext) -> JsonObject:
        return printserver.clear_queue(args.queue)

    return {"print_server_queues": bind(NoArgs, print_server_queues),
            "print_server_clear_queue": bind(PrintQueueArgs, print_server_clear_queue)}


def _vpn_tools(openvpn: OpenVPN) -> dict[str, ToolFn]:
    def vpn_sessions(args: VpnSessionsArgs, context: ToolContext) -> JsonObject:
        sessions = openvpn.sessions(args.username)
        out: JsonObject = {"sessions": [s.as_json() for s in sessions], "count": len(sessions)}
        if args.username is not None:
            out = {"connected": bool(sessions), "username": args.username, **out}
        return out

    def vpn_disconnect(args: VpnUserArgs, context: ToolContext) -> JsonObject:
        ended = openvpn.disconnect(args.username)
        return {"disconnected": True, "username": args.username, "sessions_ended": ended}

    return {"vpn_sessions": bind(VpnSessionsArgs, vpn_sessions),
            "vpn_disconnect": bind(VpnUserArgs, vpn_disconnect)}


def service_tools(jamf: Jamf | None, printserver: PrintServer | None, openvpn: OpenVPN | None) -> dict[str, ToolFn]:
    """The tools of the configured integrations, by catalogue name (``tools/site_services.py``)."""
    tools: dict[str, ToolFn] = {}
    if jamf is not None:
        tools.update(_jamf_tools(jamf))
    if printserver is not None:
        tools.update(_print_tools(printserver))
    if openvpn is not None:
        tools.update(_vpn_tools(openvpn))
    return tools
