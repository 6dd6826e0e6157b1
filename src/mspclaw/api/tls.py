"""HTTPS on the API port and WSS on the agent port, from certificate and key files, reloaded when they change.

Both listeners take one :class:`ssl.SSLContext`, :attr:`ReloadingTLS.context`; uvicorn gets it through
its public ``ssl_context_factory`` option and the agent listener through ``loop.create_server(ssl=...)``.
Renewing a certificate (certbot, an ACME client, a hand copy) needs no restart: every new TLS
connection, at most once per ``check_every_s``, compares the files' size, mtime and inode with those
loaded; when they changed, a fresh context is built from them and the handshake under way, and every
later one, uses it (the documented ``SSLObject.context`` switch of the context's ``sni_callback``,
which OpenSSL calls for every ClientHello, with or without a server name). A file that does not load
(half written, a key that does not match) keeps the current certificate and is tried again at the
next check; open connections are never touched.

At start the files must load: a missing, unreadable or invalid file is a :class:`ConfigError` naming
it, raised before anything listens.

Behind a reverse proxy that terminates TLS, leave the files unset: ``proxy_headers`` and
``forwarded_allow_ips`` say which proxies' ``X-Forwarded-For``/``-Proto`` uvicorn believes
(docs/security.md).
"""

from __future__ import annotations

import logging
import os
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mspclaw.errors import ConfigError
from mspclaw.settings import Settings

log = logging.getLogger(__name__)

Stamp = tuple[tuple[int, int, int], ...]
"""(size, mtime in ns, inode) of each file: what a renewal changes."""


def _readable(path: Path, what: str) -> None:
    try:
        with path.open("rb") as fh:
            fh.read(1)
    except FileNotFoundError:
        raise ConfigError(f"the TLS {what} file {path} does not exist (MSPCLAW_TLS_{what.upper()}_FILE)") from None
    except IsADirectoryError:
        raise ConfigError(f"the TLS {what} file {path} is a directory (MSPCLAW_TLS_{what.upper()}_FILE)") from None
    except OSError as exc:
        raise ConfigError(f"cannot read the TLS {what} file {path}: {exc.strerror} "
                          f"(MSPCLAW_TLS_{what.upper()}_FILE)") from exc


def load_server_context(cert_file: Path, key_file: Path | None) -> ssl.SSLContext:
    """A server context (TLS 1.2 or newer) with the chain of ``cert_file`` and the key of ``key_file``."""
    _readable(cert_file, "cert")
    if key_file is not None:
        _readable(key_file, "key")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert_file, key_file)
    except (ssl.SSLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or str(exc)
        key = f" with the key in {key_file}" if key_file is not None else " (key expected in the same file)"
        raise ConfigError(f"cannot load the TLS certificate {cert_file}{key}: {reason}; both must be PEM and "
                          "the key must belong to the certificate") from exc
    return ctx


class ReloadingTLS:
    """The server's TLS context, switched to a fresh one when the certificate or key file changes."""

    def __init__(self, cert_file: Path, key_file: Path | None = None, *, check_every_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cert_file, self.key_file = cert_file, key_file
        self.check_every_s = check_every_s
        self._clock = clock
        self.context = load_server_context(cert_file, key_file)
        """The context both listeners hold; it hands each handshake the newest loaded certificate."""
        self.context.sni_callback = self._on_hello
        self._current = self.context
        self._stamp = self._stamps()
        self._checked = clock()
        self.reloads = 0
        """Certificates loaded since start (for tests and diagnostics)."""

    def _files(self) -> list[Path]:
        return [self.cert_file] if self.key_file is None else [self.cert_file, self.key_file]

    def _stamps(self) -> Stamp:
        stamps = []
        for path in self._files():
            try:
                st = os.stat(path)
            except OSError:
                stamps.append((-1, -1, -1))
            else:
                stamps.append((st.st_size, st.st_mtime_ns, st.st_ino))
        return tuple(stamps)

    def check(self, *, force: bool = False) -> bool:
        """Load the files again if they changed since the last load; whether a new certificate is in use."""
        now = self._clock()
        if not force and now - self._checked < self.check_every_s:
            return False
        self._checked = now
        stamp = self._stamps()
        if stamp == self._stamp:
            return False
        try:
            fresh = load_server_context(self.cert_file, self.key_file)
        except ConfigError as exc:
            log.warning("TLS certificate changed but does not load, keeping the current one: %s", exc.message)
            return False
        self._current, self._stamp = fresh, stamp
        self.reloads += 1
        log.info("TLS certificate %s reloaded", self.cert_file)
        return True

    def _on_hello(self, connection: ssl.SSLObject | ssl.SSLSocket, _server_name: str | None,
                  _context: ssl.SSLContext) -> None:
        try:
            self.check()
        except Exception:  # never fail a handshake for the reload's sake
            log.exception("checking the TLS certificate files failed")
        if self._current is not self.context:
            connection.context = self._current


@dataclass(frozen=True)
class ListenOptions:
    """How both ports face the network: TLS of their own, or plain behind trusted reverse proxies."""

    tls: ReloadingTLS | None = None
    proxy_headers: bool = True
    forwarded_allow_ips: str = "127.0.0.1"

    @classmethod
    def from_settings(cls, settings: Settings) -> ListenOptions:
        """:class:`ConfigError` naming the file when a certificate or key is missing, unreadable or invalid."""
        if settings.tls_key_file is not None and settings.tls_cert_file is None:
            raise ConfigError("MSPCLAW_TLS_KEY_FILE is set without MSPCLAW_TLS_CERT_FILE")
        tls = (ReloadingTLS(settings.tls_cert_file, settings.tls_key_file, check_every_s=settings.tls_reload_check_s)
               if settings.tls_cert_file is not None else None)
        return cls(tls=tls, proxy_headers=settings.proxy_headers, forwarded_allow_ips=settings.forwarded_allow_ips)

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        return self.tls.context if self.tls is not None else None

    def uvicorn_options(self) -> dict[str, Any]:
        """Keyword arguments of :class:`uvicorn.Config`."""
        options: dict[str, Any] = {"proxy_headers": self.proxy_headers,
                                   "forwarded_allow_ips": self.forwarded_allow_ips}
        if self.tls is not None:
            context = self.tls.context
            options["ssl_context_factory"] = lambda _config, _default: context
        return options
