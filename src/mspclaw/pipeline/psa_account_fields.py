"""What a new PSA account of each kind stores: its config (shown in lists, written to the audit trail) and its
secrets (kept only, encrypted, in the ``psa_accounts`` table). ``mspclaw psa add`` and the console's
``/admin/psa`` form both build accounts here.

Each kind's main secret (SuperOps API token, ConnectWise private key, Halo client secret, Autotask secret,
Freshdesk API key) comes through the caller's ``secret`` function: the CLI falls back to
``MSPCLAW_PSA_TOKEN`` and a hidden prompt, the console requires the form field. Webhook secrets that
MSPclaw itself hands to the PSA when registering the webhook (Halo's Basic password, Autotask's
``SecretKey``) are generated when not given and never shown.
"""

from __future__ import annotations

import secrets as _secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mspclaw.errors import MSPClawError

KINDS = ("superops", "connectwise", "halo", "autotask", "freshdesk", "local")

Secret = Callable[[str, str | None], str]
"""``secret(label, given)``: the secret to store; ``given`` is what the caller typed, if anything."""


class AccountFieldsError(MSPClawError):
    """A new PSA account's fields are missing or wrong; ``missing`` names the absent fields."""

    code = "invalid_psa_account"

    def __init__(self, message: str, *, missing: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.missing = missing


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
    token: str | None = None
    """SuperOps and local: the API token (the CLI asks for it when not given)."""


@dataclass(frozen=True)
class FormField:
    """One field a form asks for when adding an account of a kind; ``name`` is a :class:`PSAOptions` field."""

    name: str
    label: str
    secret: bool = False
    required: bool = False
    choices: tuple[str, ...] = ()


_WEBHOOK_SECRET = FormField("webhook_secret", "Webhook secret (the PSA proves its deliveries with it)", secret=True)
_GENERATED_SECRET = FormField("webhook_secret", "Webhook secret (generated when left empty)", secret=True)
_ASSET = FormField("asset_field", "Custom field holding the device name")

FORM_FIELDS: dict[str, tuple[FormField, ...]] = {
    "superops": (FormField("subdomain", "Customer sub-domain", required=True),
                 FormField("region", "Region", choices=("us", "eu")),
                 FormField("token", "API token", secret=True, required=True),
                 FormField("webhook_auth", "Webhook check", choices=("hmac", "shared_secret")),
                 _WEBHOOK_SECRET, _ASSET),
    "connectwise": (FormField("site", "Site host, e.g. api-na.myconnectwise.net", required=True),
                    FormField("company", "Company id", required=True),
                    FormField("client_id", "clientId (GUID)", required=True),
                    FormField("public_key", "API member's public key", secret=True, required=True),
                    FormField("private_key", "API member's private key", secret=True, required=True),
                    FormField("codebase", "Codebase, e.g. v2025_1/ (discovered when empty)"),
                    FormField("conditions", "Extra ticket conditions for polling"), _ASSET),
    "halo": (FormField("host", "Instance host, e.g. acme.halopsa.com", required=True),
             FormField("client_id", "API application's client id", required=True),
             FormField("client_secret", "Client secret", secret=True, required=True),
             FormField("tenant", "Tenant (hosted multi-tenant cloud)"), _GENERATED_SECRET),
    "autotask": (FormField("username", "API-only user's user name", required=True),
                 FormField("integration_code", "API tracking identifier", secret=True, required=True),
                 FormField("secret", "API user's secret", secret=True, required=True),
                 FormField("zone_url", "Zone URL (discovered when empty)"), _GENERATED_SECRET),
    "freshdesk": (FormField("domain", "Sub-domain, e.g. acme for acme.freshdesk.com", required=True),
                  FormField("api_key", "API key", secret=True, required=True), _WEBHOOK_SECRET, _ASSET),
    "local": (FormField("base_url", "The local PSA's URL", required=True),
              FormField("token", "API token", secret=True, required=True), _WEBHOOK_SECRET),
}
"""The fields a form shows for each kind, in order; :func:`account_fields` decides what is stored."""


def _need(kind: str, **values: str | None) -> None:
    missing = tuple(name for name, value in values.items() if not value)
    if missing:
        raise AccountFieldsError(f"{kind} needs {', '.join(missing)} (see docs/psa/{kind}.md)", missing=missing)


def account_fields(kind: str, o: PSAOptions, secret: Secret) -> tuple[dict[str, Any], dict[str, str]]:
    """``(config, secrets)`` of a new account of ``kind``; :class:`AccountFieldsError` naming what is missing."""
    config: dict[str, Any] = {}
    stored: dict[str, str] = {}
    match kind:
        case "superops":
            _need(kind, subdomain=o.subdomain)
            if o.region not in ("us", "eu") or o.webhook_auth not in ("hmac", "shared_secret"):
                raise AccountFieldsError("region must be us or eu, webhook_auth hmac or shared_secret")
            config |= {"subdomain": o.subdomain, "region": o.region, "webhook_auth": o.webhook_auth}
            stored["token"] = secret("SuperOps API token", o.token)
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
            stored["token"] = secret("API token", o.token)
            if o.webhook_secret:
                stored["webhook_secret"] = o.webhook_secret
        case _:
            raise AccountFieldsError(f"unknown PSA kind {kind!r}; supported: {', '.join(KINDS)}")
    if o.asset_field and kind in ("superops", "connectwise", "freshdesk"):
        config["asset_field"] = o.asset_field
    return config, stored


MAX_FIELD_CHARS = 4000
"""Longest value a form or API body may give one field (a ConnectWise condition, a key)."""


def options_from(kind: str, fields: Mapping[str, str]) -> PSAOptions:
    """:class:`PSAOptions` from a form's or API body's ``{field: value}`` (empty values left out);
    :class:`AccountFieldsError` for a field that kind does not have, or a value over :data:`MAX_FIELD_CHARS`."""
    if kind not in FORM_FIELDS:
        raise AccountFieldsError(f"unknown PSA kind {kind!r}; supported: {', '.join(KINDS)}")
    known = {f.name for f in FORM_FIELDS[kind]}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise AccountFieldsError(f"{kind} has no field {', '.join(map(repr, unknown))[:200]}; "
                                 f"its fields: {', '.join(sorted(known))}")
    too_long = sorted(name for name, value in fields.items() if len(value) > MAX_FIELD_CHARS)
    if too_long:
        raise AccountFieldsError(f"{', '.join(too_long)}: at most {MAX_FIELD_CHARS} characters each")
    return PSAOptions(**{name: value.strip() for name, value in fields.items() if value.strip()})
