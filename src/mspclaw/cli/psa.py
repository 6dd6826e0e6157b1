"""``mspclaw psa add|list|remove|register-webhook``: the PSA accounts MSPclaw takes tickets from,
stored in the data directory's database (offline: no server needed)."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer

from mspclaw.cli.client import CLIError
from mspclaw.cli.config import settings
from mspclaw.cli.groups import runs_bare
from mspclaw.cli.output import JsonOpt, print_json, table

psa_app = typer.Typer(help="PSA accounts MSPclaw takes tickets from (stored in the data directory's database).")


@psa_app.command("add")
def psa_add(
    kind: Annotated[str, typer.Argument(help="superops, connectwise, halo, autotask, freshdesk or local.")],
    name: Annotated[str | None, typer.Option(help="Account name used in /webhooks/NAME and --psa NAME=ID "
                                                  "[default: the kind].")] = None,
    subdomain: Annotated[str | None, typer.Option(help="SuperOps: your CustomerSubDomain.")] = None,
    region: Annotated[str, typer.Option(help="SuperOps: us or eu.")] = "us",
    base_url: Annotated[str | None, typer.Option(help="local: the simulator's URL.")] = None,
    poll_interval: Annotated[float, typer.Option(help="Seconds between polls; 0 turns polling off.")] = 60.0,
    webhook_secret: Annotated[str | None, typer.Option(help="Secret the PSA's webhooks prove themselves with "
                                                            "(Halo, Autotask: generated when omitted).")] = None,
    webhook_auth: Annotated[str, typer.Option(help="SuperOps: 'hmac' (signed) or 'shared_secret' (header).")] = "hmac",
    asset_field: Annotated[str | None, typer.Option(help="SuperOps, ConnectWise, Freshdesk: custom field holding "
                                                         "the device name.")] = None,
    site: Annotated[str | None, typer.Option(help="ConnectWise: host, e.g. api-na.myconnectwise.net.")] = None,
    company: Annotated[str | None, typer.Option(help="ConnectWise: company id you log in with.")] = None,
    public_key: Annotated[str | None, typer.Option(help="ConnectWise: API member's public key.")] = None,
    private_key: Annotated[str | None, typer.Option(help="ConnectWise: private key [asked when omitted].")] = None,
    client_id: Annotated[str | None, typer.Option(help="ConnectWise: clientId GUID; Halo: API application's "
                                                       "client id.")] = None,
    codebase: Annotated[str | None, typer.Option(help="ConnectWise: codebase, e.g. v2025_1/ [discovered].")] = None,
    conditions: Annotated[str | None, typer.Option(help="ConnectWise: extra ticket conditions for polling, e.g. "
                                                        "'board/name=\"Help Desk\"'.")] = None,
    host: Annotated[str | None, typer.Option(help="Halo: instance host, e.g. acme.halopsa.com.")] = None,
    tenant: Annotated[str | None, typer.Option(help="Halo: tenant on hosted multi-tenant cloud.")] = None,
    client_secret: Annotated[str | None, typer.Option(help="Halo: client secret [asked when omitted].")] = None,
    username: Annotated[str | None, typer.Option(help="Autotask: API-only user's user name.")] = None,
    integration_code: Annotated[str | None, typer.Option(help="Autotask: API tracking identifier.")] = None,
    secret: Annotated[str | None, typer.Option(help="Autotask: API user's secret [asked when omitted].")] = None,
    zone_url: Annotated[str | None, typer.Option(help="Autotask: zone URL [discovered].")] = None,
    domain: Annotated[str | None, typer.Option(help="Freshdesk: sub-domain, e.g. acme for acme.freshdesk.com.")] = None,
    api_key: Annotated[str | None, typer.Option(help="Freshdesk: API key [asked when omitted].")] = None,
) -> None:
    """Add a PSA account. Its main secret comes from its option, MSPCLAW_PSA_TOKEN, or a hidden prompt."""
    from mspclaw.cli.psa_accounts import PSAOptions, account_fields
    from mspclaw.store.jobs import PSAAccounts
    from mspclaw.wiring import open_store, secret_box

    cfg = settings()

    def ask(label: str, given: str | None) -> str:
        if given:
            return given
        return cfg.psa_token.get_secret_value() if cfg.psa_token else str(typer.prompt(label, hide_input=True))

    options = PSAOptions(subdomain=subdomain, region=region, base_url=base_url, webhook_secret=webhook_secret,
                         webhook_auth=webhook_auth, asset_field=asset_field, site=site, company=company,
                         public_key=public_key, private_key=private_key, client_id=client_id, codebase=codebase,
                         conditions=conditions, host=host, tenant=tenant, client_secret=client_secret,
                         username=username, integration_code=integration_code, secret=secret,
                         zone_url=zone_url, domain=domain, api_key=api_key)
    config, secrets = account_fields(kind, options, ask)
    config = {"poll_interval_s": poll_interval, **config}
    db, log = open_store(cfg)
    try:
        account = PSAAccounts(db, secret_box(cfg)).add(name or kind, kind, config, secrets)
        log.append("psa_account_added", actor="cli", data={"name": account.name, "kind": kind, "config": config})
    finally:
        db.dispose()
    print(f"{account.name}: added; restart the server to start its poller and accept /webhooks/{account.name}")


@psa_app.command("list")
def psa_list(as_json: JsonOpt = False) -> None:
    """List PSA accounts (secrets are never shown)."""
    from mspclaw.store.jobs import PSAAccounts
    from mspclaw.wiring import open_store, secret_box

    db, _ = open_store(settings())
    try:
        rows = [{"name": a.name, "kind": a.kind, "enabled": a.enabled, "config": a.config}
                for a in PSAAccounts(db, secret_box(settings())).list()]
    finally:
        db.dispose()
    if as_json:
        return print_json(rows)
    table("PSA accounts", ["name", "kind", "enabled", "config"],
          [[r["name"], r["kind"], r["enabled"], json.dumps(r["config"])] for r in rows])


@psa_app.command("remove")
def psa_remove(name: str) -> None:
    """Remove a PSA account."""
    from mspclaw.store.jobs import PSAAccounts
    from mspclaw.wiring import open_store, secret_box

    db, log = open_store(settings())
    try:
        PSAAccounts(db, secret_box(settings())).remove(name)
        log.append("psa_account_removed", actor="cli", data={"name": name})
    finally:
        db.dispose()
    print(f"{name}: removed")


@psa_app.command("register-webhook")
def psa_register_webhook(
    name: Annotated[str, typer.Argument(help="PSA account name (see `mspclaw psa list`).")],
    url: Annotated[str, typer.Option(help="Public URL of this server's /webhooks/NAME, as the PSA will call it, "
                                          "e.g. https://msp.example:8700/webhooks/connectwise.")],
) -> None:
    """Subscribe MSPclaw to the PSA's ticket events through the PSA's API (ConnectWise, Halo, Autotask)."""
    from mspclaw.connectors.base import RegistersWebhooks
    from mspclaw.store.jobs import PSAAccounts
    from mspclaw.wiring import connector_for, open_store, secret_box

    if not url.startswith(("https://", "http://")) or not url.rstrip("/").endswith(f"/webhooks/{name}"):
        raise CLIError(f"--url must be this server's public URL ending in /webhooks/{name}")
    db, log = open_store(settings())
    try:
        account = PSAAccounts(db, secret_box(settings())).get(name)
        connector = connector_for(account)
        if not isinstance(connector, RegistersWebhooks):
            raise CLIError(f"{account.kind} has no API to register webhooks; set it up in the PSA as "
                           f"docs/psa/{account.kind}.md says")

        async def register() -> str:
            try:
                return await connector.register_webhook(url)
            finally:
                close = getattr(connector, "aclose", None)
                if close is not None:
                    await close()

        said = asyncio.run(register())
        log.append("psa_webhook_registered", actor="cli", data={"name": name, "url": url, "result": said})
    finally:
        db.dispose()
    print(said)


runs_bare(psa_app, psa_list)
