"""A real OpenVPN 2.6 server and client on loopback (UDP, ``peer-fingerprint``), the server's management
interface on a free TCP port with a password, for the site agent's OpenVPN adapter.

A multi-client server (``server``: what ``status 3`` CLIENT_LIST and ``kill CN`` need) refuses
``dev null``, so both ends open a tun device but leave it unconfigured (``ifconfig-noexec``,
``route-noexec``): the machine's addresses and routes are untouched. Needs ``/dev/net/tun``.

Certificates are self-signed and made here with ``cryptography``; ``peer-fingerprint`` pins them on
both sides, so no CA is involved. Each process runs in its own process group and is ended by pid.
"""

from __future__ import annotations

import datetime
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

OPENVPN = shutil.which("openvpn") or ("/usr/sbin/openvpn" if os.path.exists("/usr/sbin/openvpn") else None)
CLIENT_CN = "alice.smith"
PASSWORD = "mgmt-pass-0123"


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _self_signed(folder: Path, name: str) -> str:
    """Write ``name.pem``/``name.key``; return the certificate's SHA-256 fingerprint as OpenVPN prints it."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    (folder / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / f"{name}.key").touch(mode=0o600)
    (folder / f"{name}.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                           serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))
    return ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))


@dataclass
class VpnPair:
    folder: Path
    management: str
    server: subprocess.Popen[bytes]
    client: subprocess.Popen[bytes]

    def log(self, who: str) -> str:
        return (self.folder / f"{who}.log").read_text(errors="replace")


def _start(folder: Path, who: str, config: str) -> subprocess.Popen[bytes]:
    (folder / f"{who}.conf").write_text(config)
    log = open(folder / f"{who}.log", "wb")  # noqa: SIM115 - the child keeps writing to it
    try:
        return subprocess.Popen([OPENVPN or "openvpn", "--config", str(folder / f"{who}.conf")], cwd=folder,
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    finally:
        log.close()


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def vpn_pair(folder: Path) -> Iterator[VpnPair]:
    """Start the pair and wait until the client is connected (``Initialization Sequence Completed``)."""
    server_fp = _self_signed(folder, "server")
    client_fp = _self_signed(folder, CLIENT_CN)
    (folder / "mgmt.pw").write_text(PASSWORD + "\n")
    vpn_port, mgmt_port = _free_port(socket.SOCK_DGRAM), _free_port(socket.SOCK_STREAM)
    server = _start(folder, "server", f"""
dev tun
ifconfig-noexec
route-noexec
proto udp4
local 127.0.0.1
port {vpn_port}
server 10.199.0.0 255.255.255.0
topology subnet
dh none
cert server.pem
key server.key
peer-fingerprint {client_fp}
management 127.0.0.1 {mgmt_port} mgmt.pw
keepalive 1 4
verb 3
""")
    client = _start(folder, "client", f"""
client
dev tun
ifconfig-noexec
route-noexec
proto udp4
remote 127.0.0.1 {vpn_port}
nobind
cert {CLIENT_CN}.pem
key {CLIENT_CN}.key
peer-fingerprint {server_fp}
connect-retry 1 1
verb 3
""")
    pair = VpnPair(folder, f"127.0.0.1:{mgmt_port}", server, client)
    try:
        deadline = time.monotonic() + 15
        while "Initialization Sequence Completed" not in pair.log("client"):
            if time.monotonic() > deadline or server.poll() is not None or client.poll() is not None:
                raise RuntimeError(f"the VPN pair did not connect:\n--- server\n{pair.log('server')[-3000:]}"
                                   f"\n--- client\n{pair.log('client')[-3000:]}")
            time.sleep(0.1)
        yield pair
    finally:
        _stop(client)
        _stop(server)
