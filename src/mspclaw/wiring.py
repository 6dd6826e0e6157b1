"""Composition root: builds every service from :class:`~mspclaw.settings.Settings`.

``api`` and ``cli`` get their services here and nowhere else; tests build the same graph
with their own settings, and swap only the edges (a PSA connector, the playbook set).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import Engine

from mspclaw.connectors.base import PSAConnector
from mspclaw.dispatch import Hub
from mspclaw.engine.loop import Limits
from mspclaw.engine.models.base import Model
from mspclaw.engine.models.selection import build_model
from mspclaw.errors import ConfigError
from mspclaw.pipeline.access import Access
from mspclaw.pipeline.approvals import Approvals, ApprovalSigner
from mspclaw.pipeline.approvers import ApproverPolicy
from mspclaw.pipeline.closing import Closing, RunObserver
from mspclaw.pipeline.closing_observers import AskFeedbackOnClose, EscalateOnClose, RecordUsageOnClose
from mspclaw.pipeline.escalation import Escalations
from mspclaw.pipeline.events import SessionEvents
from mspclaw.pipeline.feedback import AskPort, FeedbackService
from mspclaw.pipeline.fleet import AgentActivity, Fleet
from mspclaw.pipeline.handover import Handover
from mspclaw.pipeline.intake import Intake, Poller, Worker
from mspclaw.pipeline.memory import DeviceLearning
from mspclaw.pipeline.notes import ReplyCheck
from mspclaw.pipeline.notify import ApprovalReferences, Notifier
from mspclaw.pipeline.questions import Answers, Questions
from mspclaw.pipeline.refusals import Refusals
from mspclaw.pipeline.routing import Router
from mspclaw.pipeline.run import TicketRun
from mspclaw.pipeline.session_ports import QuietSessions
from mspclaw.pipeline.submission import Submissions
from mspclaw.pipeline.techs import TechRegistry
from mspclaw.pipeline.tickets import TicketService
from mspclaw.playbooks.catalogue import load_catalogue
from mspclaw.playbooks.loader import load_dir
from mspclaw.playbooks.schema import Playbook
from mspclaw.settings import Settings
from mspclaw.store import log_redaction
from mspclaw.store.account_secrets import AccountSecrets
from mspclaw.store.audit import AuditLog
from mspclaw.store.audit_checkpoint import Checkpoints
from mspclaw.store.database import Database
from mspclaw.store.db import WalCheckpointer
from mspclaw.store.devices import DeviceMemory
from mspclaw.store.escalations import EscalationStore
from mspclaw.store.feedback import FeedbackStore
from mspclaw.store.jobs import JobQueue, PSAAccount
from mspclaw.store.keys import ApiKeys
from mspclaw.store.logins import Logins
from mspclaw.store.private_files import private_database_file
from mspclaw.store.registry import Registry
from mspclaw.store.retention import Pruner, Retention
from mspclaw.store.runs import RunStore
from mspclaw.store.secretbox import KEY_FILE, SecretBox
from mspclaw.store.stats import StatsQuery, UsageLog
from mspclaw.store.tickets import TicketStore

log = logging.getLogger(__name__)


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
    staff: StaffServices
    activity: AgentActivity
    """What the hub reports of live agents, kept (registry, audit, users' answers)."""
    pruner: Pruner
    """Deletes finished work past the retention settings, hourly; the audit trail is kept."""
    _background: list[asyncio.Task[None]] = field(default_factory=list)
    _checkpointer: WalCheckpointer | None = None

    async def start(self, *, workers: bool = True) -> None:
        """Begin background work (heartbeats, intake workers, pollers, SQLite's WAL checkpoints); settle
        what a crash left behind."""
        if self._checkpointer is None:
            self._checkpointer = WalCheckpointer(self.engine)
            self._checkpointer.start()
        await self.tickets.recover()
        await asyncio.to_thread(self.audit.seal)  # the head a previous run (or an offline command) left
        loop = asyncio.get_running_loop()
        self._background.append(loop.create_task(self.hub.run_ticker()))
        self._background.append(loop.create_task(self.staff.feedback.run()))
        self._background.append(loop.create_task(self.pruner.run(self.audit)))
        try:
            self.staff.notifier.resume()
        except ConfigError as exc:  # a broken techs.yaml must not keep the server from starting
            log.warning("pending notifications not resumed: %s", exc.message)
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
        await self.activity.aclose()
        await self.staff.feedback.aclose()
        await self.staff.notifier.aclose()
        for task in self._background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._background.clear()
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.stop)
            self._checkpointer = None
        await asyncio.to_thread(self.audit.close)  # seal the head a last time

    def close(self) -> None:
        self.engine.dispose()


@dataclass
class StaffServices:
    """What serves the MSP's technicians: who they are (techs, keys, logins, access), what is known of
    devices, escalations and their notifications, resolution feedback, stats and usage."""

    techs: TechRegistry
    keys: ApiKeys
    logins: Logins
    access: Access
    devices: DeviceMemory
    learning: DeviceLearning
    escalation_store: EscalationStore
    notifier: Notifier
    escalations: Escalations
    feedback: FeedbackService
    stats: StatsQuery
    usage: UsageLog
    """Each session's model tokens and cost (``usage.record`` when its run ends), for ``mspclaw stats``."""


def build_staff(settings: Settings, *, api_key: str, db: Database, audit: AuditLog, registry: Registry,
                store: TicketStore, hub: Hub, events: SessionEvents, connectors: dict[str, PSAConnector],
                refusals: Refusals, ask_port: AskPort,
                notify_transport: httpx.AsyncBaseTransport | None = None) -> StaffServices:
    """``ask_port`` puts "did it work?" to the user as a dialog on their device."""
    techs = TechRegistry(settings.techs_file())
    keys, logins = ApiKeys(db), Logins(db)
    jwt_secret = settings.load_jwt_secret()
    access = Access(bootstrap_key=api_key, keys=keys, logins=logins, techs=techs, registry=registry, audit=audit,
                    jwt_secret=jwt_secret, access_ttl_s=settings.access_token_ttl_s,
                    refresh_ttl_s=settings.refresh_token_ttl_s, link_ttl_s=settings.login_link_ttl_s,
                    refusals=refusals)
    devices = DeviceMemory(db)
    learning = DeviceLearning(devices, audit)
    escalation_store = EscalationStore(db)
    notifier = Notifier(techs=techs, registry=registry, store=escalation_store, audit=audit,
                        public_url=settings.public_url or settings.server_url, retries=settings.notify_retries,
                        backoff_s=settings.notify_backoff_s, transport=notify_transport, tickets=store,
                        references=ApprovalReferences(jwt_secret.encode()),
                        slack_buttons=bool(settings.slack_signing_secret
                                           and settings.slack_signing_secret.get_secret_value()),
                        slack_response_prefixes=settings.slack_response_url_prefixes)
    escalations = Escalations(store=store, escalations=escalation_store, learning=learning, registry=registry,
                              techs=techs, notifier=notifier, audit=audit)
    feedback = FeedbackService(store=FeedbackStore(db), tickets=store, escalations=escalations, hub=hub,
                               registry=registry, connectors=connectors, events=events, audit=audit,
                               timeout_s=settings.feedback_timeout_s, notifier=notifier, techs=techs,
                               ask_port=ask_port)
    return StaffServices(techs, keys, logins, access, devices, learning, escalation_store, notifier, escalations,
                         feedback, StatsQuery(db), UsageLog(db))


def build_login_link(settings: Settings, ref: str) -> str:
    """A one-time login link for a technician, made offline from the data directory (``mspclaw tech link``)."""
    db, audit = open_store(settings)
    try:
        access = Access(bootstrap_key="", keys=ApiKeys(db), logins=Logins(db),
                        techs=TechRegistry(settings.techs_file()), registry=Registry(db), audit=audit,
                        jwt_secret=settings.load_jwt_secret(), link_ttl_s=settings.login_link_ttl_s)
        token = access.issue_link(ref, actor="cli")
    finally:
        db.dispose()
    return f"{(settings.public_url or settings.server_url).rstrip('/')}/auth/link/{token}"


def open_store(settings: Settings) -> tuple[Database, AuditLog]:
    """The database (migrated) and the audit log: what CLI commands that work offline need."""
    settings.ensure_data_dir()
    private_database_file(settings.resolved_database_url())  # a new SQLite file is created 0600
    db = Database.open(settings.resolved_database_url())
    return db, AuditLog(db, settings.audit_dir(), checkpoints=Checkpoints.in_data_dir(settings.data_dir))


def secret_box(settings: Settings) -> SecretBox:
    """What encrypts secrets at rest: keys from MSPCLAW_SECRET_KEY(_FILE), else the data directory's key file."""
    key = settings.secret_key.get_secret_value() if settings.secret_key is not None else None
    return SecretBox.open(key_text=key, key_file=settings.secret_key_file,
                          data_dir_key_file=settings.data_dir / KEY_FILE)


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
          model: Model | None = None, notify_transport: httpx.AsyncBaseTransport | None = None) -> Services:
    """``model`` replaces the chain ``MSPCLAW_MODEL`` names (tests pass a ``FunctionModel``)."""
    api_key = settings.load_api_key(create=True)
    log_redaction.install()  # no secret in any mspclaw log line, whichever handler writes it
    db, audit = open_store(settings)
    registry = Registry(db)
    store = TicketStore(db)
    refusals = Refusals(audit)  # one count of refused requests for every door: agents, logins, webhooks
    events = SessionEvents(store)
    runs = RunStore(db)
    answers = Answers(runs, audit, events)
    activity = AgentActivity(registry, audit, answers)  # the hub's observer: built first, it needs no hub
    hub = Hub(heartbeat_interval=settings.heartbeat_interval_s, observer=activity)
    fleet = Fleet(registry, audit, hub, enrollment_ttl_hours=settings.enrollment_ttl_hours, refusals=refusals)
    router = Router(registry, hub)
    books = playbooks if playbooks is not None else (
        load_dir(playbook_dir) if playbook_dir else load_catalogue(settings.playbook_dirs))
    accounts = AccountSecrets(db, secret_box(settings)).seal_and_list()  # rows in clear are encrypted first
    psas: dict[str, PSAConnector] = {a.name: connector_for(a) for a in accounts if a.enabled}
    psas.update(connectors or {})
    questions = Questions(runs, store, audit, events, hub, psas, answers, timeout_s=settings.question_timeout_s,
                          psa_poll_s=settings.question_psa_poll_s)
    staff = build_staff(settings, api_key=api_key, db=db, audit=audit, registry=registry, store=store,
                        hub=hub, events=events, connectors=psas, refusals=refusals,
                        ask_port=questions.ask_device, notify_transport=notify_transport)
    approvals = Approvals(store, audit, events, timeout_s=settings.approval_timeout_s,
                          signer=approval_signer(settings), runs=runs, notifier=staff.notifier,
                          policy=ApproverPolicy(staff.techs, store, registry, audit,
                                                two_person_tools=settings.two_person_tools))
    tickets = build_tickets(settings, store=store, runs=runs, audit=audit, hub=hub, registry=registry,
                            router=router, events=events, approvals=approvals, questions=questions, staff=staff,
                            playbooks=books, connectors=psas,
                            model=model if model is not None else build_model(settings.model))
    jobs = JobQueue(db)
    intake = Intake(jobs=jobs, tickets=tickets, audit=audit, connectors=psas, refusals=refusals)
    pruner = Pruner(db, Retention(jobs_days=settings.retention_jobs_days,
                                  sessions_days=settings.retention_sessions_days,
                                  steps_days=settings.retention_steps_days))
    return Services(settings, api_key, db.engine, registry, store, audit, hub, fleet, events, approvals, router,
                    tickets, jobs, intake, accounts, staff, activity, pruner)


def build_tickets(settings: Settings, *, store: TicketStore, runs: RunStore, audit: AuditLog, hub: Hub,
                  registry: Registry, router: Router, events: SessionEvents, approvals: Approvals,
                  questions: Questions, staff: StaffServices, playbooks: list[Playbook],
                  connectors: dict[str, PSAConnector], model: Model | None) -> TicketService:
    """The ticket pipeline: its closing (with the observers a finished run sets off), its run, and the
    submissions that start and resume runs."""
    public_url = settings.public_url or settings.server_url
    observers: list[RunObserver] = [EscalateOnClose(staff.escalations), AskFeedbackOnClose(staff.feedback)]
    if model is not None:
        observers.append(RecordUsageOnClose(runs, staff.usage, model))
    quiet = QuietSessions()
    closing = Closing(store=store, runs=runs, audit=audit, hub=hub, events=events, connectors=connectors,
                      reply_check=ReplyCheck([public_url, *settings.reply_link_hosts]), quiet=quiet,
                      observers=observers)
    run = TicketRun(store=store, runs=runs, audit=audit, hub=hub, router=router, events=events,
                    approvals=approvals, questions=questions, learning=staff.learning,
                    handover=Handover(hub, public_url=public_url), closing=closing, quiet=quiet,
                    playbooks=playbooks, connectors=connectors, model=model,
                    limits=Limits(max_steps=settings.max_steps, max_tokens=settings.max_tokens,
                                  max_spend_usd=settings.max_spend_usd),
                    tool_timeout_s=settings.tool_timeout_s)
    submissions = Submissions(registry=registry, store=store, router=router, events=events, audit=audit, hub=hub,
                              run=run, quiet=quiet)
    return TicketService(submissions=submissions, run=run)


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
