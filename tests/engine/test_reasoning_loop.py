"""The reasoning loop with the model scripted by ``FunctionModel`` and the tool port a plain function.

The tool port is the engine's outside edge (the pipeline's real one is tested end to end in
tests/api); here it is a function so each branch of the loop can be forced.
"""

from __future__ import annotations

from typing import Any

import pytest

from mspclaw.engine.loop import Limits, LoopResult, run_loop
from mspclaw.engine.messages import Message, ModelRequest, ModelResponse, ToolDef, ToolReturn, Usage
from mspclaw.engine.models.function import FunctionModel, answer, call
from mspclaw.engine.plan import StepRecord
from mspclaw.engine.toolset import Toolset
from mspclaw.errors import ApprovalDenied, ModelError, ToolFailed
from mspclaw.protocol.frames import Approval

pytestmark = pytest.mark.anyio

DISK = {"filesystems": [{"mount_point": "/", "percent_used": 50}]}


class Port:
    def __init__(self, outputs: dict[str, Any] | None = None) -> None:
        self.outputs = outputs or {}
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, tool: str, args: dict[str, Any], *, reason: str,
                       approval: Approval | None = None) -> dict[str, Any]:
        self.calls.append((tool, args))
        out = self.outputs.get(tool, {})
        if isinstance(out, BaseException):
            raise out
        return dict(out)


def observations(messages: list[Message]) -> list[ToolReturn]:
    return [p for m in messages if isinstance(m, ModelRequest) for p in m.parts if isinstance(p, ToolReturn)]


def script(*turns: ModelResponse) -> FunctionModel:
    queue = list(turns)

    def decide(messages: list[Message], tools: list[ToolDef]) -> ModelResponse:
        return queue.pop(0)

    return FunctionModel(decide)


async def run(model: FunctionModel, port: Port, limits: Limits = Limits(),
              allowed: tuple[str, ...] = ("disk_usage", "clear_temp_files")) -> tuple[LoopResult, list[StepRecord]]:
    steps: list[StepRecord] = []

    async def sink(record: StepRecord) -> None:
        steps.append(record)

    result = await run_loop(model, "be helpful", "disk full", Toolset(allowed, port), sink, limits)
    return result, steps


async def test_the_model_calls_a_tool_sees_its_output_and_resolves() -> None:
    seen: list[list[str]] = []

    def decide(messages: list[Message], tools: list[ToolDef]) -> ModelResponse:
        seen.append([t.name for t in tools])
        if len(messages) == 1:
            return call("disk_usage", {}, text="measure first")
        assert observations(messages)[-1].content == DISK
        return call("resolve", {"summary": "disk is at 50%", "reply": "all good"})

    port = Port({"disk_usage": DISK})
    result, steps = await run(FunctionModel(decide), port)
    assert result.outcome == "resolved" and result.reason == "disk is at 50%" and result.reply == "all good"
    assert port.calls == [("disk_usage", {"paths": []})], "arguments are validated and completed by the schema"
    assert seen[0] == ["disk_usage", "clear_temp_files", "resolve", "escalate"]
    assert [(s.tool, s.ok, s.thought) for s in steps] == [("disk_usage", True, "measure first"),
                                                          ("resolve", True, "")]
    assert result.usage == Usage(prompt_tokens=20, completion_tokens=10)


async def test_errors_go_back_to_the_model_as_observations() -> None:
    model = script(
        call("disk_usage", {"paths": "not-a-list"}),
        call("format_disk", {}),
        call("disk_usage", '{"paths": ["/"'),
        call("clear_temp_files", {"dry_run": True}),
        call("clear_temp_files", {"dry_run": False}),
        call("escalate", {"reason": "could not clean"}),
    )
    port = Port({"clear_temp_files": ToolFailed("permission denied")})
    port_denied = port

    async def denying(tool: str, args: dict[str, Any], *, reason: str,
                      approval: Approval | None = None) -> dict[str, Any]:
        if not args.get("dry_run", True):
            raise ApprovalDenied("clear_temp_files denied by Sam: user is busy")
        return await port_denied(tool, args, reason=reason)

    steps: list[StepRecord] = []

    async def sink(record: StepRecord) -> None:
        steps.append(record)

    result = await run_loop(model, "x", "y", Toolset(["disk_usage", "clear_temp_files"], denying), sink)
    errors = [o.error for o in observations(result.messages or [])]
    assert errors[0] is not None and errors[0].startswith("invalid_args: disk_usage: paths")
    assert errors[1] is not None and "'format_disk' is not a tool of this run" in errors[1]
    assert errors[2] is not None and "not valid JSON" in errors[2]
    assert errors[3] == "tool_failed: permission denied"
    assert errors[4] == "denied: clear_temp_files denied by Sam: user is busy"
    assert [c[0] for c in port.calls] == ["clear_temp_files"], "only the valid call was dispatched"
    assert result.outcome == "escalated" and result.reason.startswith("could not clean. Done so far:")
    assert len(steps) == 6


async def test_the_step_limit_ends_the_run_with_what_was_done() -> None:
    model = FunctionModel(lambda m, t: call("disk_usage", {}))
    result, steps = await run(model, Port({"disk_usage": DISK}), Limits(max_steps=3))
    assert result.outcome == "escalated"
    assert result.reason.startswith("step limit of 3 reached without finishing. Done so far: disk_usage (ok)")
    assert model.calls == 3 and len(steps) == 3


async def test_token_and_spend_limits_end_the_run() -> None:
    big = Usage(prompt_tokens=6000, completion_tokens=1000)
    result, _ = await run(FunctionModel(lambda m, t: call("disk_usage", {}, usage=big)), Port(),
                          Limits(max_tokens=10_000))
    assert result.outcome == "escalated" and result.reason.startswith("token limit reached: 14000 tokens used")
    pricey = FunctionModel(lambda m, t: call("disk_usage", {}, usage=big), price_per_mtok=(100.0, 400.0))
    result, _ = await run(pricey, Port(), Limits(max_spend_usd=1.5))
    assert result.outcome == "escalated" and "spend limit reached: $2.0000 spent, limit $1.50" in result.reason


async def test_a_text_answer_gets_one_correction_then_escalates() -> None:
    model = script(answer("I think it is fine"), answer("really fine"))
    result, _ = await run(model, Port())
    assert result.outcome == "escalated" and "without calling a tool or finishing" in result.reason
    model = script(answer("I think it is fine"), call("resolve", {"summary": "ok", "reply": "ok"}))
    result, _ = await run(model, Port())
    assert result.outcome == "resolved"


async def test_a_model_that_cannot_answer_escalates_with_why() -> None:
    def broken(messages: list[Message], tools: list[ToolDef]) -> ModelResponse:
        raise ModelError("no model could answer; tried openai:gpt: 401 bad key")

    result, _ = await run(FunctionModel(broken), Port())
    assert result.outcome == "escalated" and "401 bad key" in result.reason


async def test_long_tool_output_is_trimmed_for_the_model() -> None:
    huge = {"lines": ["x" * 100] * 200}
    model = script(call("disk_usage", {}), call("resolve", {"summary": "s", "reply": "r"}))
    result, steps = await run(model, Port({"disk_usage": huge}))
    [obs] = observations(result.messages or [])
    assert obs.content["trimmed"] is True and len(obs.content["first_part"]) == 4000
    assert steps[0].output == huge, "the step record keeps the whole output"
