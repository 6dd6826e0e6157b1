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
wire. Until the listener has accepted a peer's proof (it says so with an ``ok`` frame, the caller's cue
to send calls), it takes two frames of at most 1 KiB from it, and at most :data:`MAX_PENDING_HANDSHAKES`
connections at once. Give ``ssl`` contexts to encrypt the channel too (tool arguments and results cross it), as with
``rediss://`` for Redis.

**Frames.** A 4-byte big-endian length, then the payload (the cluster's JSON message); a length above
``max_frame`` closes the connection. The relay does not read payloads: the cluster validates each one.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
import socket
import ssl
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, cast

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


def _frame(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def _hello(data: bytes) -> dict[str, str]:
    """A handshake message: a small JSON object of strings."""
    decoded = json.loads(data)
    if not isinstance(decoded, dict) or not all(isinstance(v, str | int) for v in decoded.values()):
        raise ValueError("a relay handshake message is not a JSON object of strings")
    return {str(k): str(v) for k, v in decoded.items()}


class PeerLink(asyncio.Protocol):
    """One relay connection, either way: frames in (to a handler once authenticated) and frames out.

    Before the handshake ends, at most two frames of at most ``_HELLO_MAX`` bytes are taken (the handshake's
    own); anything else closes the connection, so an unauthenticated peer can make this replica hold a few
    kilobytes at most. Frames are parsed in :meth:`data_received`, without a task per read.
    """

    def __init__(self, max_frame: int, on_open: Callable[[PeerLink], None] | None = None) -> None:
        self.peer_id = ""
        self.max_frame = max_frame
        self._on_open = on_open
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self._opened: asyncio.Future[None] = loop.create_future()  # uvloop may call connection_made late
        self.closed: asyncio.Future[None] = loop.create_future()
        """Done when the connection is gone: a call still waiting for its result over it gets none."""
        self._handler: Handler | None = None
        self._early: deque[bytes] = deque()
        self._arrived: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None

    # -- asyncio.Protocol --------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # a stream transport (uvloop's is no subclass)
        self._opened.set_result(None)
        if self._on_open is not None:
            self._on_open(self)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while len(buffer) >= 4 and not self.closed.done():
            size = int.from_bytes(buffer[:4], "big")
            if size > (self.max_frame if self._handler is not None else _HELLO_MAX):
                log.warning("relay: closed the connection with %s, which sent a frame of %d bytes",
                            self.peer_id or self.peername, size)
                self.close()
                return
            if len(buffer) < 4 + size:
                return
            frame = bytes(buffer[4:4 + size])
            del buffer[:4 + size]
            if self._handler is not None:
                self._handler(frame, self.send)
            elif len(self._early) >= 2:  # more than a handshake before it ended
                self.close()
                return
            else:
                self._early.append(frame)
                self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        self._wake()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def pause_writing(self) -> None:
        if self._writable is None or self._writable.done():
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    # -- use --------------------------------------------------------------------------------------
    @property
    def peername(self) -> object:
        return self._transport.get_extra_info("peername") if self._transport is not None else None

    def write(self, data: bytes) -> None:
        """Queue one frame (the handshake's, or after :meth:`send`'s check)."""
        assert self._transport is not None
        self._transport.write(_frame(data))

    async def send(self, data: bytes) -> None:
        """Send one frame, waiting while the peer reads slower than this replica writes."""
        if self.closed.done() or self._transport is None or self._transport.is_closing():
            raise RelayUnavailable(f"the connection to replica {self.peer_id} is closed")
        self._transport.write(_frame(data))
        if self._writable is not None and not self._writable.done():
            await self._writable

    async def opened(self) -> None:
        """Until the connection is made (``create_connection`` may return before it says so)."""
        await self._opened

    async def handshake_frame(self) -> bytes:
        """The next frame of the handshake; :class:`ConnectionResetError` when the connection closes first."""
        while not self._early:
            if self.closed.done():
                raise ConnectionResetError("the peer closed the connection")
            self._arrived = asyncio.get_running_loop().create_future()
            await self._arrived
        return self._early.popleft()

    def authenticated(self, peer_id: str, handler: Handler) -> None:
        """The handshake passed: every frame from now on goes to ``handler``."""
        self.peer_id = peer_id
        self._handler = handler
        while self._early:
            handler(self._early.popleft(), self.send)
        if self._buffer:  # frames that came with the last handshake frame
            self.data_received(b"")

    def close(self) -> None:
        """Close the connection; a call waiting on it fails at once."""
        if self._transport is not None:
            self._transport.close()
        else:
            self.connection_lost(None)

    def _wake(self) -> None:
        if self._arrived is not None and not self._arrived.done():
            self._arrived.set_result(None)


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
        self._accepted: set[PeerLink] = set()
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
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: PeerLink(self.max_frame, self._accepted_link),
                                                self._host, self._port, ssl=self._server_ssl)
        host, port = self._server.sockets[0].getsockname()[:2]
        if self._host in ("", "0.0.0.0", "::"):  # noqa: S104 (a check, not a bind): peers use the host's name
            host = socket.gethostname()
        self.address = self._advertise or (f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        return self.address

    async def aclose(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            self._server.close()
        for link in [*self._links.values(), *self._accepted]:
            link.close()
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
        link = self.connected(peer_id)
        if link is not None:
            return link
        opening = self._opening.get(peer_id)
        if opening is None:  # one connection attempt per peer, however many calls wait for it
            opening = asyncio.ensure_future(self._open(peer_id, address))
            self._opening[peer_id] = opening
            opening.add_done_callback(lambda _: self._opening.pop(peer_id, None))
        return await asyncio.shield(opening)

    async def _open(self, peer_id: str, address: str) -> PeerLink:
        assert self._handler is not None, "start the relay first"
        try:
            host, port = _split(address, f"the address replica {peer_id} advertised")
        except ConfigError as exc:
            raise RelayUnavailable(exc.message) from None
        loop = asyncio.get_running_loop()
        try:
            _, link = await asyncio.wait_for(loop.create_connection(
                lambda: PeerLink(self.max_frame), host, port, ssl=self._client_ssl), self.connect_timeout_s)
        except (OSError, TimeoutError) as exc:
            raise RelayUnavailable(f"replica {peer_id} at {address} cannot be reached: "
                                   f"{str(exc) or 'timeout'}") from exc
        try:
            await asyncio.wait_for(self._prove_to(link, peer_id), HANDSHAKE_TIMEOUT_S)
        except (OSError, TimeoutError, ValueError) as exc:
            link.close()
            raise RelayUnavailable(f"replica {peer_id} at {address} failed the relay handshake: "
                                   f"{str(exc) or type(exc).__name__}") from exc
        link.authenticated(peer_id, self._handler)
        self._links[peer_id] = link
        link.closed.add_done_callback(lambda _: self._forget(link))
        return link

    def _forget(self, link: PeerLink) -> None:
        if self._links.get(link.peer_id) is link:
            del self._links[link.peer_id]

    async def _prove_to(self, link: PeerLink, peer_id: str) -> None:
        await link.opened()
        nonce = secrets.token_bytes(32)
        link.write(json.dumps({"v": _VERSION, "replica": self.replica_id, "nonce": nonce.hex()}).encode())
        answer = _hello(await link.handshake_frame())
        server_nonce = bytes.fromhex(answer.get("nonce", ""))
        if answer.get("replica") != peer_id:
            raise ValueError(f"it says it is replica {answer.get('replica')!r}")
        expected = _proof(self._secret, b"server", nonce, server_nonce, self.replica_id, peer_id)
        if len(server_nonce) != 32 or not hmac.compare_digest(answer.get("proof", ""), expected):
            raise ValueError("it does not know the replicas' relay secret")
        link.write(json.dumps({"proof": _proof(self._secret, b"client", nonce, server_nonce, self.replica_id,
                                               peer_id)}).encode())
        if _hello(await link.handshake_frame()).get("ok") != "1":
            raise ValueError("it did not accept this replica's proof")

    # -- answering peers -----------------------------------------------------------------------
    def _accepted_link(self, link: PeerLink) -> None:
        if self._pending >= MAX_PENDING_HANDSHAKES:
            link.close()
            return
        self._pending += 1
        self._spawn(self._accept(link))

    async def _accept(self, link: PeerLink) -> None:
        assert self._handler is not None
        try:
            peer = await asyncio.wait_for(self._check_peer(link), HANDSHAKE_TIMEOUT_S)
        except (OSError, TimeoutError, ValueError) as exc:
            log.warning("relay: replica %s refused a connection from %s: %s", self.replica_id, link.peername,
                        str(exc) or type(exc).__name__)
            link.close()
            return
        finally:
            self._pending -= 1
        link.authenticated(peer, self._handler)
        self._accepted.add(link)
        link.closed.add_done_callback(lambda _: self._accepted.discard(link))

    async def _check_peer(self, link: PeerLink) -> str:
        hello = _hello(await link.handshake_frame())
        peer, client_nonce = hello.get("replica", ""), bytes.fromhex(hello.get("nonce", ""))
        if hello.get("v") != str(_VERSION) or not 0 < len(peer) <= 256 or len(client_nonce) != 32:
            raise ValueError("not a relay handshake of this version")
        nonce = secrets.token_bytes(32)
        proof = _proof(self._secret, b"server", client_nonce, nonce, peer, self.replica_id)
        link.write(json.dumps({"replica": self.replica_id, "nonce": nonce.hex(), "proof": proof}).encode())
        answer = _hello(await link.handshake_frame())
        expected = _proof(self._secret, b"client", client_nonce, nonce, peer, self.replica_id)
        if not hmac.compare_digest(answer.get("proof", ""), expected):
            raise ValueError(f"the peer calling itself replica {peer!r} does not know the replicas' relay secret")
        link.write(json.dumps({"ok": 1}).encode())
        return peer

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
