"""The tools one run may use, as the model sees them and as the loop calls them.

Only the matched playbook's tools are offered (and ``ask_user`` when questions can be asked);
a call to anything else is refused before dispatch, whatever the ticket text says. Arguments are
validated against the catalogue schema here, before the call reaches the approval gate or the
agent, and every refusal is a :class:`~mspclaw.errors.ToolError` the loop tells the model.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from mspclaw.engine.asking import QuestionGate, QuestionPort
from mspclaw.engine.messages import ToolDef
from mspclaw.engine.plan import PlanQuestion
from mspclaw.engine.ports import ToolPort
from mspclaw.errors import InvalidArguments, UnknownTool
from mspclaw.tools import CATALOGUE

ASK_USER = "ask_user"
RESOLVE = "resolve"
ESCALATE = "escalate"


ASK_USER_DEF = ToolDef(
    name=ASK_USER,
    description="Ask the end user one short question (on their device or as a reply on the ticket) and wait "
                "for the answer. Do not ask what you already know. Prefer the playbook's questions; never ask "
                "for a password, code, PIN, key or card number (such questions are refused).",
    parameters={"type": "object", "properties": {
        "question": {"type": "string", "minLength": 3, "maxLength": 500},
        "choices": {"type": "array", "items": {"type": "string"}, "maxItems": 6}},
        "required": ["question"], "additionalProperties": False},
)
FINISH_DEFS = (
    ToolDef(name=RESOLVE, description="Finish: the problem is fixed and checked. Give a summary for the "
            "technician's note and a plain-language reply to the end user.",
            parameters={"type": "object", "properties": {"summary": {"type": "string"}, "reply": {"type": "string"}},
                        "required": ["summary", "reply"], "additionalProperties": False}),
    ToolDef(name=ESCALATE, description="Finish: hand the ticket to a technician, saying what you found and tried.",
            parameters={"type": "object", "properties": {"reason": {"type": "string"}, "reply": {"type": "string"}},
                        "required": ["reason"], "additionalProperties": False}),
)


class Toolset:
    """The allowed catalogue tools over a :class:`ToolPort`, plus ``ask_user`` when a port is given.

    ``ask_user`` always goes through a :class:`~mspclaw.engine.asking.QuestionGate` over ``declared``
    (the playbook's questions by the fact each fills)."""

    def __init__(self, allowed: Iterable[str], port: ToolPort, *, questions: QuestionPort | None = None,
                 declared: Mapping[str, PlanQuestion] | None = None) -> None:
        self.allowed = [name for name in dict.fromkeys(allowed) if name in CATALOGUE]
        self._port = port
        self._questions = QuestionGate(questions, declared) if questions is not None else None
        self._defs = [ToolDef(name=n, description=CATALOGUE[n].description, parameters=CATALOGUE[n].json_schema())
                      for n in self.allowed]
        if questions is not None:
            self._defs.append(ASK_USER_DEF)
        self._defs.extend(FINISH_DEFS)

    def definitions(self) -> list[ToolDef]:
        return list(self._defs)

    async def call(self, name: str, args: dict[str, Any], *, reason: str) -> dict[str, Any]:
        if name == ASK_USER and self._questions is not None:
            question = args.get("question")
            choices = args.get("choices")
            if not isinstance(question, str) or not 3 <= len(question.strip()) <= 500:
                raise InvalidArguments("ask_user: question: a question of 3 to 500 characters is required")
            if choices is not None and not (isinstance(choices, list) and len(choices) <= 6
                                            and all(isinstance(c, str) and len(c) <= 200 for c in choices)):
                raise InvalidArguments("ask_user: choices: at most 6 strings of at most 200 characters")
            return {"answer": await self._questions.ask(question.strip(), choices)}
        if name not in self.allowed:
            offered = ", ".join(d.name for d in self._defs)
            raise UnknownTool(f"{name!r} is not a tool of this run; use one of: {offered}")
        parsed = CATALOGUE[name].validate(args).model_dump(mode="json")
        return await self._port(name, parsed, reason=reason)
