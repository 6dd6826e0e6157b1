"""A temporary password a tool sets travels beside its result, never inside it: the journal, a
replay and the frame's repr never hold it, and the device shows it without putting it on a command line."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from tests.agent.conftest import AGENT_ID, APPROVAL_SIGNER, grant

from mspclaw.agent.executor import Executor
from mspclaw.agent.journal import Journal
from mspclaw.agent.secret_dialog import dialog_command, secret_text
from mspclaw.agent.tools import JsonObject, ToolContext, WithSecret, bind
from mspclaw.protocol.codec import decode_agent_frame, encode
from mspclaw.protocol.frames import Secret, ShowSecret, ToolCall, ToolResult
from mspclaw.protocol.signing import sign_call
from mspclaw.tools.site import AccountArgs

PASSWORD = "Xq7#kPz9-Wm4!tRb"


def reset(args: AccountArgs, _: ToolContext) -> JsonObject | WithSecret:
    return WithSecret({"reset": True, "must_change_at_logon": True},
                      Secret(type="temporary_password", account=args.username, value=PASSWORD))


def test_the_secret_leaves_with_the_result_but_never_reaches_the_journal(tmp_path: Path, key: bytes) -> None:
    journal = Journal(tmp_path / "journal.db")
    executor = Executor(key=key, registry={"reset_password": bind(AccountArgs, reset)}, journal=journal,
                        context=ToolContext(temp_roots=(tmp_path,)), approval_key=APPROVAL_SIGNER.public_key,
                        agent_id=AGENT_ID)
    args = {"username": "tom.becker", "requested_by": "tom.becker@acme.example", "verified_by": ["psa_contact"]}
    call = sign_call(key, ToolCall(call_id="c-secret", tool="reset_password", args=args, deadline=time.time() + 30,
                                   approval=grant("reset_password", args, call_id="c-secret")))
    result = asyncio.run(executor.execute(call))
    assert result.ok, result.error
    assert result.secret is not None and result.secret.value == PASSWORD
    assert PASSWORD not in str(result.output) and PASSWORD not in repr(result)
    again = asyncio.run(executor.execute(call))  # the same call_id: the journal's record, without the secret
    assert again.ok and again.replayed and again.secret is None
    journal.close()
    assert PASSWORD.encode() not in (tmp_path / "journal.db").read_bytes()
    for extra in tmp_path.glob("journal.db-*"):
        assert PASSWORD.encode() not in extra.read_bytes()


def test_the_wire_carries_it_and_decodes_it_back() -> None:
    result = ToolResult(call_id="c1", ok=True, output={"reset": True},
                        secret=Secret(type="temporary_password", account="tom", value=PASSWORD))
    decoded = decode_agent_frame(encode(result))
    assert isinstance(decoded, ToolResult) and decoded.secret == result.secret


def test_the_dialog_reads_the_secret_from_stdin_never_from_its_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    frame = ShowSecret(delivery_id="sd_1", text="Your IT team set a temporary password.",
                       secret=Secret(type="temporary_password", account="tom@acme.example", value=PASSWORD))
    assert PASSWORD in secret_text(frame) and "tom@acme.example" in secret_text(frame)
    monkeypatch.setattr("mspclaw.agent.secret_dialog.shutil.which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setenv("DISPLAY", ":0")
    for platform in ("win32", "darwin", "linux"):
        command = dialog_command(frame, platform)
        assert command is not None
        assert all(PASSWORD not in part for part in command.argv), platform
        assert PASSWORD in command.stdin
        assert PASSWORD not in repr(command)
    monkeypatch.delenv("DISPLAY")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert dialog_command(frame, "linux") is None  # no desktop: the server falls back to a view-once link
