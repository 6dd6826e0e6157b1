"""PSA accounts while the server runs: add, test the credentials, enable, disable, remove; no restart.

Every change is stored first, then applied to the live :class:`~mspclaw.pipeline.connector_set.ConnectorSet`
the services hold (an added or enabled account's webhooks are accepted at once, a disabled one's refused),
then the account's poller is started or stopped and a replaced connector's HTTP client closed. The API
and the console both change accounts through :class:`PSAAccountService`; each change is audited with the
account's config, never its secrets.

With several replicas, each change is also announced (``announce``: the Redis broadcast of
``dispatch/broadcast.py``) and every other replica calls :meth:`PSAAccountService.reload`, which brings its
connectors and pollers to what the database holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from mspclaw.connectors.base import ChecksCredentials, PSAConnector
from mspclaw.errors import (
    ConfigError,
    Conflict,
    MSPClawError,
    PSAAuthError,
    PSAError,
    PSANotFound,
    PSARateLimited,
    PSARejected,
    PSAUnavailable,
)
from mspclaw.pipeline.connector_set import ConnectorSet
from mspclaw.pipeline.intake import Intake, Poller
from mspclaw.pipeline.psa_account_fields import AccountFieldsError, PSAOptions, account_fields
from mspclaw.store.audit import AuditLog
from mspclaw.store.jobs import PSAAccount, PSAAccounts
from mspclaw.store.psa_account_state import CredentialTest, PSAAccountStates

log = logging.getLogger(__name__)

ConnectorFactory = Callable[[PSAAccount], PSAConnector]
"""Builds the connector of a stored account (``wiring.connector_for``)."""

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")
"""An account name: it is the last part of its webhook URL, ``/webhooks/NAME``."""

MAX_POLL_INTERVAL_S = 86_400.0
CHECK_TIMEOUT_S = 20.0
"""A credential test gives up after this long (the connector's own retries included): an admin is waiting."""


@runtime_checkable
class _Closes(Protocol):
    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class AccountView:
    """One account as an admin sees it: no secret, its webhook URL, its last credential test."""

    name: str
    kind: str
    enabled: bool
    config: dict[str, Any]
    created_at: datetime
    webhook_url: str
    last_test: CredentialTest | None


def check_name(name: str) -> str:
    """``name`` stripped, or :class:`AccountFieldsError` saying what a name may hold."""
    name = name.strip()
    if not NAME.fullmatch(name):
        raise AccountFieldsError("an account name is 1 to 100 letters, digits, '-' or '_', starting with a letter or "
                                 "digit (it ends the webhook URL /webhooks/NAME)", missing=() if name else ("name",))
    return name


def plain_words(exc: MSPClawError) -> str:
    """What a failed credential test means, for the admin who ran it."""
    match exc:
        case PSAAuthError():
            return f"the PSA refused the credentials: check the API key ({exc.message})"
        case PSARateLimited():
            return f"the PSA asks us to slow down: try again in a minute ({exc.message})"
        case PSAUnavailable():
            return f"the PSA did not answer: check its address and that it is up ({exc.message})"
        case PSANotFound():
            return f"the PSA has no such account or address: check the sub-domain or host ({exc.message})"
        case PSARejected():
            return f"the PSA refused the request: {exc.message}"
        case PSAError():
            return f"the PSA answered something MSPclaw cannot read: {exc.message}"
        case ConfigError():
            return f"the account's settings are wrong: {exc.message}"
    return exc.message


def _redacted(text: str, secrets: dict[str, str]) -> str:
    for value in secrets.values():
        if len(value) >= 4:
            text = text.replace(value, "[secret]")
    return text


class PSAAccountService:
    """The PSA accounts MSPclaw takes tickets from, changed while it runs."""

    def __init__(self, *, accounts: PSAAccounts, states: PSAAccountStates, connectors: ConnectorSet,
                 listing: list[PSAAccount], build: ConnectorFactory, intake: Intake, audit: AuditLog,
                 public_url: str, now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 announce: Callable[[], None] = lambda: None) -> None:
        """``listing`` is the list of stored accounts the health checks and metrics read: kept current here.
        ``announce`` tells the other replicas that the accounts changed (after each change is stored)."""
        self._accounts, self._states, self.connectors = accounts, states, connectors
        self._listing, self._build, self._intake, self._audit = listing, build, intake, audit
        self._public_url, self._now, self._announce = public_url.rstrip("/"), now, announce
        self._pollers: dict[str, asyncio.Task[None]] = {}
        self._polling = False
        self._lock = asyncio.Lock()

    # --- reading -------------------------------------------------------------------------------

    def webhook_url(self, name: str) -> str:
        return f"{self._public_url}/webhooks/{name}"

    def list(self) -> list[AccountView]:
        """Every stored account, by name (blocking: call it off the event loop or from a sync route)."""
        tests = self._states.tests()
        return [AccountView(a.name, a.kind, a.enabled, a.config, a.created_at, self.webhook_url(a.name),
                            tests.get(a.name)) for a in self._accounts.list()]

    def view(self, name: str) -> AccountView:
        """One account; :class:`~mspclaw.errors.NotFound` if there is none of that name."""
        account = self._accounts.get(name)
        return AccountView(account.name, account.kind, account.enabled, account.config, account.created_at,
                           self.webhook_url(account.name), self._states.tests().get(account.name))

    # --- changing ------------------------------------------------------------------------------

    async def add(self, name: str, kind: str, options: PSAOptions, *, poll_interval_s: float, actor: str,
                  enabled: bool = True) -> AccountView:
        """Store a new account and, when ``enabled``, serve its webhooks and start its poller at once.
        :class:`AccountFieldsError` for missing or wrong fields, :class:`~mspclaw.errors.Conflict` for a taken name."""
        name = check_name(name)
        if not 0 <= poll_interval_s <= MAX_POLL_INTERVAL_S:
            raise AccountFieldsError(f"the poll interval is 0 (no polling) to {MAX_POLL_INTERVAL_S:.0f} seconds")

        def required(label: str, given: str | None) -> str:
            if not given:
                raise AccountFieldsError(f"{kind} needs the {label}")
            return given

        config, secrets = account_fields(kind, options, required)
        config = {"poll_interval_s": poll_interval_s, **config}
        async with self._lock:
            account = await asyncio.to_thread(self._accounts.add, name, kind, config, secrets, enabled=enabled)
            try:
                connector = self._build(account)  # checks the settings, also of an account added disabled
            except ConfigError as exc:
                await asyncio.to_thread(self._accounts.remove, account.name)
                raise AccountFieldsError(exc.message) from exc
            if enabled:
                await self._close(self.connectors.put(account.name, connector))
                self._start_poller(account)
            else:
                await self._close(connector)
                self.connectors.pause(account.name)
            await self._refresh()
        self._announce()
        await self._audit.record("psa_account_added", actor=actor,
                                 data={"name": account.name, "kind": kind, "config": config, "enabled": enabled})
        return await asyncio.to_thread(self.view, account.name)

    async def test(self, name: str, *, actor: str) -> CredentialTest:
        """One cheap authenticated read with the stored credentials (enabled or not); the outcome is kept."""
        account = await asyncio.to_thread(self._accounts.get, name)
        secrets = account.secret_values()
        try:
            connector = self._build(account)
        except ConfigError as exc:
            ok, message = False, plain_words(exc)
        else:
            try:
                if not isinstance(connector, ChecksCredentials):
                    ok, message = False, f"a {account.kind} connector has no credential test"
                else:
                    ok, message = True, await asyncio.wait_for(connector.check(), CHECK_TIMEOUT_S)
            except TimeoutError:
                ok, message = False, (f"the PSA did not answer within {CHECK_TIMEOUT_S:.0f} s: check its address "
                                      "and that it is up")
            except MSPClawError as exc:
                ok, message = False, plain_words(exc)
            finally:
                await self._close(connector)
        result = CredentialTest(self._now(), ok, _redacted(message, secrets))
        await asyncio.to_thread(self._states.record_test, account.name, result)
        await self._audit.record("psa_account_tested", actor=actor,
                                 data={"name": account.name, "kind": account.kind, "ok": ok,
                                       "message": result.message})
        return result

    async def enable(self, name: str, *, actor: str) -> AccountView:
        """Take tickets from the account again: its webhooks are accepted and its poller runs, at once."""
        async with self._lock:
            account = await asyncio.to_thread(self._accounts.get, name)
            try:
                connector = None if account.name in self.connectors else self._build(account)
            except ConfigError as exc:  # the account is left as it was
                raise Conflict(f"{account.name} cannot be enabled: {exc.message}; remove it and add it again "
                               "with the right settings") from exc
            await asyncio.to_thread(self._states.set_enabled, account.name, True)
            if connector is None:
                self.connectors.resume(account.name)
            else:
                await self._close(self.connectors.put(account.name, connector))
            self._start_poller(account)
            await self._refresh()
        self._announce()
        await self._audit.record("psa_account_enabled", actor=actor, data={"name": account.name})
        return await asyncio.to_thread(self.view, account.name)

    async def disable(self, name: str, *, actor: str) -> AccountView:
        """Take no new tickets from the account: its webhooks are refused and its poller stops, at once. Tickets
        it already gave finish and are written back (its connector is kept until the account is removed)."""
        async with self._lock:
            account = await asyncio.to_thread(self._accounts.get, name)
            await asyncio.to_thread(self._states.set_enabled, account.name, False)
            await self._stop_poller(account.name)
            self.connectors.pause(account.name)
            await self._refresh()
        self._announce()
        await self._audit.record("psa_account_disabled", actor=actor, data={"name": account.name})
        return await asyncio.to_thread(self.view, account.name)

    async def remove(self, name: str, *, actor: str) -> None:
        """Delete the account and its secrets; its webhooks are then unknown, its poller stopped."""
        async with self._lock:
            account = await asyncio.to_thread(self._accounts.get, name)
            await asyncio.to_thread(self._accounts.remove, account.name)
            await self._stop_poller(account.name)
            await self._close(self.connectors.drop(account.name))
            await self._refresh()
        self._announce()
        await self._audit.record("psa_account_removed", actor=actor, data={"name": account.name,
                                                                          "kind": account.kind})

    async def reload(self) -> None:
        """Bring the live connectors and pollers to what the database holds: another replica added, enabled,
        disabled or removed accounts. Connectors given to :func:`~mspclaw.wiring.build` directly (never
        stored) are left alone; an account removed and added again under its name gets a new connector."""
        async with self._lock:
            before = {account.name: account for account in self._listing}
            stored = await asyncio.to_thread(self._accounts.list)
            now = {account.name: account for account in stored}
            for name in before.keys() - now.keys():
                await self._stop_poller(name)
                await self._close(self.connectors.drop(name))
            for name, account in now.items():
                old = before.get(name)
                if not account.enabled:
                    await self._stop_poller(name)
                    if old is not None and old.id != account.id:
                        await self._close(self.connectors.drop(name))
                    self.connectors.pause(name)
                    continue
                if old is not None and old.id != account.id:
                    await self._stop_poller(name)
                    await self._close(self.connectors.drop(name))
                if name not in self.connectors:
                    try:
                        connector = self._build(account)
                    except ConfigError as exc:
                        log.warning("PSA account %s changed on another replica and cannot be served here: %s",
                                    name, exc.message)
                        continue
                    await self._close(self.connectors.put(name, connector))
                else:
                    self.connectors.resume(name)
                self._start_poller(account)
            self._listing[:] = stored

    # --- pollers -------------------------------------------------------------------------------

    def start_pollers(self) -> None:
        """Poll every enabled account that has a poll interval, from now on and as accounts are enabled."""
        self._polling = True
        for account in self._listing:
            if account.enabled and account.name in self.connectors.taking:
                self._start_poller(account)

    async def aclose(self) -> None:
        """Stop every poller (the connectors stay open: their owners close them)."""
        self._polling = False
        for name in list(self._pollers):
            await self._stop_poller(name)

    def polling(self, name: str) -> bool:
        return name in self._pollers

    def _start_poller(self, account: PSAAccount) -> None:
        interval = float(account.config.get("poll_interval_s", 0) or 0)
        if not self._polling or interval <= 0 or account.name in self._pollers:
            return
        task = asyncio.get_running_loop().create_task(Poller(self._intake, account.name, interval_s=interval).run())
        self._pollers[account.name] = task

    async def _stop_poller(self, name: str) -> None:
        task = self._pollers.pop(name, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # --- plumbing ------------------------------------------------------------------------------

    async def _refresh(self) -> None:
        self._listing[:] = await asyncio.to_thread(self._accounts.list)

    @staticmethod
    async def _close(connector: PSAConnector | None) -> None:
        if isinstance(connector, _Closes):
            try:
                await connector.aclose()
            except Exception as exc:  # a client that fails to close must not undo the change
                log.warning("closing a PSA connector failed: %s", exc)
