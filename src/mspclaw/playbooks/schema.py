"""The playbook format: a YAML file validated by this pydantic model."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mspclaw.engine.conditions import parse
from mspclaw.engine.plan import Plan, PlanStep
from mspclaw.errors import ConditionError, InvalidArguments
from mspclaw.tools import CATALOGUE

OSName = Literal["linux", "macos", "windows"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Triggers(_Model):
    keywords: list[str] = Field(default_factory=list, description="Single words; each hit adds its weight.")
    phrases: list[str] = Field(default_factory=list, description="Multi-word phrases; each hit adds twice.")
    negative: list[str] = Field(default_factory=list, description="Any hit rules the playbook out.")
    weights: dict[str, float] = Field(default_factory=dict, description="Per keyword or phrase weight (default 1).")


class Step(_Model):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str
    tool: str
    args: dict[str, object] = Field(default_factory=dict)
    when: str | None = None
    reason: str = ""
    required: bool = True
    os: list[OSName] | None = Field(None, description="Only on these OSes; default: every OS of the playbook.")

    @model_validator(mode="after")
    def _args_fit_the_tool(self) -> Step:
        spec = CATALOGUE.get(self.tool)
        if spec is None:
            raise ValueError(f"unknown tool {self.tool!r}; known tools: {', '.join(sorted(CATALOGUE))}")
        try:
            spec.validate(dict(self.args))
        except InvalidArguments as exc:
            raise ValueError(f"args: {exc.message}") from None
        if self.when:
            try:
                parse(self.when)
            except ConditionError as exc:
                raise ValueError(f"when: {exc.message}") from None
        return self


class Replies(_Model):
    resolved: str
    escalated: str


class Playbook(_Model):
    id: str = Field(pattern=r"^[a-z][a-z0-9_.-]*$")
    name: str
    version: str = "1"
    category: str
    description: str
    os: list[OSName] = Field(min_length=1)
    triggers: Triggers
    tools: list[str] = Field(min_length=1, description="The only tools this playbook may use.")
    requires_approval: list[str] = Field(default_factory=list)
    steps: list[Step] = Field(min_length=1)
    success_check: str
    reply: Replies
    escalation: str = ""
    max_steps: int | None = Field(None, ge=1, le=100, description="Model turns for this playbook (default: global).")

    @field_validator("tools", "requires_approval")
    @classmethod
    def _known_tools(cls, tools: list[str]) -> list[str]:
        for tool in tools:
            if tool not in CATALOGUE:
                raise ValueError(f"unknown tool {tool!r}; known tools: {', '.join(sorted(CATALOGUE))}")
        return tools

    @field_validator("success_check")
    @classmethod
    def _check_parses(cls, expr: str) -> str:
        try:
            parse(expr)
        except ConditionError as exc:
            raise ValueError(exc.message) from None
        return expr

    @model_validator(mode="after")
    def _consistent(self) -> Playbook:
        seen: set[str] = set()
        for step in self.steps:
            if step.tool not in self.tools:
                raise ValueError(f"step {step.id!r} uses {step.tool!r}, which is not in this playbook's tools")
            if step.id in seen:
                raise ValueError(f"step id {step.id!r} is used twice")
            seen.add(step.id)
        return self

    def plan_for(self, os: str) -> Plan:
        """The steps for one OS, as the engine's plan."""
        steps = [
            PlanStep(id=s.id, title=s.title, tool=s.tool, args=dict(s.args), when=s.when, reason=s.reason,
                     required=s.required)
            for s in self.steps
            if s.os is None or os in s.os
        ]
        return Plan(
            playbook=self.id, name=self.name, steps=steps, success_check=self.success_check,
            replies={"resolved": self.reply.resolved, "escalated": self.reply.escalated},
            escalation_hint=self.escalation, requires_approval=frozenset(self.requires_approval),
            **({"max_steps": self.max_steps} if self.max_steps is not None else {}),
        )
