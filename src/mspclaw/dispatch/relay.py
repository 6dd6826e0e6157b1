"""Direct replica-to-replica connections that carry forwarded tool calls and their results in one hop each way.

Through Redis pub/sub a forwarded call crosses four process hops (caller to Redis, Redis to holder, and
back); over a direct connection it crosses two. Each replica listens on an internal address
(:class:`ReplicaRelay`), which the cluster advertises in Redis next to the replica's liveness record; a
caller opens one persistent connection per peer replica and multiplexes every call over it (the
``call_id`` inside each message pairs results with calls). Redis keeps presence, address discovery and
the fallback path: a peer without an advertised address, or one that cannot be reached, is called through
pub/sub as before.

**Authentication.** The listener runs tool calls, so nothing is accepted before a mutual HMAC-SHA256
handshake over a secret every replica shares (at least 32 bytes): each side sends a fresh 32-byte nonce,
and each proves knowledge of the secret over both nonces, both replica ids and its role. A peer that
fails, or takes longer than :data:`HANDSHAKE_TIMEOUT_S`, is disconnected; the secret never crosses the
wire. Give ``ssl`` contexts to encrypt the channel too (tool arguments and results cross it), as with
``rediss://`` for Redis.

**Frames.** A 4-byte big-endian length, then the payload (the cluster's JSON message); a length above
``max_frame`` closes the connection. The relay does not read payloads: the cluster validates each one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from mspclaw.errors import ConfigError
from mspclaw.protocol.frames import MAX_FRAME_BYTES

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT_S = 5.0
"""How long a new connection may take to prove it knows the replicas' secret."""

MAX_PENDING_HANDSHAKES = 64
"""Connections that have not finished their handshake yet; past that new ones are closed at once."""

MIN_SECRET_BYTES = 32
_HELLO_MAX = 1024
_VERSION = 1

Send = Callable[[bytes], Awaitable[None]]
"""Sends one frame back on the connection a frame arrived on."""

Handler = Callable[[bytes, Send], None]
"""Called with each frame a peer sends (in order, on the event loop) and how to answer on that connection."""


class RelayUnavailable(Exception):
    """The direct connection to a peer cannot be opened or was lost (the caller falls back to Redis)."""


def derive_secret(shared: str, name: str = "the shared secret") -> bytes:
    """The relay's 32-byte secret, derived from a secret the replicas share for another purpose (a key of
    its own: knowing the relay secret tells nothing of ``shared``)."""
    if len(shared) < MIN_SECRET_BYTES:
        raise ConfigError(f"{name} has {len(shared)} characters; the replicas' relay derives its key from it and "
                          f"needs at least {MIN_SECRET_BYTES} random ones (or leave MSPCLAW_RELAY_LISTEN unset)")
    return hmac.new(shared.encode(), b"mspclaw replica relay v1", hashlib.sha256).digest()


def _split(address: str, what: str) -> tuple[str, int]:
    host, sep, port = address.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535 or len(address) > 300:
        raise ConfigError(f"{what} is {address[:300]!r}; write host:port, such as 10.0.0.5:7401 or [fd00::5]:7401")
    return host.strip("[]"), int(port)


def _proof(secret: bytes, role: bytes, client_nonce: bytes, server_nonce: bytes, client_id: str,
           server_id: str) -> str:
    text = b"\0".join([b"mspclaw-relay", role, client_nonce, server_nonce, client_id.encode(), server_id.encode()])
    return hmac.new(secret, text, hashlib.sha256).hexdigest()


async def _read_frame(reader: asyncio.StreamReader, limit: int) -> bytes:
    size = int.from_bytes(await reader.readexactly(4), "big")
    if size > limit:
        raise ValueError(f"a relay frame of {size} bytes (limit {limit})")
    return await reader.readexactly(size)


def _frame(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def _hello(data: bytes) -> dict[str, str]:
    """A handshake message: a small JSON object of strings."""
    decoded = json.loads(data)
    if not isinstance(decoded, dict) or not all(isinstance(v, str | int) for v in decoded.values()):
        raise ValueError("a relay handshake message is not a JSON object of strings")
    return {str(k): str(v) for k, v in decoded.items()}


@dataclass(eq=False)
class PeerLink:
    """One authenticated connection to a peer replica, opened by this one."""

    peer_id: str
    writer: asyncio.StreamWriter
    closed: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    """Done when the connection is gone: a call still waiting for its result over it gets none."""

    async def send(self, data: bytes) -> None:
        if self.closed.done():
            raise RelayUnavailable(f"the connection to replica {self.peer_id} is closed")
        try:
            self.writer.write(_frame(data))
            await self.writer.drain()
        except (OSError, RuntimeError) as exc:
            self.close()
            raise RelayUnavailable(f"the connection to replica {self.peer_id} failed: {exc}") from exc

    def close(self) -> None:
        """Close the connection; a call waiting on it fails at once."""
        if not self.closed.done():
            self.closed.set_result(None)
        self.writer.close()


class ReplicaRelay:
    """This replica's end of the direct channel: a listener for its peers' calls and links to its peers.

    ``host``/``port`` is where it listens (port 0: any free one), ``advertise`` the ``host:port`` peers
    connect to (default: the listening address, or the host's name when it listens on every interface; set
    it when that name does not resolve for the other replicas, or behind NAT). ``server_ssl``/``client_ssl``
    encrypt the channel.
    """

    def __init__(self, secret: bytes, *, host: str = "127.0.0.1", port: int = 0,
                 advertise: str | None = None, max_frame: int = 2 * MAX_FRAME_BYTES, connect_timeout_s: float = 1.0,
                 server_ssl: ssl.SSLContext | None = None, client_ssl: ssl.SSLContext | None = None) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ConfigError(f"the replicas' relay secret has {len(secret)} bytes; it needs at least "
                              f"{MIN_SECRET_BYTES} random bytes, the same on every replica")
        if advertise is not None:
            _split(advertise, "the relay's advertised address (MSPCLAW_RELAY_ADVERTISE)")
        self.replica_id = ""
        self._secret = secret
        self._host, self._port, self._advertise = host, port, advertise
        self.max_frame = max_frame
        self.connect_timeout_s = connect_timeout_s
        self._server_ssl, self._client_ssl = server_ssl, client_ssl
        self._server: asyncio.Server | None = None
        self._handler: Handler | None = None
        self._links: dict[str, PeerLink] = {}
        self._opening: dict[str, asyncio.Future[PeerLink]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._accepted: set[asyncio.StreamWriter] = set()
        self._pending = 0
        self.address = ""
        """``host:port`` peers reach this replica at (empty until :meth:`start`)."""

    @classmethod
    def listening_on(cls, listen: str, shared_secret: str, *, advertise: str | None = None,
                     secret_name: str = "MSPCLAW_JWT_SECRET") -> ReplicaRelay:  # noqa: S107 (a name)
        """A relay on ``listen`` (``host:port``, ``[v6]:port``) whose secret is derived from ``shared_secret``
        (``secret_name``: one every replica already shares, such as the technician-token signing secret)."""
        host, port = _split(listen, "the relay's listening address (MSPCLAW_RELAY_LISTEN)")
        return cls(derive_secret(shared_secret, secret_name), host=host, port=port, advertise=advertise)

    async def start(self, replica_id: str, handler: Handler) -> str:
        """Listen for peers as ``replica_id``; ``handler`` gets every frame any connection delivers.
        Returns :attr:`address`."""
        self.replica_id = replica_id
        self._handler = handler
        self._server = await asyncio.start_server(self._accept, self._host, self._port, ssl=self._server_ssl,
                                                  limit=self.max_frame + 4)
        host, port = self._server.sockets[0].getsockname()[:2]
        if self._host in ("", "0.0.0.0", "::"):  # noqa: S104 (a check, not a bind): peers use the host's name
            host = socket.gethostname()
        self.address = self._advertise or (f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        return self.address

    async def aclose(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            self._server.close()
        for link in list(self._links.values()):
            link.close()
        for writer in list(self._accepted):
            writer.close()
        self._links.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    # -- calling a peer ------------------------------------------------------------------------
    def connected(self, peer_id: str) -> PeerLink | None:
        """The open connection to ``peer_id``, if there is one."""
        link = self._links.get(peer_id)
        return link if link is not None and not link.closed.done() else None

    async def link(self, peer_id: str, address: str) -> PeerLink:
        """The open connection to ``peer_id`` at ``address``, opened (and authenticated) if there is none."""
        link = self._links.get(peer_id)
        if link is not None and not link.closed.done():
            return link
        opening = self._opening.get(peer_id)
        if opening is None:  # one connection attempt per peer, however many calls wait for it
            opening = asyncio.ensure_future(self._open(peer_id, address))
            self._opening[peer_id] = opening
            opening.add_done_callback(lambda _: self._opening.pop(peer_id, None))
        return await asyncio.shield(opening)

    async def _open(self, peer_id: str, address: str) -> PeerLink:
        try:
            host, port = _split(address, f"the address replica {peer_id} advertised")
        except ConfigError as exc:
            raise RelayUnavailable(exc.message) from None
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(
                host, port, ssl=self._client_ssl, limit=self.max_frame + 4),
                self.connect_timeout_s)
        except (OSError, TimeoutError) as exc:
            raise RelayUnavailable(f"replica {peer_id} at {address} cannot be reached: {exc or 'timeout'}") from exc
        try:
            await asyncio.wait_for(self._prove_to(reader, writer, peer_id), HANDSHAKE_TIMEOUT_S)
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as exc:
            writer.close()
            raise RelayUnavailable(f"replica {peer_id} at {address} failed the relay handshake: "
                                   f"{exc or type(exc).__name__}") from exc
        link = PeerLink(peer_id, writer)
        self._links[peer_id] = link
        self._spawn(self._read_replies(link, reader))
        return link

    async def _prove_to(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer_id: str) -> None:
        nonce = secrets.token_bytes(32)
        writer.write(_frame(json.dumps({"v": _VERSION, "replica": self.replica_id, "nonce": nonce.hex()}).encode()))
        answer = _hello(await _read_frame(reader, _HELLO_MAX))
        server_nonce = bytes.fromhex(answer.get("nonce", ""))
        if answer.get("replica") != peer_id:
            raise ValueError(f"it says it is replica {answer.get('replica')!r}")
        expected = _proof(self._secret, b"server", nonce, server_nonce, self.replica_id, peer_id)
        if len(server_nonce) != 32 or not hmac.compare_digest(answer.get("proof", ""), expected):
            raise ValueError("it does not know the replicas' relay secret")
        proof = _proof(self._secret, b"client", nonce, server_nonce, self.replica_id, peer_id)
        writer.write(_frame(json.dumps({"proof": proof}).encode()))
        await writer.drain()

    async def _read_replies(self, link: PeerLink, reader: asyncio.StreamReader) -> None:
        try:
            await self._pump(reader, link.send)
        finally:
            link.close()
            if self._links.get(link.peer_id) is link:
                del self._links[link.peer_id]

    # -- answering peers -----------------------------------------------------------------------
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._pending >= MAX_PENDING_HANDSHAKES:
            writer.close()
            return
        self._pending += 1
        try:
            peer = await asyncio.wait_for(self._check_peer(reader, writer), HANDSHAKE_TIMEOUT_S)
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as exc:
            log.warning("relay: replica %s refused a connection from %s: %s", self.replica_id,
                        writer.get_extra_info("peername"), exc or type(exc).__name__)
            writer.close()
            return
        finally:
            self._pending -= 1

        async def answer(data: bytes) -> None:
            writer.write(_frame(data))
            await writer.drain()

        self._accepted.add(writer)  # closed by aclose, which ends this pump (never cancelled: asyncio's stream
        try:  # server logs a cancelled handler as an error)
            await self._pump(reader, answer)
        finally:
            self._accepted.discard(writer)
            writer.close()
            log.debug("relay: replica %s closed the connection from %s", self.replica_id, peer)

    async def _check_peer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
        hello = _hello(await _read_frame(reader, _HELLO_MAX))
        peer, client_nonce = hello.get("replica", ""), bytes.fromhex(hello.get("nonce", ""))
        if hello.get("v") != str(_VERSION) or not 0 < len(peer) <= 256 or len(client_nonce) != 32:
            raise ValueError("not a relay handshake of this version")
        nonce = secrets.token_bytes(32)
        proof = _proof(self._secret, b"server", client_nonce, nonce, peer, self.replica_id)
        writer.write(_frame(json.dumps({"replica": self.replica_id, "nonce": nonce.hex(), "proof": proof}).encode()))
        await writer.drain()
        answer = _hello(await _read_frame(reader, _HELLO_MAX))
        expected = _proof(self._secret, b"client", client_nonce, nonce, peer, self.replica_id)
        if not hmac.compare_digest(answer.get("proof", ""), expected):
            raise ValueError(f"the peer calling itself replica {peer!r} does not know the replicas' relay secret")
        return peer

    async def _pump(self, reader: asyncio.StreamReader, send: Send) -> None:
        """Hand every frame the connection delivers to the handler, until it closes or breaks the limit."""
        assert self._handler is not None
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while True:
                try:
                    data = await _read_frame(reader, self.max_frame)
                except ValueError as exc:
                    log.warning("relay: replica %s closed a connection that sent %s", self.replica_id, exc)
                    return
                self._handler(data, send)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
