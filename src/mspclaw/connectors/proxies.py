"""Which proxy, if any, carries a request to a PSA: the standard environment variables, and the routing.

:class:`ProxySettings` reads the variables once; :class:`RoutingTransport` sends each request
either over the direct transport (:class:`~mspclaw.connectors.transport.StreamTransport`, when
no proxy applies to its host) or through the proxy, with httpx's own transport
(``httpx.AsyncHTTPTransport(proxy=...)``).
:func:`~mspclaw.connectors.transport.default_transport` builds it when the environment names a
proxy. The rules are curl's, which httpx and requests follow as well:

* an ``https`` URL goes through ``https_proxy`` (or ``HTTPS_PROXY``), an ``http`` URL through
  ``http_proxy`` (``HTTP_PROXY``); ``all_proxy`` (``ALL_PROXY``) when the scheme's own is unset
  or empty. The lower-case name wins when both are set;
* ``no_proxy`` (``NO_PROXY``) lists hosts that are reached directly, separated by commas or
  spaces: ``*`` alone means every host; a name matches itself and its sub-domains
  (``example.com`` and ``.example.com`` both match ``example.com`` and ``psa.example.com``, not
  ``badexample.com``); an IP address matches itself; a CIDR block (``10.0.0.0/8``,
  ``fd00::/8``) matches the addresses in it; an entry with a port (``psa.local:8443``) matches
  that port only. Case and a trailing dot do not matter. Loopback is not excluded unless listed;
* through an ``http://`` proxy, an ``http`` URL is forwarded in absolute form and an ``https``
  URL is tunnelled with ``CONNECT host:port``: TLS then runs end to end between us and the PSA,
  so the proxy sees neither the request nor its credentials. An ``https://`` proxy is reached
  over TLS first;
* a proxy URL of another scheme (``socks5://`` needs a package MSPclaw does not ship) or one that
  cannot be parsed raises :class:`~mspclaw.errors.ConfigError` naming the variable, when a
  request would use it.

What a proxy does wrong (refuses the ``CONNECT``, is unreachable, answers garbage) surfaces as
httpx's transport errors, which :class:`~mspclaw.connectors.http.PSAHttp` turns into
:class:`~mspclaw.errors.PSAUnavailable`, like any connection failure.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import httpx

from mspclaw.errors import ConfigError

_PROXY_SCHEMES: Final = ("http", "https")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _variable(env: Mapping[str, str], name: str) -> tuple[str, str] | None:
    """``(variable name, value)`` of the first non-empty of ``name`` and ``NAME``."""
    for key in (name, name.upper()):
        value = env.get(key, "").strip()
        if value:
            return key, value
    return None


@dataclass(frozen=True)
class _Exemption:
    """One ``no_proxy`` entry."""

    host: str
    port: int | None = None
    network: Network | None = None

    @classmethod
    def parse(cls, entry: str) -> _Exemption:
        text = entry.strip().lower().rstrip(".")
        try:
            return cls(host="", network=ipaddress.ip_network(text.strip("[]"), strict=False))
        except ValueError:
            pass
        host, port = text, None
        if text.startswith("["):  # [v6]:port
            inside, _, rest = text[1:].partition("]")
            host, port = inside, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
        elif text.count(":") == 1:
            name, _, number = text.partition(":")
            if number.isdigit():
                host, port = name, int(number)
        host = host.lstrip(".").rstrip(".")
        try:
            return cls(host="", port=port, network=ipaddress.ip_network(host, strict=False))
        except ValueError:
            return cls(host=host, port=port)

    def matches(self, host: str, address: Address | None, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.network is not None:
            return address is not None and address.version == self.network.version and address in self.network
        return bool(self.host) and (host == self.host or host.endswith("." + self.host))


@dataclass(frozen=True)
class ProxySettings:
    """The proxies the environment names, and the hosts it exempts (the rules are in the module docstring)."""

    http: tuple[str, str] | None = None
    """``(variable, proxy URL)`` for ``http`` URLs."""
    https: tuple[str, str] | None = None
    """``(variable, proxy URL)`` for ``https`` URLs."""
    no_proxy: tuple[str, ...] = ()
    every_host_exempt: bool = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> ProxySettings:
        env = os.environ if environ is None else environ
        fallback = _variable(env, "all_proxy")
        exempt = _variable(env, "no_proxy")
        entries = tuple(e for e in (exempt[1].replace(",", " ").split() if exempt else ()) if e)
        return cls(http=_variable(env, "http_proxy") or fallback, https=_variable(env, "https_proxy") or fallback,
                   no_proxy=entries, every_host_exempt="*" in entries)

    @property
    def configured(self) -> bool:
        """Whether any request could go through a proxy."""
        return (self.http is not None or self.https is not None) and not self.every_host_exempt

    def proxy_for(self, url: httpx.URL) -> tuple[str, str] | None:
        """``(variable, proxy URL)`` that carries a request to ``url``, or ``None``: straight to the host."""
        chosen = self.https if url.scheme == "https" else self.http if url.scheme == "http" else None
        if chosen is None or self.every_host_exempt:
            return None
        host = url.host.lower().rstrip(".")
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            address: Address | None = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if any(_Exemption.parse(entry).matches(host, address, port) for entry in self.no_proxy):
            return None
        return chosen


def proxy_transport(variable: str, url: str, *, ssl_context: ssl.SSLContext | None = None) -> httpx.AsyncHTTPTransport:
    """httpx's transport through the proxy at ``url`` (named by the environment variable ``variable``)."""
    try:
        proxy = httpx.URL(url if "://" in url else f"http://{url}")
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise ConfigError(f"{variable} is not a proxy URL such as http://proxy.example:3128 ({exc})") from None
    if proxy.scheme not in _PROXY_SCHEMES or not proxy.host:
        raise ConfigError(f"{variable} names a {proxy.scheme}:// proxy; MSPclaw reaches PSAs through http:// or "
                          "https:// proxies only (set it to one, or list the PSA's host in NO_PROXY)")
    verify = ssl_context if ssl_context is not None else httpx.create_ssl_context()  # StreamTransport's trust store
    return httpx.AsyncHTTPTransport(proxy=httpx.Proxy(proxy), verify=verify, trust_env=False)


class RoutingTransport(httpx.AsyncBaseTransport):
    """Each request over ``direct``, or through the proxy the settings (by default the environment's)
    name for its URL.

    One proxy transport is made per proxy URL, on first use, and kept (it pools its own
    connections). ``ssl_context`` verifies the PSAs (and an ``https://`` proxy) on both paths.
    """

    def __init__(self, direct: httpx.AsyncBaseTransport, settings: ProxySettings | None = None, *,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.settings = settings if settings is not None else ProxySettings.from_environ()
        self._ssl = ssl_context
        self._direct = direct
        self._proxied: dict[str, httpx.AsyncHTTPTransport] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        chosen = self.settings.proxy_for(request.url)
        if chosen is None:
            return await self._direct.handle_async_request(request)
        variable, url = chosen
        transport = self._proxied.get(url)
        if transport is None:
            transport = self._proxied[url] = proxy_transport(variable, url, ssl_context=self._ssl)
        return await transport.handle_async_request(request)

    async def aclose(self) -> None:
        await self._direct.aclose()
        for transport in self._proxied.values():
            await transport.aclose()
        self._proxied.clear()
