"""Engine overhead per step: MSPclaw's loop against pydantic-ai's agent loop, the same scripted run.

Both loops get a zero-latency ``FunctionModel`` that calls one tool ``--tools`` times and then
finishes, and an in-process tool that answers at once (no WebSocket, no database: what is measured
is the loop itself: message building, schema validation of the arguments, dispatch, observation).
Time spent inside the model function and the tool is measured and subtracted, so the figure is the
engine's own overhead per model turn. Sessions run one after another on one event loop.

    .venv/bin/pip install -c constraints.txt -e '.[bench]'     # pydantic-ai, for this script only
    .venv/bin/python bench/engine.py [--sessions 2000] [--tools 5]

Target: our overhead per step at most half of pydantic-ai's (ratio <= 0.5).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from typing import Any

from mspclaw.engine.loop import Limits, run_loop
from mspclaw.engine.messages import Message, ModelRequest, ModelResponse, ToolDef, ToolReturn
from mspclaw.engine.models.function import FunctionModel, call
from mspclaw.engine.plan import StepRecord
from mspclaw.engine.toolset import Toolset
from mspclaw.protocol.frames import Approval

OUTPUT = {"filesystems": [{"mount_point": "/", "percent_used": 42, "free_bytes": 10_000_000}]}


class Clock:
    def __init__(self) -> None:
        self.model = 0.0
        self.tool = 0.0


async def ours(sessions: int, tools: int, clock: Clock) -> float:
    def decide(messages: list[Message], defs: list[ToolDef]) -> ModelResponse:
        start = time.perf_counter()
        done = sum(1 for m in messages if isinstance(m, ModelRequest) for p in m.parts if isinstance(p, ToolReturn))
        out = call("disk_usage", {"paths": ["/"]}) if done < tools else call(
            "resolve", {"summary": "ok", "reply": "ok"})
        clock.model += time.perf_counter() - start
        return out

    async def port(tool: str, args: dict[str, Any], *, reason: str, approval: Approval | None = None) -> dict[str, Any]:
        start = time.perf_counter()
        out = dict(OUTPUT)
        clock.tool += time.perf_counter() - start
        return out

    async def sink(record: StepRecord) -> None:
        return None

    model = FunctionModel(decide)
    toolset = Toolset(["disk_usage", "clear_temp_files"], port)
    limits = Limits(max_steps=tools + 2)
    start = time.perf_counter()
    for _ in range(sessions):
        result = await run_loop(model, "instructions", "disk full", toolset, sink, limits)
        assert result.outcome == "resolved"
    return time.perf_counter() - start


async def pydantic_ai(sessions: int, tools: int, clock: Clock) -> float:
    from pydantic_ai import Agent
    from pydantic_ai.messages import ModelMessage, ToolReturnPart
    from pydantic_ai.messages import ModelResponse as PAResponse
    from pydantic_ai.messages import TextPart as PAText
    from pydantic_ai.messages import ToolCallPart as PACall
    from pydantic_ai.models.function import AgentInfo
    from pydantic_ai.models.function import FunctionModel as PAFunctionModel

    def decide(messages: list[ModelMessage], info: AgentInfo) -> PAResponse:
        start = time.perf_counter()
        done = sum(1 for m in messages for p in m.parts if isinstance(p, ToolReturnPart))
        out = PAResponse(parts=[PACall(tool_name="disk_usage", args={"paths": ["/"]})]) if done < tools else \
            PAResponse(parts=[PAText(content="ok")])
        clock.model += time.perf_counter() - start
        return out

    agent: Agent[None, str] = Agent(PAFunctionModel(decide), instructions="instructions")

    @agent.tool_plain
    def disk_usage(paths: list[str]) -> dict[str, Any]:
        """Measure disks."""
        start = time.perf_counter()
        out = dict(OUTPUT)
        clock.tool += time.perf_counter() - start
        return out

    start = time.perf_counter()
    for _ in range(sessions):
        result = await agent.run("disk full")
        assert result.output == "ok"
    return time.perf_counter() - start


async def measure(name: str, runner: Any, sessions: int, tools: int) -> tuple[float, float]:
    await runner(max(sessions // 20, 10), tools, Clock())  # warm up
    gc.collect()
    clock = Clock()
    total = await runner(sessions, tools, clock)
    steps = sessions * (tools + 1)
    per_step_us = (total - clock.model - clock.tool) / steps * 1e6
    print(f"{name:12s} {sessions / total:9.0f} sessions/s   {per_step_us:8.1f} us overhead per step "
          f"(model {clock.model / steps * 1e6:.1f} us, tool {clock.tool / (sessions * tools) * 1e6:.1f} us)")
    return per_step_us, sessions / total


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=2000)
    parser.add_argument("--tools", type=int, default=5, help="tool calls per session before finishing")
    args = parser.parse_args()
    print(f"{args.sessions} sessions, {args.tools} tool steps + 1 final step each, one event loop")
    our_step, _ = await measure("mspclaw", ours, args.sessions, args.tools)
    try:
        their_step, _ = await measure("pydantic-ai", pydantic_ai, args.sessions, args.tools)
    except ImportError:
        print("pydantic-ai is not installed: pip install -c constraints.txt -e '.[bench]'")
        return
    ratio = our_step / their_step
    print(f"ratio (mspclaw / pydantic-ai overhead per step): {ratio:.2f}   target <= 0.50: "
          f"{'PASS' if ratio <= 0.5 else 'FAIL'}")


if __name__ == "__main__":
    asyncio.run(main())
