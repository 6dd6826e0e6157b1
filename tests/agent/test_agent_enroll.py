"""Enrollment against a tiny HTTP server on loopback, and the identity file it leaves behind."""

from __future__ import annotations

import json
import secrets
import socket
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mspclaw.agent.enroll import EnrollRequest, enroll, server_base
from mspclaw.agent.state import STATE_FILE, NotEnrolled, load_state, save_state
from mspclaw.errors import ConfigError, EnrollmentError, MSPClawError, ProtocolError

SERVER_KEY = secrets.token_hex(32)


class EnrollServer(ThreadingHTTPServer):
    """``POST /enroll``: code ``good`` succeeds once, ``garbage`` answers nonsense, anything else is 401."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict[str, Any]] = []
        self.used: set[str] = set()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class _Handler(BaseHTTPRequestHandler):
    server: EnrollServer

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append({"path": self.path, "body": body, "type": self.headers["Content-Type"]})
        code = body.get("code")
        if code == "garbage":
            self._reply(200, {"hello": "world"})
        elif code == "good" and code not in self.server.used:
            self.server.used.add(code)
            self._reply(200, {"agent_id": "agt_42", "client_id": "acme", "role": "device",
                              "credential": "cred-" + "z" * 40, "server_key": SERVER_KEY,
                              "agent_url": "ws://127.0.0.1:8701/ws/agent"})
        else:
            self._reply(401, {"detail": {"code": "bad_enrollment",
                                         "message": "enrollment code is unknown, expired or already used"}})

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def enroll_server() -> Iterator[EnrollServer]:
    server = EnrollServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def request(code: str) -> EnrollRequest:
    return EnrollRequest(code=code, hostname="pc-17", os="linux", os_version="Debian 12",
                         agent_version="0.1.0", tools=["disk_usage", "system_info"])


def test_enrollment_stores_a_private_identity(enroll_server: EnrollServer, tmp_path: Path) -> None:
    state_dir = tmp_path / "state" / "agent"
    state = enroll(enroll_server.url + "/", request("good"))
    path = save_state(state_dir, state)

    [sent] = enroll_server.requests
    assert sent["path"] == "/enroll" and sent["type"] == "application/json"
    assert sent["body"] == {"code": "good", "hostname": "pc-17", "os": "linux", "os_version": "Debian 12",
                            "agent_version": "0.1.0", "tools": ["disk_usage", "system_info"]}
    assert path == state_dir / STATE_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    assert [p.name for p in state_dir.iterdir()] == [STATE_FILE]  # no temp file left behind
    loaded = load_state(state_dir)
    assert loaded == state
    assert (loaded.agent_id, loaded.client_id, loaded.role) == ("agt_42", "acme", "device")
    assert loaded.key == bytes.fromhex(SERVER_KEY)
    assert loaded.server == enroll_server.url
    assert loaded.agent_url == "ws://127.0.0.1:8701/ws/agent"
    assert loaded.credential not in repr(loaded)


def test_a_used_code_is_refused_with_the_servers_message(enroll_server: EnrollServer) -> None:
    enroll(enroll_server.url, request("good"))
    with pytest.raises(EnrollmentError, match="unknown, expired or already used"):
        enroll(enroll_server.url, request("good"))


def test_a_bad_code_is_refused(enroll_server: EnrollServer) -> None:
    with pytest.raises(EnrollmentError, match="unknown, expired or already used") as info:
        enroll(enroll_server.url, request("nope"))
    assert info.value.code == "bad_enrollment"


def test_an_answer_that_is_not_an_enrollment_is_a_protocol_error(enroll_server: EnrollServer) -> None:
    with pytest.raises(ProtocolError, match="not with an enrollment"):
        enroll(enroll_server.url, request("garbage"))


def test_a_server_that_is_not_there_is_named(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        with pytest.raises(ConfigError, match=f"cannot reach the MSPclaw server at {url}/enroll") as info:
            enroll(url, request("good"))
    assert "refused" in info.value.message.lower()


@pytest.mark.parametrize("bad", ["ftp://x", "file:///etc/passwd", "127.0.0.1:8700", "http://", "http://h/?q=1"])
def test_server_url_must_be_http(bad: str) -> None:
    with pytest.raises(MSPClawError, match="--server"):
        server_base(bad)


def test_missing_or_damaged_state(tmp_path: Path) -> None:
    with pytest.raises(NotEnrolled):
        load_state(tmp_path)
    (tmp_path / STATE_FILE).write_text('{"agent_id": "x"}')
    with pytest.raises(ConfigError, match="enroll again"):
        load_state(tmp_path)
