"""The reasoning loop: ask the model, run the tools it calls, tell it what happened, repeat.

Short on purpose (STYLE habit 8). What it does not do is done by what it is given:

* the model is a :class:`~mspclaw.engine.models.base.Model` (a provider, a chain with retries and
  fallback, a ``FunctionModel``, or a durable wrapper that replays recorded turns after a restart);
* the tools are a :class:`~mspclaw.engine.toolset.Toolset` over a tool port that the approval gate
  and the question gate wrap;
* each step is handed to ``on_step``, which persists it before the loop goes on.

Tool errors, schema errors, unknown tools, bad tool JSON and denials go back to the model as
observations. Limits (steps, tokens, spend) and a model that cannot answer end the run with an
escalation that says what happened.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mspclaw.engine.messages import (
    Message,
    ModelRequest,
    RequestPart,
    RetryPrompt,
    SystemPrompt,
    ToolCallPart,
    ToolReturn,
    Usage,
    UserPrompt,
)
from mspclaw.engine.models.base import Model
from mspclaw.engine.plan import RunResult, StepRecord
from mspclaw.engine.ports import StepSink
from mspclaw.engine.toolset import ESCALATE, RESOLVE, Toolset
from mspclaw.errors import ApprovalDenied, ModelError, ToolError

OBSERVATION_LIMIT = 4000
"""Characters of one tool output the model sees; longer outputs are trimmed and say so."""


@dataclass(frozen=True)
class Limits:
    max_steps: int = 12
    max_tokens: int = 200_000
    max_spend_usd: float = 2.0


@dataclass
class LoopResult(RunResult):
    usage: Usage = field(default_factory=Usage)
    spend_usd: float = 0.0
    messages: list[Message] | None = None


async def run_loop(model: Model, instructions: str, prompt: str, tools: Toolset, on_step: StepSink,
                   limits: Limits = Limits()) -> LoopResult:
    messages: list[Message] = [ModelRequest(parts=[SystemPrompt(text=instructions), UserPrompt(text=prompt)])]
    defs = tools.definitions()
    records: list[StepRecord] = []
    usage, spend, corrected = Usage(), 0.0, False

    def end(outcome: str, reason: str, reply: str = "") -> LoopResult:
        done = [f"{r.tool} ({'ok' if r.ok else r.error})" for r in records if r.tool]
        if outcome != "resolved" and done:
            reason = f"{reason}. Done so far: {'; '.join(done)}"
        return LoopResult("resolved" if outcome == "resolved" else "escalated", reason, reply, records, {},
                          usage=usage, spend_usd=spend, messages=messages)

    for _ in range(limits.max_steps):
        try:
            response = await model.request(messages, defs)
        except ModelError as exc:
            return end("escalated", f"the model could not answer: {exc.message}")
        messages.append(response)
        usage += response.usage
        p_price, c_price = model.price_per_mtok
        spend += (response.usage.prompt_tokens * p_price + response.usage.completion_tokens * c_price) / 1e6
        calls = response.tool_calls
        if not calls:
            if corrected:
                return end("escalated", "the model answered twice without calling a tool or finishing")
            corrected = True
            messages.append(ModelRequest(parts=[RetryPrompt(
                text=f"Call a tool, or finish with {RESOLVE}(summary, reply) or {ESCALATE}(reason).")]))
            continue
        returns: list[RequestPart] = []
        for call in calls:
            args, problem = _arguments(call)
            if problem is None and call.name in (RESOLVE, ESCALATE):
                await _record(records, on_step, call, args, response.text, response.usage, True, None, None)
                if call.name == RESOLVE:
                    return end("resolved", str(args.get("summary", "")), str(args.get("reply", "")))
                return end("escalated", str(args.get("reason", "")), str(args.get("reply", "")))
            output: dict[str, Any] | None = None
            if problem is None:
                try:
                    output = await tools.call(call.name, args, reason=response.text or f"call {call.name}")
                except ToolError as exc:
                    problem = f"{exc.code}: {exc.message}"
                except ApprovalDenied as exc:
                    problem = f"denied: {exc.message}"
            await _record(records, on_step, call, args, response.text, response.usage, problem is None, output,
                          problem)
            returns.append(ToolReturn(call_id=call.call_id, name=call.name, content=_trim(output or {}),
                                      error=problem))
        messages.append(ModelRequest(parts=returns))
        if usage.total > limits.max_tokens:
            return end("escalated", f"token limit reached: {usage.total} tokens used, limit {limits.max_tokens}")
        if spend > limits.max_spend_usd:
            return end("escalated", f"spend limit reached: ${spend:.4f} spent, limit ${limits.max_spend_usd:.2f}")
    return end("escalated", f"step limit of {limits.max_steps} reached without finishing")


def _arguments(call: ToolCallPart) -> tuple[dict[str, Any], str | None]:
    if isinstance(call.args, dict):
        return call.args, None
    try:
        parsed = json.loads(call.args or "{}")
    except ValueError as exc:
        return {}, f"invalid_args: the arguments of {call.name} are not valid JSON ({exc}); send a JSON object"
    if not isinstance(parsed, dict):
        return {}, f"invalid_args: the arguments of {call.name} must be a JSON object"
    return parsed, None


def _trim(output: dict[str, Any]) -> dict[str, Any]:
    text = json.dumps(output, default=str)
    if len(text) <= OBSERVATION_LIMIT:
        return output
    return {"trimmed": True, "first_part": text[:OBSERVATION_LIMIT]}


async def _record(records: list[StepRecord], on_step: StepSink, call: ToolCallPart, args: dict[str, Any],
                  thought: str, usage: Usage, ok: bool, output: dict[str, Any] | None, error: str | None) -> None:
    record = StepRecord(len(records) + 1, f"step_{len(records) + 1}", thought[:200] or f"call {call.name}", call.name,
                        args, ok, output=output, error=error, thought=thought,
                        tokens=(usage.prompt_tokens, usage.completion_tokens))
    records.append(record)
    await on_step(record)
