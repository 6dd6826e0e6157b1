"""The single-file agent (PyInstaller, ``deploy/pyinstaller/mspclaw-agent.spec``) built and run on Linux.

It is built in a virtual environment that has only the agent's dependencies and PyInstaller (cached
in :data:`CACHE`; MSPclaw itself is reinstalled from a clean copy of the sources every run), then run
with an empty environment: its help, the clear message for a server command, and a real enrollment
and approved tool call against a live server on loopback. The same virtual environment is an
agent-only install, where ``mspclaw clients list`` must say what is missing instead of a traceback.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import live_server, make_old_files

pytestmark = [pytest.mark.containers, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
CACHE = Path("/var/tmp/mspclaw-agent-build")
DISK = {"subject": "disk almost full", "body": "I cannot save files, it says the disk is full",
        "requester": "maria@acme.example"}


def _clean_copy(target: Path) -> Path:
    """The project's sources without build leftovers, so building never writes into the working tree."""
    shutil.copytree(REPO / "src", target / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, target / name)
    return target


def _run(*args: str | Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return done


@pytest.fixture(scope="module")
def agent_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment with MSPclaw's ``agent`` and ``agent-build`` extras only."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the single-file build runs on Linux here; macOS and Windows build in CI")
    pins = hashlib.sha256((REPO / "constraints.txt").read_bytes() + (REPO / "pyproject.toml").read_bytes())
    venv = CACHE / f"venv-{pins.hexdigest()[:12]}"
    source = _clean_copy(tmp_path_factory.mktemp("agent-src"))
    if not (venv / "bin" / "pyinstaller").exists():
        shutil.rmtree(venv, ignore_errors=True)
        for stale in CACHE.glob("venv-*"):
            shutil.rmtree(stale, ignore_errors=True)
        CACHE.mkdir(parents=True, exist_ok=True)
        _run(sys.executable, "-m", "venv", venv)
        _run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", "-c", REPO / "constraints.txt",
             f"{source}[agent,agent-build]")
    _run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", "--no-deps", "--force-reinstall",
         "-c", REPO / "constraints.txt", source)
    return venv


@pytest.fixture(scope="module")
def agent_binary(agent_venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("agent-binary")
    _run(agent_venv / "bin" / "pyinstaller", "--noconfirm", "--log-level", "WARN", "--distpath", out / "dist",
         "--workpath", CACHE / "work", REPO / "deploy" / "pyinstaller" / "mspclaw-agent.spec")
    binary = out / "dist" / "mspclaw-agent"
    assert binary.is_file()
    yield binary


def bare(binary: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the binary with an empty environment: no Python, no virtual environment, no PYTHONPATH."""
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin"}, cwd="/")


def test_the_agent_only_install_names_the_server_extra(agent_venv: Path) -> None:
    done = subprocess.run([str(agent_venv / "bin" / "mspclaw"), "clients", "list"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "it is an agent-only install" in done.stderr and "pip install 'mspclaw[server]'" in done.stderr
    assert "Traceback" not in done.stderr
    agent = subprocess.run([str(agent_venv / "bin" / "mspclaw"), "agent", "--help"], capture_output=True,
                           text=True, timeout=60)
    assert agent.returncode == 0 and "--enroll CODE" in agent.stdout


def test_the_single_file_agent_runs_without_python(agent_binary: Path) -> None:
    helped = bare(agent_binary, "agent", "--help")
    assert helped.returncode == 0, helped.stderr
    assert "--enroll CODE" in helped.stdout
    assert bare(agent_binary, "agent", "--version").stdout.startswith("mspclaw agent ")
    server_command = bare(agent_binary, "clients", "list")
    assert server_command.returncode == 2, server_command.stderr
    assert "it is an agent-only install" in server_command.stderr and "Traceback" not in server_command.stderr
    service = bare(agent_binary, "service")
    assert service.returncode == 2 and "Windows services exist on Windows only" in service.stderr


@pytest.mark.anyio
async def test_the_single_file_agent_enrolls_and_runs_an_approved_tool_call(agent_binary: Path,
                                                                              tmp_path: Path) -> None:
    temp = tmp_path / "temp"
    old = make_old_files(temp, 4)
    async with live_server(tmp_path) as live:
        client = await live.client()
        code = await live.code(client)
        agent = await asyncio.create_subprocess_exec(
            str(agent_binary), "agent", "--server", live.url, "--enroll", code, "--state-dir",
            str(tmp_path / "state"), "--temp-root", str(temp), "--log-level", "warning", env={"PATH": "/usr/bin:/bin"})
        live.agents.append(agent)
        for _ in range(300):
            agents = (await live.http.get("/api/agents")).json()
            if any(a["online"] for a in agents):
                break
            assert agent.returncode is None, f"the agent exited with {agent.returncode}"
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the single-file agent did not come online")
        created = (await live.http.post("/api/tickets", json={"client": client, **DISK})).json()
        approval = await live.wait_approval()
        assert approval["tool"] == "clear_temp_files" and all(p.exists() for p in old)
        await live.http.post(f"/api/approvals/{approval['id']}/approve", json={"approver": "Dana"})
        ticket = await live.wait_ticket(created["ticket_id"])
        assert ticket["status"] == "resolved", ticket["reason"]
        assert not any(p.exists() for p in old)
        assert (tmp_path / "state" / "agent.json").stat().st_mode & 0o777 == 0o600
