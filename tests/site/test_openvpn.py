"""The OpenVPN adapter against a real OpenVPN server and client on loopback (``openvpn_pair.py``)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.site.openvpn_pair import CLIENT_CN, OPENVPN, PASSWORD, VpnPair, vpn_pair

from mspclaw.agent.site.config import OpenVPNConfig
from mspclaw.agent.site.openvpn import OpenVPN, parse_status
from mspclaw.agent.site.services import service_tools
from mspclaw.agent.tools import ToolContext
from mspclaw.errors import AccountNotFound, IntegrationAuthFailed, IntegrationUnreachable
from mspclaw.tools.site_services import SITE_SERVICE_TOOLS

pytestmark = pytest.mark.skipif(OPENVPN is None, reason="openvpn is not installed (apt-get install openvpn)")
SPECS = {spec.name: spec for spec in SITE_SERVICE_TOOLS}


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VpnPair]:
    yield from vpn_pair(tmp_path_factory.mktemp("vpn"))


def adapter(pair: VpnPair, tmp_path: Path, password: str | None = PASSWORD) -> OpenVPN:
    secret = tmp_path / "mgmt.pw"
    if password is not None:
        secret.write_text(password + "\n")
        secret.chmod(0o600)
    return OpenVPN(OpenVPNConfig(management=pair.management, password_file=secret if password else None,
                                 timeout_s=5))


def call(vpn: OpenVPN, tool: str, args: dict[str, object]) -> dict[str, Any]:
    tools = service_tools(None, None, vpn)
    out = tools[tool](SPECS[tool].validate(args), ToolContext(temp_roots=()))
    assert isinstance(out, dict)
    return out


def test_check_logs_in_and_counts_the_connected_client(pair: VpnPair, tmp_path: Path) -> None:
    report = adapter(pair, tmp_path).check()
    assert report["ok"] is True and report["connected_clients"] == 1 and "OpenVPN" in str(report["server"])


def test_vpn_sessions_sees_the_clients_certificate_name(pair: VpnPair, tmp_path: Path) -> None:
    out = call(adapter(pair, tmp_path), "vpn_sessions", {"username": CLIENT_CN})
    assert out["connected"] is True
    sessions = out["sessions"]
    assert isinstance(sessions, list) and len(sessions) == 1
    (session,) = sessions
    assert session["username"] == CLIENT_CN and session["from_address"] == "127.0.0.1"
    assert session["connected_since"] and session["client_id"]
    assert session["bytes_from_client"] > 0 and session["bytes_to_client"] > 0
    nobody = call(adapter(pair, tmp_path), "vpn_sessions", {"username": "bob"})
    assert nobody == {"connected": False, "username": "bob", "sessions": [], "count": 0}


def test_vpn_disconnect_drops_the_client_and_it_reconnects(pair: VpnPair, tmp_path: Path) -> None:
    vpn = adapter(pair, tmp_path)
    (before,) = vpn.sessions(CLIENT_CN)
    out = call(vpn, "vpn_disconnect", {"username": CLIENT_CN})
    assert out == {"disconnected": True, "username": CLIENT_CN, "sessions_ended": 1}
    deadline = time.monotonic() + 15
    while True:
        now = vpn.sessions(CLIENT_CN)
        if now and now[0].client_id != before.client_id:
            break
        assert time.monotonic() < deadline, pair.log("client")[-2000:]
        time.sleep(0.2)
    assert pair.client.poll() is None  # the same client process came back on its own


def test_unknown_user_wrong_password_and_no_server_are_told_apart(pair: VpnPair, tmp_path: Path) -> None:
    with pytest.raises(AccountNotFound, match="'nobody' is not connected"):
        adapter(pair, tmp_path).disconnect("nobody")
    with pytest.raises(IntegrationAuthFailed, match="refused the password"):
        adapter(pair, tmp_path, password="wrong").check()
    with pytest.raises(IntegrationAuthFailed, match="asks for a password"):
        adapter(pair, tmp_path, password=None).check()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{sock.getsockname()[1]}"
    with pytest.raises(IntegrationUnreachable, match="did not answer"):
        OpenVPN(OpenVPNConfig(management=closed, timeout_s=2)).check()


def test_a_silent_management_port_times_out_quickly() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(listener.accept()[0]), daemon=True).start()
    started = time.monotonic()
    with pytest.raises(IntegrationUnreachable, match=r"within 0.5 s"):
        OpenVPN(OpenVPNConfig(management=f"127.0.0.1:{listener.getsockname()[1]}", timeout_s=0.5)).check()
    assert time.monotonic() - started < 3
    listener.close()
    for sock in held:
        sock.close()


def test_status_columns_are_read_by_their_header_names() -> None:
    lines = ["HEADER\tCLIENT_LIST\tCommon Name\tReal Address\tBytes Received\tBytes Sent\t"
             "Connected Since (time_t)",
             "CLIENT_LIST\tbob\t203.0.113.9:5544\t100\t200\t1700000000",
             "GLOBAL_STATS\tMax bcast/mcast queue length\t0"]
    (session,) = parse_status(lines)
    assert (session.common_name, session.bytes_received, session.bytes_sent) == ("bob", 100, 200)
    assert session.as_json()["from_address"] == "203.0.113.9" and session.as_json()["from_port"] == 5544
