"""Clients, enrollment codes, agents and devices: who exists and who may connect.

Credentials never rest in clear: enrollment codes and agent credentials are stored as
SHA-256 digests (both are 256-bit random values, so a slow KDF adds nothing) and compared in
constant time.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Select, Table, bindparam, or_, select, update
from sqlalchemy.exc import IntegrityError

from mspclaw.errors import AuthError, Conflict, EnrollmentError, NotFound
from mspclaw.store.database import Database
from mspclaw.store.fastsql import Prepared
from mspclaw.store.tables import Agent, Client, Device, Enrollment, new_id, utcnow


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedCode:
    code: str
    client_id: str
    role: str
    expires_at: datetime
    id: str = ""
    """The code's id, which lists and revokes it (the code itself is stored only as a digest)."""


@dataclass(frozen=True, slots=True)
class AgentCredential:
    """What an agent's verified credential establishes: who it is, whose it is, and its signing key."""

    agent_id: str
    client_id: str
    role: str
    signing_key: str


@dataclass(frozen=True, slots=True)
class AgentSeen:
    """One agent's hello (``hostname`` and the rest set) or disconnect (only ``seen_at``), to be written."""

    agent_id: str
    seen_at: datetime
    hostname: str | None = None
    os_version: str = ""
    agent_version: str = ""
    tools: tuple[str, ...] = ()


@dataclass(frozen=True)
class EnrolledAgent:
    agent: Agent
    credential: str
    """Shown once, to the agent; only its digest is stored."""


_CLIENTS = cast("Table", Client.__table__)
_DEVICES = cast("Table", Device.__table__)
# Built once: read for every ticket (routing), through FastSQL.
_ALL_CLIENTS = select(_CLIENTS).order_by(_CLIENTS.c.name)
_CLIENT_BY_REF = select(_CLIENTS).where(or_(_CLIENTS.c.id == bindparam("ref"), _CLIENTS.c.name == bindparam("ref")))
_CLIENT_DEVICES = select(_DEVICES).where(_DEVICES.c.client_id == bindparam("client_id")).order_by(_DEVICES.c.hostname)
_AGENTS = cast("Table", Agent.__table__)
_REVOKED_AGENTS = select(_AGENTS.c.id).where(_AGENTS.c.client_id == bindparam("client_id"),
                                             _AGENTS.c.revoked_at.is_not(None))
# Routing's one read per ticket: the client's devices, each with its agent's revocation time (the agent of the
# device's own client; ``NULL`` without an agent, or with one not revoked). It answers what ``_CLIENT_DEVICES``
# and ``_REVOKED_AGENTS`` answer together, in one statement.
_ROUTABLE_DEVICES = select(*_DEVICES.c, _AGENTS.c.revoked_at.label("agent_revoked_at")).select_from(
    _DEVICES.outerjoin(_AGENTS, (_AGENTS.c.id == _DEVICES.c.agent_id) & (_AGENTS.c.client_id == _DEVICES.c.client_id))
).where(_DEVICES.c.client_id == bindparam("client_id")).order_by(_DEVICES.c.hostname)
# An agent's upgrade: one prepared read by primary key, fresh from the database each time (a revocation made
# through any replica is seen by the next upgrade on every replica).
_AGENT_CREDENTIAL = select(_AGENTS.c.client_id, _AGENTS.c.role, _AGENTS.c.signing_key, _AGENTS.c.credential_hash,
                           _AGENTS.c.revoked_at).where(_AGENTS.c.id == bindparam("agent_id"))
# What the hub reports of live agents, written in batches (``executemany`` in one transaction).
_AGENT_HELLO = update(_AGENTS).where(_AGENTS.c.id == bindparam("agent_id")).values(
    hostname=bindparam("seen_hostname"), os_version=bindparam("seen_os_version"),
    agent_version=bindparam("seen_agent_version"), tools=bindparam("seen_tools"), last_seen_at=bindparam("seen_at"))
_AGENT_TOUCH = update(_AGENTS).where(_AGENTS.c.id == bindparam("agent_id")).values(last_seen_at=bindparam("seen_at"))
_AGENT_CREDENTIALS = select(_AGENTS.c.id, _AGENTS.c.client_id, _AGENTS.c.role, _AGENTS.c.signing_key,
                            _AGENTS.c.credential_hash, _AGENTS.c.revoked_at).where(
    _AGENTS.c.id.in_(bindparam("agent_ids", expanding=True)))
MAX_VERIFY_BATCH = 500
"""Upgrades checked by one read at most (:meth:`Registry.verify_agents`)."""
MAX_BEARER_CHARS = 200
"""Longer ``Authorization`` bearers are refused before any lookup (an agent's is about 80 characters)."""


@functools.lru_cache(maxsize=64)
def _clients_by_psa_ref(psa: str) -> Select[Any]:
    """Clients whose ``psa_refs[psa]``, as text, is ``:company`` (one statement per PSA account name)."""
    return select(_CLIENTS).where(_CLIENTS.c.psa_refs[psa].as_string() == bindparam("company")).order_by(
        _CLIENTS.c.name)


@functools.lru_cache(maxsize=16)
def _routable_clients_by_psa_ref(psa: str) -> Select[Any]:
    """A PSA ticket's routing in one read: the clients of :func:`_clients_by_psa_ref`, each with the columns of
    each of its devices and their agents' revocation time as ``_ROUTABLE_DEVICES`` has them (one row per
    device; a client without a device has one row, its device columns ``NULL``)."""
    client_columns = [c.label(f"client_{c.key}") for c in _CLIENTS.c]
    device_columns = [c.label(f"device_{c.key}") for c in _DEVICES.c]
    joined = _CLIENTS.outerjoin(_DEVICES, _DEVICES.c.client_id == _CLIENTS.c.id).outerjoin(
        _AGENTS, (_AGENTS.c.id == _DEVICES.c.agent_id) & (_AGENTS.c.client_id == _DEVICES.c.client_id))
    return select(*client_columns, *device_columns, _AGENTS.c.revoked_at.label("agent_revoked_at")).select_from(
        joined).where(_CLIENTS.c.psa_refs[psa].as_string() == bindparam("company")).order_by(
        _CLIENTS.c.name, _CLIENTS.c.id, _DEVICES.c.hostname)


_CLIENT_KEYS = tuple(str(c.key) for c in _CLIENTS.c)
_DEVICE_KEYS = tuple(str(c.key) for c in _DEVICES.c)
_CLIENT_ID, _DEVICE_ID = _CLIENT_KEYS.index("id"), len(_CLIENT_KEYS) + _DEVICE_KEYS.index("id")
"""Where a row of :func:`_routable_clients_by_psa_ref` has the client's id and the device's."""


@dataclass(frozen=True)
class RoutableClient:
    """A client with what routing reads of it (:meth:`Registry.devices_for_routing`)."""

    client: Client
    devices: list[Device]
    revoked: frozenset[str]
    """Of the agents of ``devices``, those whose credential was revoked."""


def _refers(client: Client, psa: str, company: str) -> bool:
    """Whether ``client`` maps to the PSA's company: the rule routing has always used."""
    return str(client.psa_refs.get(psa, "")) == company


def pick_device(devices: list[Device], ref: str) -> Device | None:
    """The device of ``devices`` whose id or host name (case-insensitive) is ``ref``."""
    for device in devices:
        if device.id == ref or device.hostname.lower() == ref.lower():
            return device
    return None


class Registry:
    def __init__(self, db: Database) -> None:
        self._sessions = db.sessions
        self._fast = db.fast
        self._all_clients, self._client_by_ref = self._fast.prepare(_ALL_CLIENTS), self._fast.prepare(_CLIENT_BY_REF)
        self._client_devices = self._fast.prepare(_CLIENT_DEVICES)
        self._revoked_agents = self._fast.prepare(_REVOKED_AGENTS)
        self._routable_devices = self._fast.prepare(_ROUTABLE_DEVICES)
        self._agent_credential = self._fast.prepare(_AGENT_CREDENTIAL)
        self._agent_hello, self._agent_touch = self._fast.prepare(_AGENT_HELLO), self._fast.prepare(_AGENT_TOUCH)

    # -- clients --------------------------------------------------------------------------------
    def add_client(self, name: str, psa_refs: dict[str, str] | None = None) -> Client:
        name = name.strip()
        if not name:
            raise Conflict("a client needs a non-empty name")
        client = Client(id=new_id("cl"), name=name, psa_refs=psa_refs or {})
        try:
            with self._sessions.begin() as db:
                db.add(client)
        except IntegrityError as exc:
            raise Conflict(f"a client named {name!r} already exists") from exc
        return client

    def clients(self) -> list[Client]:
        return self._clients(self._all_clients, {})

    def _clients(self, stmt: Prepared, params: dict[str, Any]) -> list[Client]:
        columns = stmt.columns
        return [Client(**dict(zip(columns, row, strict=True))) for row in self._fast.read(stmt, params)]

    def client(self, ref: str) -> Client:
        """Find a client by id or by exact name."""
        found = self._clients(self._client_by_ref, {"ref": ref})
        if not found:
            raise NotFound(f"no client {ref!r}; list them with `mspclaw clients list`")
        return found[0]

    def client_by_psa_ref(self, psa: str, company: str) -> Client | None:
        """The first client (by name) whose ``psa_refs[psa]`` is the PSA's company id ``company``.

        The database picks the candidates (``psa_refs[psa]`` as text equals ``company``), so a ticket
        reads one client row, not every client. Each candidate is checked again here with the rule
        routing has always used, ``str(psa_refs.get(psa, "")) == company``; when none passes (an
        unknown company, or a reference the database renders differently as text, such as a JSON
        ``true``) the rule is applied to every client, so whenever the rule finds a client, one is found.
        """
        candidates = self._clients(self._fast.prepare(_clients_by_psa_ref(psa)), {"company": company})
        return next((c for c in candidates if _refers(c, psa, company)), None) or next(
            (c for c in self.clients() if _refers(c, psa, company)), None)

    def routable_client_by_psa_ref(self, psa: str, company: str) -> RoutableClient | None:
        """:meth:`client_by_psa_ref` and that client's :meth:`devices_for_routing`: one statement when the database
        picks the client (PSA intake's reads of a ticket's client and route, in one round trip)."""
        nc, nd = len(_CLIENT_KEYS), len(_DEVICE_KEYS)
        client: Client | None = None
        devices: list[Device] = []
        revoked: set[str] = set()
        for row in self._fast.read(self._fast.prepare(_routable_clients_by_psa_ref(psa)), {"company": company}):
            if client is not None and row[_CLIENT_ID] != client.id:
                break  # the first client that passes, with all of its rows (they come together)
            if client is None:
                candidate = Client(**dict(zip(_CLIENT_KEYS, row[:nc], strict=True)))
                if not _refers(candidate, psa, company):
                    continue
                client = candidate
            if row[_DEVICE_ID] is not None:  # else the client has no device
                device = Device(**dict(zip(_DEVICE_KEYS, row[nc:nc + nd], strict=True)))
                devices.append(device)
                if row[-1] is not None and device.agent_id is not None:
                    revoked.add(device.agent_id)
        if client is not None:
            return RoutableClient(client, devices, frozenset(revoked))
        # none passed: a reference the database renders differently as text, as client_by_psa_ref handles it
        client = next((c for c in self.clients() if _refers(c, psa, company)), None)
        return RoutableClient(client, *self.devices_for_routing(client.id)) if client is not None else None

    # -- enrollment -----------------------------------------------------------------------------
    def issue_code(self, client_id: str, *, role: str = "device", ttl: timedelta) -> IssuedCode:
        if role not in ("device", "site"):
            raise Conflict(f"role must be 'device' or 'site', not {role!r}")
        code = "enr_" + secrets.token_urlsafe(24)
        expires = utcnow() + ttl
        code_id = new_id("en")
        with self._sessions.begin() as db:
            db.add(
                Enrollment(
                    id=code_id, client_id=client_id, code_hash=digest(code), role=role, expires_at=expires
                )
            )
        return IssuedCode(code, client_id, role, expires, code_id)

    def open_codes(self, client_id: str | None = None, *, limit: int = 500) -> list[Enrollment]:
        """Codes not yet spent and not expired (newest first); the code itself is not kept, only its digest."""
        stmt = (select(Enrollment).where(Enrollment.used_at.is_(None), Enrollment.expires_at > utcnow())
                .order_by(Enrollment.created_at.desc()).limit(limit))
        if client_id is not None:
            stmt = stmt.where(Enrollment.client_id == client_id)
        with self._sessions() as db:
            return list(db.scalars(stmt))

    def code(self, code_id: str) -> Enrollment:
        with self._sessions() as db:
            enr = db.get(Enrollment, code_id)
        if enr is None:
            raise NotFound(f"no enrollment code {code_id!r}")
        return enr

    def revoke_code(self, code_id: str) -> Enrollment:
        """Make an unspent code expire now, so no agent can enroll with it (:class:`Conflict` if it was already
        spent or had expired)."""
        now = utcnow()
        with self._sessions.begin() as db:
            done = cast("CursorResult[Any]", db.execute(
                update(Enrollment).where(Enrollment.id == code_id, Enrollment.used_at.is_(None),
                                         Enrollment.expires_at > now).values(expires_at=now)))
        enr = self.code(code_id)
        if done.rowcount != 1:
            state = "was already used" if enr.used_at is not None else "has already expired"
            raise Conflict(f"enrollment code {code_id!r} {state}; nothing to revoke")
        return enr

    def enroll(self, code: str, *, hostname: str, os: str, os_version: str, agent_version: str,
               tools: list[str]) -> EnrolledAgent:
        """Spend a code once and create the agent (and, for a device agent, its device)."""
        now = utcnow()
        credential = secrets.token_urlsafe(32)
        with self._sessions.begin() as db:
            enr = db.scalars(select(Enrollment).where(Enrollment.code_hash == digest(code))).first()
            if enr is None:
                raise EnrollmentError("unknown enrollment code; ask for a new one with `mspclaw enroll CLIENT`")
            if enr.used_at is not None:
                raise EnrollmentError("this enrollment code was already used; codes are single-use")
            if enr.expires_at <= now:
                raise EnrollmentError("this enrollment code has expired; ask for a new one")
            agent = Agent(
                id=new_id("ag"), client_id=enr.client_id, role=enr.role, hostname=hostname, os=os,
                os_version=os_version, agent_version=agent_version, tools=tools,
                credential_hash=digest(credential), signing_key=secrets.token_hex(32),
            )
            db.add(agent)
            db.flush()
            # Conditional update: two agents racing on one code cannot both win.
            spent = cast("CursorResult[Any]", db.execute(
                update(Enrollment)
                .where(Enrollment.id == enr.id, Enrollment.used_at.is_(None))
                .values(used_at=now, agent_id=agent.id)
            ))
            if spent.rowcount != 1:
                raise EnrollmentError("this enrollment code was already used; codes are single-use")
            if enr.role == "device":
                db.add(Device(id=new_id("dv"), client_id=enr.client_id, agent_id=agent.id,
                              hostname=hostname, os=os))
        return EnrolledAgent(agent, credential)

    # -- agents ---------------------------------------------------------------------------------
    def authenticate(self, bearer: str) -> Agent:
        """Check ``agent_id.credential``; raise :class:`AuthError` if unknown, wrong or revoked."""
        agent_id, _, credential = bearer.partition(".")
        with self._sessions() as db:
            agent = db.get(Agent, agent_id) if agent_id and credential else None
        if agent is None or not hmac.compare_digest(agent.credential_hash, digest(credential)):
            raise AuthError("unknown agent or wrong credential")
        if agent.revoked_at is not None:
            raise AuthError("this agent's credential was revoked; enroll it again with a new code")
        return agent

    def verify_agent(self, bearer: str) -> AgentCredential:
        """:meth:`authenticate` for an agent's upgrade: one prepared primary-key read, no ORM object.

        Raises :class:`AuthError` when the bearer is too long, unknown, wrong or revoked."""
        if len(bearer) > MAX_BEARER_CHARS:
            raise AuthError(f"the agent credential is longer than {MAX_BEARER_CHARS} characters; "
                            "use the one `mspclaw agent enroll` stored")
        agent_id, _, credential = bearer.partition(".")
        rows = self._fast.read(self._agent_credential, {"agent_id": agent_id}) if agent_id and credential else []
        if not rows or not hmac.compare_digest(rows[0][3], digest(credential)):
            raise AuthError("unknown agent or wrong credential")
        client_id, role, signing_key, _hash, revoked_at = rows[0]
        if revoked_at is not None:
            raise AuthError("this agent's credential was revoked; enroll it again with a new code")
        return AgentCredential(agent_id, client_id, role, signing_key)

    def verify_agents(self, bearers: list[str]) -> list[AgentCredential | AuthError]:
        """:meth:`verify_agent` for many upgrades at once, in one read (``IN`` over their ids): each bearer's
        credential, or the :class:`AuthError` that refuses it, in order. At most :data:`MAX_VERIFY_BATCH`."""
        if len(bearers) > MAX_VERIFY_BATCH:
            raise ValueError(f"verify at most {MAX_VERIFY_BATCH} agent credentials at once, not {len(bearers)}")
        parts = [b.partition(".") if len(b) <= MAX_BEARER_CHARS else ("", "", "") for b in bearers]
        ids = sorted({agent_id for agent_id, _, credential in parts if agent_id and credential})
        rows: dict[str, Any] = {}
        if ids:
            with self._sessions() as db:
                rows = {row[0]: row for row in db.execute(_AGENT_CREDENTIALS, {"agent_ids": ids})}
        out: list[AgentCredential | AuthError] = []
        for bearer, (agent_id, _, credential) in zip(bearers, parts, strict=True):
            row = rows.get(agent_id) if credential else None
            if len(bearer) > MAX_BEARER_CHARS:
                out.append(AuthError(f"the agent credential is longer than {MAX_BEARER_CHARS} characters; "
                                     "use the one `mspclaw agent enroll` stored"))
            elif row is None or not hmac.compare_digest(row[4], digest(credential)):
                out.append(AuthError("unknown agent or wrong credential"))
            elif row[5] is not None:
                out.append(AuthError("this agent's credential was revoked; enroll it again with a new code"))
            else:
                out.append(AgentCredential(agent_id, row[1], row[2], row[3]))
        return out

    def record_seen(self, seen: list[AgentSeen]) -> None:
        """Write a batch of hellos and disconnects in one transaction (last one per agent wins)."""
        hellos = [{"agent_id": s.agent_id, "seen_hostname": s.hostname, "seen_os_version": s.os_version,
                   "seen_agent_version": s.agent_version, "seen_tools": list(s.tools), "seen_at": s.seen_at}
                  for s in seen if s.hostname is not None]
        touches = [{"agent_id": s.agent_id, "seen_at": s.seen_at} for s in seen if s.hostname is None]
        if not hellos and not touches:
            return
        with self._fast.transaction() as tx:
            if hellos:
                tx.execute_many(self._agent_hello, hellos)
            if touches:
                tx.execute_many(self._agent_touch, touches)

    def agents(self, client_id: str | None = None) -> list[Agent]:
        stmt = select(Agent).order_by(Agent.client_id, Agent.hostname)
        if client_id is not None:
            stmt = stmt.where(Agent.client_id == client_id)
        with self._sessions() as db:
            return list(db.scalars(stmt))

    def agent(self, agent_id: str) -> Agent:
        with self._sessions() as db:
            agent = db.get(Agent, agent_id)
        if agent is None:
            raise NotFound(f"no agent {agent_id!r}")
        return agent

    def revoke(self, agent_id: str) -> Agent:
        with self._sessions.begin() as db:
            agent = db.get(Agent, agent_id)
            if agent is None:
                raise NotFound(f"no agent {agent_id!r}")
            agent.revoked_at = utcnow()
        return agent

    def update_hello(self, agent_id: str, *, hostname: str, os_version: str, agent_version: str,
                     tools: list[str]) -> None:
        with self._sessions.begin() as db:
            db.execute(
                update(Agent).where(Agent.id == agent_id).values(
                    hostname=hostname, os_version=os_version, agent_version=agent_version, tools=tools,
                    last_seen_at=utcnow(),
                )
            )

    def touch(self, agent_id: str) -> None:
        with self._sessions.begin() as db:
            db.execute(update(Agent).where(Agent.id == agent_id).values(last_seen_at=utcnow()))

    # -- devices --------------------------------------------------------------------------------
    def devices(self, client_id: str) -> list[Device]:
        stmt = self._client_devices
        return [Device(**dict(zip(stmt.columns, row, strict=True)))
                for row in self._fast.read(stmt, {"client_id": client_id})]

    def revoked_agents(self, client_id: str) -> frozenset[str]:
        """The ids of this client's agents whose credential was revoked: their devices must not be routed to."""
        return frozenset(row[0] for row in self._fast.read(self._revoked_agents, {"client_id": client_id}))

    def devices_for_routing(self, client_id: str) -> tuple[list[Device], frozenset[str]]:
        """:meth:`devices` and, of :meth:`revoked_agents`, those that are the agents of these devices: routing's
        reads, in one statement (a join of devices and agents)."""
        stmt = self._routable_devices
        names = stmt.columns[:-1]
        devices: list[Device] = []
        revoked: set[str] = set()
        for row in self._fast.read(stmt, {"client_id": client_id}):
            device = Device(**dict(zip(names, row[:-1], strict=True)))
            devices.append(device)
            if row[-1] is not None and device.agent_id is not None:
                revoked.add(device.agent_id)
        return devices, frozenset(revoked)

    def find_device(self, client_id: str, ref: str) -> Device | None:
        """A device of this client by id or host name (case-insensitive)."""
        return pick_device(self.devices(client_id), ref)
