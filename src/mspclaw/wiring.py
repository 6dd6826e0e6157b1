"""Composition root: builds every service from :class:`~mspclaw.settings.Settings`.

``api`` and ``cli`` get their services here and nowhere else; tests build the same graph
with their own settings, and swap only the edges (a PSA connector, the playbook set).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine

from mspclaw.connectors.base import PSAConnector
from mspclaw.dispatch import Hub
from mspclaw.engine.loop import Limits
from mspclaw.engine.models.base import Model
from mspclaw.engine.models.selection import build_model
from mspclaw.errors import ConfigError
from mspclaw.pipeline.approvals import Approvals, ApprovalSigner
from mspclaw.pipeline.events import SessionEvents
from mspclaw.pipeline.fleet import Fleet
from mspclaw.pipeline.intake import Intake, Poller, Worker
from mspclaw.pipeline.questions import Questions
from mspclaw.pipeline.routing import Router
from mspclaw.pipeline.tickets import TicketService
from mspclaw.playbooks.loader import load_dir
from mspclaw.playbooks.schema import Playbook
from mspclaw.settings import Settings
from mspclaw.store.audit import AuditLog
from mspclaw.store.db import make_engine, migrate, session_factory
from mspclaw.store.jobs import JobQueue, PSAAccount, PSAAccounts
from mspclaw.store.registry import Registry
from mspclaw.store.runs import RunStore
from mspclaw.store.tickets import TicketStore


@dataclass
class Services:
    settings: Settings
    api_key: str
    engine: Engine
    registry: Registry
    store: TicketStore
    audit: AuditLog
    hub: Hub
    fleet: Fleet
    events: SessionEvents
    approvals: Approvals
    router: Router
    tickets: TicketService
    jobs: JobQueue
    intake: Intake
    accounts: list[PSAAccount]
    _background: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self, *, workers: bool = True) -> None:
        """Begin background work (heartbeats, intake workers, pollers); settle what a crash left behind."""
        self.tickets.recover()
        loop = asyncio.get_running_loop()
        self._background.append(loop.create_task(self.hub.run_ticker()))
        if workers and self.settings.workers > 0:
            worker = Worker(self.intake, concurrency=self.settings.workers)
            self._background.append(loop.create_task(worker.run()))
            for account in self.accounts:
                interval = float(account.config.get("poll_interval_s", 0) or 0)
                if account.enabled and interval > 0:
                    self._background.append(loop.create_task(Poller(self.intake, account.name,
                                                                     interval_s=interval).run()))

    async def stop(self) -> None:
        await self.tickets.shutdown()
        for task in self._background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._background.clear()

    def close(self) -> None:
        self.engine.dispose()


def open_store(settings: Settings) -> tuple[Engine, AuditLog]:
    """The database (migrated) and the audit log: what CLI commands that work offline need."""
    settings.ensure_data_dir()
    engine = make_engine(settings.resolved_database_url())
    migrate(engine)
    return engine, AuditLog(engine, settings.audit_dir())


def approval_signer(settings: Settings) -> ApprovalSigner:
    """The server's Ed25519 approval key, created in the data directory (0600) on first start."""
    path = settings.ensure_data_dir() / "approval_signing_key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(ApprovalSigner.generate().hex() + "\n")
    try:
        return ApprovalSigner(bytes.fromhex(path.read_text().strip()))
    except ValueError as exc:
        raise ConfigError(f"{path} is not a hex Ed25519 key; move it away to have a new one made "
                          "(agents must then enroll again)") from exc


def build(settings: Settings, *, connectors: dict[str, PSAConnector] | None = None,
          playbooks: list[Playbook] | None = None, playbook_dir: Path | None = None,
          model: Model | None = None) -> Services:
    """``model`` replaces the chain ``MSPCLAW_MODEL`` names (tests pass a ``FunctionModel``)."""
    api_key = settings.load_api_key(create=True)
    engine, audit = open_store(settings)
    sessions = session_factory(engine)
    registry = Registry(sessions)
    store = TicketStore(sessions)
    hub = Hub(heartbeat_interval=settings.heartbeat_interval_s)
    fleet = Fleet(registry, audit, hub, enrollment_ttl_hours=settings.enrollment_ttl_hours)
    events = SessionEvents(store)
    runs = RunStore(sessions)
    approvals = Approvals(store, audit, events, timeout_s=settings.approval_timeout_s,
                          signer=approval_signer(settings), runs=runs)
    router = Router(registry, hub)
    books = playbooks if playbooks is not None else (load_dir(playbook_dir) if playbook_dir else load_dir())
    accounts = PSAAccounts(engine).list()
    psas: dict[str, PSAConnector] = {a.name: connector_for(a) for a in accounts if a.enabled}
    psas.update(connectors or {})
    questions = Questions(runs, store, audit, events, hub, psas, timeout_s=settings.question_timeout_s)
    fleet.on_answer = questions.from_agent
    tickets = TicketService(registry=registry, store=store, audit=audit, hub=hub, router=router, events=events,
                            approvals=approvals, playbooks=books, connectors=psas,
                            tool_timeout_s=settings.tool_timeout_s, runs=runs, questions=questions,
                            model=model if model is not None else build_model(settings.model),
                            limits=Limits(max_steps=settings.max_steps, max_tokens=settings.max_tokens,
                                          max_spend_usd=settings.max_spend_usd))
    jobs = JobQueue(engine)
    intake = Intake(jobs=jobs, tickets=tickets, audit=audit, connectors=psas)
    return Services(settings, api_key, engine, registry, store, audit, hub, fleet, events, approvals, router,
                    tickets, jobs, intake, accounts)


def connector_for(account: PSAAccount) -> PSAConnector:
    """Build the connector of one configured PSA account (one branch per PSA file, nothing shared)."""
    config, secrets = account.config, account.secret_values()
    match account.kind:
        case "superops":
            from mspclaw.connectors.superops import SuperOpsConnector

            return SuperOpsConnector(subdomain=str(config["subdomain"]), token=secrets["token"],
                                     region=config.get("region", "us"), webhook_secret=secrets.get("webhook_secret"),
                                     webhook_auth=config.get("webhook_auth", "hmac"),
                                     asset_field=config.get("asset_field"),
                                     status_map=config.get("status_map"),
                                     public_reply=config.get("public_reply", "note"))
        case "connectwise":
            from mspclaw.connectors.connectwise import ConnectWiseConnector

            return ConnectWiseConnector(site=str(config["site"]), company=str(config["company"]),
                                        public_key=secrets["public_key"], private_key=secrets["private_key"],
                                        client_id=str(config["client_id"]), codebase=config.get("codebase"),
                                        conditions=config.get("conditions"), status_map=config.get("status_map"),
                                        asset_field=config.get("asset_field"),
                                        callback_board_id=config.get("callback_board_id"))
        case "halo":
            from mspclaw.connectors.halo import HaloConnector

            return HaloConnector(host=str(config["host"]), client_id=str(config["client_id"]),
                                 client_secret=secrets["client_secret"], tenant=config.get("tenant"),
                                 webhook_username=config.get("webhook_username"),
                                 webhook_password=secrets.get("webhook_password"), status_map=config.get("status_map"),
                                 internal_outcome=config.get("internal_outcome", "Private Note"),
                                 public_outcome=config.get("public_outcome", "Email User"))
        case "autotask":
            from mspclaw.connectors.autotask import AutotaskConnector

            return AutotaskConnector(username=str(config["username"]), integration_code=secrets["integration_code"],
                                     secret=secrets["secret"], zone_url=config.get("zone_url"),
                                     webhook_secret=secrets.get("webhook_secret"), status_map=config.get("status_map"),
                                     hourly_limit=int(config.get("hourly_limit", 10_000)),
                                     internal_publish=config.get("internal_publish", "Internal Only"),
                                     notification_email=config.get("notification_email"))
        case "freshdesk":
            from mspclaw.connectors.freshdesk import FreshdeskConnector

            return FreshdeskConnector(domain=str(config["domain"]), api_key=secrets["api_key"],
                                      webhook_secret=secrets.get("webhook_secret"),
                                      status_map=config.get("status_map"), asset_field=config.get("asset_field"),
                                      rate_per_minute=int(config.get("rate_per_minute", 200)))
        case "local":
            from mspclaw.connectors.local import LocalPSAConnector

            return LocalPSAConnector(str(config["base_url"]), secrets["token"],
                                     webhook_secret=secrets.get("webhook_secret"))
    raise ConfigError(f"PSA account {account.name!r} has kind {account.kind!r}, which MSPclaw does not support; "
                      "supported: superops, connectwise, halo, autotask, freshdesk, local")
