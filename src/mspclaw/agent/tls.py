"""How the agent checks the server's certificate: the system's trust store, or a CA it pinned.

An agent talking to ``https://``/``wss://`` verifies the server's certificate chain and host name.
By default against the operating system's trust store (a certificate from a public CA needs
nothing). For a self-signed or private CA, ``mspclaw agent --ca-file ca.pem`` names the CA: it is
copied into the state directory (``server_ca.pem``, 0600) once enrollment or the connection
succeeded with it, and from then on the agent trusts that CA and nothing else for its server, on
every run, without the option.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from mspclaw.errors import ConfigError

PINNED_CA_FILE = "server_ca.pem"
MAX_CA_BYTES = 1024 * 1024


def client_context(ca_file: Path | None = None) -> ssl.SSLContext:
    """A client context that verifies the server: against ``ca_file`` only, or the system trust store."""
    if ca_file is None:
        return ssl.create_default_context()
    try:
        if ca_file.stat().st_size > MAX_CA_BYTES:
            raise ConfigError(f"{ca_file} is larger than {MAX_CA_BYTES} bytes: not a CA certificate file")
        return ssl.create_default_context(cafile=str(ca_file))
    except FileNotFoundError:
        raise ConfigError(f"the CA file {ca_file} (--ca-file) does not exist") from None
    except ssl.SSLError as exc:
        raise ConfigError(f"{ca_file} (--ca-file) holds no PEM CA certificate: {exc.reason or exc}") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read the CA file {ca_file} (--ca-file): {exc.strerror}") from exc


def pinned_ca(state_dir: Path) -> Path | None:
    """The CA pinned in the state directory, if any."""
    path = state_dir / PINNED_CA_FILE
    return path if path.is_file() else None


def pin_ca(state_dir: Path, ca_file: Path) -> Path:
    """Copy ``ca_file`` into the state directory (0600, replaced atomically) as the CA to trust from now on."""
    target = state_dir / PINNED_CA_FILE
    if ca_file.resolve() == target.resolve():
        return target
    data = ca_file.read_bytes()[:MAX_CA_BYTES]
    tmp = target.with_name(f".{PINNED_CA_FILE}.tmp")
    tmp.unlink(missing_ok=True)
    with tmp.open("xb") as fh:
        tmp.chmod(0o600)
        fh.write(data)
    tmp.replace(target)
    return target


def verify_failure(exc: ssl.SSLCertVerificationError, where: str) -> str:
    """What to tell the user when the server's certificate did not verify."""
    reason = exc.verify_message or exc.reason or str(exc)
    return (f"the TLS certificate of {where} did not verify ({reason}): if the server uses a self-signed or "
            "private CA, give the agent that CA with --ca-file; otherwise check the server's certificate and name")
