"""A real Samba Active Directory domain controller on loopback, one per test session.

The root ``tests/conftest.py`` loads this module as a plugin, so every test may ask for ``samba_dc``
and ``ad_user``; no module may import them into its own namespace (a second definition of the
session fixture would wait for the first one's DC forever).

``samba_dc`` provisions the throwaway domain ``TEST.LOCAL`` (DC ``DC1.test.local``) into a private
temporary folder, starts ``samba -i`` in its own process group, waits for LDAPS on 127.0.0.1:636,
sets the account lockout threshold to 3 and yields a :class:`SambaDC`. The ports are fixed (88, 389,
636, 445 ...), so there is exactly one instance per session. It is skipped when ``/usr/sbin/samba``
is missing or the tests do not run as root.

Most tests run the adapter as ``Administrator`` (it creates users, moves them and changes groups);
:func:`make_service_account` makes a plain account with the helpdesk rights delegated on an OU
(``samba-tool dsacl``), to prove the adapter works without admin rights and names a missing one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

with warnings.catch_warnings():  # ldap3 2.9.1 touches pyasn1's deprecated tagMap/typeMap on import
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"ldap3\..*|pyasn1\..*")
    from ldap3 import MODIFY_ADD, MODIFY_REPLACE, SIMPLE, SUBTREE, Connection, Server, Tls
    from ldap3.core.exceptions import LDAPException
    from ldap3.protocol.formatters.formatters import format_sid
    from ldap3.utils.conv import escape_filter_chars

SAMBA = Path("/usr/sbin/samba")
REALM = "TEST.LOCAL"
BASE_DN = "DC=test,DC=local"
TLS_NAME = "DC1.test.local"
LOCK_FILE = Path(tempfile.gettempdir()) / "mspclaw-samba-dc.lock"
USERS = f"CN=Users,{BASE_DN}"


def quiet_tls() -> contextlib.AbstractContextManager[None]:
    """ldap3 2.9.1 verifies host names with ``ssl.match_hostname``, deprecated in Python 3.11."""
    cm = warnings.catch_warnings()

    @contextlib.contextmanager
    def scope() -> Iterator[None]:
        with cm:
            warnings.filterwarnings("ignore", r"ssl\.match_hostname\(\) is deprecated", DeprecationWarning)
            yield

    return scope()


@dataclass(frozen=True)
class SambaDC:
    url: str
    base_dn: str
    admin_user: str
    admin_password: str
    ca_file: Path
    tls_name: str
    root: Path

    def connect(self, user: str | None = None, password: str | None = None) -> Connection:
        """An LDAPS connection bound as ``user`` (default: Administrator); raises on failure."""
        tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(self.ca_file), valid_names=[self.tls_name])
        server = Server("127.0.0.1", port=636, use_ssl=True, tls=tls, connect_timeout=5)
        with quiet_tls():
            return Connection(server, user=user or self.admin_user, password=password or self.admin_password,
                              authentication=SIMPLE, auto_bind=True, receive_timeout=10, raise_exceptions=True)


def _stragglers(proc: subprocess.Popen[bytes], root: Path) -> list[int]:
    """Processes of the DC still alive: its process group, and samba-dcerpcd/rpcd_* (own session) by ``root``."""
    marker = str(root).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            if os.getpgid(pid) == proc.pid or marker in (entry / "cmdline").read_bytes():
                found.append(pid)
        except OSError:
            continue
    return found


def _stop(proc: subprocess.Popen[bytes], root: Path) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
    deadline = time.monotonic() + 10
    while (pids := _stragglers(proc, root)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


def _wait_ldaps(dc: SambaDC, proc: subprocess.Popen[bytes], deadline: float) -> None:
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"samba exited with {proc.returncode}; see {dc.root}/log")
        try:
            context = ssl.create_default_context(cafile=str(dc.ca_file)) if dc.ca_file.exists() else None
            if context is None:
                raise OSError("no CA certificate yet")
            context.check_hostname = False
            with socket.create_connection(("127.0.0.1", 636), timeout=1) as raw, context.wrap_socket(raw):
                pass
            dc.connect().unbind()
            return
        except (OSError, LDAPException) as exc:
            last = str(exc)
            time.sleep(0.3)
    raise RuntimeError(f"LDAPS on 127.0.0.1:636 did not answer in time: {last}")


def _port_busy(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def _machine_lock(wait_s: float) -> Iterator[None]:
    """One DC per machine: test sessions running at the same time take turns (the ports are fixed)."""
    with LOCK_FILE.open("a") as handle:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"another test session has held the Samba DC ({LOCK_FILE}) for {wait_s:.0f} s")
                time.sleep(0.5)
        try:
            while _port_busy(636):  # a DC started without the lock (or still shutting down)
                if time.monotonic() > deadline:
                    pytest.fail("127.0.0.1:636 is taken by another LDAP server; stop it and run the tests again")
                time.sleep(0.5)
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def samba_dc() -> Iterator[SambaDC]:
    if not SAMBA.exists():
        pytest.skip("Samba is not installed (/usr/sbin/samba missing): run `make services`")
    if os.geteuid() != 0:
        pytest.skip("the Samba AD DC fixture needs root")
    with _machine_lock(wait_s=90):
        yield from _run_dc()


def _run_dc() -> Iterator[SambaDC]:
    root = Path(tempfile.mkdtemp(prefix="mspclaw-samba-"))
    password = "Adm1n-" + secrets.token_hex(6)
    (root / "log").mkdir()
    (root / "run").mkdir()
    subprocess.run(
        ["samba-tool", "domain", "provision", "--use-rfc2307", f"--realm={REALM}", "--domain=TEST",
         "--server-role=dc", "--dns-backend=NONE", "--host-name=dc1", f"--adminpass={password}",
         f"--targetdir={root}", "--option=interfaces=lo", "--option=bind interfaces only=yes",
         f"--option=log file={root}/log/%m.log", f"--option=pid directory={root}/run"],
        check=True, capture_output=True, timeout=120,
    )
    conf = root / "etc" / "smb.conf"
    proc = subprocess.Popen([str(SAMBA), "-s", str(conf), "-i"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    dc = SambaDC(url="ldaps://127.0.0.1:636", base_dn=BASE_DN, admin_user=f"Administrator@{REALM.lower()}",
                 admin_password=password, ca_file=root / "private" / "tls" / "ca.pem", tls_name=TLS_NAME, root=root)
    try:
        _wait_ldaps(dc, proc, time.monotonic() + 60)
        subprocess.run(["samba-tool", "domain", "passwordsettings", "set", "-s", str(conf),
                        "--account-lockout-threshold=3"], check=True, capture_output=True, timeout=60)
        yield dc
    finally:
        _stop(proc, root)
        shutil.rmtree(root, ignore_errors=True)


def add_user(dc: SambaDC, sam: str, password: str, *, groups: tuple[str, ...] = (), manager: str | None = None,
             given: str | None = None, sn: str | None = None, mail: str | None = None,
             container: str = USERS, admin_count: bool = False) -> str:
    """Create an enabled user with ``password`` (no change required); returns its DN."""
    dn = f"CN={sam},{container}"
    attrs: dict[str, object] = {
        "sAMAccountName": sam, "userPrincipalName": f"{sam}@test.local",
        "givenName": given or sam.split(".")[0], "sn": sn or sam.split(".")[-1], "displayName": sam,
        "unicodePwd": f'"{password}"'.encode("utf-16-le"), "userAccountControl": "512",
    }
    if mail:
        attrs["mail"] = mail
    if manager:
        attrs["manager"] = manager
    conn = dc.connect()
    try:
        conn.add(dn, ["top", "person", "organizationalPerson", "user"], attrs)
        for group in groups:
            conn.modify(group_dn(dc, group, conn), {"member": [(MODIFY_ADD, [dn])]})
        if admin_count:
            conn.modify(dn, {"adminCount": [(MODIFY_REPLACE, ["1"])]})
    finally:
        conn.unbind()
    return dn


def add_ou(dc: SambaDC, name: str) -> str:
    dn = f"OU={name},{dc.base_dn}"
    conn = dc.connect()
    try:
        conn.search(dc.base_dn, f"(distinguishedName={escape_filter_chars(dn)})", SUBTREE, attributes=["cn"])
        if not conn.entries:
            conn.add(dn, ["top", "organizationalUnit"])
    finally:
        conn.unbind()
    return dn


def add_group(dc: SambaDC, name: str) -> str:
    dn = f"CN={name},{USERS}"
    conn = dc.connect()
    try:
        conn.add(dn, ["top", "group"], {"sAMAccountName": name})
    finally:
        conn.unbind()
    return dn


def group_dn(dc: SambaDC, name: str, conn: Connection | None = None) -> str:
    own = conn is None
    conn = conn or dc.connect()
    try:
        conn.search(dc.base_dn, f"(&(objectClass=group)(cn={escape_filter_chars(name)}))", SUBTREE, attributes=["cn"])
        return str(conn.entries[0].entry_dn)
    finally:
        if own:
            conn.unbind()


def attribute(dc: SambaDC, dn: str, name: str) -> list[str]:
    """The values of one attribute of ``dn`` as strings (read as Administrator)."""
    conn = dc.connect()
    try:
        conn.search(dn, "(objectClass=*)", "BASE", attributes=[name])
        return [v.decode("utf-8", "replace") for v in conn.response[0]["raw_attributes"].get(name, [])]
    finally:
        conn.unbind()


def user_bind(dc: SambaDC, user: str, password: str) -> tuple[bool, str]:
    """Bind as ``user`` over LDAPS: ``(True, "")`` or ``(False, data code)``, e.g. "52e" bad password,
    "533" disabled, "773" must change password, "775" locked out."""
    tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(dc.ca_file), valid_names=[dc.tls_name])
    server = Server("127.0.0.1", port=636, use_ssl=True, tls=tls, connect_timeout=5)
    principal = user if ("@" in user or "=" in user) else f"{user}@test.local"
    conn = Connection(server, user=principal, password=password, authentication=SIMPLE, receive_timeout=10)
    try:
        with quiet_tls():
            ok = conn.bind()
        if ok:
            return True, ""
        message = str(conn.result.get("message", ""))
        marker = "data "
        at = message.find(marker)
        return False, message[at + len(marker):].split(",")[0].strip() if at >= 0 else message
    finally:
        conn.unbind()


USER_CLASS = "bf967aba-0de6-11d0-a285-00aa003049e2"
DELEGATED = {  # what the adapter needs on user objects to run the L1 tools
    "CR;00299570-246d-11d0-a768-00aa006e0529": "Reset password (User-Force-Change-Password)",
    "RPWP;bf967a0a-0de6-11d0-a285-00aa003049e2": "read/write pwdLastSet",
    "RPWP;28630ebf-41d5-11d1-a9c1-0000f80367c1": "read/write lockoutTime",
    "RPWP;bf967a68-0de6-11d0-a285-00aa003049e2": "read/write userAccountControl",
}


def make_service_account(dc: SambaDC, container: str = USERS) -> tuple[str, str]:
    """A new non-admin account with the rights a helpdesk delegation gives on ``container``'s users:
    reset password, unlock (lockoutTime), enable/disable (userAccountControl), force a change
    (pwdLastSet). It can neither create users nor change group membership. Returns ``(upn, password)``."""
    sam = f"svc-{secrets.token_hex(3)}"
    password = "Svc-" + secrets.token_urlsafe(12) + "7b"
    dn = add_user(dc, sam, password)
    conn = dc.connect()
    try:
        conn.search(dn, "(objectClass=*)", "BASE", attributes=["objectSid"])
        sid = format_sid(conn.response[0]["raw_attributes"]["objectSid"][0])
    finally:
        conn.unbind()
    sddl = "".join(f"(OA;CI;{right};{USER_CLASS};{sid})" for right in DELEGATED)
    subprocess.run(["samba-tool", "dsacl", "set", "-H", str(dc.root / "private" / "sam.ldb"),
                    f"--objectdn={container}", f"--sddl={sddl}"], check=True, capture_output=True, timeout=60)
    return f"{sam}@test.local", password


@dataclass(frozen=True)
class DirUser:
    sam: str
    password: str
    dn: str
    mail: str

    @property
    def upn(self) -> str:
        return f"{self.sam}@test.local"


@pytest.fixture
def ad_user(samba_dc: SambaDC) -> DirUser:
    """A fresh enabled user with a unique name and a known password, for one test."""
    sam = f"u{secrets.token_hex(4)}"
    password = "Pw-" + secrets.token_urlsafe(9) + "9a"
    mail = f"{sam}@example.com"
    dn = add_user(samba_dc, sam, password, mail=mail)
    return DirUser(sam=sam, password=password, dn=dn, mail=mail)
