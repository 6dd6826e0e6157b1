"""The deterministic ``playbook`` model: runs a plan's steps through the tool port, in order.

It needs no LLM, so scripted fixes work offline and cost nothing. The issue "The engine"
adds the provider-agnostic reasoning loop beside it; this runner stays as the ``playbook``
model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mspclaw.engine.conditions import evaluate
from mspclaw.engine.plan import Plan, RunResult, StepRecord
from mspclaw.engine.ports import StepSink, ToolPort
from mspclaw.errors import ApprovalDenied, ConditionError, ToolError


async def run_plan(plan: Plan, tools: ToolPort, on_step: StepSink, *, max_steps: int | None = None,
                   facts: Mapping[str, Any] | None = None) -> RunResult:
    """Run ``plan``; ``facts`` (device facts, the requester, answers) are readable as ``facts.<name>``."""
    limit = min(plan.max_steps, max_steps or plan.max_steps)
    outputs: dict[str, Any] = {"facts": dict(facts or {})}
    records: list[StepRecord] = []

    async def record(rec: StepRecord) -> None:
        records.append(rec)
        await on_step(rec)

    def finish(outcome: str, reason: str) -> RunResult:
        key = "resolved" if outcome == "resolved" else "escalated"
        reply = plan.replies.get(key, "")
        return RunResult("resolved" if outcome == "resolved" else "escalated", reason, reply, records, outputs)

    for step in plan.steps:
        index = len(records) + 1
        if step.when is not None:
            try:
                run_it = bool(evaluate(step.when, outputs))
            except ConditionError as exc:
                return finish("escalated", f"step '{step.title}': {exc.message}")
            if not run_it:
                await record(StepRecord(index, step.id, step.title, step.tool, step.args, None, skipped=True))
                continue
        if sum(1 for r in records if not r.skipped) >= limit:
            return finish("escalated", f"step limit of {limit} reached before '{step.title}'")
        args = dict(step.args)
        try:
            args.update({name: evaluate(expr, outputs) for name, expr in step.args_from.items()})
        except ConditionError as exc:
            return finish("escalated", f"step '{step.title}': {exc.message}")
        try:
            output = await tools(step.tool, args, reason=step.reason or step.title)
        except ApprovalDenied as exc:
            await record(StepRecord(index, step.id, step.title, step.tool, args, False, error=exc.message))
            return finish("escalated", exc.message)
        except ToolError as exc:
            await record(StepRecord(index, step.id, step.title, step.tool, args, False,
                                    error=f"{exc.code}: {exc.message}"))
            if step.required:
                return finish("escalated", f"step '{step.title}' failed: {exc.message}")
            continue
        outputs[step.id] = output
        await record(StepRecord(index, step.id, step.title, step.tool, args, True, output=output))

    try:
        ok = bool(evaluate(plan.success_check, outputs))
    except ConditionError as exc:
        return finish("escalated", f"success check could not be evaluated: {exc.message}")
    if ok:
        return finish("resolved", "success check passed")
    return finish("escalated", plan.escalation_hint or "the success check did not pass after the fix")
