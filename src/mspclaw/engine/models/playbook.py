"""The deterministic ``playbook`` model: runs a plan's steps through the tool port, in order.

It needs no LLM, so scripted fixes work offline and cost nothing. The provider-agnostic
reasoning loop (:mod:`mspclaw.engine.loop`) runs the LLM providers beside it; this runner is the
``playbook`` model.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from mspclaw.engine.conditions import evaluate
from mspclaw.engine.plan import Plan, PlanQuestion, RunResult, StepRecord
from mspclaw.engine.ports import StepSink, ToolPort
from mspclaw.errors import ApprovalDenied, ConditionError, ToolError

Ask = Callable[[PlanQuestion], Awaitable[str | None]]
"""Puts a playbook question to the end user; the answer, or ``None`` when none came."""

_FACT = re.compile(r"\bfacts\.([a-z][a-z0-9_]*)")


async def run_plan(plan: Plan, tools: ToolPort, on_step: StepSink, *, max_steps: int | None = None,
                   facts: Mapping[str, Any] | None = None, ask: Ask | None = None) -> RunResult:
    """Run ``plan``; ``facts`` (device facts, the requester, answers) are readable as ``facts.<name>``.

    When a step's condition or arguments (or the success check) read a fact that is not known and the
    playbook has a question for it, ``ask`` puts the question to the user first, once; without an
    answer the expression fails as before and the run escalates saying which fact was missing.
    """
    limit = min(plan.max_steps, max_steps or plan.max_steps)
    known: dict[str, Any] = dict(facts or {})
    outputs: dict[str, Any] = {"facts": known}
    records: list[StepRecord] = []
    asked: set[str] = set()

    async def fill(expressions: Iterable[str | None]) -> None:
        if ask is None:
            return
        for expr in expressions:
            for fact in _FACT.findall(expr or ""):
                question = plan.questions.get(fact)
                if question is None or fact in known or fact in asked:
                    continue
                asked.add(fact)
                answer = await ask(question)
                if answer is not None:
                    known[fact] = answer

    async def record(rec: StepRecord) -> None:
        records.append(rec)
        await on_step(rec)

    def finish(outcome: str, reason: str) -> RunResult:
        key = "resolved" if outcome == "resolved" else "escalated"
        reply = plan.replies.get(key, "")
        return RunResult("resolved" if outcome == "resolved" else "escalated", reason, reply, records, outputs)

    for step in plan.steps:
        index = len(records) + 1
        await fill([step.when])
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
        await fill(step.args_from.values())
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

    await fill([plan.success_check])
    try:
        ok = bool(evaluate(plan.success_check, outputs))
    except ConditionError as exc:
        return finish("escalated", f"success check could not be evaluated: {exc.message}")
    if ok:
        return finish("resolved", "success check passed")
    return finish("escalated", plan.escalation_hint or "the success check did not pass after the fix")
