"""The technician registry, ``techs.yaml`` in the data directory.

It says who the MSP's technicians are (name, e-mail, role, Slack and Teams ids, the clients each
serves, on-duty hours) and where notifications go (Slack and Teams channels, per client or
global). Approvals and escalations are attributed to and routed by it; logins and API roles are
checked against it.

The file is validated on load; every error names the line. ``mspclaw tech add|remove`` edit it
under an exclusive lock (``techs.yaml.lock``, held across read, change and write) and replace
it atomically (temporary file, fsync, rename), so concurrent edits never lose one and a reader
never sees half a file. Hand edits are picked up on the next read (the file's mtime is watched).

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

import contextlib
import fcntl
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mspclaw.errors import ConfigError, Conflict, NotFound
from mspclaw.pipeline.identity import identity_keys, keys_of

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
    slack_id: str | None = Field(None, pattern=r"^[UW][A-Z0-9]{2,}$")
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
    techs: list[Tech] = Field(default_factory=list)
    channels: list[Channel] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> TechsFile:
        emails = [t.email for t in self.techs]
        dupes = sorted({e for e in emails if emails.count(e) > 1})
        if dupes:
            raise ValueError(f"e-mail listed twice: {', '.join(dupes)}")
        names = [c.name for c in self.channels]
        dupes = sorted({n for n in names if names.count(n) > 1})
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


def parse(text: str, source: str) -> TechsFile:
    """Validate a techs.yaml text; :class:`ConfigError` lists each problem as ``source:line: ...``."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
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
    header = "# MSPclaw technician registry; edit by hand or with `mspclaw tech add|remove`.\n"
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


@dataclass(frozen=True)
class Assignment:
    tech: Tech | None
    why: str


class TechRegistry:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._cached: tuple[float, int, TechsFile] | None = None

    # -- reading --------------------------------------------------------------------------------
    def load(self) -> TechsFile:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return TechsFile()
        key = (stat.st_mtime, stat.st_size)
        if self._cached is not None and self._cached[:2] == key:
            return self._cached[2]
        doc = parse(self.path.read_text(encoding="utf-8"), str(self.path))
        self._cached = (*key, doc)
        return doc

    def techs(self) -> list[Tech]:
        return self.load().techs

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
        """The technician who takes this client's escalations now: the first on duty in file order."""
        serving = [t for t in self.techs() if t.role in ("tech", "admin") and t.serves(client_id, client_name)]
        if not serving:
            return Assignment(None, f"no technician in {FILE_NAME} serves {client_name}")
        on = [t for t in serving if t.on_duty_at(when)]
        if on:
            return Assignment(on[0], f"on duty for {client_name}")
        return Assignment(None, f"none of the {len(serving)} technicians of {client_name} is on duty now")

    def channels(self, client_id: str, client_name: str, event: str) -> list[Channel]:
        """The client's own channels for this event; the global ones if it has none."""
        every = [c for c in self.load().channels if event in c.events]
        own = [c for c in every if c.for_client(client_id, client_name)]
        return own or [c for c in every if not c.clients]

    # -- editing --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[TechsFile]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                text = self.path.read_text(encoding="utf-8") if self.path.exists() else ""
                yield parse(text, str(self.path))
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write(self, doc: TechsFile) -> None:
        text = dump(TechsFile.model_validate(doc.model_dump()))
        fd, tmp = tempfile.mkstemp(prefix=".techs.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o600)  # channel URLs are secrets
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._cached = None

    def add(self, tech: Tech) -> Tech:
        with self._locked() as doc:
            if any(t.email == tech.email for t in doc.techs):
                raise Conflict(f"{tech.email} is already in {self.path}; remove it first to change it")
            doc.techs.append(tech)
            self._write(doc)
        return tech

    def replace(self, email: str, tech: Tech) -> Tech:
        """Change the technician with this e-mail (locked, validated, atomic); their e-mail stays."""
        with self._locked() as doc:
            email = email.strip().lower()
            at = next((i for i, t in enumerate(doc.techs) if t.email == email), None)
            if at is None:
                raise NotFound(f"no technician {email!r} in {self.path}")
            if tech.email != email:
                raise Conflict("a technician's e-mail is who they are: remove them and add the new address")
            doc.techs[at] = tech
            self._write(doc)
        return tech

    def remove(self, ref: str) -> Tech:
        with self._locked() as doc:
            ref_l = ref.strip().lower()
            found = next((t for t in doc.techs if t.email == ref_l or t.name.lower() == ref_l), None)
            if found is None:
                raise NotFound(f"no technician {ref!r} in {self.path}")
            doc.techs.remove(found)
            self._write(doc)
        return found


def tech_from(values: dict[str, Any]) -> Tech:
    """Build a :class:`Tech` from CLI options, with the same messages as the file's validation."""
    try:
        return Tech.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
                             for e in exc.errors())
        raise Conflict(problems) from None
