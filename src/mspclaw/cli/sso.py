"""``mspclaw sso add|list|remove``: the OpenID Connect providers technicians may sign in to the console with.

The providers live in the data directory's database (the client secret sealed by the secret box), so these
commands work without a running server; the console reads them at each sign-in. See docs/sso.md.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from mspclaw.cli.client import CLIError
from mspclaw.cli.config import settings
from mspclaw.cli.groups import runs_bare
from mspclaw.cli.output import JsonOpt, print_json, table
from mspclaw.errors import MSPClawError

if TYPE_CHECKING:
    from mspclaw.store.audit import AuditLog
    from mspclaw.store.database import Database
    from mspclaw.store.sso import Providers

sso_app = typer.Typer(help="Single sign-on to the console through OpenID Connect (Entra ID, Google Workspace).")


def _store() -> tuple[Database, AuditLog, Providers]:
    from mspclaw.store.sso import Providers
    from mspclaw.wiring import open_store, secret_box

    db, log = open_store(settings())
    return db, log, Providers(db, secret_box(settings()))


@sso_app.command("add")
def sso_add(
    name: Annotated[str, typer.Argument(help="Short name in the URL /login/sso/<name>, e.g. 'entra' or 'google'.")],
    issuer: Annotated[str, typer.Option(help="Issuer URL, e.g. https://login.microsoftonline.com/<tenant id>/v2.0 "
                                             "or https://accounts.google.com.")],
    client_id: Annotated[str, typer.Option(help="The application (client) id of the app registration.")],
    domain: Annotated[list[str], typer.Option(help="E-mail domain whose technicians may sign in (repeatable).")],
    label: Annotated[str | None, typer.Option(help="Shown as 'Sign in with <label>'; default: the name.")] = None,
    secret_stdin: Annotated[bool, typer.Option("--client-secret-stdin",
                                               help="Read the client secret from standard input.")] = False,
    check: Annotated[bool, typer.Option(help="Fetch the provider's discovery document first.")] = True,
) -> None:
    """Add a provider; the client secret is asked for (hidden) and stored encrypted."""
    from mspclaw.store.sso import checked

    secret = sys.stdin.readline().rstrip("\r\n") if secret_stdin else typer.prompt("Client secret", hide_input=True)
    try:
        provider = checked(name=name, label=label or name, issuer=issuer, client_id=client_id,
                           client_secret=secret, domains=domain)
    except MSPClawError as exc:
        raise CLIError(exc.message) from exc
    if check:
        from mspclaw.console.oidc import OIDCClient

        client = OIDCClient(provider, timeout_s=settings().sso_timeout_s)
        try:
            found = client.discovery()
        except MSPClawError as exc:
            raise CLIError(f"{exc.message} (add --no-check to store it anyway)") from exc
        finally:
            client.close()
        print(f"discovery: authorization at {found.authorization_endpoint}, token at {found.token_endpoint}")
    db, log, providers = _store()
    try:
        providers.add(provider)
        log.append("sso_provider_added", actor="cli", data={"name": provider.name, "issuer": provider.issuer,
                                                            "client_id": provider.client_id,
                                                            "domains": list(provider.domains)})
    except MSPClawError as exc:
        raise CLIError(exc.message) from exc
    finally:
        log.close()
        db.dispose()
    base = (settings().public_url or settings().server_url).rstrip("/")
    print(f"{provider.name}: added; register {base}/login/sso/callback as the app's redirect URI")


@sso_app.command("list")
def sso_list(as_json: JsonOpt = False) -> None:
    """List the providers (never their secrets)."""
    db, log, providers = _store()
    try:
        found = providers.list()
    except MSPClawError as exc:
        raise CLIError(exc.message) from exc
    finally:
        log.close()
        db.dispose()
    rows = [{"name": p.name, "label": p.label, "issuer": p.issuer, "client_id": p.client_id,
             "domains": list(p.domains)} for p in found]
    if as_json:
        print_json(rows)
        return
    if not rows:
        print("no single sign-on provider; add one with `mspclaw sso add`")
        return
    table("Single sign-on providers", ["name", "label", "issuer", "client id", "domains"],
          [[r["name"], r["label"], r["issuer"], r["client_id"], ", ".join(r["domains"])] for r in rows])


@sso_app.command("remove")
def sso_remove(name: Annotated[str, typer.Argument(help="The provider's name (see `mspclaw sso list`).")]) -> None:
    """Remove a provider: its button goes, and sign-ins started with it are refused."""
    db, log, providers = _store()
    try:
        providers.remove(name)
        log.append("sso_provider_removed", actor="cli", data={"name": name.strip().lower()})
    except MSPClawError as exc:
        raise CLIError(exc.message) from exc
    finally:
        log.close()
        db.dispose()
    print(f"{name}: removed")


runs_bare(sso_app, sso_list)
