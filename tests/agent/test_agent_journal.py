"""The journal: a call_id runs once, across reconnects and across restarts of the agent process."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from pydantic import BaseModel

from mspclaw.agent.executor import Executor
from mspclaw.agent.journal import Fresh, Interrupted, Journal, Recorded
from mspclaw.agent.tools import JsonObject, ToolContext, bind, tool_registry
from mspclaw.protocol.frames import ToolResult
from mspclaw.tools.catalogue import NoArgs

if TYPE_CHECKING:
    from tests.agent.conftest import SignCall


class CountingTool:
    """A real tool (it runs through the executor's thread and gates) that counts its runs."""

    def __init__(self) -> None:
        self.runs = 0
        self.lock = threading.Lock()

    def __call__(self, args: NoArgs, context: ToolContext) -> JsonObject:
        with self.lock:
            self.runs += 1
            return {"run": self.runs, "answer": [1, 2, {"three": None}]}


def counting_executor(key: bytes, journal: Journal, context: ToolContext, tool: Any) -> Executor:
    registry = tool_registry("linux") | {"system_info": bind(NoArgs, tool)}
    return Executor(key=key, registry=registry, journal=journal, context=context)


def test_done_call_is_replayed_without_running_again(
    key: bytes, journal: Journal, context: ToolContext, signed: SignCall
) -> None:
    tool = CountingTool()
    executor = counting_executor(key, journal, context, tool)
    call = signed("system_info", call_id="c-replay")

    first = asyncio.run(executor.execute(call))
    second = asyncio.run(executor.execute(call))

    assert first.ok and first.replayed is False
    assert second.replayed is True
    assert second.output == first.output == {"run": 1, "answer": [1, 2, {"three": None}]}
    assert second.duration_ms == first.duration_ms
    assert tool.runs == 1


def test_replay_survives_a_restart_of_the_agent(
    key: bytes, tmp_path: Path, context: ToolContext, signed: SignCall
) -> None:
    tool = CountingTool()
    call = signed("system_info", call_id="c-restart")
    path = tmp_path / "journal.db"

    before = Journal(path)
    first = asyncio.run(counting_executor(key, before, context, tool).execute(call))
    before.close()
    after = Journal(path)
    replayed = asyncio.run(counting_executor(key, after, context, tool).execute(call))
    after.close()

    assert replayed.replayed is True and replayed.output == first.output
    assert tool.runs == 1


def test_a_call_started_before_a_crash_is_reported_interrupted_not_rerun(
    key: bytes, tmp_path: Path, context: ToolContext, signed: SignCall
) -> None:
    path = tmp_path / "journal.db"
    crashed = Journal(path)
    assert crashed.claim("c-crash", "system_info") == Fresh()
    crashed.close()  # the agent died here, before finish()

    tool = CountingTool()
    reopened = Journal(path)
    executor = counting_executor(key, reopened, context, tool)
    result = asyncio.run(executor.execute(signed("system_info", call_id="c-crash")))
    reopened.close()

    assert result.ok is False
    assert result.error is not None and result.error.code == "interrupted"
    assert "not run again" in result.error.message
    assert tool.runs == 0


def test_duplicate_call_while_running_shares_the_one_run(
    key: bytes, journal: Journal, context: ToolContext, signed: SignCall
) -> None:
    gate = threading.Event()
    tool = CountingTool()

    def slow(args: NoArgs, ctx: ToolContext) -> JsonObject:
        gate.wait(5)
        return tool(args, ctx)

    executor = counting_executor(key, journal, context, slow)
    call = signed("system_info", call_id="c-dup")

    async def both() -> tuple[ToolResult, ToolResult]:
        first = asyncio.create_task(executor.execute(call))
        await asyncio.sleep(0.05)
        second = asyncio.create_task(executor.execute(call))  # the server resent it after a reconnect
        await asyncio.sleep(0.05)
        gate.set()
        return await first, await second

    first, second = asyncio.run(both())
    assert tool.runs == 1
    assert first.ok and not first.replayed
    assert second.replayed and second.output == first.output


def test_claim_states_and_prune(tmp_path: Path) -> None:
    now = [1_000_000.0]
    journal = Journal(tmp_path / "j.db", clock=lambda: now[0])
    assert journal.claim("a", "disk_usage") == Fresh()
    assert journal.claim("a", "disk_usage") == Interrupted(tool="disk_usage", started_at=1_000_000.0)
    journal.finish(ToolResult(call_id="a", ok=True, output={"x": 1}, duration_ms=5))
    claim = journal.claim("a", "disk_usage")
    assert isinstance(claim, Recorded) and claim.result.output == {"x": 1} and claim.result.replayed
    journal.close()

    now[0] += 8 * 86400  # a week and a day later the agent restarts
    reopened = Journal(tmp_path / "j.db", clock=lambda: now[0])
    assert reopened.pruned == 1
    assert reopened.claim("a", "disk_usage") == Fresh()
    reopened.close()


def test_journal_uses_wal(journal: Journal) -> None:
    import sqlite3

    db = sqlite3.connect(journal.path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        db.close()


@pytest.mark.parametrize("bad_output", [["not", "an", "object"], {"x": object()}])
def test_tool_output_must_be_a_json_object(
    key: bytes, journal: Journal, context: ToolContext, signed: SignCall, bad_output: Any
) -> None:
    def broken(args: BaseModel, ctx: ToolContext) -> Any:
        return bad_output

    executor = Executor(key=key, registry={"system_info": broken}, journal=journal, context=context)
    result = asyncio.run(executor.execute(signed("system_info")))
    assert result.ok is False and result.error is not None and result.error.code == "tool_failed"


def test_a_broken_journal_refuses_to_run_the_call(
    key: bytes, tmp_path: Path, context: ToolContext, signed: SignCall
) -> None:
    journal = Journal(tmp_path / "journal.db")
    journal.close()  # from here on every statement fails, as on a full or vanished disk
    tool = CountingTool()
    result = asyncio.run(counting_executor(key, journal, context, tool).execute(signed("system_info")))
    assert result.ok is False and result.error is not None
    assert result.error.code == "tool_failed" and "journal" in result.error.message
    assert tool.runs == 0
