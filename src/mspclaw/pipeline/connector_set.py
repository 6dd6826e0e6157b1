"""The PSA connectors the services use, as a live mapping that changes while the server runs.

The ticket run, closing, questions and feedback hold one :class:`ConnectorSet` instead of a plain dict,
and the intake holds its :attr:`~ConnectorSet.taking` view; each looks a connector up when it needs it.
An account added or enabled is used at once. A disabled account takes no new tickets (the intake's view
refuses its webhooks and polls with the reason), while the tickets it already gave finish and are written
back through its connector; a removed account is gone from both. Each change swaps in a new dict in one
assignment, so a reader never sees a half-made change.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from mspclaw.connectors.base import PSAConnector
from mspclaw.errors import Conflict, MSPClawError


class AccountUnavailable(KeyError):
    """The account exists but takes no tickets (disabled); ``error`` says so in the caller's terms."""

    def __init__(self, error: MSPClawError) -> None:
        super().__init__(error.message)
        self.error = error


class ConnectorSet(Mapping[str, PSAConnector]):
    """Every PSA account's connector by account name (enabled or disabled); :attr:`taking`: the enabled ones."""

    def __init__(self, connectors: Mapping[str, PSAConnector] | None = None, *,
                 disabled: frozenset[str] = frozenset()) -> None:
        self._all: dict[str, PSAConnector] = dict(connectors or {})
        self._disabled = disabled
        self.taking: Mapping[str, PSAConnector] = _Taking(self)
        """What the intake may take new tickets from; a disabled account raises :class:`AccountUnavailable`."""

    def __getitem__(self, name: str) -> PSAConnector:
        return self._all[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all)

    def __len__(self) -> int:
        return len(self._all)

    @property
    def disabled(self) -> frozenset[str]:
        return self._disabled

    def put(self, name: str, connector: PSAConnector) -> PSAConnector | None:
        """Serve ``name`` with ``connector``, enabled, from now on; the connector it replaces, if any (to close)."""
        previous = self._all.get(name)
        self._all = {**self._all, name: connector}
        self._disabled = self._disabled - {name}
        return previous

    def resume(self, name: str) -> bool:
        """Enable ``name`` again with the connector it kept; ``False`` when it has none (build one, :meth:`put`)."""
        if name not in self._all:
            return False
        self._disabled = self._disabled - {name}
        return True

    def pause(self, name: str) -> None:
        """``name`` takes no new tickets; its connector stays for the tickets it already gave."""
        self._disabled = self._disabled | {name}

    def drop(self, name: str) -> PSAConnector | None:
        """Forget ``name`` (a removed account); its connector, to close."""
        previous = self._all.get(name)
        self._all = {key: value for key, value in self._all.items() if key != name}
        self._disabled = self._disabled - {name}
        return previous

    def refusal(self, name: str) -> MSPClawError:
        return Conflict(f"PSA account {name!r} is disabled: MSPclaw takes no tickets from it until an admin "
                        f"enables it at /admin/psa (or POST /api/psa-accounts/{name}/enable)")


class _Taking(Mapping[str, PSAConnector]):
    """The enabled accounts of a :class:`ConnectorSet`, live."""

    def __init__(self, owner: ConnectorSet) -> None:
        self._owner = owner

    def __getitem__(self, name: str) -> PSAConnector:
        if name in self._owner.disabled:
            raise AccountUnavailable(self._owner.refusal(name))
        return self._owner[name]

    def __iter__(self) -> Iterator[str]:
        disabled = self._owner.disabled
        return iter([name for name in self._owner if name not in disabled])

    def __len__(self) -> int:
        return sum(1 for _ in self)
