"""Hand a temporary password or access pass to the user it belongs to, and to no one else.

A site tool returns it beside its result (``ToolResult.secret``); the ticket pipeline passes it
here before anything is recorded. Two ways to the user, in order:

1. **their own device**: the device agent shows a dialog (``show_secret``) and says whether it
   could; only a device whose recorded primary user is the requester counts;
2. **a view-once link** that expires in minutes: ``/s/{token}`` on the server shows a page with a
   button, and only that button's POST reveals the secret, once (a mail scanner or chat preview
   that follows the link sees nothing). The link goes to the requester as a public PSA reply; the
   token's hash and the secret live in this process's memory only, never in the database.

The returned description (``handed_over``) is what the step record, note and audit see: where
it went, never the secret.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mspclaw.connectors.base import PSAConnector
from mspclaw.dispatch import Hub
from mspclaw.errors import AgentOffline, MSPClawError, NotFound
from mspclaw.protocol.frames import Secret

LINK_TTL_S = 15 * 60
MAX_LINKS = 10_000
SHOW_TIMEOUT_S = 120.0


@dataclass
class _Held:
    secret: Secret = field(repr=False)
    expires_at: float


def describe(secret: Secret) -> str:
    """What the secret is, in the user's words."""
    return "temporary password" if secret.type == "temporary_password" else "Temporary Access Pass"


class ViewOnceLinks:
    """Secrets waiting behind a view-once link, in memory only. Thread-safe; bounded in count."""

    def __init__(self, *, ttl_s: float = LINK_TTL_S, clock: Callable[[], float] = time.time) -> None:
        self._ttl, self._clock = ttl_s, clock
        self._held: dict[str, _Held] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def create(self, secret: Secret) -> tuple[str, float]:
        """A new token for ``secret`` and when it expires."""
        token = secrets.token_urlsafe(32)
        expires = self._clock() + self._ttl
        with self._lock:
            self._prune()
            if len(self._held) >= MAX_LINKS:
                raise MSPClawError("too many temporary passwords are waiting to be viewed; try again in a few minutes")
            self._held[self._key(token)] = _Held(secret, expires)
        return token, expires

    def peek(self, token: str) -> Secret:
        """The secret behind ``token`` without using it up (for the page that offers the button)."""
        with self._lock:
            held = self._held.get(self._key(token))
            if held is None or held.expires_at <= self._clock():
                raise NotFound("this link has expired or was already used; ask for a new one by replying to "
                               "your ticket")
            return held.secret

    def reveal(self, token: str) -> Secret:
        """The secret behind ``token``, once: the link is gone afterwards."""
        with self._lock:
            held = self._held.pop(self._key(token), None)
        if held is None or held.expires_at <= self._clock():
            raise NotFound("this link has expired or was already used; ask for a new one by replying to your ticket")
        return held.secret

    def _prune(self) -> None:
        now = self._clock()
        for key in [k for k, v in self._held.items() if v.expires_at <= now]:
            del self._held[key]

    def __len__(self) -> int:
        with self._lock:
            self._prune()
            return len(self._held)


@dataclass(frozen=True)
class Recipient:
    """Who the secret is for and how to reach them."""

    client_id: str
    device_agent_id: str | None
    """The requester's own device agent, when it is online; ``None`` otherwise."""
    device_name: str | None
    psa: PSAConnector | None
    external_id: str | None


class Handover:
    def __init__(self, hub: Hub, links: ViewOnceLinks | None = None, *, public_url: str = "",
                 show_timeout_s: float = SHOW_TIMEOUT_S) -> None:
        self.hub, self.links = hub, links or ViewOnceLinks()
        self._public_url, self._show_timeout = public_url.rstrip("/"), show_timeout_s

    async def deliver(self, secret: Secret, to: Recipient) -> dict[str, Any]:
        """Get ``secret`` to the user; returns where it went (safe to record). Raises :class:`MSPClawError`
        when no way worked: the caller escalates, and the secret is gone with this frame."""
        what = describe(secret)
        if to.device_agent_id is not None:
            text = (f"Your IT team has set a {what} for your account, as you asked in your ticket. "
                    "Only you can see it here.")
            try:
                shown = await self.hub.for_client(to.client_id).show_secret(to.device_agent_id, text, secret,
                                                                            timeout=self._show_timeout)
            except AgentOffline:
                shown = False
            if shown:
                return {"to": "device", "device": to.device_name, "what": what}
        token, expires = self.links.create(secret)
        url = f"{self._public_url}/s/{token}"
        minutes = max(1, round((expires - time.time()) / 60))
        message = (f"Your {what} is ready. Open this link within {minutes} minutes to see it; it works once, "
                   f"and only you should open it: {url}")
        if to.psa is None or to.external_id is None:
            raise MSPClawError(f"the {what} could not be shown on the requester's device and the ticket has no PSA "
                               "reply channel for a view-once link; a technician must give it in person")
        try:
            await to.psa.add_note(to.external_id, message, public=True)
        except MSPClawError as exc:
            self.links.reveal(token)  # burn it: nobody got the link
            raise MSPClawError(f"the view-once link for the {what} could not be sent to the requester: "
                               f"{exc.message}") from exc
        return {"to": "view-once link", "sent_by": "PSA reply to the requester", "expires_in_minutes": minutes,
                "what": what}
