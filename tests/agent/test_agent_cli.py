"""``mspclaw agent`` as a user runs it: flags, exit codes, and a real process stopped by a signal."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection as WebSocket
from websockets.asyncio.server import serve

from mspclaw.agent.main import main
from mspclaw.agent.state import AgentState, save_state
from mspclaw.protocol.connection import HelloReceived, ServerConnection


def test_not_enrolled_exits_2_and_says_how_to_enroll(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--server", "http://127.0.0.1:1", "--state-dir", str(tmp_path / "state")])
    assert code == 2
    err = capsys.readouterr().err
    assert "not enrolled" in err
    assert "mspclaw agent --server URL --enroll CODE" in err and "mspclaw enroll CLIENT" in err


def test_a_refused_enrollment_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        code = main(["--server", url, "--enroll", "ABCD", "--state-dir", str(tmp_path)])
    assert code == 1
    assert f"cannot reach the MSPclaw server at {url}/enroll" in capsys.readouterr().err
    assert not (tmp_path / "agent.json").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--server", "ftp://x"], "http:// or https://"),
        (["--server", "http://127.0.0.1:1", "--temp-root", "/etc"], "system directory"),
    ],
)
def test_bad_flags_exit_2(argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*argv, "--state-dir", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_help_documents_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--server", "--enroll", "--state-dir", "--temp-root", "--log-level", "exit codes"):
        assert flag in out


@pytest.fixture
async def agent_server() -> AsyncIterator[tuple[str, asyncio.Event]]:
    hello = asyncio.Event()

    async def handler(ws: WebSocket) -> None:
        conn = ServerConnection(now=time.time())
        async for text in ws:
            if any(isinstance(e, HelloReceived) for e in conn.receive(text, time.time())):
                hello.set()
            for out in conn.data_to_send():
                await ws.send(out)

    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"http://127.0.0.1:{port}", hello


@pytest.mark.anyio
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
async def test_the_real_process_connects_and_exits_0_when_signalled(
    agent_server: tuple[str, asyncio.Event], state: AgentState, tmp_path: Path, stop_signal: signal.Signals
) -> None:
    url, hello = agent_server
    state_dir = tmp_path / "state"
    save_state(state_dir, state)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mspclaw", "agent", "--server", url, "--state-dir", str(state_dir),
        "--temp-root", str(tmp_path), stderr=asyncio.subprocess.PIPE,
    )
    try:
        await asyncio.wait_for(hello.wait(), 15)
        await asyncio.sleep(0.2)  # let it log "connected"
        proc.send_signal(stop_signal)
        _, stderr = await asyncio.wait_for(proc.communicate(), 10)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    log = stderr.decode()
    assert proc.returncode == 0, log
    assert "connected to ws://127.0.0.1" in log and "agent stopped" in log
    assert state.credential not in log and state.server_key not in log
    assert (state_dir / "journal.db").exists()
    assert os.stat(state_dir).st_mode & 0o077 == 0
