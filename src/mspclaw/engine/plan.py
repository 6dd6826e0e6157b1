"""What the engine runs: a plan of tool steps, and the typed record of each step taken."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class PlanStep(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Name later conditions use for this step's output.")
    title: str
    tool: str
    args: dict[str, Any] = Field(default_factory=dict)
    when: str | None = Field(None, description="Condition over earlier outputs; the step is skipped when false.")
    reason: str = Field("", description="Why this step; shown to the technician in an approval request.")
    required: bool = Field(True, description="A failure of a required step escalates the ticket.")
    args_from: dict[str, str] = Field(default_factory=dict,
                                      description="Arguments computed when the step runs: name -> expression "
                                                  "over earlier outputs and ``facts``.")


class PlanQuestion(BaseModel):
    """Something the runner may ask the end user when a step needs ``facts.<fact>`` and it is not known."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    fact: str
    text: str
    choices: list[str] = Field(default_factory=list)
    remember: bool = Field(True, description="Kept in device memory (False: this ticket only).")


class Plan(BaseModel):
    """A playbook turned into steps for the deterministic runner."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    playbook: str
    name: str
    steps: list[PlanStep]
    success_check: str
    replies: dict[str, str] = Field(default_factory=dict)
    escalation_hint: str = ""
    requires_approval: frozenset[str] = frozenset()
    max_steps: int = Field(12, ge=1, le=100)
    questions: dict[str, PlanQuestion] = Field(default_factory=dict, description="By the fact each answer fills.")


Outcome = Literal["resolved", "escalated"]


@dataclass(frozen=True)
class StepRecord:
    """One step as it happened: persisted before the next step starts."""

    index: int
    step_id: str
    title: str
    tool: str | None
    args: dict[str, Any]
    ok: bool | None
    output: dict[str, Any] | None = None
    error: str | None = None
    skipped: bool = False
    thought: str = ""
    """What the model said before this call (the reasoning loop only)."""
    tokens: tuple[int, int] = (0, 0)
    """Prompt and completion tokens of the model turn that made this call (the reasoning loop only)."""


@dataclass
class RunResult:
    outcome: Outcome
    reason: str
    reply: str
    steps: list[StepRecord] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
