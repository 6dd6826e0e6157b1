"""``playbook-registry.json``: an index of shareable playbooks, with what each needs and who signed it.

Per playbook: id, version, category and intents, operating systems, where each step runs, the PSAs and
identity systems it was tested against, a permissions manifest derived from its steps and the tool
catalogue, the sha256 of its canonical form, its tier, its signatures and a revoked flag. The index
carries its own hash (of its canonical form without the ``sha256`` field) and its generation time.
The published JSON Schema is ``docs/playbook-registry.schema.json`` (:func:`json_schema`).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mspclaw.playbooks.canonical import CanonicalError, canonical_bytes, content_hash, load_yaml
from mspclaw.playbooks.loader import PlaybookError, load_file
from mspclaw.playbooks.schema import Compatibility, OSName, Playbook, semver
from mspclaw.playbooks.signing import RevokedPlaybook, Signature, Tier, read_signatures, read_trust_file
from mspclaw.tools import CATALOGUE

FORMAT = "mspclaw-playbook-registry/1"
MAX_REGISTRY_BYTES = 4 * 1024 * 1024
MAX_ENTRIES = 2000
REVOKED_FILE = "revoked.json"
"""A directory's revocations (the trust file's ``revoked`` list format), carried into its registry."""


class RegistryError(ValueError):
    """A registry that cannot be read, built or trusted; the message says what and where."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DirectoryPermission(_Model):
    system: Literal["active_directory", "microsoft_graph", "jamf_pro", "cups", "openvpn"]
    permission: str
    why: str
    tools: list[str]


class ToolUse(_Model):
    name: str
    runs_on: Literal["device", "site"]
    destructive: bool
    needs_approval: bool
    steps: list[str]
    why: list[str] = Field(description="The steps' reasons (or titles): why the playbook calls it.")


class Permissions(_Model):
    tools: list[ToolUse]
    destructive: list[str]
    directory: list[DirectoryPermission]

    def grants(self) -> set[str]:
        """Every tool and directory permission, as comparable strings (an update that adds one widens)."""
        return ({f"tool:{t.name}" for t in self.tools} | {f"destructive:{t}" for t in self.destructive}
                | {f"{d.system}:{d.permission}" for d in self.directory})


class Entry(_Model):
    id: str = Field(pattern=r"^[a-z][a-z0-9_.-]*$", max_length=100)
    name: str = Field(max_length=200)
    version: str = Field(max_length=100)
    category: str = Field(max_length=100)
    intents: list[str] = Field(max_length=200, description="The trigger phrases a ticket is matched on.")
    description: str = Field(max_length=4000)
    os: list[OSName]
    runs_on: dict[Literal["device", "site"], list[str]] = Field(description="Step ids per place they run.")
    tested_against: Compatibility
    permissions: Permissions
    path: str = Field(pattern=r"^[A-Za-z0-9_.-]+\.yaml$", max_length=200, description="The YAML file, relative "
                      "to the registry.")
    sha256: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    tier: Tier
    signatures: list[Signature] = Field(default_factory=list, max_length=20)
    revoked: bool = False
    revoked_reason: str = Field("", max_length=500)


class Registry(_Model):
    format: Literal["mspclaw-playbook-registry/1"] = "mspclaw-playbook-registry/1"
    generated_at: str
    tier: Tier
    playbooks: list[Entry] = Field(max_length=MAX_ENTRIES)
    revoked: list[RevokedPlaybook] = Field(default_factory=list, max_length=10_000, description="Every revoked "
                                           "content hash, also of versions no longer listed: an update records "
                                           "them, so an enforcing server refuses an installed copy.")
    sha256: str = Field(pattern=r"^sha256:[0-9a-f]{64}$", description="Content hash of this index without this "
                        "field.")

    def current(self, playbook_id: str) -> Entry | None:
        """The newest entry for an id that is not revoked."""
        found = [e for e in self.playbooks if e.id == playbook_id and not e.revoked]
        return max(found, key=lambda e: version_key(e.version)) if found else None


def version_key(version: str) -> tuple[int, int, int, int, str]:
    """Order of semantic versions: numbers first; a pre-release sorts before its release."""
    core = semver(version).split("+", 1)[0]
    numbers, _, pre = core.partition("-")
    major, minor, patch = (int(p) for p in numbers.split("."))
    return major, minor, patch, 0 if pre else 1, pre


# --- the permissions manifest --------------------------------------------------------------------

_AD = "active_directory"
_GRAPH = "microsoft_graph"
SITE_PERMISSIONS: dict[str, list[tuple[str, str, str]]] = {
    "directory_user": [(_AD, "read user attributes", "look the account up: enabled, locked, password expiry"),
                       (_GRAPH, "User.ReadWrite.All", "look the user up in Entra ID (the app's user permission)")],
    "unlock_account": [(_AD, "Read/write lockoutTime", "clear the lockout")],
    "reset_password": [(_AD, "Reset password; write pwdLastSet", "set a temporary password that must be changed"),
                       (_GRAPH, "User-PasswordProfile.ReadWrite.All", "reset a cloud-only user's password")],
    "reset_mfa": [(_GRAPH, "UserAuthenticationMethod.ReadWrite.All",
                   "remove MFA methods and issue a Temporary Access Pass")],
    "revoke_sessions": [(_GRAPH, "User.ReadWrite.All", "revoke the user's sign-in sessions")],
    "disable_user": [(_AD, "Read/write userAccountControl; move to the leavers OU", "disable a leaver's account"),
                     (_GRAPH, "User.ReadWrite.All", "block a leaver's sign-in and revoke sessions"),
                     (_GRAPH, "LicenseAssignment.ReadWrite.All", "remove a leaver's licences")],
    "enable_user": [(_AD, "Read/write userAccountControl", "enable the account again"),
                    (_GRAPH, "User.ReadWrite.All", "allow sign-in again")],
    "create_user": [(_AD, "Create User objects in the new users' OU", "create a new hire's account"),
                    (_GRAPH, "User.ReadWrite.All", "create the cloud account"),
                    (_GRAPH, "GroupMember.ReadWrite.All", "copy a colleague's groups")],
    "add_to_group": [(_AD, "Write member on the managed groups", "grant access through a group"),
                     (_GRAPH, "GroupMember.ReadWrite.All", "add the user to an Entra group")],
    "remove_from_group": [(_AD, "Write member on the managed groups", "remove access through a group"),
                          (_GRAPH, "GroupMember.ReadWrite.All", "remove the user from an Entra group")],
    "share_access": [(_AD, "read group membership", "which groups open a share and whether the user is in one")],
    "assign_licence": [(_GRAPH, "LicenseAssignment.ReadWrite.All", "assign a Microsoft 365 licence")],
    "remove_licence": [(_GRAPH, "LicenseAssignment.ReadWrite.All", "remove a Microsoft 365 licence")],
    "mac_lookup": [("jamf_pro", "Read Computers", "find the Mac in Jamf Pro")],
    "mac_update_inventory": [("jamf_pro", "Send Computer Remote Command", "ask the Mac to update its inventory")],
    "mac_restart": [("jamf_pro", "Send Computer Remote Command", "restart the Mac remotely")],
    "mac_redeploy_framework": [("jamf_pro", "Redeploy Jamf Management Framework", "repair the Mac's management")],
    "print_server_queues": [("cups", "read queues", "see stuck print queues on the print server")],
    "print_server_clear_queue": [("cups", "manage queues (cancel, cupsenable, cupsaccept)", "clear a stuck queue")],
    "vpn_sessions": [("openvpn", "management interface", "see the user's VPN sessions")],
    "vpn_disconnect": [("openvpn", "management interface", "disconnect a stuck VPN session")],
}


def permissions(book: Playbook) -> Permissions:
    """Which tools the playbook calls, which change something, and what directories must allow, and why."""
    uses: dict[str, tuple[list[str], list[str]]] = {}
    for step in book.steps:
        steps, why = uses.setdefault(step.tool, ([], []))
        steps.append(step.id)
        reason = step.reason or step.title
        if reason not in why:
            why.append(reason)
    for tool in book.tools:  # a model running the playbook may call any tool it declares
        if tool not in uses:
            uses[tool] = ([], ["declared in tools: a model running this playbook may call it"])
    tools = [ToolUse(name=name, runs_on=CATALOGUE[name].runs_on, destructive=CATALOGUE[name].destructive,
                     needs_approval=CATALOGUE[name].destructive or name in book.requires_approval,
                     steps=steps, why=why) for name, (steps, why) in sorted(uses.items())]
    grants: dict[tuple[str, str], tuple[str, list[str]]] = {}
    for use in tools:
        for system, permission, because in SITE_PERMISSIONS.get(use.name, []):
            grants.setdefault((system, permission), (because, []))[1].append(use.name)
    return Permissions(tools=tools, destructive=sorted(t.name for t in tools if t.destructive),
                       directory=[DirectoryPermission.model_validate({"system": system, "permission": perm,
                                                                      "why": because, "tools": names})
                                  for (system, perm), (because, names) in sorted(grants.items())])


# --- building --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Parsed:
    """One playbook file: validated, its raw YAML data and its content hash."""

    path: Path
    book: Playbook
    data: dict[str, Any]
    sha256: str


def parse_text(text: str, where: str) -> tuple[Playbook, dict[str, Any], str]:
    """Validate playbook YAML from anywhere (a download, a file) with the same limits and messages."""
    data = load_yaml(text, where)
    if not isinstance(data, dict):
        raise PlaybookError([f"{where}:1: a playbook must be a YAML mapping"])
    try:
        book = Playbook.model_validate(data)
    except ValidationError as exc:
        raise PlaybookError([f"{where}: {'.'.join(str(p) for p in e['loc']) or '(playbook)'}: {e['msg']}"
                             for e in exc.errors()]) from exc
    return book, data, content_hash(data)


def parse_file(path: Path) -> Parsed:
    book = load_file(path)  # size and bomb checks, line numbers in every problem
    try:
        data = load_yaml(path.read_text(encoding="utf-8"), str(path))
    except CanonicalError as exc:
        raise PlaybookError([str(exc)]) from exc
    try:
        digest = content_hash(data)
    except CanonicalError as exc:
        raise PlaybookError([f"{path}: {exc}"]) from exc
    return Parsed(path, book, data, digest)


def parse_dir(directory: Path) -> list[Parsed]:
    if not directory.is_dir():
        raise PlaybookError([f"{directory}: no such directory of playbooks"])
    problems: list[str] = []
    found: list[Parsed] = []
    seen: dict[str, Path] = {}
    for path in sorted(directory.glob("*.yaml")):
        try:
            parsed = parse_file(path)
        except PlaybookError as exc:
            problems.extend(exc.problems)
            continue
        if parsed.book.id in seen:
            problems.append(f"{path}:1: id: {parsed.book.id!r} is also used by {seen[parsed.book.id]}")
        seen[parsed.book.id] = path
        found.append(parsed)
    if problems:
        raise PlaybookError(problems)
    if not found:
        raise PlaybookError([f"{directory}: no *.yaml files in this directory"])
    return found


def entry_for(parsed: Parsed, *, tier: Tier, signatures: list[Signature], revoked: str | None = None) -> Entry:
    book = parsed.book
    runs_on: dict[Literal["device", "site"], list[str]] = {"device": [], "site": []}
    for step in book.steps:
        runs_on[CATALOGUE[step.tool].runs_on].append(step.id)
    return Entry(id=book.id, name=book.name, version=book.version, category=book.category,
                 intents=list(book.triggers.phrases), description=book.description.strip(), os=list(book.os),
                 runs_on=runs_on, tested_against=book.tested_against, permissions=permissions(book),
                 path=parsed.path.name, sha256=parsed.sha256, tier=tier, signatures=signatures,
                 revoked=revoked is not None, revoked_reason=revoked or "")


def seal(tier: Tier, entries: list[Entry], *, now: dt.datetime | None = None,
         revoked: list[RevokedPlaybook] | None = None) -> Registry:
    body = {"format": FORMAT, "generated_at": (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tier": tier, "playbooks": [e.model_dump(mode="json") for e in entries],
            "revoked": [r.model_dump(mode="json") for r in revoked or []]}
    return Registry.model_validate({**body, "sha256": content_hash(body)})


def build(directory: Path, *, tier: Tier, now: dt.datetime | None = None) -> Registry:
    """The registry of every playbook in ``directory`` with its ``signatures.json`` and ``revoked.json``."""
    parsed = parse_dir(directory)
    signatures = read_signatures(directory)
    listed = read_trust_file(directory / REVOKED_FILE).revoked if (directory / REVOKED_FILE).exists() else []
    revoked = {r.sha256: r.reason for r in listed}
    entries = [entry_for(p, tier=tier, signatures=signatures.get(p.book.id, []), revoked=revoked.get(p.sha256))
               for p in parsed]
    return seal(tier, entries, now=now, revoked=list(listed))


def dumps(registry: Registry) -> str:
    return json.dumps(registry.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"


def parse_registry(raw: bytes, where: str) -> Registry:
    """A registry from its bytes: size, JSON, shape and its own hash checked."""
    if len(raw) > MAX_REGISTRY_BYTES:
        raise RegistryError(f"{where}: {len(raw)} bytes is over the {MAX_REGISTRY_BYTES}-byte limit for a registry")
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RegistryError(f"{where}: not a JSON registry: {exc}") from exc
    if not isinstance(data, dict):
        raise RegistryError(f"{where}: a registry is a JSON object")
    try:
        registry = Registry.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise RegistryError(f"{where}: {'.'.join(str(p) for p in first['loc'])}: {first['msg']} "
                            f"({exc.error_count()} problem(s); see docs/playbook-registry.schema.json)") from exc
    body = {k: v for k, v in data.items() if k != "sha256"}
    try:
        actual = content_hash(body)
    except CanonicalError as exc:
        raise RegistryError(f"{where}: {exc}") from exc
    if actual != registry.sha256:
        raise RegistryError(f"{where}: the registry's hash does not match its content (says {registry.sha256}, is "
                            f"{actual}): it was changed after it was built; refusing it")
    return registry


def json_schema() -> dict[str, Any]:
    """The published JSON Schema of ``playbook-registry.json`` (``docs/playbook-registry.schema.json``)."""
    schema = Registry.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://mspclaw.dev/schemas/playbook-registry.schema.json"
    return schema


def canonical_registry_bytes(registry: Registry) -> bytes:
    return canonical_bytes(registry.model_dump(mode="json"))
