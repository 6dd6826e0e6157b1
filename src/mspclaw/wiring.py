"""Composition root: builds every service from :class:`~mspclaw.settings.Settings`.

``api`` and ``cli`` get their services here and nowhere else; tests build the same graph
with their own settings, and swap only the edges (a PSA connector, the playbook set).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import Engine

from mspclaw.connectors.base import PSAConnector
from mspclaw.dispatch import Hub
from mspclaw.dispatch.broadcast import Broadcast
from mspclaw.dispatch.cluster import Cluster
from mspclaw.dispatch.relay import ReplicaRelay
from mspclaw.engine.loop import Limits
from mspclaw.engine.models.base import Model
from mspclaw.engine.models.selection import build_model
from mspclaw.errors import ConfigError
from mspclaw.pipeline.access import Access
from mspclaw.pipeline.approvals import Approvals, ApprovalSigner
from mspclaw.pipeline.approvers import ApproverPolicy
from mspclaw.pipeline.closing import Closing, RunObserver
from mspclaw.pipeline.closing_observers import AskFeedbackOnClose, EscalateOnClose, RecordUsageOnClose
from mspclaw.pipeline.connector_set import ConnectorSet
from mspclaw.pipeline.escalation import Escalations
from mspclaw.pipeline.escalation_handling import EscalationHandling
from mspclaw.pipeline.events import SessionEvents
from mspclaw.pipeline.feedback import AskPort, FeedbackService
from mspclaw.pipeline.fleet import AgentActivity, Fleet
from mspclaw.pipeline.handover import Handover
from mspclaw.pipeline.intake import Intake, Worker
from mspclaw.pipeline.memory import DeviceLearning
from mspclaw.pipeline.notes import ReplyCheck
from mspclaw.pipeline.notify import ApprovalReferences, Notifier
from mspclaw.pipeline.ownership import Ownership, owned, replica_id
from mspclaw.pipeline.playbook_authoring import AuthoringConfig, PlaybookAuthoring
from mspclaw.pipeline.playbook_refusals import PlaybookRefusals
from mspclaw.pipeline.psa_accounts import PSAAccountService
from mspclaw.pipeline.questions import Answers, Questions
from mspclaw.pipeline.refusals import Refusals
from mspclaw.pipeline.routing import Router
from mspclaw.pipeline.run import TicketRun
from mspclaw.pipeline.session_ownership import SessionOwnership
from mspclaw.pipeline.session_ports import QuietSessions
from mspclaw.pipeline.submission import Submissions
from mspclaw.pipeline.techs import TechRegistry
from mspclaw.pipeline.tickets import TicketService
from mspclaw.playbooks.loader import load_dir
from mspclaw.playbooks.reload import PlaybookReloader
from mspclaw.playbooks.schema import Playbook
from mspclaw.playbooks.signing import SigningError, ensure_key, load_private_key
from mspclaw.playbooks.verified import LocalKey, Verified, load_verified_catalogue
from mspclaw.settings import Settings
from mspclaw.store import log_redaction, loop_guard
from mspclaw.store.account_secrets import AccountSecrets
from mspclaw.store.audit import AuditLog
from mspclaw.store.audit_checkpoint import Checkpoints
from mspclaw.store.database import Database
from mspclaw.store.db import WalCheckpointer
from mspclaw.store.devices import DeviceMemory
from mspclaw.store.escalations import EscalationStore
from mspclaw.store.feedback import FeedbackStore
from mspclaw.store.jobs import JobQueue, PSAAccount, PSAAccounts
from mspclaw.store.keys import ApiKeys
from mspclaw.store.leases import Leases
from mspclaw.store.logins import Logins
from mspclaw.store.private_files import private_database_file
from mspclaw.store.psa_account_state import PSAAccountStates
from mspclaw.store.registry import Registry
from mspclaw.store.retention import Pruner, Retention
from mspclaw.store.runs import RunStore
from mspclaw.store.secretbox import KEY_FILE, SecretBox
from mspclaw.store.session_leases import SessionLeaseStore
from mspclaw.store.stats import StatsQuery, UsageLog
from mspclaw.store.technicians import CHANGED_CHANNEL as ROSTER_CHANNEL
from mspclaw.store.technicians import RosterStore
from mspclaw.store.tickets import TicketStore
from mspclaw.store.wakeups import JOBS_CHANNEL, Wakeups

log = logging.getLogger(__name__)


def _crashed(task: asyncio.Task[None]) -> bool:
    return task.done() and not task.cancelled() and task.exception() is not None


def _loop_name(task: asyncio.Task[None]) -> str:
    """The name the task was given, else its coroutine's (``Hub.run_ticker``, ``Worker.run``)."""
    name = task.get_name()
    return name if not name.startswith("Task-") else str(getattr(task.get_coro(), "__qualname__", name))


def _report_crash(task: asyncio.Task[None]) -> None:
    if _crashed(task):
        log.error("the background loop %s stopped with an error; GET /healthz fails until the server restarts",
                  _loop_name(task), exc_info=task.exception())


@dataclass
class Services:
    settings: Settings
    api_key: str
    db: Database
    """The one way to the database: every store was built with it; nothing else builds another."""
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
    psa_accounts: PSAAccountService
    """PSA accounts added, tested, enabled and disabled while the server runs (with their pollers)."""
    cluster: Cluster | None = None
    """The replicas sharing agents through Redis (``MSPCLAW_REDIS_URL``); ``None``: a single process."""
    broadcast: Broadcast | None = None
    """Session events and configuration changes shared with the other replicas (with :attr:`cluster`)."""
    playbook_refusals: PlaybookRefusals = field(default_factory=PlaybookRefusals)
    """The playbooks that did not verify (``MSPCLAW_PLAYBOOK_TRUST``): logged and audited once, shown on /readyz."""
    _background: list[asyncio.Task[None]] = field(default_factory=list)
    _checkpointer: WalCheckpointer | None = None

    @property
    def engine(self) -> Engine:
        """The :attr:`db`'s engine (health and metrics queries, WAL checkpoints, job wake-ups)."""
        return self.db.engine

    @property
    def authoring(self) -> PlaybookAuthoring:
        """The MSP's playbooks read, checked, matched, dry-run and saved (the console's builder, /api/playbooks)."""
        s = self.settings
        config = AuthoringConfig(tuple(s.playbook_dirs), playbook_key_path(s), s.playbook_trust, s.playbook_reload_s)
        return PlaybookAuthoring(config, self.audit, lambda: self.tickets.playbooks, self.playbook_refusals.by_file)

    async def apply_playbooks(self, loaded: Verified) -> None:
        """Put a reloaded set in service; report what did not verify (once)."""
        self.tickets.playbooks = loaded.books
        self.playbook_refusals.note(loaded)
        await self.playbook_refusals.flush(self.audit)

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
        if self.cluster is not None:
            self._background.append(loop.create_task(self.cluster.run(self.hub)))
        if self.broadcast is not None:  # other replicas' session events to our watchers; their config changes
            self._background.append(loop.create_task(self.broadcast.run(
                self.events.deliver, {"psa_accounts": self.psa_accounts.reload, "roster": self.staff.techs.reload})))
        wakeups = Wakeups.for_engine(self.engine)  # PostgreSQL: one LISTEN connection for all of its channels
        roster_changes = wakeups.channel(ROSTER_CHANNEL)  # an edit on any replica reloads the roster, only it
        run_workers = workers and self.settings.workers > 0
        jobs_queued = wakeups.channel(JOBS_CHANNEL) if run_workers else None  # a job queued on any replica
        self._background.append(loop.create_task(self.staff.techs.refresh_forever(changes=roster_changes)))
        self._background.append(loop.create_task(wakeups.run()))  # after: its first wake-up is heard
        # one replica at a time runs these loops, and each PSA's poller (store/leases.py, pipeline/ownership.py)
        self._background.append(loop.create_task(owned(self.intake.ownership, "feedback", self.staff.feedback.run),
                                                 name="feedback"))
        await self.playbook_refusals.flush(self.audit)  # the playbooks refused at build
        if self.settings.playbook_dirs and self.settings.playbook_reload_s > 0:  # installs picked up without a restart
            trust_file = self.settings.playbook_trusted_keys
            reloader = PlaybookReloader(self.settings.playbook_dirs, lambda: load_playbooks(self.settings),
                                        self.apply_playbooks, interval_s=self.settings.playbook_reload_s,
                                        files=[trust_file] if trust_file else [])
            self._background.append(loop.create_task(reloader.run()))
        self._background.append(loop.create_task(owned(self.intake.ownership, "retention",
                                                       lambda: self.pruner.run(self.audit)), name="retention"))
        sessions = self.tickets.submissions.sessions
        if sessions is not None:  # each session's lease renewed here; the dead replicas' sessions resumed
            self._background.append(loop.create_task(sessions.renew_forever()))
            self._background.append(loop.create_task(owned(self.intake.ownership, "session-recovery",
                                                           lambda: sessions.recover_forever(self.tickets.recover)),
                                                     name="session-recovery"))
        try:
            await self.staff.notifier.resume()
        except ConfigError as exc:  # a channel that will not open must not keep the server from starting
            log.warning("pending notifications not resumed: %s", exc.message)
        if run_workers:
            worker = Worker(self.intake, concurrency=self.settings.workers, wakeups=jobs_queued)
            self._background.append(loop.create_task(worker.run()))
            self.psa_accounts.start_pollers()  # and as accounts are added or enabled
        for task in self._background:  # a loop that crashes is logged at once and fails GET /healthz
            task.add_done_callback(_report_crash)

    def crashed_loops(self) -> list[str]:
        """The background loops that ended with an error while the services run (by name; the error is in the
        log): nothing brings them back but a restart, so ``GET /healthz`` fails while there is one."""
        return [_loop_name(task) for task in self._background if _crashed(task)]

    async def stop(self) -> None:
        await self.tickets.shutdown()
        await self.psa_accounts.aclose()
        await self.activity.aclose()
        await self.staff.feedback.aclose()
        await self.staff.notifier.aclose()
        for task in self._background:
            if _crashed(task):  # its error was logged when it ended
                continue
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._background.clear()
        if self.cluster is not None:
            await self.cluster.aclose()
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.stop)
            self._checkpointer = None
        await asyncio.to_thread(self.audit.close)  # seal the head a last time

    def close(self) -> None:
        self.db.dispose()


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
    handling: EscalationHandling
    """Technicians working escalations: take, hand over, close."""


def build_staff(settings: Settings, *, api_key: str, db: Database, audit: AuditLog, registry: Registry,
                store: TicketStore, hub: Hub, events: SessionEvents, connectors: Mapping[str, PSAConnector],
                refusals: Refusals, ask_port: AskPort,
                notify_transport: httpx.AsyncBaseTransport | None = None,
                roster_changed: Callable[[], None] | None = None) -> StaffServices:
    """``ask_port`` puts "did it work?" to the user as a dialog on their device; ``roster_changed`` tells the
    other replicas that the technician roster changed."""
    techs = open_roster(settings, db, audit, announce=roster_changed)
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
                         feedback, StatsQuery(db), UsageLog(db),
                         handling=EscalationHandling(escalations=escalation_store, tickets=store, registry=registry,
                                                     techs=techs, notifier=notifier, audit=audit,
                                                     connectors=connectors))


def build_login_link(settings: Settings, ref: str) -> str:
    """A one-time login link for a technician, made offline from the data directory (``mspclaw tech link``)."""
    db, audit = open_store(settings)
    try:
        access = Access(bootstrap_key="", keys=ApiKeys(db), logins=Logins(db),
                        techs=open_roster(settings, db, audit), registry=Registry(db), audit=audit,
                        jwt_secret=settings.load_jwt_secret(), link_ttl_s=settings.login_link_ttl_s)
        token = access.issue_link(ref, actor="cli")
    finally:
        db.dispose()
    return f"{(settings.public_url or settings.server_url).rstrip('/')}/auth/link/{token}"


def open_roster(settings: Settings, db: Database, audit: AuditLog,
                announce: Callable[[], None] | None = None) -> TechRegistry:
    """The technician roster in the database, read once; a data directory's ``techs.yaml`` of an earlier release
    imported into it once and renamed ``techs.yaml.imported`` (a file that does not validate stops the start,
    naming its lines, and stays where it is)."""
    techs = TechRegistry(RosterStore(db, secret_box(settings)), announce=announce)
    adopted = techs.adopt_file(settings.techs_file())
    techs.refresh()
    if adopted.outcome == "imported" and adopted.imported is not None:
        data = {"file": str(adopted.path), "techs": adopted.imported.added, "channels": adopted.imported.channels}
        with ThreadPoolExecutor(1) as pool:  # build() may run on an event loop's thread, where append() refuses
            pool.submit(lambda: audit.append("tech_roster_imported", actor="upgrade", data=data)).result()
        log.warning("techs.yaml imported into the database: %d technician(s), %d channel(s); %s",
                    len(adopted.imported.added), adopted.imported.channels,
                    f"the file is now {adopted.path.name}" if adopted.moved
                    else f"rename or remove {adopted.path}: it is not read again")
    elif adopted.outcome == "ignored":
        log.warning("%s is not read: the technician roster is kept in the database; load the file with "
                    "`mspclaw tech import %s` (it replaces the roster) or remove it", adopted.path, adopted.path)
    return techs


def open_store(settings: Settings) -> tuple[Database, AuditLog]:
    """The database (migrated) and the audit log: what CLI commands that work offline need."""
    settings.ensure_data_dir()
    private_database_file(settings.resolved_database_url())  # a new SQLite file is created 0600
    if settings.loop_guard:
        loop_guard.enable()
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


PLAYBOOK_KEY_FILE = "playbook_signing_key.pem"
"""The MSP's own playbook signing key in the data directory, made on first start when none is configured."""


def playbook_key_path(settings: Settings) -> Path:
    """``MSPCLAW_PLAYBOOK_SIGNING_KEY``, or the data directory's own key."""
    return (settings.playbook_signing_key or settings.data_dir / PLAYBOOK_KEY_FILE).absolute()


def playbook_key(settings: Settings, *, create: bool = True) -> LocalKey | None:
    """The MSP's own signing key: the configured one, or the data directory's, made (0600) when ``create`` and
    there is none yet; ``None`` when it does not exist and ``create`` is False."""
    path = playbook_key_path(settings)
    try:
        if settings.playbook_signing_key is None and create:
            settings.ensure_data_dir()
            return LocalKey(path, ensure_key(path))
        if settings.playbook_signing_key is None and not path.exists():
            return None
        return LocalKey(path, load_private_key(path))
    except SigningError as exc:
        where = "MSPCLAW_PLAYBOOK_SIGNING_KEY" if settings.playbook_signing_key else "the data directory's key"
        raise ConfigError(f"{where}: {exc}") from exc


def load_playbooks(settings: Settings) -> Verified:
    """The shipped library and the MSP's playbook directories, checked as ``MSPCLAW_PLAYBOOK_TRUST`` says against
    the official key, the trust file and the MSP's own key."""
    return load_verified_catalogue(settings.playbook_dirs, mode=settings.playbook_trust,
                                   trust_files=[settings.playbook_trusted_keys] if settings.playbook_trusted_keys
                                   else [], local_key=playbook_key(settings))


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
    relay = (ReplicaRelay.listening_on(settings.relay_listen, settings.load_jwt_secret(),
                                       advertise=settings.relay_advertise) if settings.relay_listen else None)
    cluster = (Cluster.from_url(settings.redis_url.get_secret_value(), relay=relay)
               if settings.redis_url else None)
    broadcast = (Broadcast(cluster.redis, replica_id=cluster.replica_id, prefix=cluster.prefix)
                 if cluster is not None else None)
    events = SessionEvents(store, share=broadcast.share if broadcast is not None else None)
    runs = RunStore(db)
    answers = Answers(runs, audit, events)
    activity = AgentActivity(registry, audit, answers)  # the hub's observer: built first, it needs no hub
    hub = Hub(heartbeat_interval=settings.heartbeat_interval_s, observer=activity, cluster=cluster)
    fleet = Fleet(registry, audit, hub, enrollment_ttl_hours=settings.enrollment_ttl_hours, refusals=refusals)
    router = Router(registry, hub)
    playbook_refusals = PlaybookRefusals()
    if playbooks is not None or playbook_dir is not None:  # a test's own set, not checked
        books = playbooks if playbooks is not None else load_dir(playbook_dir or Path())
        playbook_key(settings)  # made on first start all the same: the builder signs with it
    else:
        loaded = load_playbooks(settings)
        books = loaded.books
        playbook_refusals.note(loaded)
    accounts = AccountSecrets(db, secret_box(settings)).seal_and_list()  # rows in clear are encrypted first
    psas = ConnectorSet({**{a.name: connector_for(a) for a in accounts if a.enabled}, **(connectors or {})},
                        disabled=frozenset(a.name for a in accounts if not a.enabled))
    questions = Questions(runs, store, audit, events, hub, psas, answers, timeout_s=settings.question_timeout_s,
                          psa_poll_s=settings.question_psa_poll_s)
    staff = build_staff(settings, api_key=api_key, db=db, audit=audit, registry=registry, store=store,
                        hub=hub, events=events, connectors=psas, refusals=refusals,
                        ask_port=questions.ask_device, notify_transport=notify_transport,
                        roster_changed=(lambda: broadcast.changed("roster")) if broadcast is not None else None)
    approvals = Approvals(store, audit, events, timeout_s=settings.approval_timeout_s,
                          signer=approval_signer(settings), runs=runs, notifier=staff.notifier,
                          policy=ApproverPolicy(staff.techs, store, registry, audit,
                                                two_person_tools=settings.two_person_tools))
    ownership = Ownership(Leases(db), replica=replica_id())
    sessions = SessionOwnership(Leases(db), SessionLeaseStore(db), replica=ownership.replica, ttl_s=ownership.ttl_s)
    tickets = build_tickets(settings, store=store, runs=runs, audit=audit, hub=hub, registry=registry,
                            router=router, events=events, approvals=approvals, questions=questions, staff=staff,
                            playbooks=books, connectors=psas,
                            model=model if model is not None else build_model(settings.model), sessions=sessions)
    jobs = JobQueue(db)
    intake = Intake(jobs=jobs, tickets=tickets, audit=audit, connectors=psas.taking, refusals=refusals,
                    ownership=ownership)
    pruner = Pruner(db, Retention(jobs_days=settings.retention_jobs_days,
                                  sessions_days=settings.retention_sessions_days,
                                  steps_days=settings.retention_steps_days))
    psa_accounts = PSAAccountService(accounts=PSAAccounts(db, secret_box(settings)), states=PSAAccountStates(db),
                                     connectors=psas, listing=accounts, build=connector_for, intake=intake,
                                     audit=audit, public_url=settings.public_url or settings.server_url,
                                     announce=(lambda: broadcast.changed("psa_accounts")) if broadcast is not None
                                     else lambda: None)
    return Services(settings, api_key, db, registry, store, audit, hub, fleet, events, approvals, router,
                    tickets, jobs, intake, accounts, staff, activity, pruner, psa_accounts,
                    cluster=cluster, broadcast=broadcast, playbook_refusals=playbook_refusals)


def build_tickets(settings: Settings, *, store: TicketStore, runs: RunStore, audit: AuditLog, hub: Hub,
                  registry: Registry, router: Router, events: SessionEvents, approvals: Approvals,
                  questions: Questions, staff: StaffServices, playbooks: list[Playbook],
                  connectors: Mapping[str, PSAConnector], model: Model | None,
                  sessions: SessionOwnership | None = None) -> TicketService:
    """The ticket pipeline: its closing (with the observers a finished run sets off), its run, and the
    submissions that start and resume runs."""
    public_url = settings.public_url or settings.server_url
    observers: list[RunObserver] = [EscalateOnClose(staff.escalations), AskFeedbackOnClose(staff.feedback)]
    if model is not None:
        observers.append(RecordUsageOnClose(runs, staff.usage, model))
    quiet = QuietSessions()
    closing = Closing(store=store, runs=runs, audit=audit, hub=hub, events=events, connectors=connectors,
                      reply_check=ReplyCheck([public_url, *settings.reply_link_hosts]), quiet=quiet,
                      observers=observers, sessions=sessions)
    run = TicketRun(store=store, runs=runs, audit=audit, hub=hub, router=router, events=events,
                    approvals=approvals, questions=questions, learning=staff.learning,
                    handover=Handover(hub, public_url=public_url), closing=closing, quiet=quiet,
                    playbooks=playbooks, connectors=connectors, model=model,
                    limits=Limits(max_steps=settings.max_steps, max_tokens=settings.max_tokens,
                                  max_spend_usd=settings.max_spend_usd),
                    tool_timeout_s=settings.tool_timeout_s, sessions=sessions)
    submissions = Submissions(registry=registry, store=store, router=router, events=events, audit=audit, hub=hub,
                              run=run, quiet=quiet, sessions=sessions)
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
