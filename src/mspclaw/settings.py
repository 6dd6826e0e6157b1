"""Settings: the only reader of ``MSPCLAW_*`` environment variables.

Every value has a working default, so a fresh checkout runs with nothing set: SQLite in
``./.mspclaw``, port 8700, the deterministic playbook model, and an API key generated on
first start and kept in the data directory (mode 0600).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from mspclaw.errors import ConfigError

API_KEY_FILE = "api_key"
JWT_SECRET_FILE = "jwt_secret"  # noqa: S105 (a file name)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MSPCLAW_", extra="ignore")

    data_dir: Path = Field(Path(".mspclaw"), description="Where SQLite, the audit files and the API key live.")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default is SQLite in the data directory.")
    api_key: SecretStr | None = Field(None, description="Bootstrap admin key for /api and the CLI.")
    host: str = "127.0.0.1"
    port: int = 8700
    server_url: str = Field("http://127.0.0.1:8700", description="Where CLI commands find the server.")
    agent_port: int = Field(8701, ge=0, le=65535, description="Port of the agent WebSocket listener (/ws/agent), "
                            "on the same host address; 0 picks a free one.")
    agent_url: str | None = Field(None, pattern=r"^wss?://", description="Where agents reach /ws/agent, told to "
                                  "them at enrollment, e.g. wss://msp.example.com/ws/agent behind a reverse proxy; "
                                  "default: ws(s)://<the host they enrolled with>:<agent_port>/ws/agent.")
    model: str = Field("playbook", description="provider:model[,provider:model...]; 'playbook' needs no LLM.")
    approval_timeout_s: float = Field(300.0, gt=0, description="No decision in this time is a deny.")
    heartbeat_interval_s: float = Field(30.0, gt=0)
    redis_url: SecretStr | None = Field(None, description="Redis that server replicas share (redis://[:password@]"
                                        "host:6379/0, rediss:// for TLS): which replica holds which agent, and tool "
                                        "calls forwarded between them (docs/operations.md); unset: one process "
                                        "serves every agent.")
    relay_listen: str | None = Field(None, max_length=300, description="With MSPCLAW_REDIS_URL: host:port where "
                                     "this replica takes tool calls forwarded by the other replicas over a direct "
                                     "connection (authenticated with a key derived from the JWT secret they "
                                     "share), e.g. 0.0.0.0:7401; unset: forwarded calls go through Redis only.")
    relay_advertise: str | None = Field(None, max_length=300, description="host:port the other replicas reach "
                                        "MSPCLAW_RELAY_LISTEN at (default: the listening address).")
    tool_timeout_s: float = Field(60.0, gt=0)
    enrollment_ttl_hours: float = Field(24.0, gt=0)
    psa_token: SecretStr | None = Field(None, description="API token for `mspclaw psa add` without a prompt.")
    workers: int = Field(32, ge=0, le=1024, description="PSA tickets worked on at once by this process (0: none); "
                         "a ticket waiting for an approval or an answer holds one.")
    log_level: str = Field("INFO", pattern=r"(?i)^(debug|info|warning|error|critical)$",
                           description="Lowest level of the server's log lines (MSPCLAW_LOG_LEVEL).")
    log_format: Literal["auto", "json", "text"] = Field("auto", description="Log lines as JSON objects or as "
                                                        "text; auto: text on a terminal, JSON otherwise.")
    playbook_dirs: list[Path] = Field(default_factory=list, description="An MSP's own playbook directories, "
                                      "loaded with the shipped library (JSON list in MSPCLAW_PLAYBOOK_DIRS).")
    playbook_trust: Literal["off", "warn", "enforce"] = Field("enforce", description="Signature checks on the "
                                                              "playbooks loaded: enforce (leave out each unsigned, "
                                                              "altered, revoked or untrusted-key playbook, saying "
                                                              "why and how to fix it; the others load), warn (load "
                                                              "them, say the same) or off; "
                                                              "docs/playbook-registry.md.")
    playbook_trusted_keys: Path | None = Field(None, description="The MSP's trust file: the public keys it trusts "
                                               "per tier (official, community, local) and revoked playbooks; the "
                                               "official key that signs the shipped library is always trusted.")
    playbook_reload_s: float = Field(5.0, ge=0, le=3600, description="How often the server looks for changed "
                                     "playbook files and reloads them without a restart (0: never).")
    playbook_signing_key: Path | None = Field(None, description="The MSP's own Ed25519 key (`mspclaw playbooks "
                                              "keygen`), trusted at tier local: the console's builder, the API and "
                                              "`mspclaw playbooks sign` sign with it; default: the data directory's "
                                              "playbook_signing_key.pem, made on first start.")
    max_steps: int = Field(12, ge=1, le=100, description="Model turns per ticket before the run escalates.")
    max_tokens: int = Field(200_000, ge=1000, description="Prompt plus completion tokens per ticket.")
    max_spend_usd: float = Field(2.0, ge=0, description="Model spend per ticket, in US dollars.")
    two_person_tools: list[str] = Field(default_factory=list, description="Tools whose approval needs two "
                                        "different technicians (JSON list in MSPCLAW_TWO_PERSON_TOOLS), such as "
                                        '["reset_password", "disable_user"].')
    question_timeout_s: float = Field(900.0, gt=0, description="No answer from the end user in this time: go on.")
    question_psa_poll_s: float = Field(30.0, gt=0, description="While a question asked on a PSA ticket waits, "
                                       "read the ticket for the user's reply this often.")
    # -- operator features: technicians, tokens, notifications, feedback --
    jwt_secret: SecretStr | None = Field(None, description="Signs technician tokens; default: generated in the "
                                         "data directory. Replicas behind one load balancer must share it.")
    access_token_ttl_s: float = Field(900.0, gt=0, le=86400, description="Lifetime of a technician's JWT.")
    refresh_token_ttl_s: float = Field(7 * 86400.0, gt=0, description="Lifetime of a refresh token.")
    login_link_ttl_s: float = Field(900.0, gt=0, description="Lifetime of a one-time login link.")
    feedback_timeout_s: float = Field(3 * 86400.0, gt=0, description="No answer to 'did it work?' in this "
                                      "time counts as unconfirmed.")
    notify_retries: int = Field(4, ge=1, le=10, description="Delivery attempts per Slack/Teams message.")
    notify_backoff_s: float = Field(2.0, ge=0, description="First retry delay; doubles each attempt.")
    public_url: str | None = Field(None, description="Where technicians reach this server (links in "
                                   "notifications); default: MSPCLAW_SERVER_URL.")
    sso_timeout_s: float = Field(10.0, gt=0, le=60, description="Longest the console waits for a single sign-on "
                                 "provider (discovery, token, keys) before it says the provider is down.")
    slack_signing_secret: SecretStr | None = Field(None, description="The Slack app's signing secret: turns on "
                                                   "Approve/Deny buttons in Slack approval messages and verifies "
                                                   "their clicks at POST /integrations/slack/interactions.")
    slack_response_url_prefixes: list[str] = Field(
        default_factory=lambda: ["https://hooks.slack.com/", "https://hooks.slack-gov.com/"],
        description="Where a Slack interaction's response_url may point (JSON list); MSPclaw updates the message "
                    "there and posts nowhere else.")
    reply_link_hosts: list[str] = Field(default_factory=list, description="Hosts (and their subdomains) a reply "
                                        "the model writes to an end user may link to, besides public_url (JSON "
                                        'list in MSPCLAW_REPLY_LINK_HOSTS), such as ["status.msp.example"].')
    # -- cost of untrusted input --
    max_body_bytes: int = Field(1024 * 1024, ge=64 * 1024, description="Largest request body of any route, "
                                "refused (413) while it is read, before authentication.")
    webhook_rate_per_s: float = Field(5.0, gt=0, description="Webhook deliveries a second from one source "
                                      "address (an IPv6 /64) after its burst; more are answered 429.")
    webhook_burst: int = Field(60, ge=1, description="Webhook deliveries one source may send at once.")

    # -- readiness (/readyz) and start-up --
    ready_poll_failures: int = Field(3, ge=1, le=1000, description="Consecutive failed polls of one PSA after "
                                     "which /readyz reports the server not ready.")
    ready_queue_stuck_s: float = Field(900.0, gt=0, description="A PSA ticket due in the queue for longer than "
                                       "this, unclaimed, makes /readyz report the queue stuck.")
    ready_timeout_s: float = Field(5.0, gt=0, le=60, description="Longest /readyz waits for the database.")
    database_retry_s: float = Field(30.0, gt=0, le=3600, description="Longest wait between two attempts to "
                                    "reach the database while the server starts without it (doubling from 1 s).")

    # -- TLS, secrets at rest, retention (docs/security.md, docs/backup.md) --
    tls_cert_file: Path | None = Field(None, description="PEM certificate chain: the API port and the agent port "
                                       "serve HTTPS/WSS with it (reloaded when the file changes).")
    tls_key_file: Path | None = Field(None, description="PEM private key of tls_cert_file (default: in the "
                                      "certificate file).")
    tls_reload_check_s: float = Field(5.0, gt=0, le=3600, description="At most this often, a new connection "
                                      "checks whether the certificate or key file changed.")
    proxy_headers: bool = Field(True, description="Take the client address and scheme from X-Forwarded-For/"
                                "-Proto, from the addresses in forwarded_allow_ips only.")
    forwarded_allow_ips: str = Field("127.0.0.1", max_length=2000, description="Comma-separated addresses or "
                                     "networks of the reverse proxies whose X-Forwarded-* headers are trusted.")
    secret_key: SecretStr | None = Field(None, description="Key(s) that encrypt PSA credentials in the database, "
                                         "comma-separated, the first encrypts (`mspclaw secrets new-key`).")
    secret_key_file: Path | None = Field(None, description="A file of such keys, one a line (containers); "
                                         "default: secret.key in the data directory, created 0600.")
    retention_jobs_days: int = Field(30, ge=0, le=36500, description="Finished jobs older than this are deleted "
                                     "by `mspclaw prune` (0: kept).")
    retention_sessions_days: int = Field(0, ge=0, le=36500, description="Finished sessions older than this are "
                                         "deleted with everything recorded under them, except the audit trail "
                                         "(0: kept).")
    retention_steps_days: int = Field(0, ge=0, le=36500, description="Step records of finished sessions older "
                                      "than this are deleted; the sessions stay (0: kept).")
    loop_guard: bool = Field(False, description="A database statement run on the event loop's thread raises "
                             "instead of blocking it (the test suite runs with it on; a debugging aid, off in "
                             "production: mspclaw.store.loop_guard).")

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir.resolve() / 'mspclaw.db'}"

    def audit_dir(self) -> Path:
        return self.data_dir / "audit"

    def ensure_data_dir(self) -> Path:
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ConfigError(
                f"cannot create data directory {self.data_dir}: {exc.strerror}; "
                "set MSPCLAW_DATA_DIR or --data-dir to a writable place"
            ) from exc
        return self.data_dir

    def techs_file(self) -> Path:
        """Where a release before the roster moved into the database kept it: imported once, then set aside."""
        return self.data_dir / "techs.yaml"

    def load_jwt_secret(self) -> str:
        """The JWT signing secret from the environment, else from the data directory (created once)."""
        if self.jwt_secret is not None and self.jwt_secret.get_secret_value():
            return self.jwt_secret.get_secret_value()
        path = self.data_dir / JWT_SECRET_FILE
        if path.exists():
            return path.read_text().strip()
        self.ensure_data_dir()
        value = secrets.token_urlsafe(48)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip()
        with os.fdopen(fd, "w") as fh:
            fh.write(value + "\n")
        return value

    def load_api_key(self, *, create: bool) -> str:
        """The API key from the environment, else from the data directory (created if asked)."""
        if self.api_key is not None and self.api_key.get_secret_value():
            return self.api_key.get_secret_value()
        path = self.data_dir / API_KEY_FILE
        if path.exists():
            return path.read_text().strip()
        if not create:
            raise ConfigError(
                f"no API key: set MSPCLAW_API_KEY, or start the server once so it writes {path}"
            )
        self.ensure_data_dir()
        key = "msp_" + secrets.token_urlsafe(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key + "\n")
        return key
