"""Fixtures for the agent daemon's tests: a pinned key, an enrolled identity, a journal, signed calls.

Everything is real: tools run on this machine, the journal is SQLite in ``tmp_path``, calls are
signed with :func:`mspclaw.protocol.signing.sign_call` exactly as the server signs them.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mspclaw.agent.executor import Executor
from mspclaw.agent.journal import Journal
from mspclaw.agent.state import AgentState
from mspclaw.agent.tools import ToolContext, tool_registry
from mspclaw.pipeline.approvals import ApprovalSigner
from mspclaw.protocol.frames import Approval, ToolCall
from mspclaw.protocol.signing import args_digest, sign_call

DAY = 86400.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def key() -> bytes:
    return secrets.token_bytes(32)


@pytest.fixture
def state(key: bytes) -> AgentState:
    return AgentState(
        agent_id="agt_test",
        client_id="acme",
        role="device",
        credential="s3cret-credential",
        server_key=key.hex(),
    )


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal(tmp_path / "journal.db")
    yield j
    j.close()


@pytest.fixture
def temp_root(tmp_path: Path) -> Path:
    root = tmp_path / "temp-root"
    root.mkdir()
    return root


@pytest.fixture
def context(temp_root: Path) -> ToolContext:
    return ToolContext(temp_roots=(temp_root,))


APPROVAL_SIGNER = ApprovalSigner(bytes(range(32)))
"""The server's Ed25519 approval key in these tests (the agent pins its public half)."""
AGENT_ID = "ag_test"


APPROVED_CALL = "call-approved"
"""The call id :func:`grant` binds by default; pass it to ``signed(..., call_id=APPROVED_CALL)``."""


def grant(tool: str, args: dict[str, Any], *, call_id: str = APPROVED_CALL, agent_id: str = AGENT_ID,
          expires_in: float = 60.0, signer: ApprovalSigner = APPROVAL_SIGNER) -> Approval:
    """A technician's approval as the server sends it: bound to ``call_id`` and signed."""
    return signer.sign(Approval(approval_id="apr-1", approver="tech@msp", decided_at=time.time(), tool=tool,
                                args_sha256=args_digest(args), agent_id=agent_id,
                                expires_at=time.time() + expires_in), call_id=call_id)


@pytest.fixture
def executor(key: bytes, journal: Journal, context: ToolContext) -> Executor:
    return Executor(key=key, registry=tool_registry("linux"), journal=journal, context=context,
                    approval_key=APPROVAL_SIGNER.public_key, agent_id=AGENT_ID)


SignCall = Callable[..., ToolCall]


@pytest.fixture
def signed(key: bytes) -> SignCall:
    """Build a tool call signed with the pinned key: ``signed("disk_usage", {"paths": ["/"]})``."""

    def make(
        tool: str,
        args: dict[str, Any] | None = None,
        *,
        call_id: str | None = None,
        deadline_in: float = 30.0,
        approval: Approval | None = None,
    ) -> ToolCall:
        call = ToolCall(
            call_id=call_id or f"call-{secrets.token_hex(4)}",
            tool=tool,
            args=args or {},
            deadline=time.time() + deadline_in,
            approval=approval,
        )
        return sign_call(key, call)

    return make


MakeFile = Callable[[Path, int, float], Path]


@pytest.fixture
def make_file() -> MakeFile:
    """Write a file of ``size`` bytes whose modification time is ``age_days`` in the past."""

    def make(path: Path, size: int, age_days: float) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * size)
        when = time.time() - age_days * DAY
        os.utime(path, (when, when))
        return path

    return make
