"""``mspclaw backup|restore|prune`` and ``mspclaw secrets rotate|status|new-key``: the data at rest.

Offline commands over the data directory and the database (``store/backup.py``, ``store/retention.py``,
``store/secretbox.py``); ``backup`` and ``prune`` may run while the server does. Exit codes: 0 done,
1 refused or failed (the message says what was left unchanged), 2 usage error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mspclaw.cli.config import settings
from mspclaw.cli.groups import runs_bare
from mspclaw.cli.output import JsonOpt, err, print_json, table

secrets_app = typer.Typer(help="The key that encrypts PSA credentials and second factors in the database "
                          "(docs/security.md); run bare it shows the status.")


def backup(
    dest: Annotated[Path, typer.Argument(help="A new or empty directory outside the data directory.")],
    without_secret_key: Annotated[bool, typer.Option(
        "--without-secret-key", help="Leave the data directory's secret.key out (keep it apart yourself: "
        "without it the PSA credentials in the backup cannot be decrypted).")] = False,
) -> None:
    """Back up the database (SQLite online backup, or pg_dump) and the data directory's files, while the
    server runs."""
    from mspclaw.store.backup import backup as run_backup
    from mspclaw.store.database import Database

    cfg = settings()
    db = Database.open(cfg.resolved_database_url(), migrated=False)
    try:
        report = run_backup(db, cfg.data_dir, dest, include_key=not without_secret_key)
    finally:
        db.dispose()
    key = ("the secret key is in it: keep the backup as safe as the server" if report.secret_key_included
           else "no secret key in it: keep the key (secret.key, or MSPCLAW_SECRET_KEY) apart")
    print(f"backup of the {report.database} database and {report.files - 1} files written to {report.path}; {key}")


def restore(
    src: Annotated[Path, typer.Argument(help="A directory written by `mspclaw backup`.")],
    data_dir: Annotated[Path, typer.Option("--data-dir", help="Where to restore: a new or empty directory.")],
    database_url: Annotated[str | None, typer.Option(
        help="An empty PostgreSQL database for a PostgreSQL backup [env MSPCLAW_DATABASE_URL]; a SQLite backup "
        "goes to DATA_DIR/mspclaw.db.")] = None,
) -> None:
    """Restore a backup into a fresh data directory (and database), then verify the audit chain."""
    from mspclaw.errors import MSPClawError
    from mspclaw.store.backup import BackupError
    from mspclaw.store.backup import restore as run_restore
    from mspclaw.store.jobs import PSAAccounts
    from mspclaw.wiring import open_store, secret_box

    base = settings()
    url = database_url or (base.database_url if base.database_url and not base.database_url.startswith("sqlite")
                           else None)
    report = run_restore(src, data_dir, database_url=url)
    cfg = settings(data_dir=data_dir, database_url=url)
    db, audit = open_store(cfg)
    try:
        try:
            verified = audit.verify()
        except MSPClawError as exc:
            raise BackupError(f"restored into {data_dir}, but the audit chain does not verify: {exc.message}") from exc
        try:
            accounts = len(PSAAccounts(db, secret_box(cfg)).list())
            secrets = f"{accounts} PSA account(s) decrypt with the key at hand"
        except MSPClawError as exc:
            secrets = f"PSA credentials do not decrypt yet: {exc.message}"
    finally:
        db.dispose()
    print(f"restored the {report.database} backup of {report.created_at} into {data_dir}; audit chain verified: "
          f"{verified.events} events in {verified.files} day file(s); {secrets}")


def prune(
    jobs_days: Annotated[int | None, typer.Option(help="Finished jobs older than this [env "
                                                  "MSPCLAW_RETENTION_JOBS_DAYS; 0 keeps them].")] = None,
    sessions_days: Annotated[int | None, typer.Option(help="Finished sessions older than this, with their steps, "
                                                      "tool calls, approvals... [env MSPCLAW_RETENTION_SESSIONS_DAYS]."
                                                      )] = None,
    steps_days: Annotated[int | None, typer.Option(help="Step records of finished sessions older than this [env "
                                                   "MSPCLAW_RETENTION_STEPS_DAYS].")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete finished jobs, sessions and steps past their retention; the audit trail is kept whole."""
    from mspclaw.store.retention import Pruner, Retention
    from mspclaw.wiring import open_store

    cfg = settings(retention_jobs_days=jobs_days, retention_sessions_days=sessions_days,
                   retention_steps_days=steps_days)
    retention = Retention(jobs_days=cfg.retention_jobs_days, sessions_days=cfg.retention_sessions_days,
                          steps_days=cfg.retention_steps_days)
    db, audit = open_store(cfg)
    try:
        pruner = Pruner(db, retention)
        report = pruner.prune()
        if report.rows:
            audit.append("records_pruned", actor="cli", data=pruner.audit_data(report))
    finally:
        audit.close()  # seal the head now; no sealer left running on a closed database
        db.dispose()
    if as_json:
        return print_json({"jobs": report.jobs, "sessions": report.sessions, "steps": report.steps,
                           "rows": report.rows})
    if not retention.enabled:
        err.print("no retention set: every MSPCLAW_RETENTION_*_DAYS is 0", markup=False)
    print(f"deleted {report.jobs} job(s), {report.sessions} session(s), {report.steps} step record(s) "
          f"({sum(report.rows.values())} rows in all)")


@secrets_app.command("rotate")
def secrets_rotate(
    keep_old: Annotated[bool, typer.Option("--keep-old", help="Keep the old key(s) in the key file after "
                                           "re-encrypting.")] = False,
) -> None:
    """Re-encrypt every stored secret under a new key (data directory key file), or under the first key of
    MSPCLAW_SECRET_KEY / MSPCLAW_SECRET_KEY_FILE; one transaction, the old key kept until it is done."""
    from mspclaw.store.account_secrets import AccountSecrets
    from mspclaw.store.console_logins import SecondFactors
    from mspclaw.store.jobs import PSAAccounts
    from mspclaw.store.sso import Providers
    from mspclaw.store.technicians import RosterStore
    from mspclaw.wiring import open_store, secret_box

    cfg = settings()
    db, audit = open_store(cfg)
    try:
        box = secret_box(cfg)
        accounts, factors, providers = AccountSecrets(db, box), SecondFactors(db, box), Providers(db, box)
        roster = RosterStore(db, box)
        PSAAccounts(db, box).list()  # everything decrypts with the keys at hand, or nothing changes
        for channel in roster.read().channels:
            roster.open_url(channel)
        dropped: list[str] = []
        if box.key_file is not None:
            box.begin_rotation()
        count = accounts.reencrypt()
        second_factors = factors.reencrypt()  # technicians' TOTP secrets, or they could not sign in again
        sso_providers = providers.reencrypt()  # OpenID Connect client secrets, or single sign-on would stop
        channels = roster.reencrypt()  # the roster's Slack and Teams webhook URLs, or notifications would stop
        if box.key_file is not None and not keep_old:
            dropped = box.finish_rotation()
        audit.append("secret_key_rotated", actor="cli", data={"key_id": box.current_id, "accounts": count,
                                                              "second_factors": second_factors,
                                                              "sso_providers": sso_providers,
                                                              "channels": channels,
                                                              "dropped": dropped})
    finally:
        audit.close()
        db.dispose()
    print(f"{count} PSA account(s), {second_factors} second factor(s), {sso_providers} single sign-on "
          f"provider(s) and {channels} notification channel(s) encrypted under key {box.current_id} "
          f"({box.origin})"
          + (f"; removed old key(s) {', '.join(dropped)}" if dropped else "")
          + ("" if box.key_file is not None else "; now remove the old key(s) from where they are set"))


@secrets_app.command("status")
def secrets_status(as_json: JsonOpt = False) -> None:
    """Where the keys come from, and how many PSA accounts each key encrypts (never a key itself)."""
    from mspclaw.store.account_secrets import AccountSecrets
    from mspclaw.wiring import open_store, secret_box

    cfg = settings()
    db, _ = open_store(cfg)
    try:
        box = secret_box(cfg)
        counts = AccountSecrets(db, box).key_ids()
    finally:
        db.dispose()
    if as_json:
        return print_json({"origin": box.origin, "keys": box.key_ids, "accounts_by_key": counts})
    table(f"secret keys ({box.origin})", ["key id", "role", "PSA accounts"],
          [[kid, "encrypts" if n == 0 else "decrypts", counts.get(kid, 0)] for n, kid in enumerate(box.key_ids)]
          + [[kid, "MISSING", n] for kid, n in counts.items() if kid not in box.key_ids and kid != "plaintext"]
          + ([["plaintext", "not encrypted yet", counts["plaintext"]]] if "plaintext" in counts else []))


@secrets_app.command("new-key")
def secrets_new_key() -> None:
    """Print a new random key for MSPCLAW_SECRET_KEY or a key file (nothing is stored)."""
    from mspclaw.store.secretbox import SecretKey

    print(SecretKey.generate().encoded())


runs_bare(secrets_app, secrets_status)


def register(app: typer.Typer) -> None:
    """Add these commands to the ``mspclaw`` application."""
    app.command()(backup)
    app.command()(restore)
    app.command()(prune)
    app.add_typer(secrets_app, name="secrets")
