"""Single sign-on to the console through OpenID Connect (Entra ID, Google Workspace; docs/sso.md).

``GET /login/sso/<provider>`` starts a sign-in: a pending row (state, nonce, PKCE verifier: :mod:`mspclaw.store.sso`)
bound to a random cookie of this browser, then a redirect to the provider's authorization endpoint.
``GET /login/sso/callback`` finishes it: the state spent once and only from the browser that started it, the
code exchanged, the ID token verified (:mod:`mspclaw.console.oidc`), its e-mail in one of the provider's allowed
domains and a technician of the roster; then the same console session as a password and a TOTP code
(:meth:`~mspclaw.console.signin.ConsoleSignIn.single_sign_on`). The provider's MFA is the second factor.

Every refusal is a sign-in page that says what went wrong and what to do, and is audited
(``console_signin_refused``); a sign-in is audited ``console_signed_in`` with ``method: oidc``.
"""

from __future__ import annotations

import secrets
import threading

from fastapi import APIRouter, Request
from fastapi.responses import Response

from mspclaw.console import pages
from mspclaw.console.http import (
    PRE_COOKIE,
    Sign,
    Svc,
    clear_cookie,
    html,
    redirect,
    refused,
    remote,
    set_cookie,
    signed_in,
    signed_in_as,
)
from mspclaw.console.oidc import Identity, OIDCClient, ProviderUnavailable
from mspclaw.console.signin import ConsoleSignIn
from mspclaw.errors import AuthError, NotFound, TooManyAttempts
from mspclaw.store.sso import PENDING_TTL, Pending, Provider, Providers
from mspclaw.wiring import Services, secret_box

router = APIRouter(include_in_schema=False)

BROWSER_COOKIE = "mspclaw_console_sso"
CALLBACK = "/login/sso/callback"
MAX_PARAM = 2000


class SingleSignOn:
    """The providers, the pending sign-ins and one cached relying party per provider."""

    def __init__(self, providers: Providers, pending: Pending, *, redirect_uri: str, timeout_s: float) -> None:
        self.providers, self.pending = providers, pending
        self.redirect_uri, self._timeout_s = redirect_uri, timeout_s
        self._clients: dict[str, OIDCClient] = {}
        self._lock = threading.Lock()

    @classmethod
    def of(cls, services: Services) -> SingleSignOn:
        db = services.db
        box = secret_box(services.settings)
        base = (services.settings.public_url or services.settings.server_url).rstrip("/")
        return cls(Providers(db, box), Pending(db, box), redirect_uri=base + CALLBACK,
                   timeout_s=services.settings.sso_timeout_s)

    def client(self, provider: Provider) -> OIDCClient:
        """The relying party of ``provider`` (a new one when its configuration changed)."""
        with self._lock:
            found = self._clients.get(provider.name)
            if found is None or found.provider != provider:
                if found is not None:
                    found.close()
                found = self._clients[provider.name] = OIDCClient(provider, timeout_s=self._timeout_s)
            return found

    def start(self, provider: Provider, browser: str) -> str:
        """The authorization URL to send this browser to (discovery fetched first: a provider down says so
        here, before a pending row is written)."""
        client = self.client(provider)
        client.discovery()
        started = self.pending.begin(provider.name, browser)
        return client.authorization_url(redirect_uri=self.redirect_uri, state=started.state, nonce=started.nonce,
                                        challenge=started.challenge)

    def finish(self, state: str, code: str, browser: str) -> tuple[Provider, Identity]:
        """Who signed in: the pending sign-in spent, the code exchanged, the ID token verified, its e-mail in an
        allowed domain; :class:`AuthError` (a message for the technician) otherwise."""
        spent = self.pending.spend(state, browser)
        try:
            provider = self.providers.get(spent.provider)
        except NotFound as exc:
            raise AuthError("this single sign-on provider was removed meanwhile; sign in another way") from exc
        if not code or len(code) > MAX_PARAM:
            raise AuthError(f"{provider.label} sent no authorization code back; start the sign-in again")
        client = self.client(provider)
        token = client.exchange(code, redirect_uri=self.redirect_uri, verifier=spent.verifier)
        identity = client.verify(token, nonce_hash=spent.nonce_hash)
        if not provider.allows(identity.email):
            raise AuthError(f"{identity.email} is not in a domain {provider.label} may sign in "
                            f"({', '.join(provider.domains)}); sign in with your password, or ask an admin")
        return provider, identity


_BUILD_LOCK = threading.Lock()


def single_sign_on(request: Request) -> SingleSignOn:
    """The app's :class:`SingleSignOn`, built on first use."""
    with _BUILD_LOCK:
        found = getattr(request.app.state, "sso", None)
        if not isinstance(found, SingleSignOn):
            found = SingleSignOn.of(request.app.state.services)
            request.app.state.sso = found
    return found


def buttons(request: Request) -> list[tuple[str, str]]:
    """``(name, label)`` of each provider, for the sign-in page."""
    return single_sign_on(request).providers.buttons()


def _login_page(request: Request, sign: ConsoleSignIn, message: str, status: int) -> Response:
    pre = request.cookies.get(PRE_COOKIE) or secrets.token_urlsafe(24)
    response = html(pages.login_page(sign.csrf(pre), error=message, providers=buttons(request)), status)
    set_cookie(response, request, PRE_COOKIE, pre)
    clear_cookie(response, request, BROWSER_COOKIE)
    return response


def _refusal(svc: Services, request: Request, reason: str, provider: str, email: str = "") -> None:
    svc.audit.append("console_signin_refused", actor=email or "unknown",
                     data={"remote": remote(request), "method": "oidc", "provider": provider, "reason": reason[:300]})


@router.get(CALLBACK)
def finish(request: Request, sign: Sign, svc: Svc) -> Response:
    """The provider sends the browser back here with ``code`` and ``state`` (or ``error``)."""
    query = request.query_params
    state, code = query.get("state", "")[:MAX_PARAM], query.get("code", "")[:MAX_PARAM]
    browser = request.cookies.get(BROWSER_COOKIE, "")
    sso = single_sign_on(request)
    if query.get("error"):
        reason = f"{query['error'][:60]} {query.get('error_description', '')[:200]}".strip()
        try:
            name = sso.pending.spend(state, browser).provider
        except AuthError:
            name = "unknown"
        _refusal(svc, request, f"the provider refused: {reason}", name)
        return _login_page(request, sign, f"The sign-in was refused at the provider: {reason}. Try again, or sign "
                                          "in with your password.", 401)
    name, email = "unknown", ""
    try:
        provider, identity = sso.finish(state, code, browser)
        name, email = provider.name, identity.email
        token = sign.single_sign_on(email, provider=name, remote=remote(request))
    except ProviderUnavailable as exc:
        _refusal(svc, request, exc.message, name, email)
        return _login_page(request, sign, exc.message, 502)
    except AuthError as exc:
        if not email:  # an unknown technician's refusal is audited by the sign-in itself
            _refusal(svc, request, exc.message, name, email)
        return _login_page(request, sign, f"Single sign-on failed: {exc.message}", 401)
    response = signed_in(request, token)
    clear_cookie(response, request, BROWSER_COOKIE)
    clear_cookie(response, request, PRE_COOKIE)
    return response


@router.get("/login/sso/{name}")
def start(name: str, request: Request, sign: Sign, svc: Svc) -> Response:
    """The button "Sign in with <provider>": off to the provider, bound to this browser."""
    if signed_in_as(request, sign) is not None:
        return redirect("/")
    sso = single_sign_on(request)
    try:
        provider = sso.providers.get(name[:60])
    except NotFound:
        return refused("No such single sign-on provider; go back to the sign-in page.", 404)
    browser = request.cookies.get(BROWSER_COOKIE, "")
    if not 20 <= len(browser) <= 100:
        browser = secrets.token_urlsafe(32)
    try:
        url = sso.start(provider, browser)
    except ProviderUnavailable as exc:
        _refusal(svc, request, exc.message, provider.name)
        return _login_page(request, sign, exc.message, 502)
    except AuthError as exc:
        return _login_page(request, sign, exc.message, 429 if isinstance(exc, TooManyAttempts) else 401)
    response = redirect(url)
    set_cookie(response, request, BROWSER_COOKIE, browser, max_age=int(PENDING_TTL.total_seconds()))
    return response
