"""A real, private CUPS scheduler on a free loopback port, for the site agent's print-server adapter.

Its own ServerRoot, spool, cache, state and logs in a temporary folder (``/etc/cups`` is not
touched); ``FileDevice Yes`` so queues can print to ``file:///dev/null``. The policy lets
127.0.0.1 administer the server without a password (what a site grants its print-management host),
and ``Listen`` is on loopback only. Started in its own process group and ended by pid.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CUPSD = shutil.which("cupsd") or ("/usr/sbin/cupsd" if os.path.exists("/usr/sbin/cupsd") else None)
CLIENTS = ("lpstat", "lpadmin", "lp", "cancel", "cupsenable", "cupsdisable", "cupsaccept")
MISSING = [name for name in CLIENTS if shutil.which(name) is None and not os.path.exists(f"/usr/sbin/{name}")]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class CupsServer:
    folder: Path
    server: str

    def run(self, *argv: str) -> str:
        """A CUPS client command against this server (``-h`` server, as an administrator would)."""
        program = shutil.which(argv[0]) or f"/usr/sbin/{argv[0]}"
        done = subprocess.run([program, "-h", self.server, *argv[1:]], capture_output=True, text=True, timeout=20,
                              check=False, env={**os.environ, "LC_ALL": "C"})
        assert done.returncode == 0, f"{argv}: {done.stderr}"
        return done.stdout

    def add_queue(self, name: str) -> None:
        self.run("lpadmin", "-p", name, "-E", "-v", "file:///dev/null")

    def submit(self, queue: str, count: int) -> None:
        for i in range(count):
            self.run("lp", "-d", queue, "-t", f"report-{i}", "/etc/hostname")


def cups_server(folder: Path) -> Iterator[CupsServer]:
    port = _free_port()
    for sub in ("spool", "spool/tmp", "cache", "state", "log", "ppd", "ssl"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for sub in ("spool", "spool/tmp", "cache", "state", "log"):
        shutil.chown(folder / sub, group="lp")
        (folder / sub).chmod(0o770)
    (folder / "cupsd.conf").write_text(f"""
Listen 127.0.0.1:{port}
Browsing No
LogLevel warn
WebInterface No
DefaultAuthType None
<Location />
  Order allow,deny
  Allow from 127.0.0.1
</Location>
<Policy default>
  <Limit All>
    Order deny,allow
    Deny from all
    Allow from 127.0.0.1
  </Limit>
</Policy>
""")
    (folder / "cups-files.conf").write_text(f"""
ServerRoot {folder}
RequestRoot {folder}/spool
TempDir {folder}/spool/tmp
CacheDir {folder}/cache
StateDir {folder}/state
ErrorLog {folder}/log/error_log
AccessLog {folder}/log/access_log
PageLog {folder}/log/page_log
FileDevice Yes
User lp
Group lp
SystemGroup root
""")
    process = subprocess.Popen([CUPSD or "cupsd", "-f", "-c", str(folder / "cupsd.conf"),
                                "-s", str(folder / "cups-files.conf")], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log = folder / "log" / "error_log"
                    raise RuntimeError(f"cupsd did not start: {process.stderr.read() if process.stderr else ''!r} "
                                       f"{log.read_text() if log.exists() else ''}") from None
                time.sleep(0.05)
        yield CupsServer(folder, f"127.0.0.1:{port}")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        if process.stderr is not None:
            process.stderr.close()
