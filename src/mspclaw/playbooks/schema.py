"""The playbook format: a YAML file validated by this pydantic model."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mspclaw.engine.conditions import parse
from mspclaw.engine.plan import Plan, PlanQuestion, PlanStep
from mspclaw.errors import ConditionError, InvalidArguments
from mspclaw.tools import CATALOGUE

OSName = Literal["linux", "macos", "windows"]
Category = Literal[
    "password_reset", "account_locked", "printer", "wifi", "vpn", "slow_computer", "disk_full", "email",
    "software_install", "onboarding", "offboarding", "shared_drive_access", "mfa_reset", "browser",
    "no_internet", "app_crash",
]
"""The sixteen categories of the library; a playbook belongs to exactly one."""
RESERVED_NAMES = frozenset({"facts", "true", "false", "none"})
"""Names a step id may not take: conditions and ``args_from`` read the run's facts as ``facts``."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Triggers(_Model):
    keywords: list[str] = Field(default_factory=list, description="Single words; each hit adds its weight.")
    phrases: list[str] = Field(default_factory=list, description="Multi-word phrases; each hit adds twice.")
    negative: list[str] = Field(default_factory=list, description="Any hit rules the playbook out.")
    weights: dict[str, float] = Field(default_factory=dict, description="Per keyword or phrase weight (default 1).")
    context: list[str] = Field(default_factory=list, description=(
        "Keywords or phrases that name what the playbook is about (a product, an object) without saying "
        "anything is wrong with it. A longer ticket whose only hits for this playbook are these gets no "
        "playbook: it is about something the playbook does not treat."))

    @model_validator(mode="after")
    def _weights_name_triggers(self) -> Triggers:
        known = set(self.keywords) | set(self.phrases)
        for word in self.context:
            if word not in known:
                raise ValueError(f"context: {word!r} is neither a keyword nor a phrase of this playbook")
        for key, weight in self.weights.items():
            if key not in known:
                raise ValueError(f"weights: {key!r} is neither a keyword nor a phrase of this playbook")
            if not 0 < weight <= 10:
                raise ValueError(f"weights: {key!r} must be above 0 and at most 10")
        for word in self.keywords:
            if " " in word.strip():
                raise ValueError(f"keywords: {word!r} has a space; put it under phrases")
        return self


class Question(_Model):
    """Something the playbook may ask the end user, and the device fact the answer fills."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    text: str = Field(min_length=1, description="Asked in plain words, as the user sees it.")
    choices: list[str] = Field(default_factory=list, description="Offered answers; empty means free text.")
    fact: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Fact the answer fills; conditions and "
                      "args_from read it as facts.<fact>. The runner asks only when a step needs it and it is "
                      "not known.")
    remember: bool = Field(True, description="Keep the answer in the device's memory, so no later ticket asks "
                           "again (the user's printer, their phone number). False for what belongs to this "
                           "ticket only (the program to install, a leaver's name, an identity check).")


class Step(_Model):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str
    tool: str
    args: dict[str, object] = Field(default_factory=dict)
    when: str | None = None
    reason: str = ""
    required: bool = True
    os: list[OSName] | None = Field(None, description="Only on these OSes; default: every OS of the playbook. "
                                    "Per-OS variants of a step are steps with the same purpose and different os.")
    args_from: dict[str, str] = Field(default_factory=dict, description="Arguments computed when the step runs: "
                                      "argument name -> expression over earlier outputs and facts, e.g. "
                                      "{printer: \"queues.stuck[0]\"} or {username: \"facts.requester\"}.")

    @model_validator(mode="after")
    def _args_fit_the_tool(self) -> Step:
        spec = CATALOGUE.get(self.tool)
        if spec is None:
            raise ValueError(f"unknown tool {self.tool!r}; known tools: {', '.join(sorted(CATALOGUE))}")
        if self.id in RESERVED_NAMES:
            raise ValueError(f"step id {self.id!r} is reserved")
        overlap = set(self.args) & set(self.args_from)
        if overlap:
            raise ValueError(f"args_from: {', '.join(sorted(overlap))} also given in args")
        fields = spec.args.model_fields
        for name, expr in self.args_from.items():
            if name not in fields:
                raise ValueError(f"args_from: {spec.name} takes no argument {name!r}")
            try:
                parse(expr)
            except ConditionError as exc:
                raise ValueError(f"args_from.{name}: {exc.message}") from None
        try:
            spec.validate(dict(self.args))
        except InvalidArguments as exc:
            # arguments filled at run time are missing now; every other problem is real
            real = [p for p in exc.message.split(": ", 1)[-1].split("; ")
                    if not any(p == f"{name}: Field required" for name in self.args_from)]
            if real:
                raise ValueError(f"args: {spec.name}: {'; '.join(real)}") from None
        if self.when:
            try:
                parse(self.when)
            except ConditionError as exc:
                raise ValueError(f"when: {exc.message}") from None
        return self


class Replies(_Model):
    """What the end user reads, in plain words: no jargon, no secrets."""

    resolved: str
    escalated: str
    needs_action: str = Field("", description="When the user must do something (restart, sign in again).")


PSAName = Literal["superops", "connectwise", "halo", "autotask", "freshdesk", "local"]
IdentityName = Literal["active_directory", "entra_id"]
SEMVER = re.compile(r"^(0|[1-9][0-9]*)(?:\.(0|[1-9][0-9]*))?(?:\.(0|[1-9][0-9]*))?"
                    r"(-[0-9A-Za-z.-]{1,40})?(\+[0-9A-Za-z.-]{1,40})?$")


def semver(value: str) -> str:
    """``value`` as MAJOR.MINOR.PATCH[-pre][+build]; a missing minor or patch is 0."""
    found = SEMVER.match(value) if len(value) <= 100 else None
    if found is None:
        raise ValueError(f"version {value[:40]!r} is not a semantic version such as 1.2.0")
    major, minor, patch, pre, build = found.groups()
    return f"{major}.{minor or 0}.{patch or 0}{pre or ''}{build or ''}"


class Compatibility(_Model):
    """What a playbook was tried with before it was shared: the registry shows it, nothing enforces it."""

    psa: list[PSAName] = Field(default_factory=list, max_length=6)
    identity: list[IdentityName] = Field(default_factory=list, max_length=2, description="Directories the account "
                                         "steps ran against; the contribution check runs each one it lists.")


class Playbook(_Model):
    id: str = Field(pattern=r"^[a-z][a-z0-9_.-]*$")
    name: str
    version: str = Field("1.0.0", description="Semantic version (MAJOR.MINOR.PATCH); \"1\" or \"1.2\" read as "
                         "1.0.0 and 1.2.0. The registry refuses an install that goes down.")
    category: Category
    tested_against: Compatibility = Field(default_factory=lambda: Compatibility(), description="The PSAs and "
                                          "identity systems this playbook was tested with (shown in the registry).")
    description: str
    os: list[OSName] = Field(min_length=1)
    triggers: Triggers
    tools: list[str] = Field(min_length=1, description="The only tools this playbook may use.")
    requires_approval: list[str] = Field(default_factory=list, description="Tools that wait for a technician "
                                         "even when the catalogue calls them safe.")
    questions: list[Question] = Field(default_factory=list)
    steps: list[Step] = Field(min_length=1)
    success_check: str
    reply: Replies
    escalation: str = Field("", description="Hints for the technician who takes over an escalation.")
    os_notes: str = Field("", description="Why an OS is not covered, where one is left out.")
    max_steps: int | None = Field(None, ge=1, le=100, description="Model turns for this playbook (default: global).")

    @field_validator("tools", "requires_approval")
    @classmethod
    def _known_tools(cls, tools: list[str]) -> list[str]:
        for tool in tools:
            if tool not in CATALOGUE:
                raise ValueError(f"unknown tool {tool!r}; known tools: {', '.join(sorted(CATALOGUE))}")
        return tools

    @field_validator("version")
    @classmethod
    def _semver(cls, value: str) -> str:
        return semver(value)

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
            if step.os is not None and not set(step.os) <= set(self.os):
                raise ValueError(f"step {step.id!r} names an OS the playbook does not cover")
            for os_name in step.os or self.os:
                spec = CATALOGUE[step.tool]
                if os_name not in spec.os:
                    raise ValueError(f"step {step.id!r}: {step.tool} does not exist on {os_name}; "
                                     "limit the step with os:")
        for tool in self.tools:
            spec = CATALOGUE[tool]
            if spec.destructive and tool not in self.requires_approval:
                raise ValueError(f"tool {tool!r} changes the machine or an account: list it in requires_approval")
        if len({q.id for q in self.questions}) != len(self.questions):
            raise ValueError("question ids must be unique")
        return self

    def plan_for(self, os: str) -> Plan:
        """The steps for one OS, as the engine's plan."""
        steps = [
            PlanStep(id=s.id, title=s.title, tool=s.tool, args=dict(s.args), when=s.when, reason=s.reason,
                     required=s.required, args_from=dict(s.args_from))
            for s in self.steps
            if s.os is None or os in s.os
        ]
        return Plan(
            playbook=self.id, name=self.name, steps=steps, success_check=self.success_check,
            replies={"resolved": self.reply.resolved, "escalated": self.reply.escalated,
                     **({"needs_action": self.reply.needs_action} if self.reply.needs_action else {})},
            escalation_hint=self.escalation, requires_approval=frozenset(self.requires_approval),
            questions={q.fact: PlanQuestion(fact=q.fact, text=q.text, choices=list(q.choices), remember=q.remember)
                       for q in self.questions},
            **({"max_steps": self.max_steps} if self.max_steps is not None else {}),
        )


def json_schema() -> dict[str, Any]:
    """The published JSON Schema of a playbook file (``docs/playbook.schema.json``)."""
    schema = Playbook.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://mspclaw.dev/schemas/playbook.schema.json"
    schema["properties"]["tools"]["items"] = {"enum": sorted(CATALOGUE)}
    schema["properties"]["requires_approval"]["items"] = {"enum": sorted(CATALOGUE)}
    return schema
