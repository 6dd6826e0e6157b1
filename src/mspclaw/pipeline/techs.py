"""The technician roster: who the MSP's technicians are (name, e-mail, role, Slack and Teams ids, the
clients each serves, on-duty hours) and where notifications go (Slack and Teams channels, per client or
global). Approvals and escalations are attributed to and routed by it; logins and API roles are checked
against it.

It lives in the database (:mod:`mspclaw.store.technicians`), so every server replica and every ``mspclaw
tech`` command sees one roster, and a change made anywhere applies everywhere at the next read. Edits
(``mspclaw tech add|remove``, the console, the API) run one at a time in a locked transaction and are
validated as the file was; channel webhook URLs are sealed by the secret box.

The roster is written and read as the ``techs.yaml`` text below by ``mspclaw tech export`` and ``mspclaw tech
import FILE`` (validated first; every error names the line), and a data directory's ``techs.yaml`` of an
earlier release is imported once, at the first start after the upgrade, and renamed ``techs.yaml.imported``
(:meth:`TechRegistry.adopt_file`).

Example::

    techs:
      - name: Dana Scully
        email: dana@msp.example
        role: tech                 # admin | tech | viewer
        slack_id: U012AB3CD
        teams_id: dana@msp.example # the Teams user (UPN or AAD object id) to @mention
        clients: ["Acme Dental"]   # client names or ids; "*" is every client
        on_duty: ["mon-fri 08:00-18:00"]   # empty: always on duty
        timezone: Europe/Berlin
        aliases: ["dana.scully@gmail.com", "D. Scully"]  # also her: never approves tickets from these
    channels:
      - name: acme-slack
        kind: slack                # slack (incoming webhook) | teams (Workflows webhook)
        url: https://hooks.slack.com/services/T000/B000/XXXX
        clients: ["Acme Dental"]   # omitted: a global channel, used for clients without their own
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mspclaw.errors import ConfigError, Conflict, MSPClawError, NotFound
from mspclaw.pipeline.identity import identity_keys, keys_of
from mspclaw.playbooks.canonical import FAST_LOADER, first_breach, safe_load
from mspclaw.store import loop_guard
from mspclaw.store.technicians import RosterEdit, RosterStore, StoredChannel
from mspclaw.store.wakeups import ChannelWakeups

log = logging.getLogger(__name__)

FILE_NAME = "techs.yaml"
Role = Literal["admin", "tech", "viewer"]
Event = Literal["escalation", "approval", "feedback"]
EVENTS: tuple[Event, ...] = ("escalation", "approval", "feedback")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SHIFT = re.compile(r"^(?P<d1>[a-z]{3})(?:-(?P<d2>[a-z]{3}))?\s+(?P<t1>\d{2}:\d{2})-(?P<t2>\d{2}:\d{2})$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Shift(_Model):
    days: frozenset[int]
    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> Shift:
        m = _SHIFT.match(text.strip().lower())
        if m is None or m["d1"] not in _DAYS or (m["d2"] and m["d2"] not in _DAYS):
            raise ValueError(f"on_duty {text!r}: write 'mon-fri 08:00-18:00' or 'sat 09:00-12:00'")
        a, b = _DAYS.index(m["d1"]), _DAYS.index(m["d2"] or m["d1"])
        days = frozenset(range(a, b + 1)) if a <= b else frozenset([*range(a, 7), *range(0, b + 1)])
        try:
            start, end = time.fromisoformat(m["t1"]), time.fromisoformat(m["t2"])
        except ValueError:
            raise ValueError(f"on_duty {text!r}: times are HH:MM, 00:00 to 23:59") from None
        return cls(days=days, start=start, end=end)

    def covers(self, local: datetime) -> bool:
        t = local.time()
        if self.start <= self.end:
            return local.weekday() in self.days and self.start <= t < self.end
        # overnight: from start on a listed day until end the next morning
        yesterday = (local.weekday() - 1) % 7
        return (local.weekday() in self.days and t >= self.start) or (yesterday in self.days and t < self.end)


class Tech(_Model):
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=255)
    role: Role = "tech"
    slack_id: str | None = Field(None, pattern=r"^[UW][A-Z0-9]{2,}$", max_length=64)
    teams_id: str | None = Field(None, min_length=1, max_length=255)
    clients: list[str] = Field(min_length=1, description="Client names or ids; '*' is every client.")
    on_duty: list[str] = Field(default_factory=list)
    timezone: str = "UTC"
    aliases: list[str] = Field(default_factory=list, max_length=50, description=(
        "Other addresses, display names or PSA contact ids this technician goes by; a ticket requested or "
        "opened under any of them is theirs, so they cannot approve its destructive steps."))

    @field_validator("aliases")
    @classmethod
    def _aliases(cls, value: list[str]) -> list[str]:
        for item in value:
            if not item.strip() or len(item) > 255:
                raise ValueError(f"alias {item[:40]!r}: write a non-empty address, name or id of at most 255 "
                                 "characters")
        return value

    @field_validator("email")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()

    @field_validator("on_duty")
    @classmethod
    def _shifts(cls, value: list[str]) -> list[str]:
        for item in value:
            Shift.parse(item)
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name like Europe/Berlin") from None
        return value

    @property
    def all_clients(self) -> bool:
        return "*" in self.clients

    def serves(self, client_id: str, client_name: str) -> bool:
        names = {c.lower() for c in self.clients}
        return "*" in names or client_id.lower() in names or client_name.lower() in names

    def identity_keys(self) -> frozenset[str]:
        """The normalised identities this technician goes by: e-mail, name and every alias."""
        return keys_of([self.email, self.name, *self.aliases])

    def on_duty_at(self, when: datetime) -> bool:
        if not self.on_duty:
            return True
        local = when.astimezone(ZoneInfo(self.timezone))
        return any(Shift.parse(s).covers(local) for s in self.on_duty)


class Channel(_Model):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    kind: Literal["slack", "teams"]
    url: str = Field(pattern=r"^https?://\S+$")
    clients: list[str] = Field(default_factory=list, description="Empty: a global channel.")
    events: list[Event] = Field(default_factory=lambda: list(EVENTS))

    def __repr__(self) -> str:  # the webhook URL is a secret
        return f"Channel(name={self.name!r}, kind={self.kind!r})"

    def for_client(self, client_id: str, client_name: str) -> bool:
        names = {c.lower() for c in self.clients}
        return client_id.lower() in names or client_name.lower() in names


class TechsFile(_Model):
    techs: list[Tech] = Field(default_factory=list, max_length=10_000)
    channels: list[Channel] = Field(default_factory=list, max_length=1_000)

    @model_validator(mode="after")
    def _unique(self) -> TechsFile:
        emails = Counter(t.email for t in self.techs)  # linear: 10,000 technicians, each counted once
        dupes = sorted(e for e, n in emails.items() if n > 1)
        if dupes:
            raise ValueError(f"e-mail listed twice: {', '.join(dupes)}")
        names = Counter(c.name for c in self.channels)
        dupes = sorted(c for c, n in names.items() if n > 1)
        if dupes:
            raise ValueError(f"channel name listed twice: {', '.join(dupes)}")
        return self


# -- loading with line numbers ---------------------------------------------------------------------
def _line(node: yaml.Node | None, loc: Sequence[int | str]) -> int:
    """The 1-based line of the deepest node that ``loc`` reaches in the composed YAML."""
    line = node.start_mark.line + 1 if node is not None else 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if getattr(k, "value", None) == part), None)
            if match is None:
                break
            node = match[1]
            line = match[0].start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


MAX_NODES = 200_000
"""The most YAML nodes a techs.yaml may hold; an exported roster takes about 11 bytes a node, so one as large as
:data:`MAX_FILE` has fewer than half as many."""
MAX_DEPTH = 16
"""The deepest nesting read; a roster nests four levels (the file, ``techs:``, a technician, its ``clients:``)."""


def _check_bounds(text: str, source: str) -> None:
    """Refuse, before anything is built, a text over :data:`MAX_FILE`, any alias (``*name``: the "billion laughs"
    expansion, and one long value repeated without end), more than :data:`MAX_NODES` nodes or nesting deeper
    than :data:`MAX_DEPTH`: one linear pass over the parser's events. Text that is not valid YAML is left to
    :func:`parse`, which names the line."""
    size = len(text.encode("utf-8"))
    if size > MAX_FILE:
        raise ConfigError(f"{source}: {size} bytes is over the {MAX_FILE // 1024} KiB limit; a roster is a few "
                          "kilobytes")
    try:
        breach = first_breach(text, max_nodes=MAX_NODES, max_depth=MAX_DEPTH)
    except yaml.YAMLError:
        return  # not valid YAML: parse() says where, and got no further than this pass did
    if breach is None:
        return
    if breach.kind == "alias":
        raise ConfigError(f"{source}:{breach.line}: YAML aliases (*{breach.anchor}) are not allowed in a "
                          "technician roster; write the value out in full")
    if breach.kind == "nodes":
        raise ConfigError(f"{source}:{breach.line}: more than {MAX_NODES} YAML nodes; a roster is far smaller: "
                          "check that this is a techs.yaml")
    raise ConfigError(f"{source}:{breach.line}: nested more than {MAX_DEPTH} levels deep; a roster has four "
                      "(the file, techs:, a technician, its clients:)")


def parse(text: str, source: str) -> TechsFile:
    """Validate a techs.yaml text; :class:`ConfigError` lists each problem as ``source:line: ...``. A text
    that would cost more than a linear pass to read (aliases, too many nodes, too deep) is refused first."""
    _check_bounds(text, source)
    try:
        data = safe_load(text)  # libyaml; composed again below only for the lines of a file that does not validate
    except yaml.YAMLError as exc:
        mark, context = getattr(exc, "problem_mark", None), getattr(exc, "context_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        started = f" ({getattr(exc, 'context', '')} at line {context.line + 1})" if context is not None else ""
        raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}{started}") from None
    if data is None:
        return TechsFile()
    if not isinstance(data, dict):
        raise ConfigError(f"{source}:1: expected a mapping with 'techs:' and 'channels:'")
    try:
        return TechsFile.model_validate(data)
    except ValidationError as exc:
        node = yaml.compose(text, Loader=FAST_LOADER)
        problems = []
        for err in exc.errors():
            loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
            field = ".".join(str(p) for p in loc) or "file"
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"{source}:{_line(node, loc)}: {field}: {msg}")
        raise ConfigError("techs.yaml is invalid:\n  " + "\n  ".join(problems)) from None


def dump(doc: TechsFile) -> str:
    data = doc.model_dump(mode="json", exclude_defaults=False)
    for tech in data["techs"]:
        for key in ("slack_id", "teams_id"):
            if tech[key] is None:
                del tech[key]
        if not tech["aliases"]:
            del tech["aliases"]
    header = ("# MSPclaw technician roster (`mspclaw tech export`); after editing, load it with "
              "`mspclaw tech import FILE`.\n# Channel URLs are secrets: keep this file private.\n")
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


@dataclass(frozen=True)
class Assignment:
    tech: Tech | None
    why: str


@dataclass(frozen=True)
class Imported:
    """What :meth:`TechRegistry.replace_all` changed: e-mails added, changed and removed, and channels now."""

    added: list[str]
    changed: list[str]
    removed: list[str]
    channels: int


@dataclass(frozen=True)
class _Held:
    version: int
    techs: list[Tech]
    channels: list[StoredChannel]


REFRESH_S = 1.0
"""How often a server reads the roster's version off the event loop, for the reads its coroutines make."""


class TechRegistry:
    """The roster in the database (:mod:`mspclaw.store.technicians`), validated as the file was.

    A read on a worker thread (sync routes, the CLI, offloaded calls) asks the database for the roster's
    version (one primary-key lookup) and reads the roster again only when it changed, so an edit made anywhere
    (another replica, ``mspclaw tech`` on any host) applies at that read. A read on the event loop's thread
    never waits for the database: it uses the roster this registry holds, which is read again after every edit
    made through it (and ``announce`` tells the other replicas, which :meth:`reload` at once), and otherwise
    by :meth:`refresh_forever`: at once when PostgreSQL notifies an edit (any replica's, or ``mspclaw tech``'s),
    and every :data:`REFRESH_S` in any case."""

    def __init__(self, rows: RosterStore, *, announce: Callable[[], None] | None = None) -> None:
        self._rows = rows
        self._announce = announce
        self._held: _Held | None = None
        self._opened: tuple[int, list[Channel]] | None = None
        self.notified = 0
        """Refreshes :meth:`refresh_forever` made because a change was notified, not at its poll (tests)."""

    # -- reading --------------------------------------------------------------------------------
    def _current(self) -> _Held:
        held = self._held
        if _on_event_loop():
            if held is not None:
                return held
            with loop_guard.inline():  # once, before the first refresh: a server reads it while it is built
                return self._read()
        if held is not None and held.version == self._rows.version():
            return held
        return self._read()

    def refresh(self) -> bool:
        """Read the roster again if it changed (blocking: off the event loop); whether it had."""
        held = self._held
        if held is not None and held.version == self._rows.version():
            return False
        self._read()
        return True

    async def reload(self) -> None:
        """:meth:`refresh` on a worker thread (another replica changed the roster)."""
        await asyncio.to_thread(self.refresh)

    async def refresh_forever(self, interval_s: float = REFRESH_S, *, changes: ChannelWakeups | None = None) -> None:
        """Keep the roster the event loop's readers use current (a change by ``mspclaw tech``, or by a replica),
        until cancelled: every ``interval_s``, and at once when ``changes`` (the wake-ups of
        :data:`~mspclaw.store.technicians.CHANGED_CHANNEL`, on PostgreSQL) hears of an edit."""
        changed = asyncio.Event()
        if changes is not None:
            changes.subscribe(changed)
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), interval_s)
                if changed.is_set():
                    changed.clear()
                    self.notified += 1
                try:
                    await self.reload()
                except MSPClawError as exc:  # the database away a moment, an invalid row: say so, keep the last
                    log.warning("technician roster not refreshed: %s", exc.message)
        finally:
            if changes is not None:
                changes.unsubscribe(changed)

    def _read(self) -> _Held:
        rows = self._rows.read()
        try:
            techs = [Tech.model_validate(t) for t in rows.techs]
        except ValidationError as exc:
            raise ConfigError(f"a technician stored in the database is invalid ({exc.error_count()} problem(s): "
                              f"{exc.errors()[0]['msg']}); export the roster with `mspclaw tech export`, fix it "
                              "and import it with `mspclaw tech import`") from None
        held = _Held(rows.version, techs, rows.channels)
        self._held = held
        return held

    def _changed(self) -> None:
        """After an edit through this registry: read it back now, and tell the other replicas."""
        self._read()
        if self._announce is not None:
            self._announce()

    def load(self) -> TechsFile:
        """The whole roster, channel webhook URLs opened (:class:`~mspclaw.store.secretbox.SecretKeyError`
        without the key they were sealed with)."""
        held = self._current()
        return TechsFile.model_construct(techs=list(held.techs), channels=self._channels(held))

    def _channels(self, held: _Held) -> list[Channel]:
        opened = self._opened
        if opened is not None and opened[0] == held.version:
            return opened[1]
        channels = [Channel.model_validate({"name": c.name, "kind": c.kind, "url": self._rows.open_url(c),
                                            "clients": c.clients, "events": c.events})
                    for c in held.channels]
        self._opened = (held.version, channels)
        return channels

    def techs(self) -> list[Tech]:
        return list(self._current().techs)

    def find(self, ref: str) -> Tech | None:
        """A technician by e-mail or exact name (case-insensitive)."""
        ref = ref.strip().lower()
        return next((t for t in self.techs() if t.email == ref or t.name.lower() == ref), None)

    def matching(self, text: str) -> list[Tech]:
        """Every technician whose e-mail, name or aliases name the same person as ``text``, in any form
        (``Name <addr>``, case, ``+tags``: :mod:`mspclaw.pipeline.identity`)."""
        keys = identity_keys(text)
        return [t for t in self.techs() if keys & t.identity_keys()] if keys else []

    def on_duty(self, client_id: str, client_name: str, when: datetime) -> Assignment:
        """The technician who takes this client's escalations now: the first on duty in the roster's order."""
        serving = [t for t in self.techs() if t.role in ("tech", "admin") and t.serves(client_id, client_name)]
        if not serving:
            return Assignment(None, f"no technician in the roster serves {client_name}")
        on = [t for t in serving if t.on_duty_at(when)]
        if on:
            return Assignment(on[0], f"on duty for {client_name}")
        return Assignment(None, f"none of the {len(serving)} technicians of {client_name} is on duty now")

    def channels(self, client_id: str, client_name: str, event: str) -> list[Channel]:
        """The client's own channels for this event; the global ones if it has none."""
        every = [c for c in self.load().channels if event in c.events]
        own = [c for c in every if c.for_client(client_id, client_name)]
        return own or [c for c in every if not c.clients]

    def export(self) -> str:
        """The roster as a techs.yaml text (channel webhook URLs in clear), for ``mspclaw tech import``."""
        return dump(self.load())

    # -- editing --------------------------------------------------------------------------------
    def add(self, tech: Tech) -> Tech:
        with self._rows.editing() as edit:
            if any(t["email"] == tech.email for t in edit.techs):
                raise Conflict(f"{tech.email} is already in the roster; remove it first to change it")
            edit.save_techs([*edit.techs, tech.model_dump()])
        self._changed()
        return tech

    def replace(self, email: str, tech: Tech) -> Tech:
        """Change the technician with this e-mail (locked, validated, one transaction); their e-mail stays."""
        email = email.strip().lower()
        if tech.email != email:
            raise Conflict("a technician's e-mail is who they are: remove them and add the new address")
        with self._rows.editing() as edit:
            at = next((i for i, t in enumerate(edit.techs) if t["email"] == email), None)
            if at is None:
                raise NotFound(f"no technician {email!r} in the roster")
            edit.save_techs([*edit.techs[:at], tech.model_dump(), *edit.techs[at + 1:]])
        self._changed()
        return tech

    def remove(self, ref: str) -> Tech:
        ref_l = ref.strip().lower()
        with self._rows.editing() as edit:
            found = next((t for t in edit.techs if t["email"] == ref_l or str(t["name"]).lower() == ref_l), None)
            if found is None:
                raise NotFound(f"no technician {ref!r} in the roster")
            edit.save_techs([t for t in edit.techs if t is not found])
        self._changed()
        return Tech.model_validate(found)

    def replace_all(self, doc: TechsFile, *, source: str | None = None) -> Imported:
        """The roster becomes ``doc`` (technicians and channels), in one transaction (``mspclaw tech import``)."""
        with self._rows.editing() as edit:
            done = self._replace_all(edit, doc, source)
        self._changed()
        return done

    @staticmethod
    def _replace_all(edit: RosterEdit, doc: TechsFile, source: str | None) -> Imported:
        old = {t["email"]: t for t in edit.techs}
        new = [t.model_dump() for t in doc.techs]
        edit.save_techs(new)
        edit.save_channels([c.model_dump() for c in doc.channels])
        if source is not None:
            edit.mark_imported(source)
        emails = {t["email"] for t in new}
        return Imported(added=[t["email"] for t in new if t["email"] not in old],
                        changed=[t["email"] for t in new if t["email"] in old and old[t["email"]] != t],
                        removed=sorted(set(old) - emails), channels=len(doc.channels))

    def adopt_file(self, path: Path) -> Adopted:
        """Import ``techs.yaml`` of a data directory once, into a roster nobody has changed yet, and rename it
        ``techs.yaml.imported``: an upgrade from a release that kept the roster in the file loses nobody.

        A roster already changed in the database is left alone: the file is reported, not read (``mspclaw tech
        import`` replaces the roster with it). A file that does not validate raises :class:`ConfigError` with
        its line numbers and is left in place; nothing is imported."""
        if not path.exists():
            return Adopted("absent", path)
        with self._rows.editing() as edit:
            if edit.state.edited_at is not None:
                return Adopted("ignored", path)
            try:
                text = read_bounded(path)
            except FileNotFoundError:  # another server imported and renamed it meanwhile
                return Adopted("absent", path)
            imported = self._replace_all(edit, parse(text, str(path)), source=str(path))
        self._changed()
        moved = _set_aside(path)
        return Adopted("imported", moved or path, imported, moved=moved is not None)


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


MAX_FILE = 1024 * 1024
"""The largest techs.yaml read (an MSP's roster is kilobytes)."""


def read_bounded(path: Path) -> str:
    """The text of a techs.yaml, refused clearly above :data:`MAX_FILE` or if it is not UTF-8."""
    with open(path, "rb") as fh:
        data = fh.read(MAX_FILE + 1)
    if len(data) > MAX_FILE:
        raise ConfigError(f"{path}: larger than {MAX_FILE // 1024} KiB; a roster is a few kilobytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None


@dataclass(frozen=True)
class Adopted:
    """What :meth:`TechRegistry.adopt_file` did: ``absent`` (no file), ``ignored`` (the roster is the
    database's already; the file is not read) or ``imported`` (``path`` is where the file was moved, or the
    file itself if it could not be renamed: ``moved`` is then false)."""

    outcome: Literal["absent", "ignored", "imported"]
    path: Path
    imported: Imported | None = None
    moved: bool = False


def _set_aside(path: Path) -> Path | None:
    """Rename an imported techs.yaml to ``techs.yaml.imported`` (never over an earlier one); None if it cannot."""
    target = path.with_name(path.name + ".imported")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.imported.{n}")
        n += 1
    try:
        os.rename(path, target)
    except OSError:
        return None
    return target


def tech_from(values: dict[str, Any]) -> Tech:
    """Build a :class:`Tech` from CLI options, with the same messages as the file's validation."""
    try:
        return Tech.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
                             for e in exc.errors())
        raise Conflict(problems) from None
