"""An OpenVPN server's management interface: who is connected (``status 3``) and ending a session (``kill CN``).

The management interface is a line protocol on TCP (``management 127.0.0.1 7505`` in the server's
config) or a unix socket. A password set with ``management ... pw-file`` is asked for with
``ENTER PASSWORD:`` before anything else. Lines starting with ``>`` are notifications that may
arrive at any time and are skipped; a command answers ``SUCCESS: ...`` / ``ERROR: ...``, or, for
``status``, tab-separated lines ending in ``END``. Everything read is bounded (line length, line
count, time). The parsers are pure functions of that text.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from mspclaw.agent.site.config import OpenVPNConfig, read_secret
from mspclaw.errors import AccountNotFound, IntegrationAuthFailed, IntegrationError, IntegrationUnreachable

MAX_LINE = 8 * 1024
MAX_LINES = 20_000
_PROMPT = b"ENTER PASSWORD:"


@dataclass(frozen=True)
class VpnSession:
    """One ``CLIENT_LIST`` row of ``status 3``."""

    common_name: str
    real_address: str
    virtual_address: str
    bytes_received: int
    bytes_sent: int
    connected_since: datetime | None
    username: str
    client_id: str

    def as_json(self) -> dict[str, object]:
        host, _, port = self.real_address.rpartition(":")
        return {"username": self.common_name, "from_address": host or self.real_address,
                "from_port": int(port) if port.isdigit() else None,
                "vpn_address": self.virtual_address or None,
                "connected_since": self.connected_since.isoformat() if self.connected_since else None,
                "bytes_from_client": self.bytes_received, "bytes_to_client": self.bytes_sent,
                "client_id": self.client_id}


def parse_status(lines: list[str]) -> list[VpnSession]:
    """The ``CLIENT_LIST`` rows of ``status 3`` output, read by the column names of its ``HEADER`` line
    (their order differs between OpenVPN versions)."""
    columns: list[str] = []
    sessions: list[VpnSession] = []
    for line in lines:
        fields = line.split("\t")
        if fields[:2] == ["HEADER", "CLIENT_LIST"]:
            columns = fields[2:]
        elif fields[0] == "CLIENT_LIST" and columns:
            row = dict(zip(columns, fields[1:], strict=False))
            sessions.append(VpnSession(
                common_name=row.get("Common Name", ""),
                real_address=row.get("Real Address", ""),
                virtual_address=row.get("Virtual Address", ""),
                bytes_received=_int(row.get("Bytes Received")),
                bytes_sent=_int(row.get("Bytes Sent")),
                connected_since=_since(row.get("Connected Since (time_t)")),
                username=row.get("Username", "UNDEF"),
                client_id=row.get("Client ID", ""),
            ))
    return sessions


def _int(text: str | None) -> int:
    return int(text) if text and text.isdigit() else 0


def _since(text: str | None) -> datetime | None:
    return datetime.fromtimestamp(int(text), UTC) if text and text.isdigit() else None


class _Connection:
    """One management session: connect, answer the password prompt, send commands, read answers."""

    def __init__(self, config: OpenVPNConfig, password: str | None) -> None:
        self._where = config.management
        self._timeout = config.timeout_s
        self._deadline = time.monotonic() + config.timeout_s
        self._buffer = b""
        try:
            if config.management.startswith("/"):
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self._sock.settimeout(config.timeout_s)
                self._sock.connect(config.management)
            else:
                host, _, port = config.management.rpartition(":")
                self._sock = socket.create_connection((host.strip("[]"), int(port)), timeout=config.timeout_s)
        except (OSError, ValueError) as exc:
            raise IntegrationUnreachable(
                f"OpenVPN management interface at {self._where} did not answer ({exc}); check the server runs "
                "and its config has `management` on that address") from exc
        try:
            self._login(password)
        except BaseException:
            self.close()
            raise

    def _login(self, password: str | None) -> None:
        first = self._peek_prompt()
        if first:
            if password is None:
                raise IntegrationAuthFailed(
                    f"OpenVPN management at {self._where} asks for a password; set password_file in the "
                    "openvpn section of site.json (`mspclaw site add openvpn --password-file ...`)")
            self._send(password)
            # OpenVPN 2.6 answers a wrong password by asking again; others say "ERROR: bad password".
            answer = "ENTER PASSWORD: asked again" if self._peek_prompt() else self._answer()
            if not answer.startswith("SUCCESS"):
                raise IntegrationAuthFailed(f"OpenVPN management at {self._where} refused the password "
                                            f"({answer[:200]}); check password_file matches the server's pw-file")

    def _peek_prompt(self) -> bool:
        """Whether the server opens with ``ENTER PASSWORD:`` (a prompt without a newline)."""
        while True:
            if self._buffer.startswith(_PROMPT):
                self._buffer = self._buffer[len(_PROMPT):]
                return True
            if b"\n" in self._buffer or (self._buffer and not _PROMPT.startswith(self._buffer[:len(_PROMPT)])):
                return False
            self._fill()

    def _fill(self) -> None:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise IntegrationUnreachable(f"OpenVPN management at {self._where} did not answer within "
                                         f"{self._timeout:g} s")
        self._sock.settimeout(remaining)
        try:
            chunk = self._sock.recv(65536)
        except TimeoutError as exc:
            raise IntegrationUnreachable(f"OpenVPN management at {self._where} did not answer within "
                                         f"{self._timeout:g} s") from exc
        except OSError as exc:
            raise IntegrationUnreachable(f"OpenVPN management at {self._where} failed: {exc}") from exc
        if not chunk:
            raise IntegrationUnreachable(f"OpenVPN management at {self._where} closed the connection "
                                         "(another client may hold it: only one is served at a time)")
        self._buffer += chunk

    def _line(self) -> str:
        while b"\n" not in self._buffer:
            if len(self._buffer) > MAX_LINE:
                raise IntegrationError(f"OpenVPN management at {self._where} sent a line over {MAX_LINE} bytes")
            self._fill()
        raw, _, self._buffer = self._buffer.partition(b"\n")
        return raw.decode("utf-8", "replace").rstrip("\r")

    def _send(self, text: str) -> None:
        try:
            self._sock.sendall(text.encode("utf-8") + b"\n")
        except OSError as exc:
            raise IntegrationUnreachable(f"OpenVPN management at {self._where} failed: {exc}") from exc

    def _answer(self) -> str:
        """The next ``SUCCESS:``/``ERROR:`` line, skipping ``>`` notifications."""
        for _ in range(MAX_LINES):
            line = self._line()
            if line.startswith(("SUCCESS:", "ERROR:")):
                return line
        raise IntegrationError(f"OpenVPN management at {self._where} sent no answer in {MAX_LINES} lines")

    def command(self, text: str) -> str:
        self._send(text)
        return self._answer()

    def status(self) -> list[str]:
        self._send("status 3")
        lines: list[str] = []
        for _ in range(MAX_LINES):
            line = self._line()
            if line == "END":
                return lines
            if line.startswith("ERROR:"):
                raise IntegrationError(f"OpenVPN management at {self._where} refused `status 3`: {line[:200]}")
            if not line.startswith(">"):
                lines.append(line)
        raise IntegrationError(f"OpenVPN status at {self._where} is over {MAX_LINES} lines")

    def close(self) -> None:
        try:
            self._sock.sendall(b"quit\n")
        except OSError:
            pass
        self._sock.close()


class OpenVPN:
    """The site's OpenVPN server through its management interface; one short connection per call."""

    def __init__(self, config: OpenVPNConfig, *, password: str | None = None) -> None:
        self.config = config
        self._password = password

    def _connect(self) -> _Connection:
        password = self._password
        if password is None and self.config.password_file is not None:
            password = read_secret(self.config.password_file, "openvpn management password")
        return _Connection(self.config, password)

    def check(self) -> dict[str, object]:
        """Connect, log in and read the status: proves the address and the password."""
        connection = self._connect()
        try:
            lines = connection.status()
        finally:
            connection.close()
        title = next((line.split("\t", 1)[-1] for line in lines if line.startswith("TITLE")), "")
        return {"ok": True, "management": self.config.management, "server": title[:200],
                "connected_clients": len(parse_status(lines)),
                "can": ["list VPN sessions", "end a user's VPN session"]}

    def sessions(self, username: str | None = None) -> list[VpnSession]:
        connection = self._connect()
        try:
            found = parse_status(connection.status())
        finally:
            connection.close()
        return [s for s in found if username is None or s.common_name.lower() == username.lower()]

    def disconnect(self, username: str) -> int:
        """``kill CN``: end every session of that common name; returns how many were ended."""
        connection = self._connect()
        try:
            answer = connection.command(f"kill {username}")
        finally:
            connection.close()
        if answer.startswith("SUCCESS:"):
            count = [word for word in answer.split() if word.isdigit()]
            return int(count[-1]) if count else 1
        if "not found" in answer:
            raise AccountNotFound(f"{username!r} is not connected to the VPN at {self.config.management}; "
                                  "nothing was disconnected", unchanged=(f"VPN session of {username}",))
        raise IntegrationError(f"OpenVPN refused `kill {username}`: {answer[:200]}",
                               unchanged=(f"VPN session of {username}",))
