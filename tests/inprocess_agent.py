"""A real agent daemon run inside the test's event loop, with injected edges.

It enrolls over HTTP like ``mspclaw agent --enroll`` and connects over a real WebSocket; what a
test injects is only what a deployment's edges provide: the end user's answer source, and tool
implementations that count their runs (registered under catalogue names, so every gate of the
executor still applies: signature, schema, Ed25519 approval, journal).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mspclaw.agent.daemon import AgentDaemon, AnswerSource, SecretDisplay
from mspclaw.agent.enroll import EnrollRequest, enroll
from mspclaw.agent.executor import Executor, offered_tools
from mspclaw.agent.journal import Journal
from mspclaw.agent.state import AgentState
from mspclaw.agent.tools import ToolContext, ToolFn, tool_registry
from mspclaw.tools.catalogue import ClearTempFilesArgs


@dataclass
class RunningAgent:
    state: AgentState
    daemon: AgentDaemon
    journal: Journal
    asked: list[str] = field(default_factory=list)


@contextlib.asynccontextmanager
async def inprocess_agent(server: str, code: str, tmp: Path, *, answers: AnswerSource | None = None,
                          tools: Mapping[str, ToolFn] | None = None, temp_root: Path | None = None,
                          hostname: str = "acme-lt-07",
                          secrets: SecretDisplay | None = None) -> AsyncIterator[RunningAgent]:
    registry = tool_registry("linux") | dict(tools or {})
    request = EnrollRequest(code=code, hostname=hostname, os="linux", os_version="test", agent_version="test",
                            tools=offered_tools(registry))
    state = await asyncio.to_thread(enroll, server, request)
    tmp.mkdir(parents=True, exist_ok=True)
    journal = Journal(tmp / "journal.db")
    context = ToolContext(temp_roots=(temp_root,) if temp_root else ())
    executor = Executor(key=state.key, registry=registry, journal=journal, context=context,
                        approval_key=state.approval_public_key, agent_id=state.agent_id)
    daemon = AgentDaemon(server=server, state=state, executor=executor, answers=answers, secrets=secrets,
                         backoff_initial=0.05, backoff_max=0.3, tick_interval=0.1)
    task = asyncio.create_task(daemon.run())
    try:
        await asyncio.wait_for(daemon.connected.wait(), 15)
        yield RunningAgent(state, daemon, journal)
    finally:
        daemon.stop()
        await asyncio.wait_for(task, 15)
        journal.close()


class CountingCleaner:
    """A ``clear_temp_files`` for an in-process agent: counts each run by its arguments; the
    ``older_than_days=1`` run blocks until released (at most ``hold_s``), to hold a call in flight."""

    def __init__(self, hold_s: float = 60.0) -> None:
        self.runs: Counter[int] = Counter()
        self.started = threading.Event()
        self.release = threading.Event()
        self.hold_s = hold_s

    def __call__(self, args: ClearTempFilesArgs, context: ToolContext) -> dict[str, Any]:
        self.runs[args.older_than_days] += 1
        if args.older_than_days == 1:
            self.started.set()
            self.release.wait(self.hold_s)
        return {"deleted": 3, "freed_bytes": 300, "dry_run": False}
