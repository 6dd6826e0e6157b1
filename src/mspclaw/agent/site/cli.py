"""``mspclaw site``: configure a site agent's integrations where the client's credentials live.

    mspclaw site add ad --state-dir DIR --url ldaps://dc1.corp.example:636 --base-dn DC=corp,DC=example \\
        --bind-user svc-mspclaw@corp.example --password-file /etc/mspclaw/ad.pw [--ca-file ca.pem] [--tls-name NAME]
    mspclaw site add entra --tenant-id T --client-id C --certificate-file app.pem
    mspclaw site add jamf --url https://acme.jamfcloud.com --client-id C --client-secret-file F
    mspclaw site add cups --server print01:631
    mspclaw site add openvpn --management 127.0.0.1:7505
    mspclaw site test          # connects to each, checks permissions, prints the tools the agent will offer
    mspclaw site list | remove KIND | policy ...
    mspclaw site               # run bare: the same as `mspclaw site list`

Like ``mspclaw agent``, this imports no server code and reads no environment variable. Secrets stay
in the files named here (mode 600); ``site.json`` holds only their paths. Restart the agent after a
change: it reads ``site.json`` when it starts.

Exit codes: 0 done (``test``: every integration works), 1 an integration failed its test, 2 usage or
configuration error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mspclaw.agent.site.config import (
    KINDS,
    ADConfig,
    CupsConfig,
    EntraConfig,
    Integration,
    JamfConfig,
    OpenVPNConfig,
    VerificationPolicy,
    load_site,
    read_secret,
    save_site,
)
from mspclaw.agent.state import default_state_dir
from mspclaw.errors import ConfigError, MSPClawError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _state_dir_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", type=Path, metavar="DIR",
                        help="the site agent's state directory, as given to `mspclaw agent` "
                             f"(default: {default_state_dir()})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mspclaw site", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="exit codes: 0 done; 1 an integration failed its test; 2 usage or "
                                            "configuration error")
    # run bare (`mspclaw site`, or with only --state-dir) it lists, like the server's command groups
    parser.add_argument("--state-dir", type=Path, metavar="DIR", dest="bare_state_dir",
                        help="the site agent's state directory (a command's own --state-dir wins); with no "
                             "COMMAND, list its integrations")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    add = commands.add_parser("add", help="add or replace one integration")
    kinds = add.add_subparsers(dest="kind", required=True, metavar="KIND")

    ad = kinds.add_parser("ad", help="Active Directory over LDAPS (or StartTLS on ldap://)")
    _state_dir_arg(ad)
    ad.add_argument("--url", required=True, help="ldaps://HOST:PORT (or ldap://HOST:PORT for StartTLS)")
    ad.add_argument("--base-dn", required=True, metavar="DN", help="e.g. DC=corp,DC=example")
    ad.add_argument("--bind-user", required=True, metavar="USER", help="the service account: DN, UPN or DOMAIN\\user")
    ad.add_argument("--password-file", required=True, type=Path, metavar="FILE",
                    help="file (mode 600) holding the service account's password")
    ad.add_argument("--ca-file", type=Path, metavar="FILE", help="PEM CA bundle that signs the DC's certificate")
    ad.add_argument("--tls-name", metavar="NAME",
                    help="the name on the DC's certificate, if the URL names it otherwise")
    ad.add_argument("--users-ou", metavar="DN", help="where new accounts are created")
    ad.add_argument("--leavers-ou", metavar="DN", help="where leavers' disabled accounts are moved")
    ad.add_argument("--upn-suffix", metavar="DOMAIN", help="UPN suffix for new accounts")
    ad.add_argument("--share", action="append", default=[], metavar="SHARE=GROUP[,GROUP]",
                    help="which groups grant a share, e.g. '\\\\fs01\\Finance=Finance-RW'; repeat per share")

    entra = kinds.add_parser("entra", help="Entra ID / Microsoft 365 through Microsoft Graph (app-only)")
    _state_dir_arg(entra)
    entra.add_argument("--tenant-id", required=True)
    entra.add_argument("--client-id", required=True, help="the app registration's application (client) id")
    secret = entra.add_mutually_exclusive_group(required=True)
    secret.add_argument("--client-secret-file", type=Path, metavar="FILE")
    secret.add_argument("--certificate-file", type=Path, metavar="FILE", help="PEM with the certificate and its key")
    entra.add_argument("--authority-host", default="https://login.microsoftonline.com")
    entra.add_argument("--graph-url", default="https://graph.microsoft.com/v1.0")
    entra.add_argument("--ca-file", type=Path, metavar="FILE")
    entra.add_argument("--tap-lifetime-minutes", type=int, default=60)
    entra.add_argument("--usage-location", default="US", help="two-letter country set on new cloud accounts")

    jamf = kinds.add_parser("jamf", help="Jamf Pro API (API client with client credentials)")
    _state_dir_arg(jamf)
    jamf.add_argument("--url", required=True)
    jamf.add_argument("--client-id", required=True)
    jamf.add_argument("--client-secret-file", required=True, type=Path, metavar="FILE")
    jamf.add_argument("--ca-file", type=Path, metavar="FILE")

    cups = kinds.add_parser("cups", help="a CUPS print server")
    _state_dir_arg(cups)
    cups.add_argument("--server", required=True, metavar="HOST:PORT")
    cups.add_argument("--user")
    cups.add_argument("--password-file", type=Path, metavar="FILE")
    cups.add_argument("--encrypt", action="store_true", help="require TLS to the print server")

    vpn = kinds.add_parser("openvpn", help="an OpenVPN server's management interface")
    _state_dir_arg(vpn)
    vpn.add_argument("--management", required=True, metavar="HOST:PORT|SOCKET")
    vpn.add_argument("--password-file", type=Path, metavar="FILE")

    test = commands.add_parser("test", help="check every integration and print the tools the agent will offer")
    _state_dir_arg(test)
    listing = commands.add_parser("list", help="show the configured integrations (no secrets)")
    _state_dir_arg(listing)
    remove = commands.add_parser("remove", help="remove one integration")
    _state_dir_arg(remove)
    remove.add_argument("kind", choices=KINDS)
    policy = commands.add_parser("policy", help="how requesters of account changes are verified")
    _state_dir_arg(policy)
    policy.add_argument("--require-second-factor", action=argparse.BooleanOptionalAction, default=None,
                        help="refuse an account change when no second factor could be checked")
    return parser


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # a command's own --state-dir, else one given before the command (`mspclaw site --state-dir DIR list`)
    state_dir: Path = getattr(args, "state_dir", None) or args.bare_state_dir or default_state_dir()
    try:
        match args.command:
            case None:
                return _list(state_dir)
            case "add":
                return _add(state_dir, args)
            case "test":
                return _test(state_dir)
            case "list":
                return _list(state_dir)
            case "remove":
                config = load_site(state_dir)
                if config.get(args.kind) is None:
                    print(f"no {args.kind} integration is configured in {state_dir}", file=sys.stderr)
                    return EXIT_USAGE
                save_site(state_dir, config.without(args.kind))
                print(f"removed {args.kind}; restart the agent so it stops offering its tools")
                return EXIT_OK
            case "policy":
                config = load_site(state_dir)
                changes = {k: v for k, v in (("require_second_factor", args.require_second_factor),) if v is not None}
                updated = config.model_copy(update={"verification": config.verification.model_copy(update=changes)})
                save_site(state_dir, updated)
                print(_policy_text(updated.verification))
                return EXIT_OK
    except ConfigError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    parser.error(f"unknown command {args.command!r}")


def _section(args: argparse.Namespace) -> Integration:
    fields: dict[str, Any]
    match args.kind:
        case "ad":
            shares: dict[str, tuple[str, ...]] = {}
            for item in args.share:
                share, sep, groups = item.partition("=")
                names = tuple(g.strip() for g in groups.split(",") if g.strip())
                if not sep or not share.strip() or not names:
                    raise ConfigError(f"--share {item!r}: write SHARE=GROUP[,GROUP], "
                                      "e.g. '\\\\fs01\\Finance=Finance-RW'")
                shares[share.strip()] = names
            fields = {"url": args.url, "base_dn": args.base_dn, "bind_user": args.bind_user,
                      "password_file": args.password_file, "ca_file": args.ca_file, "tls_name": args.tls_name,
                      "users_ou": args.users_ou, "leavers_ou": args.leavers_ou, "upn_suffix": args.upn_suffix,
                      "share_groups": shares}
            model: type[Integration] = ADConfig
        case "entra":
            fields = {"tenant_id": args.tenant_id, "client_id": args.client_id,
                      "client_secret_file": args.client_secret_file, "certificate_file": args.certificate_file,
                      "authority_host": args.authority_host, "graph_url": args.graph_url, "ca_file": args.ca_file,
                      "tap_lifetime_minutes": args.tap_lifetime_minutes, "usage_location": args.usage_location}
            model = EntraConfig
        case "jamf":
            fields = {"url": args.url, "client_id": args.client_id, "client_secret_file": args.client_secret_file,
                      "ca_file": args.ca_file}
            model = JamfConfig
        case "cups":
            fields = {"server": args.server, "user": args.user, "password_file": args.password_file,
                      "encrypt": args.encrypt}
            model = CupsConfig
        case _:
            fields = {"management": args.management, "password_file": args.password_file}
            model = OpenVPNConfig
    for key in ("password_file", "client_secret_file", "certificate_file", "ca_file"):
        if isinstance(fields.get(key), Path):
            fields[key] = fields[key].expanduser().resolve()
    try:
        section = model.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(f"--{str(e['loc'][0]).replace('_', '-')}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"site add {args.kind}: {problems}") from exc
    for key in ("password_file", "client_secret_file", "certificate_file"):
        path = getattr(section, key, None)
        if isinstance(path, Path):
            read_secret(path, f"--{key.replace('_', '-')}")  # refuse now what the agent would refuse later
    ca = getattr(section, "ca_file", None)
    if isinstance(ca, Path) and not ca.is_file():
        raise ConfigError(f"--ca-file: {ca} does not exist")
    return section


def _add(state_dir: Path, args: argparse.Namespace) -> int:
    section = _section(args)
    config = load_site(state_dir)
    replaced = config.get(section.kind) is not None
    path = save_site(state_dir, config.with_integration(section))
    print(f"{'replaced' if replaced else 'added'} {section.kind} in {path}")
    print("next: `mspclaw site test" + (f" --state-dir {state_dir}`" if state_dir != default_state_dir() else "`")
          + ", then restart the agent so it offers the new tools")
    return EXIT_OK


def _test(state_dir: Path) -> int:
    from mspclaw.agent.site.registry import SiteIntegrations

    config = load_site(state_dir)
    if not config.integrations:
        print(f"no integrations configured in {state_dir}; add one with `mspclaw site add ad|entra|jamf|cups|openvpn`",
              file=sys.stderr)
        return EXIT_USAGE
    integrations = SiteIntegrations.from_config(config)
    failed = 0
    try:
        for kind in KINDS:
            adapter = {"ad": integrations.ad, "entra": integrations.entra, "jamf": integrations.jamf,
                       "cups": integrations.printserver, "openvpn": integrations.openvpn}[kind]
            if adapter is None:
                continue
            try:
                report = adapter.check()
            except MSPClawError as exc:
                failed += 1
                print(f"{kind:8} FAILED  {exc.message}")
                continue
            details = ", ".join(f"{k}={v}" for k, v in report.items() if k != "ok" and not isinstance(v, dict | list))
            print(f"{kind:8} ok      {details}")
        tools = sorted(integrations.tools())
        print(f"the agent will offer {len(tools)} tools: {', '.join(tools)}")
        print(_policy_text(config.verification))
    finally:
        integrations.close()
    return EXIT_FAILED if failed else EXIT_OK


def _list(state_dir: Path) -> int:
    config = load_site(state_dir)
    if not config.integrations:
        print(f"no integrations configured in {state_dir}")
        return EXIT_OK
    for kind, section in config.integrations.items():
        shown = {k: str(v) for k, v in section.model_dump().items() if v not in (None, {}, ()) and k != "kind"}
        print(f"{kind}: " + ", ".join(f"{k}={v}" for k, v in shown.items()))
    print(_policy_text(config.verification))
    return EXIT_OK


def _policy_text(policy: VerificationPolicy) -> str:
    return ("requester verification: the PSA contact always, a confirmation on their own enrolled device whenever "
            f"it is online; a second factor is {'required' if policy.require_second_factor else 'optional'} "
            "(`mspclaw site policy --require-second-factor`)")

