"""What ``mspclaw psa add KIND`` stores for each PSA: the account's config (shown by ``psa list``,
written to the audit trail) and its secrets (kept only in the ``psa_accounts`` table).

Each kind's main secret (SuperOps API token, ConnectWise private key, Halo client secret, Autotask
secret, Freshdesk API key) comes from its option, else ``MSPCLAW_PSA_TOKEN``, else a hidden prompt.
Webhook secrets that MSPclaw itself hands to the PSA when registering the webhook (Halo's Basic
password, Autotask's ``SecretKey``) are generated when not given and never shown.
"""

from __future__ import annotations

import secrets as _secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mspclaw.cli.client import CLIError

KINDS = ("superops", "connectwise", "halo", "autotask", "freshdesk", "local")

Secret = Callable[[str, str | None], str]
"""``secret(label, given)``: ``given`` when set, else ``MSPCLAW_PSA_TOKEN``, else asked for."""


@dataclass
class PSAOptions:
    subdomain: str | None = None
    region: str = "us"
    base_url: str | None = None
    webhook_secret: str | None = None
    webhook_auth: str = "hmac"
    asset_field: str | None = None
    site: str | None = None
    company: str | None = None
    public_key: str | None = None
    private_key: str | None = None
    client_id: str | None = None
    codebase: str | None = None
    conditions: str | None = None
    host: str | None = None
    tenant: str | None = None
    client_secret: str | None = None
    username: str | None = None
    integration_code: str | None = None
    secret: str | None = None
    zone_url: str | None = None
    domain: str | None = None
    api_key: str | None = None


def _need(kind: str, **values: str | None) -> None:
    missing = ["--" + name.replace("_", "-") for name, value in values.items() if not value]
    if missing:
        raise CLIError(f"{kind} needs {', '.join(missing)} (see docs/psa/{kind}.md)")


def account_fields(kind: str, o: PSAOptions, secret: Secret) -> tuple[dict[str, Any], dict[str, str]]:
    """``(config, secrets)`` of a new account of ``kind``; :class:`CLIError` naming what is missing."""
    config: dict[str, Any] = {}
    stored: dict[str, str] = {}
    match kind:
        case "superops":
            _need(kind, subdomain=o.subdomain)
            if o.region not in ("us", "eu") or o.webhook_auth not in ("hmac", "shared_secret"):
                raise CLIError("--region must be us or eu, --webhook-auth hmac or shared_secret")
            config |= {"subdomain": o.subdomain, "region": o.region, "webhook_auth": o.webhook_auth}
            stored["token"] = secret("SuperOps API token", None)
            if o.webhook_secret:
                stored["webhook_secret"] = o.webhook_secret
        case "connectwise":
            _need(kind, site=o.site, company=o.company, public_key=o.public_key, client_id=o.client_id)
            config |= {"site": o.site, "company": o.company, "client_id": o.client_id}
            config |= {k: v for k, v in (("codebase", o.codebase), ("conditions", o.conditions)) if v}
            stored |= {"public_key": str(o.public_key),
                       "private_key": secret("ConnectWise private key", o.private_key)}
        case "halo":
            _need(kind, host=o.host, client_id=o.client_id)
            config |= {"host": o.host, "client_id": o.client_id, "webhook_username": "mspclaw"}
            if o.tenant:
                config["tenant"] = o.tenant
            stored |= {"client_secret": secret("Halo client secret", o.client_secret),
                       "webhook_password": o.webhook_secret or _secrets.token_urlsafe(32)}
        case "autotask":
            _need(kind, username=o.username, integration_code=o.integration_code)
            config["username"] = o.username
            if o.zone_url:
                config["zone_url"] = o.zone_url
            stored |= {"integration_code": str(o.integration_code), "secret": secret("Autotask API secret", o.secret),
                       "webhook_secret": o.webhook_secret or _secrets.token_urlsafe(32)[:40]}
        case "freshdesk":
            _need(kind, domain=o.domain)
            config["domain"] = o.domain
            stored["api_key"] = secret("Freshdesk API key", o.api_key)
            if o.webhook_secret:
                stored["webhook_secret"] = o.webhook_secret
        case "local":
            _need(kind, base_url=o.base_url)
            config["base_url"] = o.base_url
            stored["token"] = secret("API token", None)
            if o.webhook_secret:
                stored["webhook_secret"] = o.webhook_secret
        case _:
            raise CLIError(f"unknown PSA kind {kind!r}; supported: {', '.join(KINDS)}")
    if o.asset_field and kind in ("superops", "connectwise", "freshdesk"):
        config["asset_field"] = o.asset_field
    return config, stored
