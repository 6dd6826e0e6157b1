"""HTTPS on the API port, WSS on the agent port, certificates reloaded on change, agents pinning a CA."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import uvicorn
from tests.conftest import free_port, listening_socket
from tests.ops_security.certs import CA, make_ca
from typer.testing import CliRunner

from mspclaw.agent.daemon import AgentDaemon
from mspclaw.agent.enroll import EnrollRequest, enroll
from mspclaw.agent.executor import Executor, offered_tools
from mspclaw.agent.journal import Journal
from mspclaw.agent.tls import PINNED_CA_FILE, client_context
from mspclaw.agent.tools import ToolContext, tool_registry
from mspclaw.api.server import start_agent_listener, uvicorn_config
from mspclaw.api.tls import ListenOptions, ReloadingTLS
from mspclaw.cli import config
from mspclaw.cli.app import app
from mspclaw.errors import ConfigError
from mspclaw.settings import Settings
from mspclaw.wiring import Services, build

pytestmark = pytest.mark.anyio

KEY = "test_tls_api_key"
HELLO = {"hostname": "pc-01", "os": "linux", "os_version": "12", "agent_version": "0.1.0", "tools": ["disk_usage"]}


@dataclass
class Served:
    url: str
    agent_port: int
    services: Services
    listen: ListenOptions


@contextlib.asynccontextmanager
async def serving(tmp: Path, **overrides: Any) -> AsyncIterator[Served]:
    """The real app under uvicorn and the agent listener, with the listen options the settings give."""
    sock = listening_socket()
    port = int(sock.getsockname()[1])
    scheme = "https" if overrides.get("tls_cert_file") else "http"
    settings = Settings(data_dir=tmp / "data", api_key=KEY, port=port, server_url=f"{scheme}://127.0.0.1:{port}",
                        **overrides)
    listen = ListenOptions.from_settings(settings)
    services = build(settings)
    listener = await start_agent_listener(services, host="127.0.0.1", port=0, ssl=listen.ssl_context)
    server = uvicorn.Server(uvicorn_config(services, host="127.0.0.1", port=port, log_level="warning",
                                           agent_port=listener.port, listen=listen))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            assert not task.done(), "server failed to start"
            await asyncio.sleep(0.02)
        yield Served(f"{scheme}://127.0.0.1:{port}", listener.port, services, listen)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)
        await listener.close()
        services.close()
        sock.close()


def api(served: Served, ca: CA | None) -> httpx.AsyncClient:
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(ca.path)) if ca else False
    return httpx.AsyncClient(base_url=served.url, headers={"Authorization": f"Bearer {KEY}"}, verify=verify,
                             timeout=30)


async def new_code(served: Served, ca: CA | None) -> str:
    async with api(served, ca) as http:
        client = (await http.post("/api/clients", json={"name": "Acme Dental"})).json()["id"]
        r = await http.post("/api/enrollments", json={"client": client})
        assert r.status_code == 201, r.text
        return str(r.json()["code"])


def peer_issuer(port: int, ca: CA) -> str:
    """The issuer's common name of the certificate the server at ``port`` presents, verified against ``ca``."""
    import socket

    ctx = ssl.create_default_context(cafile=str(ca.path))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        cert = tls.getpeercert()
    assert cert is not None
    issuer = cast("tuple[tuple[tuple[str, str], ...], ...]", cert["issuer"])  # relative names of (key, value) pairs
    return str(dict(item[0] for item in issuer)["commonName"])


async def test_https_api_and_an_agent_enrolled_and_connected_over_wss_with_a_pinned_ca(tmp_path: Path) -> None:
    ca = make_ca(tmp_path / "ca")
    cert, key = ca.issue(tmp_path / "ca")
    async with serving(tmp_path, tls_cert_file=cert, tls_key_file=key) as served:
        async with api(served, ca) as http:
            r = await http.get("/api/clients")
            assert r.status_code == 200
        code = await new_code(served, ca)
        state_dir = tmp_path / "agent-state"
        args = [sys.executable, "-m", "mspclaw", "agent", "--server", served.url, "--enroll", code,
                "--ca-file", str(ca.path), "--state-dir", str(state_dir), "--log-level", "warning"]
        proc = await asyncio.create_subprocess_exec(*args)
        try:
            agent_id = await online(served, proc)
            assert served.services.registry.agent(agent_id).client_id
            assert (state_dir / PINNED_CA_FILE).read_bytes() == ca.path.read_bytes()
            assert '"agent_url":"wss://127.0.0.1:' in (state_dir / "agent.json").read_text().replace(" ", "")
        finally:
            await stop(proc)
        # a later run needs no --ca-file: the pinned CA is used
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "mspclaw", "agent", "--server", served.url,
                                                    "--state-dir", str(state_dir), "--log-level", "warning")
        try:
            assert await online(served, proc) == agent_id
        finally:
            await stop(proc)


async def test_an_agent_without_a_ca_file_verifies_the_server_through_the_system_trust_store(tmp_path: Path) -> None:
    """The MSP's CA installed in the system's trust store (here OpenSSL's ``SSL_CERT_FILE``, which the system
    store reads first): the agent needs no ``--ca-file``, enrolls and connects over wss, and pins nothing."""
    ca = make_ca(tmp_path / "ca")
    cert, key = ca.issue(tmp_path / "ca")
    async with serving(tmp_path, tls_cert_file=cert, tls_key_file=key) as served:
        code = await new_code(served, ca)
        state_dir = tmp_path / "agent-state"
        env = {**os.environ, "SSL_CERT_FILE": str(ca.path)}
        env.pop("SSL_CERT_DIR", None)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mspclaw", "agent", "--server", served.url, "--enroll", code,
            "--state-dir", str(state_dir), "--log-level", "warning", env=env)
        try:
            assert await online(served, proc)
            assert not (state_dir / PINNED_CA_FILE).exists(), "the system store decides, nothing pinned"
        finally:
            await stop(proc)
        # the same agent with a system store that lacks the CA is refused: the store was what verified it
        env["SSL_CERT_FILE"] = str(make_ca(tmp_path / "other", name="Somebody Else CA").path)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mspclaw", "agent", "--server", served.url, "--state-dir", str(state_dir),
            "--log-level", "warning", env=env, stderr=asyncio.subprocess.PIPE)
        try:
            assert proc.stderr is not None
            seen = b""
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(15):
                    while b"did not verify" not in seen:
                        line = await proc.stderr.readline()
                        if not line:
                            break
                        seen += line
            assert b"did not verify" in seen, seen.decode(errors="replace")
            assert not any(served.services.hub.is_online(a.id) for a in served.services.registry.agents())
        finally:
            await stop(proc)


async def online(served: Served, proc: asyncio.subprocess.Process) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        live = [a.id for a in served.services.registry.agents() if served.services.hub.is_online(a.id)]
        if live:
            return live[0]
        assert proc.returncode is None, f"agent exited with {proc.returncode}"
        await asyncio.sleep(0.1)
    raise AssertionError("agent did not come online over wss within 30 s")


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 10)


async def test_a_wrong_ca_is_refused_with_a_clear_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ca, other = make_ca(tmp_path / "ca"), make_ca(tmp_path / "other", name="Somebody Else CA")
    cert, key = ca.issue(tmp_path / "ca")
    async with serving(tmp_path, tls_cert_file=cert, tls_key_file=key) as served:
        code = await new_code(served, ca)
        request = EnrollRequest(code=code, **HELLO)
        with pytest.raises(ConfigError, match="did not verify") as caught:
            await asyncio.to_thread(enroll, served.url, request, ssl_context=client_context(other.path))
        assert "--ca-file" in caught.value.message
        with pytest.raises(ConfigError, match="did not verify"):  # no CA given: the system store knows none
            await asyncio.to_thread(enroll, served.url, request, ssl_context=client_context(None))
        state = await asyncio.to_thread(enroll, served.url, request, ssl_context=client_context(ca.path))
        assert state.agent_url.startswith("wss://")

        registry = tool_registry("linux")
        journal = Journal(tmp_path / "journal.db")
        executor = Executor(key=state.key, registry=registry, journal=journal, context=ToolContext(temp_roots=()),
                            approval_key=state.approval_public_key, agent_id=state.agent_id)
        daemon = AgentDaemon(server=served.url, state=state, executor=executor, backoff_initial=0.05,
                             backoff_max=0.1, ssl_context=client_context(other.path))
        task = asyncio.create_task(daemon.run())
        try:
            with caplog.at_level(logging.WARNING, logger="mspclaw.agent.daemon"):
                deadline = time.monotonic() + 10
                while "did not verify" not in caplog.text and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
            assert "did not verify" in caplog.text and "--ca-file" in caplog.text
            assert not daemon.connected.is_set() and not served.services.hub.is_online(state.agent_id)
        finally:
            daemon.stop()
            await asyncio.wait_for(task, 10)
            journal.close()
        assert offered_tools(registry)


async def test_a_renewed_certificate_is_served_without_a_restart(tmp_path: Path) -> None:
    first, second = make_ca(tmp_path / "first", name="First CA"), make_ca(tmp_path / "second", name="Second CA")
    cert, key = first.issue(tmp_path)
    async with serving(tmp_path, tls_cert_file=cert, tls_key_file=key, tls_reload_check_s=0.05) as served:
        port = int(served.url.rsplit(":", 1)[1])
        assert await asyncio.to_thread(peer_issuer, port, first) == "First CA"
        assert await asyncio.to_thread(peer_issuer, served.agent_port, first) == "First CA"
        assert served.listen.tls is not None

        cert.write_bytes(b"-----BEGIN CERTIFICATE-----\nhalf written")  # a renewal caught mid-write
        await asyncio.sleep(0.1)
        assert await asyncio.to_thread(peer_issuer, port, first) == "First CA"  # kept the working one
        assert served.listen.tls.reloads == 0

        renewed_cert, renewed_key = second.issue(tmp_path / "second")
        shutil.copyfile(renewed_key, key)
        shutil.copyfile(renewed_cert, cert)
        await asyncio.sleep(0.1)
        assert await asyncio.to_thread(peer_issuer, port, second) == "Second CA"
        assert await asyncio.to_thread(peer_issuer, served.agent_port, second) == "Second CA"
        assert served.listen.tls.reloads == 1
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.to_thread(peer_issuer, port, first)
        async with api(served, second) as http:
            assert (await http.get("/api/clients")).status_code == 200


def test_missing_or_bad_certificate_files_stop_the_start_naming_the_file(tmp_path: Path) -> None:
    ca = make_ca(tmp_path / "ca")
    cert, key = ca.issue(tmp_path)
    _, other_key = ca.issue(tmp_path, stem="other")
    combined, _ = ca.issue(tmp_path, stem="combined", key_in_cert=True)
    assert ReloadingTLS(combined).reloads == 0  # key in the certificate file: fine
    missing = tmp_path / "absent.crt"
    garbage = tmp_path / "garbage.crt"
    garbage.write_text("not a certificate\n")
    cases = [
        ({"tls_cert_file": missing, "tls_key_file": key}, [str(missing), "does not exist"]),
        ({"tls_cert_file": cert, "tls_key_file": tmp_path / "absent.key"}, [str(tmp_path / "absent.key")]),
        ({"tls_cert_file": tmp_path, "tls_key_file": key}, [str(tmp_path), "is a directory"]),
        ({"tls_cert_file": garbage, "tls_key_file": key}, [str(garbage), "PEM"]),
        ({"tls_cert_file": cert, "tls_key_file": other_key}, [str(cert), str(other_key), "belong"]),
        ({"tls_key_file": key}, ["MSPCLAW_TLS_CERT_FILE"]),
    ]
    for overrides, words in cases:
        with pytest.raises(ConfigError) as caught:
            ListenOptions.from_settings(Settings(data_dir=tmp_path / "data", **overrides))  # type: ignore[arg-type]
        for word in words:
            assert word in caught.value.message, (overrides, caught.value.message)


def test_the_server_command_names_a_missing_certificate_before_it_starts(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "_overrides", {})
    monkeypatch.setenv("MSPCLAW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MSPCLAW_TLS_CERT_FILE", str(tmp_path / "server.crt"))
    result = CliRunner().invoke(app, ["server", "--port", str(free_port())])
    assert result.exit_code == 1
    assert isinstance(result.exception, ConfigError) and str(tmp_path / "server.crt") in result.exception.message
    assert not (tmp_path / "data").exists()  # refused before anything was built


async def test_forwarded_headers_count_only_from_configured_proxies(tmp_path: Path) -> None:
    for trusted, scheme in (("10.9.9.9", "ws"), ("127.0.0.1", "wss")):
        async with serving(tmp_path / trusted, forwarded_allow_ips=trusted) as served:
            code = await new_code(served, None)
            async with httpx.AsyncClient(base_url=served.url) as anon:
                r = await anon.post("/enroll", json={"code": code, **HELLO}, headers={"X-Forwarded-Proto": "https"})
            assert r.status_code == 200, r.text
            assert r.json()["agent_url"].startswith(f"{scheme}://"), trusted


async def test_mspclaw_server_serves_both_ports_over_tls(tmp_path: Path) -> None:
    """The command an operator runs: certificate settings reach uvicorn and the agent listener."""
    ca = make_ca(tmp_path / "ca")
    cert, _key = ca.issue(tmp_path / "ca", stem="combined", key_in_cert=True)
    port, agent_port = free_port(), free_port()
    env = {**os.environ, "MSPCLAW_DATA_DIR": str(tmp_path / "data"), "MSPCLAW_API_KEY": KEY,
           "MSPCLAW_PORT": str(port), "MSPCLAW_AGENT_PORT": str(agent_port), "MSPCLAW_TLS_CERT_FILE": str(cert),
           "MSPCLAW_LOG_LEVEL": "WARNING"}
    log = tmp_path / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen([sys.executable, "-m", "mspclaw", "server"], env=env, stdout=out, stderr=out)
    try:
        async with httpx.AsyncClient(base_url=f"https://127.0.0.1:{port}", timeout=5,
                                     verify=ssl.create_default_context(cafile=str(ca.path))) as http:
            deadline = time.monotonic() + 30
            while True:
                assert server.poll() is None, log.read_text()[-2000:]
                try:
                    if (await http.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, log.read_text()[-2000:]
                await asyncio.sleep(0.2)
        assert await asyncio.to_thread(peer_issuer, agent_port, ca) == ca.name
        assert f"MSPclaw server on https://127.0.0.1:{port}" in log.read_text()
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
