"""``mspclaw playbooks keygen|sign|verify|registry|search|install|update|remove|test``: playbooks as a shared,
signed catalogue (docs/playbook-registry.md).

These work offline on files; ``install``, ``update`` and ``remove`` record what they did in the audit
trail (the data directory's store), or, when the store cannot be opened, in ``install-log.jsonl`` of
the playbook directory.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy.exc import SQLAlchemyError

from mspclaw.cli.config import settings
from mspclaw.cli.output import JsonOpt, err, table
from mspclaw.errors import MSPClawError
from mspclaw.playbooks.canonical import CanonicalError
from mspclaw.playbooks.contribution import SNAPSHOTS, SnapshotError, check_directory, matrix
from mspclaw.playbooks.install import (
    DEFAULT_TIMEOUT_S,
    InstallError,
    Offer,
    commit,
    fetcher,
    installed,
    open_registry,
    prepare,
    record_revocations,
    remove,
    shown,
)
from mspclaw.playbooks.loader import PlaybookError
from mspclaw.playbooks.registry import (
    Permissions,
    Registry,
    RegistryError,
    build,
    dumps,
    json_schema,
    parse_file,
    parse_registry,
)
from mspclaw.playbooks.signing import TIERS, SigningError, Tier, Trust, generate_key, load_private_key, verify
from mspclaw.playbooks.verified import sign_path, verify_directory

registry_app = typer.Typer(help="Build a playbook registry (playbook-registry.json) and print its JSON Schema.")
TrustOpt = Annotated[list[Path] | None, typer.Option("--trusted-keys", help="A trust file of public keys per tier "
                                                     "(repeatable) [default: what the server trusts: "
                                                     "MSPCLAW_PLAYBOOK_TRUSTED_KEYS and the MSP's own key].")]
RegistryOpt = Annotated[str, typer.Option("--registry", "-r", help="The registry: a playbook-registry.json path or "
                                          "an http(s) URL.")]
TargetOpt = Annotated[Path | None, typer.Option("--dir", help="Playbook directory to install into [default: the "
                                                "first of MSPCLAW_PLAYBOOK_DIRS].")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before installing (the permissions are still "
                                      "printed).")]
TimeoutOpt = Annotated[float, typer.Option("--fetch-timeout", help="Seconds to wait for a registry URL.",
                                         min=0.1, max=300)]


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(message, markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _trust(files: list[Path] | None) -> Trust:
    """The trust files given; by default the server's trust: its trust file and the MSP's own key (if made)."""
    from mspclaw.wiring import playbook_key

    chosen = list(files or [])
    own = None
    if not chosen:
        configured = settings().playbook_trusted_keys
        chosen = [configured] if configured else []
        try:
            own = playbook_key(settings(), create=False)
        except MSPClawError as exc:
            raise _fail(exc.message) from exc
    try:
        trust = Trust.load(*chosen)
    except SigningError as exc:
        raise _fail(str(exc)) from exc
    return trust.pinning(own.key, name=own.name) if own is not None else trust


def _target(directory: Path | None) -> Path:
    if directory is not None:
        return directory
    dirs = settings().playbook_dirs
    if not dirs:
        raise _fail("no playbook directory: give --dir, or set MSPCLAW_PLAYBOOK_DIRS (the server loads it)", 2)
    return dirs[0]


def _record(kind: str, data: dict[str, Any], target: Path) -> None:
    """The audit trail when the store opens; otherwise a local log beside the playbooks."""
    from mspclaw.wiring import open_store

    try:
        db, audit = open_store(settings())
    except (MSPClawError, SQLAlchemyError, OSError) as exc:
        line = json.dumps({"at": dt.datetime.now(dt.UTC).isoformat(), "kind": kind, **data}, sort_keys=True)
        with open(target / "install-log.jsonl", "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
        err.print(f"the audit store is not reachable ({exc}); recorded in {target / 'install-log.jsonl'}",
                  markup=False)
        return
    try:
        audit.append(kind, actor="cli", data=data)
    finally:
        audit.close()
        db.dispose()


def _show_permissions(perms: Permissions, title: str) -> None:
    table(title, ["tool", "runs on", "changes something", "approval", "why"],
          [[t.name, t.runs_on, "yes" if t.destructive else "no", "yes" if t.needs_approval else "no",
            "; ".join(t.why)] for t in perms.tools])
    if perms.directory:
        table("directory and service permissions it needs", ["system", "permission", "why", "tools"],
              [[d.system, d.permission, d.why, ", ".join(d.tools)] for d in perms.directory])


def _confirm(question: str, yes: bool) -> None:
    if yes:
        return
    if not typer.confirm(question, default=False):
        raise _fail("nothing installed", 1)


def keygen(path: Annotated[Path, typer.Argument(help="Where to write the new private key (PEM, mode 0600).")],
           name: Annotated[str, typer.Option(help="Who the key belongs to (shown in signatures).")] = "my MSP",
           tier: Annotated[str, typer.Option(help="Tier to pin it at in your trust file.")] = "local") -> None:
    """Make an Ed25519 signing key; print the line to pin its public half in a trust file."""
    if tier not in TIERS:
        raise _fail(f"--tier must be one of {', '.join(TIERS)}", 2)
    try:
        public = generate_key(path)
    except (SigningError, OSError) as exc:
        raise _fail(str(exc)) from exc
    print(f"wrote {path}; keep it secret. Pin its public half in your trust file (MSPCLAW_PLAYBOOK_TRUSTED_KEYS), "
          "unless the server signs with it (MSPCLAW_PLAYBOOK_SIGNING_KEY: it trusts its own key):")
    print(json.dumps({"keys": [{"name": name, "tier": tier, "public_key": public}]}, indent=2))


def sign_cmd(path: Annotated[Path, typer.Argument(help="A playbook file or a directory of them.")],
             key: Annotated[Path | None, typer.Option("--key", help="Private key from `mspclaw playbooks keygen` "
                                                      "[default: MSPCLAW_PLAYBOOK_SIGNING_KEY, or the data "
                                                      "directory's own key, made if there is none yet].")] = None,
             signee: Annotated[str, typer.Option(help="Who signs (recorded in the signature).")] = "my MSP") -> None:
    """Sign playbooks; their signatures go to signatures.json in the same directory. By default with the MSP's own
    key, which the server trusts at tier local."""
    from mspclaw.wiring import playbook_key

    try:
        if key is not None:
            private, used = load_private_key(key), str(key)
        else:
            own = playbook_key(settings())
            assert own is not None  # made when missing
            private, used = own.key, f"{own.name}, which a server with this data directory trusts"
        done = sign_path(path, private, signee=signee)
    except SigningError as exc:
        raise _fail(str(exc)) from exc
    except MSPClawError as exc:
        raise _fail(exc.message if not isinstance(exc, PlaybookError) else "\n".join(exc.problems)) from exc
    for parsed, sig in done:
        print(f"signed {parsed.book.id} {parsed.book.version} ({parsed.sha256[:19]}...) with {sig.thumbprint}")
    print(f"key: {used}")


def verify_cmd(path: Annotated[Path, typer.Argument(help="A playbook file, a directory or a playbook-registry.json.")],
               trusted_keys: TrustOpt = None, as_json: JsonOpt = False) -> None:
    """Check signatures against the trusted keys; exit 0 only when every playbook verifies."""
    trust = _trust(trusted_keys)
    rows: list[dict[str, Any]] = []
    try:
        if path.is_file() and path.suffix == ".json":
            registry = parse_registry(path.read_bytes(), str(path))
            for e in registry.playbooks:
                verdict = verify(e.signatures, playbook_id=e.id, version=e.version, sha256=e.sha256, trust=trust)
                status, message = ("revoked", e.revoked_reason or "revoked by the registry") if e.revoked else \
                    (verdict.status, verdict.message)
                file = path.parent / e.path
                if status == "trusted" and file.exists():  # the published file must be what was signed
                    found = parse_file(file)
                    if found.sha256 != e.sha256:
                        status, message = "altered", f"{file} is not the content the registry lists ({found.sha256})"
                rows.append({"playbook": e.id, "version": e.version, "status": status, "message": message})
        else:
            checked = verify_directory(path if path.is_dir() else path.parent, trust)
            if not path.is_dir():
                checked = [c for c in checked if c.parsed.path.resolve() == path.resolve()]
            rows = [{"playbook": c.parsed.book.id, "version": c.parsed.book.version, "status": c.verdict.status,
                     "message": c.verdict.message} for c in checked]
    except (RegistryError, SigningError, CanonicalError, OSError) as exc:
        raise _fail(str(exc)) from exc
    except PlaybookError as exc:
        raise _fail("\n".join(exc.problems)) from exc
    # a registry that lists a revoked version says so on purpose: shown, not a failure of the registry
    bad = [r for r in rows if r["status"] != "trusted" and not (r["status"] == "revoked" and path.suffix == ".json")]
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        table(f"{len(rows) - len(bad)} of {len(rows)} playbooks verify", ["playbook", "version", "status", "why"],
              [[r["playbook"], r["version"], r["status"], r["message"]] for r in rows])
    if bad or not rows:
        raise typer.Exit(1)


@registry_app.command("build")
def registry_build(
    directory: Annotated[Path, typer.Argument(help="Directory of playbooks (with signatures.json, revoked.json).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write playbook-registry.json.")],
    tier: Annotated[str, typer.Option(help="official, community or local.")] = "community",
) -> None:
    """Index a directory of playbooks into a registry file, placed beside them (entries name the files)."""
    if tier not in TIERS:
        raise _fail(f"--tier must be one of {', '.join(TIERS)}", 2)
    chosen: Tier = tier
    try:
        registry = build(directory, tier=chosen)
    except PlaybookError as exc:
        raise _fail("\n".join(exc.problems)) from exc
    except SigningError as exc:
        raise _fail(str(exc)) from exc
    output.write_text(dumps(registry), encoding="utf-8")
    unsigned = [e.id for e in registry.playbooks if not e.signatures]
    print(f"wrote {output}: {len(registry.playbooks)} playbooks, {registry.sha256}")
    if unsigned:
        err.print(f"not signed (installs will refuse them): {', '.join(unsigned)}", markup=False)
    if output.resolve().parent != directory.resolve():
        err.print("entries name files relative to the registry: publish it in the playbooks' directory", markup=False)


@registry_app.command("schema")
def registry_schema(output: Annotated[Path | None, typer.Option(help="Write to this file.")] = None) -> None:
    """Print (or write) the registry's JSON Schema; docs/playbook-registry.schema.json is this output."""
    text = json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        print(f"wrote {output}")


def _open(source: str, timeout_s: float) -> Registry:
    try:
        return open_registry(source, fetcher(timeout_s=timeout_s))
    except InstallError as exc:
        raise _fail(str(exc)) from exc


def search(query: Annotated[str, typer.Argument(help="Words to look for in id, name, category, intents.")] = "",
           registry: RegistryOpt = "", timeout: TimeoutOpt = DEFAULT_TIMEOUT_S, as_json: JsonOpt = False) -> None:
    """List a registry's playbooks (newest version of each, revoked ones marked)."""
    if not registry:
        raise _fail("give --registry PATH_OR_URL", 2)
    found = _open(registry, timeout)
    words = query.lower().split()
    hits = [e for e in found.playbooks
            if all(w in " ".join([e.id, e.name, e.category, e.description, *e.intents]).lower() for w in words)]
    if as_json:
        print(json.dumps([e.model_dump(mode="json", exclude={"signatures"}) for e in hits], indent=2))
        return
    table(f"{len(hits)} playbooks in {registry}", ["id", "version", "tier", "os", "identity", "destructive", "revoked"],
          [[e.id, e.version, e.tier, ", ".join(e.os), ", ".join(e.tested_against.identity),
            ", ".join(e.permissions.destructive), "revoked" if e.revoked else ""] for e in hits])


def _install_one(source: str, found: Registry, playbook_id: str, target: Path, trust: Trust, yes: bool,
                 timeout: float, *, update_only: bool = False) -> bool:
    try:
        offer: Offer = prepare(found, source, playbook_id, target=target, trust=trust, fetch=fetcher(timeout_s=timeout))
    except InstallError as exc:
        if update_only and "already installed" in str(exc):
            print(f"{playbook_id}: up to date")
            return False
        raise _fail(str(exc)) from exc
    entry = offer.entry
    if offer.is_update:
        assert offer.installed is not None
        print(f"update {entry.id} {offer.installed.book.version} -> {entry.version} ({offer.verdict.message})")
        if offer.widened:
            _show_permissions(offer.permissions, f"{entry.id} {entry.version} needs more than before")
            print("new: " + ", ".join(offer.widened))
            _confirm(f"Update {entry.id} with these wider permissions?", yes)
    else:
        print(f"install {entry.id} {entry.version} ({offer.verdict.message})")
        _show_permissions(offer.permissions, f"{entry.id} {entry.version} needs")
        _confirm(f"Install {entry.id} {entry.version}?", yes)
    path = commit(offer, target)
    _record("playbook_updated" if offer.is_update else "playbook_installed",
            {"playbook": entry.id, "version": entry.version, "sha256": entry.sha256,
             "previous": offer.installed.book.version if offer.installed else None, "tier": offer.verdict.tier,
             "signee": offer.verdict.signee, "registry": shown(source), "path": str(path),
             "tools": [t.name for t in offer.permissions.tools], "destructive": offer.permissions.destructive,
             "widened": offer.widened}, target)
    print(f"wrote {path}; a running server picks it up within MSPCLAW_PLAYBOOK_RELOAD_S")
    return True


def install(playbook_id: Annotated[str, typer.Argument(metavar="ID")], registry: RegistryOpt = "",
            directory: TargetOpt = None, yes: YesOpt = False, trusted_keys: TrustOpt = None,
            timeout: TimeoutOpt = DEFAULT_TIMEOUT_S) -> None:
    """Install a playbook from a registry: verified, its permissions shown, written atomically, audited."""
    if not registry:
        raise _fail("give --registry PATH_OR_URL", 2)
    target = _target(directory)
    _install_one(registry, _open(registry, timeout), playbook_id, target, _trust(trusted_keys), yes, timeout)


def update(playbook_id: Annotated[str | None, typer.Argument(metavar="[ID]", help="One playbook [default: all "
                                                             "installed that the registry lists].")] = None,
           registry: RegistryOpt = "", directory: TargetOpt = None, yes: YesOpt = False,
           trusted_keys: TrustOpt = None, timeout: TimeoutOpt = DEFAULT_TIMEOUT_S) -> None:
    """Update installed playbooks; a wider permission set asks again; a downgrade is refused."""
    if not registry:
        raise _fail("give --registry PATH_OR_URL", 2)
    target, found, trust = _target(directory), _open(registry, timeout), _trust(trusted_keys)
    try:
        have = installed(target)
        revoked = record_revocations(found, target)
    except (PlaybookError, SigningError) as exc:
        raise _fail("\n".join(exc.problems) if isinstance(exc, PlaybookError) else str(exc)) from exc
    reasons = {r.sha256: r.reason for r in found.revoked} | {e.sha256: e.revoked_reason for e in found.playbooks}
    for gone in revoked:
        err.print(f"{gone.book.id} {gone.book.version} as installed is revoked by the registry: "
                  f"{reasons.get(gone.sha256) or 'no reason given'}; an enforcing server refuses it (recorded in "
                  f"{target / 'revoked.json'})", markup=False)
    if revoked:
        _record("playbook_revoked", {"playbooks": [{"playbook": g.book.id, "version": g.book.version,
                                                    "sha256": g.sha256} for g in revoked], "registry": shown(registry)},
                target)
    ids = [playbook_id] if playbook_id else sorted(i for i in have if any(e.id == i for e in found.playbooks))
    if playbook_id and playbook_id not in have:
        raise _fail(f"{playbook_id}: not installed in {target}; use `mspclaw playbooks install`")
    for each in ids:
        _install_one(registry, found, each, target, trust, yes, timeout, update_only=True)


def remove_cmd(playbook_id: Annotated[str, typer.Argument(metavar="ID")], directory: TargetOpt = None,
               yes: YesOpt = False) -> None:
    """Remove an installed playbook and its signatures."""
    target = _target(directory)
    _confirm(f"Remove {playbook_id} from {target}?", yes)
    try:
        gone = remove(playbook_id, target)
    except InstallError as exc:
        raise _fail(str(exc)) from exc
    except PlaybookError as exc:
        raise _fail("\n".join(exc.problems)) from exc
    _record("playbook_removed", {"playbook": gone.book.id, "version": gone.book.version, "sha256": gone.sha256,
                                 "path": str(gone.path)}, target)
    print(f"removed {gone.path}")


def test_cmd(directory: Annotated[Path, typer.Argument(help="Directory of playbooks to check.")],
             snapshots: Annotated[Path, typer.Option(help="Directory of recorded snapshots.")] = SNAPSHOTS,
             as_json: JsonOpt = False) -> None:
    """Run every playbook against recorded device and site snapshots; a matrix; exit 1 on any failure."""
    try:
        cells = asyncio.run(check_directory(directory, snapshots))
    except SnapshotError as exc:
        raise _fail(str(exc)) from exc
    rows = matrix(cells)
    failed = [c for c in cells if not c.ok]
    if as_json:
        print(json.dumps([dict(zip(["playbook", "os", "identity", "outcome", "approvals", "result"], r, strict=True))
                          for r in rows], indent=2))
    else:
        table(f"{len(cells) - len(failed)} of {len(cells)} runs pass", ["playbook", "os", "identity", "outcome",
                                                                       "approvals", "result"], rows)
    if failed:
        err.print(f"{len(failed)} of {len(cells)} runs failed", markup=False)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add these commands to the ``playbooks`` group."""
    app.command("keygen")(keygen)
    app.command("sign")(sign_cmd)
    app.command("verify")(verify_cmd)
    app.command("search")(search)
    app.command("install")(install)
    app.command("update")(update)
    app.command("remove")(remove_cmd)
    app.command("test")(test_cmd)
    app.add_typer(registry_app, name="registry")
