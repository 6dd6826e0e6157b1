"""The site agent's integrations, configured where the client's credentials live: ``site.json``.

``mspclaw site add ad|entra|jamf|cups|openvpn`` writes one section each into ``site.json`` in the
agent's state directory (file 0600, directory 0700, written atomically); the agent started with the
same ``--state-dir`` reads it and offers exactly the tools those integrations can perform.

Secrets are never copied into ``site.json``: each section names the file that holds its secret
(``--password-file``, ``--client-secret-file``, ``--certificate-file``), readable by the agent's
user only, the way systemd credentials and Docker secrets work. The server never sees them.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mspclaw.errors import ConfigError

SITE_FILE = "site.json"
MAX_SECRET_BYTES = 64 * 1024

DEFAULT_PROTECTED_GROUPS: tuple[str, ...] = (
    "Domain Admins", "Enterprise Admins", "Schema Admins", "Administrators", "Account Operators",
    "Backup Operators", "Server Operators", "Print Operators", "Group Policy Creator Owners",
    "Key Admins", "Enterprise Key Admins", "DnsAdmins",
)
"""AD groups whose members automation never changes (besides any account with ``adminCount=1``)."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ADConfig(_Section):
    """Active Directory over LDAPS (or StartTLS on ldap://); a plain bind is never made."""

    kind: Literal["ad"] = "ad"
    url: str = Field(pattern=r"^ldaps?://[^\s/]+(:\d{1,5})?/?$", description="ldaps://dc1.corp.example:636")
    base_dn: str = Field(min_length=3, max_length=1024)
    bind_user: str = Field(min_length=1, max_length=512, description="DN, UPN or DOMAIN\\user of the service account")
    password_file: Path
    ca_file: Path | None = None
    """PEM bundle that signs the DC's certificate; default: the system's trust store."""
    tls_name: str | None = Field(None, max_length=253)
    """The name the DC's certificate carries, when the URL names it otherwise (e.g. an IP address)."""
    users_ou: str | None = Field(None, max_length=1024)
    """Where new accounts are created; default: the container of the colleague they copy, else CN=Users."""
    leavers_ou: str | None = Field(None, max_length=1024)
    """Where a leaver's disabled account is moved; unset: it stays where it is."""
    upn_suffix: str | None = Field(None, max_length=253)
    """The UPN suffix of new accounts; default: the domain's DNS name from ``base_dn``."""
    protected_groups: tuple[str, ...] = DEFAULT_PROTECTED_GROUPS
    share_groups: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    """Share (``\\\\fs01\\Finance`` or ``Finance``) -> the groups that grant it: the mapping the MSP keeps."""
    timeout_s: float = Field(10.0, gt=0, le=120)


class EntraConfig(_Section):
    """Entra ID / Microsoft 365 through Microsoft Graph, app-only (client credentials)."""

    kind: Literal["entra"] = "entra"
    tenant_id: str = Field(pattern=r"^[A-Za-z0-9.-]{1,253}$")
    client_id: str = Field(pattern=r"^[A-Za-z0-9-]{1,64}$")
    client_secret_file: Path | None = None
    certificate_file: Path | None = None
    """PEM holding the app's certificate and its private key (preferred to a secret)."""
    authority_host: str = Field("https://login.microsoftonline.com", pattern=r"^https://[^\s]+$")
    graph_url: str = Field("https://graph.microsoft.com/v1.0", pattern=r"^https://[^\s]+$")
    ca_file: Path | None = None
    """A CA bundle for the token endpoint and Graph (a TLS-inspecting proxy); default: the system's."""
    tap_lifetime_minutes: int = Field(60, ge=10, le=480)
    usage_location: str = Field("US", pattern=r"^[A-Z]{2}$")
    """Set on new cloud accounts: Microsoft requires one before a licence can be assigned."""
    timeout_s: float = Field(15.0, gt=0, le=120)


class JamfConfig(_Section):
    """Jamf Pro API with an API client (OAuth client credentials)."""

    kind: Literal["jamf"] = "jamf"
    url: str = Field(pattern=r"^https://[^\s]+$", description="https://acme.jamfcloud.com")
    client_id: str = Field(min_length=1, max_length=128)
    client_secret_file: Path
    ca_file: Path | None = None
    timeout_s: float = Field(15.0, gt=0, le=120)


class CupsConfig(_Section):
    """A CUPS print server at the site, managed with the CUPS command-line clients over IPP."""

    kind: Literal["cups"] = "cups"
    server: str = Field(pattern=r"^[A-Za-z0-9.\[\]:-]{1,260}$", description="host:port, e.g. print01:631")
    user: str | None = Field(None, pattern=r"^[A-Za-z0-9._-]{1,64}$")
    password_file: Path | None = None
    encrypt: bool = False
    timeout_s: float = Field(15.0, gt=0, le=120)


class OpenVPNConfig(_Section):
    """An OpenVPN server's management interface (TCP on the server's loopback, or a unix socket)."""

    kind: Literal["openvpn"] = "openvpn"
    management: str = Field(pattern=r"^([A-Za-z0-9.\[\]:-]{1,260}|/[^\x00]{1,255})$",
                            description="host:port of `management` in the server's config, or a socket path")
    password_file: Path | None = None
    timeout_s: float = Field(10.0, gt=0, le=60)


Integration = Annotated[ADConfig | EntraConfig | JamfConfig | CupsConfig | OpenVPNConfig, Field(discriminator="kind")]
Kind = Literal["ad", "entra", "jamf", "cups", "openvpn"]
KINDS: tuple[Kind, ...] = ("ad", "entra", "jamf", "cups", "openvpn")


class VerificationPolicy(_Section):
    """How the site proves an account change is the requester's own (DESIGN section 3). The server
    always checks the PSA contact and, when the requester's own device is online, asks them to confirm
    there; this policy decides whether a change may go ahead without that second factor."""

    require_second_factor: bool = False
    """Refuse (escalate) an account change when no second factor could be checked."""


class SiteConfig(_Section):
    integrations: dict[Kind, Integration] = Field(default_factory=dict)
    verification: VerificationPolicy = VerificationPolicy()

    @field_validator("integrations")
    @classmethod
    def _keys_match(cls, value: dict[Kind, Integration]) -> dict[Kind, Integration]:
        for key, section in value.items():
            if section.kind != key:
                raise ValueError(f"section {key!r} holds a {section.kind!r} integration")
        return value

    def get(self, kind: Kind) -> Integration | None:
        return self.integrations.get(kind)

    def with_integration(self, section: Integration) -> SiteConfig:
        return self.model_copy(update={"integrations": {**self.integrations, section.kind: section}})

    def without(self, kind: Kind) -> SiteConfig:
        return self.model_copy(update={"integrations": {k: v for k, v in self.integrations.items() if k != kind}})


def load_site(state_dir: Path) -> SiteConfig:
    """``site.json`` of ``state_dir``; an empty configuration when there is none (a device agent)."""
    path = state_dir / SITE_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return SiteConfig()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return SiteConfig.model_validate_json(text)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path} is not a valid site configuration ({problems}); fix it or run "
                          "`mspclaw site remove KIND` and add the integration again") from exc


def save_site(state_dir: Path, config: SiteConfig) -> Path:
    """Write ``site.json`` atomically, 0600 in a 0700 directory; returns its path."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(state_dir, 0o700)
    target = state_dir / SITE_FILE
    fd, tmp = tempfile.mkstemp(prefix=".site.", dir=state_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(config.model_dump(mode="json"), indent=2, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def read_secret(path: Path, what: str) -> str:
    """The secret in ``path`` (trailing newline stripped). Refuses a file others can read or write,
    an empty file and one over 64 KiB, each with what to do."""
    try:
        info = path.stat()
        if info.st_size > MAX_SECRET_BYTES:
            raise ConfigError(f"{what}: {path} is {info.st_size} bytes; a secret file holds at most 64 KiB")
        if os.name == "posix" and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(f"{what}: {path} is readable by other users (mode {stat.S_IMODE(info.st_mode):o}); "
                              f"run `chmod 600 {path}`")
        value = path.read_text(encoding="utf-8").strip("\r\n")
    except FileNotFoundError:
        raise ConfigError(f"{what}: {path} does not exist; create it (mode 600) with the secret in it") from None
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what}: {path} is not UTF-8 text") from exc
    if not value:
        raise ConfigError(f"{what}: {path} is empty")
    return value
