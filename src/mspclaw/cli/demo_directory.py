"""A throwaway Samba Active Directory domain controller for ``mspclaw demo``.

The demo's account tickets (a lockout, a password reset) need a real directory. When this machine
can run one (Samba installed, running as root, LDAPS port 636 free) :class:`DemoDirectory` provisions
the domain ``ACME.LOCAL`` into the demo's temporary folder, starts ``samba -i`` on loopback in its
own process group, sets the lockout threshold to 3 and creates the demo's users: one who has just
locked themselves out with three wrong passwords, one who forgot their password, and a service
account with the helpdesk rights delegated on the users (never a Domain Admin). When it cannot,
:attr:`DemoDirectory.reason` says why, in one plain sentence.

The DC's ports are fixed, so one DC runs per machine: the demo takes the same lock file as the test
fixture (``tests/site/samba.py``), and waits for a test run holding it to finish.
The recipe is the one in ``../shared/reference/test-services.md`` (Samba section).
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
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

SAMBA = Path("/usr/sbin/samba")
SAMBA_ENV = "MSPCLAW_DEMO_SAMBA"
"""Environment variable naming another ``samba`` binary (``samba-tool`` is looked for beside it, then on PATH)."""
LOCK_FILE = Path(tempfile.gettempdir()) / "mspclaw-samba-dc.lock"
FAILURE_LOG = Path(tempfile.gettempdir()) / "mspclaw-demo-samba.log"
LOCK_WAIT_S = 45.0
"""How long the demo waits for a DC another run holds (a whole test session holds it for minutes)."""
REALM = "ACME.LOCAL"
DOMAIN = "ACME"
BASE_DN = "DC=acme,DC=local"
TLS_NAME = "DC1.acme.local"
USERS = f"CN=Users,{BASE_DN}"
MAIL_DOMAIN = "acme-dental.example"

USER_CLASS = "bf967aba-0de6-11d0-a285-00aa003049e2"
DELEGATED = (  # the rights a helpdesk delegation gives on users: reset password, lockoutTime, uAC, pwdLastSet
    "CR;00299570-246d-11d0-a768-00aa006e0529", "RPWP;28630ebf-41d5-11d1-a9c1-0000f80367c1",
    "RPWP;bf967a68-0de6-11d0-a285-00aa003049e2", "RPWP;bf967a0a-0de6-11d0-a285-00aa003049e2",
)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """ldap3 2.9.1 touches pyasn1's deprecated maps and ``ssl.match_hostname`` (deprecated in 3.11)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        yield


@dataclass(frozen=True)
class DemoUser:
    sam: str
    password: str = ""  # their own password, known to the demo so it can sign in as them
    name: str = ""

    @property
    def mail(self) -> str:
        return f"{self.sam}@{MAIL_DOMAIN}"


@dataclass(frozen=True)
class RunningDirectory:
    """What a site agent needs to reach the DC, and the demo users."""

    url: str
    base_dn: str
    tls_name: str
    ca_file: Path
    service_user: str
    service_password: str
    locked_out: DemoUser
    forgot_password: DemoUser


class DemoDirectory:
    """Start with :meth:`start` (``None`` and :attr:`reason` when the DC cannot run); always :meth:`stop`."""

    def __init__(self, root: Path, *, samba: Path | None = None, say: Callable[[str], None] = print,
                 lock_wait_s: float = LOCK_WAIT_S) -> None:
        env = os.environ.get(SAMBA_ENV)
        self.root = root
        self.samba = samba or (Path(env) if env else SAMBA)
        self.reason = ""
        self.hint = ""
        """What to do about :attr:`reason`, e.g. install Samba."""
        self._say, self._lock_wait = say, lock_wait_s
        self._lock: IO[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._admin = ("", "")
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        """Stop waiting for the machine's DC lock (the demo is ending); :meth:`start` then returns ``None``."""
        self._cancelled.set()

    # -- start and stop -------------------------------------------------------------------------
    def start(self) -> RunningDirectory | None:
        try:
            return self._start()
        except _Unavailable as exc:
            self.reason, self.hint = str(exc), exc.hint
        except Exception as exc:  # anything else: say it, and let the rest of the demo run
            self.reason = f"the demo's domain controller failed: {exc}"
            self.hint = f"run the demo with --keep to look at the DC's files in {self.root}"
        self.stop()
        return None

    def _start(self) -> RunningDirectory:
        if not self.samba.exists():
            raise _Unavailable(f"Samba is not installed ({self.samba} is missing)")
        tool = self.samba.parent / "samba-tool"
        tool_path = str(tool) if tool.exists() else shutil.which("samba-tool")
        if tool_path is None:
            raise _Unavailable("samba-tool is not installed (package samba-common-bin)")
        try:
            with _quiet():
                import ldap3  # noqa: F401
        except ImportError:
            raise _Unavailable("ldap3 is not installed", "pip install 'mspclaw[site]' to see them") from None
        if os.geteuid() != 0:
            raise _Unavailable("a Samba domain controller needs root to listen on its ports, and this is not root",
                               "run `make demo` as root to see them")
        self._take_lock()
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "log").mkdir(exist_ok=True)
        (self.root / "run").mkdir(exist_ok=True)
        admin_password = "Adm1n-" + secrets.token_hex(8)
        self._admin = (f"Administrator@{REALM.lower()}", admin_password)
        provision = subprocess.run(
            [tool_path, "domain", "provision", "--use-rfc2307", f"--realm={REALM}", f"--domain={DOMAIN}",
             "--server-role=dc", "--dns-backend=NONE", "--host-name=dc1", f"--adminpass={admin_password}",
             f"--targetdir={self.root}", "--option=interfaces=lo", "--option=bind interfaces only=yes",
             f"--option=log file={self.root}/log/%m.log", f"--option=pid directory={self.root}/run"],
            capture_output=True, timeout=180, check=False)
        if provision.returncode != 0:
            FAILURE_LOG.write_bytes(provision.stdout + provision.stderr)
            raise _Unavailable(f"provisioning the demo domain failed (samba-tool exit {provision.returncode}); "
                               f"its output is in {FAILURE_LOG}", "")
        conf = self.root / "etc" / "smb.conf"
        with (self.root / "log" / "samba.out").open("wb") as out:
            self._proc = subprocess.Popen([str(self.samba), "-s", str(conf), "-i"], stdout=out,
                                          stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ldaps(time.monotonic() + 60)
        settings = subprocess.run([tool_path, "domain", "passwordsettings", "set", "-s", str(conf),
                                   "--account-lockout-threshold=3"], capture_output=True, timeout=60, check=False)
        if settings.returncode != 0:
            raise RuntimeError(f"setting the lockout threshold failed: {settings.stderr.decode(errors='replace')}")
        return self._populate(tool_path)

    def stop(self) -> None:
        """Stop the DC (its process group and the samba-dcerpcd/rpcd_* it spawned) and release the lock."""
        proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
            deadline = time.monotonic() + 10
            while (pids := self._stragglers(proc.pid)) and time.monotonic() < deadline:
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
                time.sleep(0.1)
        lock, self._lock = self._lock, None
        if lock is not None:
            fcntl.flock(lock, fcntl.LOCK_UN)
            lock.close()

    def _take_lock(self) -> None:
        handle = LOCK_FILE.open("a")
        deadline = time.monotonic() + self._lock_wait
        told = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if self._cancelled.is_set():
                    handle.close()
                    raise _Unavailable("the demo stopped before the domain controller could start", "") from None
                if time.monotonic() > deadline:
                    handle.close()
                    raise _Unavailable(f"another run (a test session or a demo) is using this machine's Samba DC: "
                                       f"it has held {LOCK_FILE} for {self._lock_wait:.0f} s and the DC's ports "
                                       "are fixed", "run the demo again when that run is done to see them") from None
                if not told:
                    self._say(f"waiting for another run's Samba DC to finish (it holds {LOCK_FILE}; "
                              "the DC's ports are fixed, so one runs at a time)")
                    told = True
                time.sleep(0.5)
        self._lock = handle
        port_deadline = time.monotonic() + 15  # a DC that is still shutting down frees it in seconds
        while _port_busy(636):
            if time.monotonic() > port_deadline:
                raise _Unavailable("127.0.0.1:636 (LDAPS) is taken by another LDAP server",
                                   "stop that server to see them")
            time.sleep(0.5)

    def _stragglers(self, pgid: int) -> list[int]:
        """samba-dcerpcd and rpcd_* start their own session: find them by our folder in their command line."""
        marker = str(self.root).encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            try:
                if os.getpgid(pid) == pgid or marker in (entry / "cmdline").read_bytes():
                    found.append(pid)
            except OSError:
                continue
        return found

    def _wait_ldaps(self, deadline: float) -> None:
        last = ""
        ca = self.root / "private" / "tls" / "ca.pem"
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                shutil.copyfile(self.root / "log" / "samba.out", FAILURE_LOG)
                raise _Unavailable(f"samba exited with code {self._proc.returncode} while starting; its output is "
                                   f"in {FAILURE_LOG}", "")
            try:
                if not ca.exists():
                    raise OSError("no CA certificate yet")
                self._connect().unbind()
                return
            except Exception as exc:
                last = str(exc)
                time.sleep(0.3)
        raise _Unavailable(f"the demo DC's LDAPS on 127.0.0.1:636 did not answer within 60 s ({last})",
                           f"run the demo with --keep to read its log in {self.root / 'log'}")

    # -- LDAP -----------------------------------------------------------------------------------
    def _server(self) -> Any:
        with _quiet():
            from ldap3 import Server, Tls
        tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(self.root / "private" / "tls" / "ca.pem"),
                  valid_names=[TLS_NAME])
        return Server("127.0.0.1", port=636, use_ssl=True, tls=tls, connect_timeout=5)

    def _connect(self) -> Any:
        with _quiet():
            from ldap3 import SIMPLE, Connection

            return Connection(self._server(), user=self._admin[0], password=self._admin[1], authentication=SIMPLE,
                              auto_bind=True, receive_timeout=10, raise_exceptions=True)

    def bind(self, user: str, password: str) -> str:
        """Sign in as ``user`` over LDAPS: ``""`` when it works, else AD's data code ("52e" wrong password,
        "773" must change password, "775" locked out)."""
        with _quiet():
            from ldap3 import SIMPLE, Connection

            conn = Connection(self._server(), user=f"{user}@{REALM.lower()}", password=password,
                              authentication=SIMPLE, receive_timeout=10)
            try:
                if conn.bind():
                    return ""
                message = str(conn.result.get("message", ""))
            finally:
                conn.unbind()
        at = message.find("data ")
        return message[at + 5:].split(",")[0].strip() if at >= 0 else message or "refused"

    def _add_user(self, conn: Any, user: DemoUser) -> str:
        dn = f"CN={user.name or user.sam},{USERS}"
        given, _, sn = (user.name or user.sam).partition(" ")
        ok = conn.add(dn, ["top", "person", "organizationalPerson", "user"], {
            "sAMAccountName": user.sam, "userPrincipalName": f"{user.sam}@{REALM.lower()}", "givenName": given,
            "sn": sn or given, "displayName": user.name or user.sam, "mail": user.mail,
            "unicodePwd": f'"{user.password}"'.encode("utf-16-le"), "userAccountControl": "512"})
        if not ok:
            raise RuntimeError(f"creating {user.sam} failed: {conn.result}")
        return dn

    def _populate(self, tool: str) -> RunningDirectory:
        def password() -> str:
            return "Pw-" + secrets.token_urlsafe(10) + "9a"

        locked = DemoUser("sam.novak", password(), "Sam Novak")
        forgot = DemoUser("lena.fischer", password(), "Lena Fischer")
        service = DemoUser("svc-mspclaw", "Svc-" + secrets.token_urlsafe(12) + "7b", "MSPclaw helpdesk service")
        with _quiet():
            from ldap3.protocol.formatters.formatters import format_sid
        conn = self._connect()
        try:
            for user in (locked, forgot):
                self._add_user(conn, user)
            service_dn = self._add_user(conn, service)
            conn.search(service_dn, "(objectClass=*)", "BASE", attributes=["objectSid"])
            sid = format_sid(conn.response[0]["raw_attributes"]["objectSid"][0])
        finally:
            conn.unbind()
        sddl = "".join(f"(OA;CI;{right};{USER_CLASS};{sid})" for right in DELEGATED)
        acl = subprocess.run([tool, "dsacl", "set", "-H", str(self.root / "private" / "sam.ldb"),
                              f"--objectdn={USERS}", f"--sddl={sddl}"], capture_output=True, timeout=60, check=False)
        if acl.returncode != 0:
            raise RuntimeError(f"delegating the helpdesk rights failed: {acl.stderr.decode(errors='replace')}")
        for _ in range(3):
            self.bind(locked.sam, "not-my-password-1")
        if (code := self.bind(locked.sam, locked.password)) != "775":
            raise RuntimeError(f"{locked.sam} should be locked out after 3 wrong passwords, the DC says {code!r}")
        return RunningDirectory(url="ldaps://127.0.0.1:636", base_dn=BASE_DN, tls_name=TLS_NAME,
                                ca_file=self.root / "private" / "tls" / "ca.pem",
                                service_user=f"{service.sam}@{REALM.lower()}", service_password=service.password,
                                locked_out=locked, forgot_password=forgot)


INSTALL_HINT = "install Samba (`make demo` does it as root with apt) to see them"


class _Unavailable(Exception):
    """The DC cannot run here; the message is the plain reason, ``hint`` what to do about it."""

    def __init__(self, reason: str, hint: str = INSTALL_HINT) -> None:
        super().__init__(reason)
        self.hint = hint


def _port_busy(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0
