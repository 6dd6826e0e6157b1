"""The deterministic runner and the approval gate, with the tool and approval edges scripted.

These ports are the engine's outside edge (the pipeline supplies the real ones, tested end to
end in tests/api); here they are plain functions so each branch of the loop can be forced.
"""

from __future__ import annotations

from typing import Any

import pytest

from mspclaw.engine.approval import ApprovalGate
from mspclaw.engine.models.playbook import run_plan
from mspclaw.engine.plan import Plan, PlanStep, StepRecord
from mspclaw.errors import ApprovalDenied, InvalidArguments, ToolFailed
from mspclaw.protocol.frames import Approval

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


PLAN = Plan(
    playbook="disk_full", name="Disk full",
    steps=[
        PlanStep(id="preview", title="Preview", tool="clear_temp_files", args={"dry_run": True}),
        PlanStep(id="clean", title="Clean", tool="clear_temp_files", args={"dry_run": False},
                 when="preview.files > 0"),
        PlanStep(id="after", title="Measure", tool="disk_usage"),
    ],
    success_check="max(pluck(after.filesystems, 'percent_used')) < 90",
    replies={"resolved": "fixed", "escalated": "a tech will call"},
)


class Tools:
    def __init__(self, outputs: dict[str, list[dict[str, Any]]]) -> None:
        self.outputs = outputs
        self.calls: list[tuple[str, dict[str, Any], Approval | None]] = []

    async def __call__(self, tool: str, args: dict[str, Any], *, reason: str,
                       approval: Approval | None = None) -> dict[str, Any]:
        self.calls.append((tool, args, approval))
        out = self.outputs[tool].pop(0)
        if "raise" in out:
            raise ToolFailed(out["raise"])
        return out


class Approver:
    def __init__(self, approve: bool) -> None:
        self.approve = approve
        self.asked: list[str] = []

    async def request(self, tool: str, args: dict[str, Any], *, reason: str) -> Approval:
        self.asked.append(tool)
        if not self.approve:
            raise ApprovalDenied("Dana denied clear_temp_files: not now")
        return Approval(approval_id="ap_1", approver="Dana", decided_at=1.0)


async def collect(plan: Plan, tools: Any) -> tuple[Any, list[StepRecord]]:
    seen: list[StepRecord] = []

    async def sink(record: StepRecord) -> None:
        seen.append(record)

    return await run_plan(plan, tools, sink), seen


async def test_resolves_and_gates_only_the_destructive_call() -> None:
    tools = Tools({"clear_temp_files": [{"files": 2, "dry_run": True}, {"deleted": 2}],
                   "disk_usage": [{"filesystems": [{"percent_used": 50}]}]})
    approver = Approver(approve=True)
    result, seen = await collect(PLAN, ApprovalGate(tools, approver, frozenset()))
    assert result.outcome == "resolved" and result.reply == "fixed"
    assert approver.asked == ["clear_temp_files"]
    assert [c[2] for c in tools.calls] == [None, Approval(approval_id="ap_1", approver="Dana", decided_at=1.0),
                                           None]
    assert [r.step_id for r in seen] == ["preview", "clean", "after"]


async def test_skips_a_step_whose_condition_is_false() -> None:
    tools = Tools({"clear_temp_files": [{"files": 0}], "disk_usage": [{"filesystems": [{"percent_used": 50}]}]})
    approver = Approver(approve=True)
    result, seen = await collect(PLAN, ApprovalGate(tools, approver, frozenset()))
    assert result.outcome == "resolved"
    assert approver.asked == [] and seen[1].skipped


async def test_denial_escalates_and_the_tool_never_runs() -> None:
    tools = Tools({"clear_temp_files": [{"files": 2}], "disk_usage": []})
    result, seen = await collect(PLAN, ApprovalGate(tools, Approver(approve=False), frozenset()))
    assert result.outcome == "escalated" and "denied" in result.reason
    assert [c[1] for c in tools.calls] == [{"dry_run": True}]
    assert seen[-1].ok is False


async def test_failed_required_step_escalates_with_the_error() -> None:
    tools = Tools({"clear_temp_files": [{"raise": "permission denied"}]})
    result, _ = await collect(PLAN, ApprovalGate(tools, Approver(True), frozenset()))
    assert result.outcome == "escalated" and "permission denied" in result.reason


async def test_failed_success_check_escalates_with_the_hint() -> None:
    plan = PLAN.model_copy(update={"escalation_hint": "still full"})
    tools = Tools({"clear_temp_files": [{"files": 0}], "disk_usage": [{"filesystems": [{"percent_used": 97}]}]})
    result, _ = await collect(plan, ApprovalGate(tools, Approver(True), frozenset()))
    assert result.outcome == "escalated" and result.reason == "still full"


async def test_step_limit_escalates() -> None:
    plan = PLAN.model_copy(update={"max_steps": 1})
    tools = Tools({"clear_temp_files": [{"files": 0}], "disk_usage": []})
    result, _ = await collect(plan, ApprovalGate(tools, Approver(True), frozenset()))
    assert result.outcome == "escalated" and "step limit of 1" in result.reason


async def test_playbook_can_require_approval_for_a_safe_tool() -> None:
    tools = Tools({"disk_usage": [{"filesystems": []}]})
    approver = Approver(True)
    gate = ApprovalGate(tools, approver, frozenset({"disk_usage"}))
    await gate("disk_usage", {}, reason="r")
    assert approver.asked == ["disk_usage"]


async def test_gate_validates_arguments_before_anything_runs() -> None:
    tools = Tools({})
    with pytest.raises(InvalidArguments, match="older_than_days"):
        await ApprovalGate(tools, Approver(True), frozenset())("clear_temp_files", {"older_than_days": -1},
                                                                 reason="r")
    assert tools.calls == []
