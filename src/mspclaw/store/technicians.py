"""The technician roster's rows: technicians, notification channels and the roster's version, shared by every
server replica and the CLI through the database.

Rows are data: ``pipeline/techs.py`` validates technicians and channels before it writes them and again as it
reads them back.

**Seeing a change at once.** ``roster_state`` holds one row whose ``version`` goes up with every change. A
reader asks for it (one primary-key lookup) before it uses the roster it holds and reads the whole roster again
only when the version differs, so a change made on one replica, or by ``mspclaw tech`` on any host, applies at
the next read everywhere, with no message to lose. What a server's event loop reads is the roster it holds,
read again every second, and at once on PostgreSQL: an edit's transaction sends ``NOTIFY mspclaw_roster``
(:data:`CHANGED_CHANNEL`), delivered at its commit to every replica's listener
(:class:`~mspclaw.store.wakeups.Wakeups`); a lost notification costs that second, no more.

**Editing.** :meth:`RosterStore.editing` is one transaction that first locks the state row (``FOR UPDATE`` on
PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so edits from several replicas and commands run one after the
other, each on the roster the previous one left, and none is lost.

**Secrets.** A channel's webhook URL is sealed by the :class:`~mspclaw.store.secretbox.SecretBox` (the context
names the channel: a sealed URL copied to another row does not open) and opened only when the channel is used,
so a missing key stops notifications, never sign-ins. Passwords and second factors are not here: they stay in
``tech_credentials`` and ``tech_second_factors``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Connection, Table, delete, func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from mspclaw.errors import StoreError
from mspclaw.store.database import Database
from mspclaw.store.secretbox import SecretBox
from mspclaw.store.tables import NotificationChannelRow, RosterStateRow, TechnicianRow, utcnow

CHANGED_CHANNEL = "mspclaw_roster"
"""The PostgreSQL channel an edit of the roster notifies once it commits (no payload)."""
STATE_ID = 1
"""The id of ``roster_state``'s one row (made by migration 0011)."""
TECH_FIELDS = ("name", "email", "role", "slack_id", "teams_id", "clients", "on_duty", "timezone", "aliases")
_T = cast(Table, TechnicianRow.__table__)
_C = cast(Table, NotificationChannelRow.__table__)
_S = cast(Table, RosterStateRow.__table__)


def url_context(name: str) -> str:
    return f"webhook URL of notification channel {name}"


@dataclass(frozen=True)
class StoredChannel:
    """A channel as stored: its webhook URL still sealed (:meth:`RosterStore.open_url`)."""

    name: str
    kind: str
    sealed_url: str = field(repr=False)
    clients: list[str]
    events: list[str]


@dataclass(frozen=True)
class RosterRows:
    """The whole roster at ``version`` (or newer: the version is read first), in the roster's order."""

    version: int
    techs: list[dict[str, Any]]
    channels: list[StoredChannel]


@dataclass(frozen=True)
class RosterState:
    version: int
    edited_at: Any
    """When the roster was last changed (``None``: never, since the upgrade that made it)."""
    imported_from: str | None


class RosterEdit:
    """The roster inside one locked transaction: read :attr:`techs` and :attr:`channels`, save new lists."""

    def __init__(self, conn: Connection, box: SecretBox, state: RosterState, rows: RosterRows) -> None:
        self._conn, self._box = conn, box
        self.state = state
        self.techs = rows.techs
        self.channels = rows.channels
        self.changed = False
        """Whether this edit changed the roster (its version goes up as it commits)."""

    def save_techs(self, techs: Sequence[Mapping[str, Any]]) -> None:
        """The roster's technicians become ``techs``, in this order (rows unchanged are left alone)."""
        now = utcnow()
        old = {t["email"]: (i, t) for i, t in enumerate(self.techs)}
        new = [{k: t[k] for k in TECH_FIELDS} | {"position": i} for i, t in enumerate(techs)]
        gone = set(old) - {t["email"] for t in new}
        if gone:
            self._conn.execute(delete(_T).where(_T.c.email.in_(sorted(gone))))
        for row in new:
            before = old.get(row["email"])
            if before is None:
                self._conn.execute(insert(_T).values(**row, updated_at=now))
            elif before[0] != row["position"] or any(before[1][k] != row[k] for k in TECH_FIELDS):
                self._conn.execute(update(_T).where(_T.c.email == row["email"]).values(**row, updated_at=now))
        self.techs = [{k: t[k] for k in TECH_FIELDS} for t in new]
        self._changed()

    def save_channels(self, channels: Sequence[Mapping[str, Any]]) -> None:
        """The roster's channels become ``channels`` (``url`` in clear: sealed here), in this order."""
        now = utcnow()
        self._conn.execute(delete(_C))
        stored = []
        for i, c in enumerate(channels):
            sealed = self._box.encrypt(str(c["url"]), context=url_context(str(c["name"])))
            self._conn.execute(insert(_C).values(name=c["name"], position=i, kind=c["kind"], url=sealed,
                                                 clients=list(c["clients"]), events=list(c["events"]),
                                                 updated_at=now))
            stored.append(StoredChannel(c["name"], c["kind"], sealed, list(c["clients"]), list(c["events"])))
        self.channels = stored
        self._changed()

    def mark_imported(self, source: str) -> None:
        self._conn.execute(update(_S).where(_S.c.id == STATE_ID).values(imported_from=source[:500]))
        self._changed()

    def _changed(self) -> None:
        self._conn.execute(update(_S).where(_S.c.id == STATE_ID).values(version=_S.c.version + 1,
                                                                        edited_at=utcnow()))
        self.changed = True


class RosterStore:
    def __init__(self, db: Database, box: SecretBox) -> None:
        self._db, self._box = db, box

    def version(self) -> int:
        """The roster's version (:class:`StoreError` if the database cannot say)."""
        try:
            with self._db.engine.connect() as conn:
                version = conn.execute(select(_S.c.version).where(_S.c.id == STATE_ID)).scalar()
        except SQLAlchemyError as exc:
            raise StoreError(f"the technician roster cannot be read: {exc}") from exc
        if version is None:
            raise _missing()
        return int(version)

    def read(self) -> RosterRows:
        try:
            with self._db.engine.connect() as conn:
                return _read(conn)
        except SQLAlchemyError as exc:
            raise StoreError(f"the technician roster cannot be read: {exc}") from exc

    def state(self) -> RosterState:
        with self._db.engine.connect() as conn:
            return _state(conn, lock=False)

    def open_url(self, channel: StoredChannel) -> str:
        """The channel's webhook URL in clear (:class:`~mspclaw.store.secretbox.SecretKeyError` without its key)."""
        return self._box.decrypt(channel.sealed_url, context=url_context(channel.name))

    @contextmanager
    def editing(self) -> Iterator[RosterEdit]:
        """The roster, locked until the body returns (committed) or raises (rolled back). A change is notified
        on :data:`CHANGED_CHANNEL` (PostgreSQL), which PostgreSQL delivers only if the transaction commits."""
        with self._db.transaction(immediate=True) as conn:
            state = _state(conn, lock=True)
            edit = RosterEdit(conn, self._box, state, _read(conn))
            yield edit
            if edit.changed and conn.dialect.name == "postgresql":
                conn.execute(select(func.pg_notify(CHANGED_CHANNEL, "")))

    def reencrypt(self) -> int:
        """Seal every channel's webhook URL again under the box's current key (key rotation); how many."""
        with self._db.transaction(immediate=True) as conn:
            _state(conn, lock=True)
            rows = conn.execute(select(_C.c.name, _C.c.url)).all()
            plain = [self._box.decrypt(r.url, context=url_context(r.name)) for r in rows]
            for row, url in zip(rows, plain, strict=True):
                conn.execute(update(_C).where(_C.c.name == row.name)
                             .values(url=self._box.encrypt(url, context=url_context(row.name))))
        return len(rows)


def _state(conn: Connection, *, lock: bool) -> RosterState:
    query = select(_S.c.version, _S.c.edited_at, _S.c.imported_from).where(_S.c.id == STATE_ID)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise _missing()
    return RosterState(int(row.version), row.edited_at, row.imported_from)


def _read(conn: Connection) -> RosterRows:
    version = conn.execute(select(_S.c.version).where(_S.c.id == STATE_ID)).scalar()
    if version is None:
        raise _missing()
    techs = [{k: getattr(r, k) for k in TECH_FIELDS}
             for r in conn.execute(select(_T).order_by(_T.c.position, _T.c.email))]
    channels = [StoredChannel(r.name, r.kind, r.url, list(r.clients), list(r.events))
                for r in conn.execute(select(_C).order_by(_C.c.position, _C.c.name))]
    return RosterRows(int(version), techs, channels)


def _missing() -> StoreError:
    return StoreError("the technician roster's state row is missing: run the server once (it migrates the "
                      "database) or restore the database from a backup")
